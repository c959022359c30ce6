"""Variant effect prediction: SAD/SAR scores, normalisation (z-scores, PCs), VCF → sad.h5.

scoring        VariantScorer, site_sequences, variant_interval, scores_from_means
normalization  ScoreTransform (StandardScaler + PCA parameters in .npz)
pipeline       score_vcf: resumable VCF → sad.h5 (+ TSV, PC tables, PNG), single process, on a
               Dask cluster (client=) or as one of N shards (shard=); ScoringSettings: how to
               score (shared with enformer.genes.score_genes); run_chunks: the chunk loop both
               run; score_chunk: one chunk; motif_annotations: motif_gained / motif_lost of
               each variant (FIMO, `scan_motifs=`)
shards         merge_scores: N shard files → the single run's sad.h5
plotting       plot_variant_scores: heatmap of variants × top tracks
"""

from enformer.variants.normalization import ScoreTransform
from enformer.variants.pipeline import (
    ChunkSettings,
    ScoreVcfResult,
    ScoringSettings,
    chunk_sites,
    run_chunks,
    score_chunk,
    score_vcf,
    shard_chunks,
    write_score_files,
)
from enformer.io.sad import parse_shard
from enformer.variants.shards import merge_scores
from enformer.variants.scoring import (
    EnsembleMember,
    VariantScorer,
    ensemble_members,
    flatten_sites,
    scores_from_means,
    site_sequences,
    variant_interval,
)

__all__ = [
    'ChunkSettings',
    'EnsembleMember',
    'ScoreTransform',
    'ScoreVcfResult',
    'ScoringSettings',
    'VariantScorer',
    'chunk_sites',
    'ensemble_members',
    'flatten_sites',
    'merge_scores',
    'parse_shard',
    'run_chunks',
    'score_chunk',
    'score_vcf',
    'scores_from_means',
    'shard_chunks',
    'site_sequences',
    'variant_interval',
    'write_score_files',
]
