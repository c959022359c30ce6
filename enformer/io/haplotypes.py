"""The output files of `enformer.genes.haplotypes.predict_haplotypes` (no TensorFlow imported).

A whole run writes `OUT/haplotypes.h5ad` (and `OUT/haplotypes.tsv`); shard K of N of a sharded run
writes `OUT/haplotypes.K-of-N.h5ad`.
"""

from typing import Optional, Tuple

HAPLOTYPES_FILE = 'haplotypes.h5ad'
HAPLOTYPES_TSV = 'haplotypes.tsv'


def haplotypes_file(shard: Optional[Tuple[int, int]] = None) -> str:
  """The AnnData file name of a run: HAPLOTYPES_FILE, or 'haplotypes.K-of-N.h5ad' for shard
  (K, N)."""
  if shard is None:
    return HAPLOTYPES_FILE
  return f'haplotypes.{shard[0]}-of-{shard[1]}.h5ad'
