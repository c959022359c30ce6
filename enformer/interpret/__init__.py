"""Interpretation: which bases drive a prediction.

  gradients  gradient × input contribution scores, target masks, pooling into output bins
  ism        in-silico saturation mutagenesis
  links      enhancer–gene link scores (the paper's enhancer prioritisation)
  workflow   `attribute_interval` (one input) and `attribute_to_files` (`enformer attribute`)
  motifs     TF-MoDISco patterns of many regions named by TOMTOM against JASPAR (`enformer motifs`)
  scan       FIMO on the REF and ALT alleles of variants: motifs gained or lost (`motifs --scan`)

Their figures are drawn by `enformer.plots.attribution` and `enformer.plots.motifs`.

The functions of `gradients`, `ism` and `links` are importable from here, e.g.
`from enformer.interpret import contribution_input_grad, target_mask`.
"""

from enformer.interpret.gradients import (
    REDUCTIONS,
    contribution_input_grad,
    contribution_logo_matrix,
    extra_channel_contributions,
    output_shape,
    parse_index_list,
    pool_contributions,
    target_mask,
    target_prediction,
)
from enformer.interpret.ism import in_silico_mutagenesis, ism_logo_matrix
from enformer.interpret.links import (
    EnhancerLink,
    enhancer_gene_link_scores,
    enhancer_link_scores,
    tss_window_bins,
)

__all__ = [
    'REDUCTIONS',
    'EnhancerLink',
    'contribution_input_grad',
    'contribution_logo_matrix',
    'enhancer_gene_link_scores',
    'enhancer_link_scores',
    'extra_channel_contributions',
    'in_silico_mutagenesis',
    'ism_logo_matrix',
    'output_shape',
    'parse_index_list',
    'pool_contributions',
    'target_mask',
    'target_prediction',
    'tss_window_bins',
]
