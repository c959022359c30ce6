"""Binned coverage tracks: write bigWig (pyBigWig) and bedGraph; read bigWig into bins.

Values are per bin of `bin_size` bp starting at `start` (0-based). Bins entirely outside the
chromosome are dropped (bigWig cannot hold them); bins crossing its start or end are clipped.
"""

from typing import List, Mapping, Sequence, Tuple, Union
import errno
import os

import numpy as np
import pyBigWig

from enformer.io.atomic import atomic_open, atomic_path
from enformer.io.quiet import stderr_to_devnull

from enformer.io.fasta import alternative_chromosome_names

PathLike = Union[str, os.PathLike]


def _clip_bins(
    chrom_size: int, start: int, values: np.ndarray, bin_size: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(starts, ends, values) of the bins overlapping [0, chrom_size), clipped to it."""
  values = np.asarray(values, dtype=np.float64).reshape(-1)
  starts = start + bin_size * np.arange(len(values), dtype=np.int64)
  ends = starts + bin_size
  keep = (ends > 0) & (starts < chrom_size)
  return np.maximum(starts[keep], 0), np.minimum(ends[keep], chrom_size), values[keep]


def _sorted_blocks(
    chrom_sizes: Mapping[str, int], tracks: Sequence[Tuple[str, int, np.ndarray]], bin_size: int
) -> List[Tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
  """Blocks clipped to their chromosome, sorted, overlaps removed: (chrom, starts, ends, values)."""
  entries = []
  for chrom, start, values in tracks:
    if chrom not in chrom_sizes:
      raise ValueError(
          f'Chromosome {chrom!r} is not in the chromosome sizes ({list(chrom_sizes)[:5]}...).'
      )
    entries.append((chrom, *_clip_bins(chrom_sizes[chrom], int(start), values, bin_size)))
  order = {chrom: i for i, chrom in enumerate(chrom_sizes)}
  entries.sort(key=lambda e: (order[e[0]], e[1][0] if len(e[1]) else 0))
  blocks, last_end = [], {}
  for chrom, starts, ends, values in entries:
    keep = starts >= last_end.get(chrom, 0)  # Entries must not overlap.
    if keep.any():
      blocks.append((chrom, starts[keep], ends[keep], values[keep]))
      last_end[chrom] = int(ends[keep][-1])
  return blocks


def write_bigwig(
    path: PathLike,
    chrom_sizes: Mapping[str, int],
    tracks: Sequence[Tuple[str, int, np.ndarray]],
    bin_size: int = 128,
) -> None:
  """Writes binned values to a bigWig file.

  Args:
    path: output .bw path.
    chrom_sizes: chromosome → length (e.g. FastaStringExtractor.chromosome_sizes); all are
      written to the header.
    tracks: (chrom, start, values [bins]) blocks; they may overlap (later blocks in sorted order
      keep only their non-overlapping bins) and come in any order.
    bin_size: bp per value.
  """
  blocks = _sorted_blocks(chrom_sizes, tracks, bin_size)
  with atomic_path(path) as temporary:  # Complete or absent, even after kill -9.
    bw = pyBigWig.open(temporary, 'w')
    if bw is None:
      raise OSError(f'pyBigWig could not create {temporary}.')
    try:
      bw.addHeader([(chrom, int(size)) for chrom, size in chrom_sizes.items()])
      for chrom, starts, ends, values in blocks:
        bw.addEntries(
            [chrom] * len(starts), starts.tolist(), ends=ends.tolist(), values=values.tolist()
        )
    finally:
      bw.close()


def write_bedgraph(
    path: PathLike,
    chrom_sizes: Mapping[str, int],
    tracks: Sequence[Tuple[str, int, np.ndarray]],
    bin_size: int = 128,
    track_name: str = '',
) -> None:
  """Writes binned values as a bedGraph (UCSC track line first); blocks as in write_bigwig."""
  with atomic_open(path, 'w') as handle:
    handle.write(f'track type=bedGraph name="{track_name or os.path.basename(path)}"\n')
    for chrom, starts, ends, values in _sorted_blocks(chrom_sizes, tracks, bin_size):
      for s, e, v in zip(starts, ends, values):
        handle.write(f'{chrom}\t{s}\t{e}\t{v:.6g}\n')


def open_bigwig(path: PathLike):
  """A pyBigWig handle for reading `path` (close it); errors name the file.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: `path` is not a readable bigWig (another format, or truncated).
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(errno.ENOENT, f'bigWig file {path} does not exist', path)
  try:
    with stderr_to_devnull():  # libBigWig prints its own lines about a file it cannot read.
      handle = pyBigWig.open(path)
  except RuntimeError:
    handle = None
  if handle is not None and not handle.isBigWig():
    handle.close()
    handle = None
  if handle is None:
    raise ValueError(
        f'{path} is not a readable bigWig file (another format, or truncated); '
        'convert bedGraph with bedGraphToBigWig, or download or write it again.'
    )
  return handle


def read_bigwig_bins(
    path: PathLike, chrom: str, start: int, end: int, bin_size: int = 128
) -> np.ndarray:
  """Mean coverage of a bigWig per bin over [start, end): [(end - start) // bin_size] float32.

  Missing data and positions outside the chromosome count as 0 (the chr prefix is resolved).
  """
  path = os.fspath(path)
  if (end - start) % bin_size:
    raise ValueError(f'Region length {end - start} is not a multiple of bin_size={bin_size}.')
  bw = open_bigwig(path)
  try:
    chroms = bw.chroms()
    name = (
        chrom
        if chrom in chroms
        else next((n for n in alternative_chromosome_names(chrom) if n in chroms), None)
    )
    if name is None:
      raise ValueError(f'Chromosome {chrom!r} is not in {path} ({list(chroms)[:5]}...).')
    size = chroms[name]
    lo, hi = max(start, 0), min(end, size)
    per_base = np.zeros(end - start, dtype=np.float32)
    if hi > lo:
      values = np.asarray(bw.values(name, lo, hi, numpy=True), dtype=np.float32)
      per_base[lo - start : hi - start] = np.nan_to_num(values, nan=0.0)
  finally:
    bw.close()
  return per_base.reshape(-1, bin_size).mean(axis=1)
