"""Join the shard files of a sharded `score_genes` run (`shard=(K, N)`) into one sed.h5.

As `enformer.variants.shards.merge_scores` does for sad.h5: the shards must be complete, disjoint
and of one run (same model, VCF, GTF, genes, targets and settings); the merged file equals the one
a single run writes.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np

from enformer.genes.pipeline import write_gene_score_files
from enformer.io import sad as sad_io
from enformer.io import sed as sed_io
from enformer.io.outputs import file_in_folder
from enformer.variants.shards import claim_merged_output, load_shards

PathLike = sed_io.PathLike


def merge_gene_scores(
    out: PathLike, shards: Sequence[PathLike], *, tsv: bool = False, overwrite: bool = False
) -> Dict[str, List[str]]:
  """Writes the sed.h5 (and, with `tsv`, its TSV) of a run scored as N shard files.

  Raises:
    FileNotFoundError: a shard file is missing (or unfinished).
    ValueError: shards of different runs (naming the setting), overlapping or missing shards.
  """
  out = file_in_folder(out, sed_io.SED_FILE)
  with claim_merged_output(out, overwrite):
    loaded, order = load_shards(shards, _read_shard)
    first_scores = loaded[0][1]
    # Pairs: each shard's `si` → whole-run variant rows, then in variant order (stable: the
    # genes of one variant keep their order).
    pair_rows = np.concatenate([np.asarray(info.variant_index)[s.si] for _, s, info in loaded])
    pair_order = np.argsort(pair_rows, kind='stable')
    variants = lambda name: np.concatenate([getattr(s, name) for _, s, _ in loaded])[order]
    pairs = lambda name: np.concatenate([getattr(s, name) for _, s, _ in loaded])[pair_order]
    merged = sed_io.GeneScores(
        snp=variants('snp'),
        chr=variants('chr'),
        pos=variants('pos'),
        ref=variants('ref'),
        alt=variants('alt'),
        si=pair_rows[pair_order],
        gene=pairs('gene'),
        gene_name=pairs('gene_name'),
        strand=pairs('strand'),
        tss_distance=pairs('tss_distance'),
        target_ids=first_scores.target_ids,
        target_labels=first_scores.target_labels,
        scores={
            name: np.concatenate([s.scores[name] for _, s, _ in loaded])[pair_order]
            for name in first_scores.scores
        },
        attrs=dict(first_scores.attrs, merged_shards=len(loaded)),
    )
    return write_gene_score_files(merged, out, tsv=tsv)


def _read_shard(path: str) -> Tuple[sed_io.GeneScores, sad_io.ShardInfo]:
  """A sed.h5 shard file's scores and shard info (ValueError for an unsharded sed.h5)."""
  scores, info = sed_io.read_sed_h5(path)
  if info is None:
    raise ValueError(f'{path} is not a shard file (it was written without `shard`).')
  return scores, info
