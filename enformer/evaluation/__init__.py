"""Evaluation of predictions against measurements: per-track and gene-level metrics, ridge
regression of expression on frozen TSS features.

  tss     expression at a TSS (the one definition), its window of bins, and the Pearson helper
  tracks  `evaluate`: per-track Pearson R / R² over bins and sequences, the paper's gene-level
          metric at TSSs, per-assay summaries (`enformer evaluate`)
  ridge   ridge regression from TSS features to measured expression per cell type
"""
