"""Genes: GTF annotation, expression at a gene's TSSs, gene-level variant effects.

  annotation  read_genes: genes and their strand-aware TSSs from a GTF (gtfparse)
  expression  gene_expression: a gene's CAGE-at-TSS in one window of predictions; tss_bins
  scoring     GeneScorer: variant × gene REF/ALT expression (indel-aligned), sed_scores
  pipeline    score_genes: resumable VCF × GTF → sed.h5 (+ TSV), one process, Dask or shards
  shards      merge_gene_scores: N shard files → the single run's sed.h5
  predict     predict_gene_expression: TSS-centred windows → expression.h5 / .tsv / .h5ad
  haplotypes  predict_haplotypes: every sample's two haplotypes of a phased VCF per gene or
              region (exact reuse of identical and locally identical haplotypes) → h5ad;
              HaplotypeSettings: how it predicts

The names below are loaded on first use: importing `enformer.genes.annotation` (or `expression`)
imports no TensorFlow.
"""

from enformer.lazy import lazy_attributes

_EXPORTS = {
    'read_gene_list': 'enformer.genes.annotation',
    'read_genes': 'enformer.genes.annotation',
    'GENE_STATS': 'enformer.genes.expression',
    'gene_expression': 'enformer.genes.expression',
    'tss_bins': 'enformer.genes.expression',
    'GeneScorer': 'enformer.genes.scoring',
    'alt_position': 'enformer.genes.scoring',
    'sed_scores': 'enformer.genes.scoring',
    'ScoreGenesResult': 'enformer.genes.pipeline',
    'score_genes': 'enformer.genes.pipeline',
    'merge_gene_scores': 'enformer.genes.shards',
    'GeneExpression': 'enformer.genes.predict',
    'predict_gene_expression': 'enformer.genes.predict',
    'HaplotypeSettings': 'enformer.genes.haplotypes',
    'PredictHaplotypesResult': 'enformer.genes.haplotypes',
    'predict_haplotypes': 'enformer.genes.haplotypes',
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())
