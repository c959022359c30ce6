"""Variant effect prediction: SAD/SAR scores, normalisation (z-scores, PCs), VCF → sad.h5.

  scoring        VariantScorer, site_sequences, variant_interval, scores_from_means
  normalization  ScoreTransform (StandardScaler + PCA parameters in .npz)
  pipeline       score_vcf: resumable VCF → sad.h5 (+ TSV, PC tables, PNG)
  plotting       plot_variant_scores: heatmap of variants × top tracks
"""

from enformer.variants.normalization import ScoreTransform
from enformer.variants.pipeline import ScoreVcfResult, chunk_sites, score_vcf
from enformer.variants.scoring import (EnsembleMember, VariantScorer, ensemble_members,
                                       flatten_sites, scores_from_means, site_sequences,
                                       variant_interval)

__all__ = [
    'EnsembleMember', 'ScoreTransform', 'ScoreVcfResult', 'VariantScorer', 'chunk_sites',
    'ensemble_members', 'flatten_sites', 'score_vcf', 'scores_from_means', 'site_sequences',
    'variant_interval'
]
