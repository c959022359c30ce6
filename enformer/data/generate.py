"""Generate a Basenji2 data set from bigWig signal tracks (as Basenji's basenji_data.py does).

Inputs: a genome FASTA, a targets table (index, identifier, file (bigWig), clip, scale, sum_stat,
description — the Basenji format; `genome` optional) and either a BED of regions or a tiling of
the genome. For every window of `sequence_length` bp:

  * windows overlapping a blacklist region, or with more than `max_n_fraction` N bases, are skipped;
  * each bigWig is read over the central sequence_length − 2 × crop_bp bp (missing values = 0)
    and summarised per `pool_width` (128) bp bin with its `sum_stat`: mean, sum, median, max or min;
  * the bins are clipped at `clip` and then multiplied by `scale` (Basenji's order), and stored as
    float16; values are kept in [0, 65504] (coverage: negative values become 0);
  * the window goes to train/valid/test by chromosome (`valid_chroms`, `test_chroms`; the rest is
    train).

Optional extra per-base input tracks (e.g. a conservation bigWig) are stored per record as the
feature 'input_tracks' (float16 [sequence_length, E], missing = 0) and listed in statistics.json
('input_tracks'); read them with `get_dataset(..., include_input_tracks=True)` → 'sequence'
[L, 4 + E] for `Enformer(input_channels=4 + E)`.
"""

import os
import warnings
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import kipoiseq
from tqdm.auto import tqdm

from enformer.data.write import BasenjiWriter, check_output
from enformer.io.bed import read_bed
from enformer.io.bigwig import open_bigwig
from enformer.io.fasta import FastaStringExtractor, alternative_chromosome_names
from enformer.io.targets import read_targets
from enformer.sequence import FLOAT16_MAX

SUM_STATS = ('mean', 'sum', 'median', 'max', 'min')
DEFAULT_VALID_CHROMS = ('chr8',)
DEFAULT_TEST_CHROMS = ('chr9',)

PathLike = Union[str, os.PathLike]


def read_target_table(targets: Union[PathLike, pd.DataFrame]) -> pd.DataFrame:
  """Targets table with the columns generation needs (defaults: clip inf, scale 1, sum_stat
  mean)."""
  if isinstance(targets, pd.DataFrame):
    table = targets.copy()
  else:
    table = read_targets(targets)
  if 'file' not in table:
    raise ValueError('The targets table needs a "file" column with the bigWig path of each track.')
  table = table.reset_index(drop=True)
  if 'index' not in table:
    table['index'] = np.arange(len(table))
  table['clip'] = (
      pd.to_numeric(table['clip'], errors='coerce').fillna(np.inf) if 'clip' in table else np.inf
  )
  table['scale'] = (
      pd.to_numeric(table['scale'], errors='coerce').fillna(1.0) if 'scale' in table else 1.0
  )
  table['sum_stat'] = table['sum_stat'].fillna('mean') if 'sum_stat' in table else 'mean'
  bad = sorted(set(table['sum_stat']) - set(SUM_STATS))
  if bad:
    raise ValueError(f'Unsupported sum_stat {bad}; use one of {SUM_STATS}.')
  if not isinstance(targets, pd.DataFrame):
    # Relative bigWig paths are relative to the table's folder.
    folder = os.path.dirname(os.path.abspath(os.fspath(targets)))
    table['file'] = [
        f if os.path.isabs(str(f)) or os.path.exists(str(f)) else os.path.join(folder, str(f))
        for f in table['file']
    ]
  missing = [f for f in table['file'] if not os.path.exists(str(f))]
  if missing:
    raise FileNotFoundError(
        f'bigWig file(s) of the targets table do not exist: {missing[:3]}. '
        'Paths in the "file" column must be readable from here.'
    )
  return table


def bin_values(values: np.ndarray, pool_width: int, sum_stat: str) -> np.ndarray:
  """Per-base values [n × pool_width] → per-bin [n] with sum_stat (mean/sum/median/max/min)."""
  bins = values.reshape(-1, pool_width)
  return {'mean': np.mean, 'sum': np.sum, 'median': np.median, 'max': np.max, 'min': np.min}[
      sum_stat
  ](bins, axis=1)


class _BigWigReader:
  """Opens a bigWig once; returns per-base values with NaN → 0, 0 outside the chromosome."""

  def __init__(self, path: str):
    self.path = path
    self._bw = open_bigwig(path)  # Errors name the file.
    self._chroms = self._bw.chroms()
    self._alternatives = alternative_chromosome_names

  @property
  def chromosomes(self) -> List[str]:
    """The bigWig's chromosome names, in header order."""
    return list(self._chroms)

  def _name(self, chrom: str) -> Optional[str]:
    if chrom in self._chroms:
      return chrom
    return next((n for n in self._alternatives(chrom) if n in self._chroms), None)

  def check_chromosomes(self, used: Sequence[str], what: str) -> None:
    """Raises when none of `used` (window chromosomes) is in the bigWig; warns for some missing.

    'chr1' ↔ '1' and 'chrM' ↔ 'MT' count as the same chromosome.
    """
    missing = [c for c in used if self._name(c) is None]
    if not missing:
      return
    if len(missing) == len(used):
      raise ValueError(
          f'{what} {self.path}: none of the window chromosomes ({_shown(used)}) is in the bigWig, '
          f'whose chromosomes are {_shown(self.chromosomes)} (also tried with/without "chr"). '
          'The bigWig and the FASTA must use the same assembly and chromosome names; rename one '
          'of them or use the matching files.'
      )
    warnings.warn(
        f'{what} {self.path} has no chromosome {_shown(missing)}; their windows get '
        f'0 for this track (the bigWig has {_shown(self.chromosomes)}).',
        stacklevel=2,
    )

  def values(self, chrom: str, start: int, end: int) -> np.ndarray:
    out = np.zeros(end - start, np.float32)
    name = self._name(chrom)
    if name is None:
      return out
    lo, hi = max(start, 0), min(end, self._chroms[name])
    if lo < hi:
      out[lo - start : hi - start] = np.nan_to_num(
          self._bw.values(name, lo, hi, numpy=True), nan=0.0
      )
    return out

  def close(self) -> None:
    self._bw.close()


def _shown(names: Sequence[str], limit: int = 8) -> str:
  """'chr1, chr2, ... (25 in all)' for messages."""
  names = list(names)
  more = f', ... ({len(names)} in all)' if len(names) > limit else ''
  return ', '.join(names[:limit]) + more


def _held_out(
    kind: str,
    flag: str,
    names: Sequence[str],
    fasta: PathLike,
    available: Mapping[str, int],
    resolve,
) -> List[str]:
  """FASTA names of the held-out chromosomes `names`; ValueError naming those not available.

  Args:
    kind: 'Validation' or 'Test'.
    flag: the argument that sets them, in backticks.
    names: the chromosomes asked for ('chr8' matches a FASTA's '8').
    available: chromosome → size of the chromosomes windows come from.
    resolve: FASTA name of a chromosome, or None.
  """
  resolved, missing = [], []
  for name in names:
    fasta_name = resolve(name)
    if fasta_name is None or fasta_name not in available:
      missing.append(name)
    else:
      resolved.append(fasta_name)
  if missing:
    raise ValueError(
        f'{kind} chromosome(s) {missing} ({flag}) are not among the chromosomes windows come from '
        f'({_shown(available)}; FASTA {fasta}), so the {kind.lower()} subset would be empty. '
        f'Set {flag} to chromosomes of this genome (comma-separated), or to "" for no '
        f'{kind.lower()} subset.'
    )
  return resolved


def _read_blacklist(path: Optional[PathLike]) -> Dict[str, np.ndarray]:
  """chrom → sorted [n, 2] array of blacklist intervals."""
  if path is None:
    return {}
  regions: Dict[str, List[Tuple[int, int]]] = {}
  for interval in read_bed(path):
    regions.setdefault(interval.chrom, []).append((interval.start, interval.end))
  return {chrom: np.array(sorted(r), dtype=np.int64) for chrom, r in regions.items()}


def _overlaps(blacklist: Mapping[str, np.ndarray], chrom: str, start: int, end: int) -> bool:
  regions = blacklist.get(chrom)
  if regions is None or not len(regions):
    return False
  # Any region with region_start < end and region_end > start.
  index = np.searchsorted(regions[:, 0], end)
  return bool(np.any(regions[:index, 1] > start))


def tile_windows(
    chrom_sizes: Mapping[str, int],
    sequence_length: int,
    stride: Optional[int] = None,
    chroms: Optional[Sequence[str]] = None,
) -> Iterator[Tuple[str, int, int]]:
  """Windows [start, start + sequence_length) every `stride` bp (default sequence_length) inside
  chromosomes."""
  stride = stride or sequence_length
  for chrom, size in chrom_sizes.items():
    if chroms is not None and chrom not in chroms:
      continue
    for start in range(0, size - sequence_length + 1, stride):
      yield chrom, start, start + sequence_length


def bed_windows(bed: PathLike, sequence_length: int) -> Iterator[Tuple[str, int, int]]:
  """BED regions resized to sequence_length around their centres."""
  for interval in read_bed(bed):
    centre = (interval.start + interval.end) // 2
    start = centre - sequence_length // 2
    yield interval.chrom, start, start + sequence_length


def _check_tracks_not_zero(table: pd.DataFrame, track_max: np.ndarray, num_windows: int) -> None:
  """ValueError naming the tracks whose targets are 0 in every written window."""
  zero = np.flatnonzero(track_max <= 0)
  if not len(zero):
    return
  names = [
      f'{table["identifier"].iloc[i] if "identifier" in table else i} ({table["file"].iloc[i]})'
      for i in zero
  ]
  raise ValueError(
      f'Track(s) {"; ".join(names[:5])} are 0 in all {num_windows} windows written: '
      'the bigWig has no signal there (wrong file, assembly or chromosome names, or a '
      'clip/scale of 0). Fix or drop those rows of the targets table.'
  )


def split_for(chrom: str, valid_chroms: Sequence[str], test_chroms: Sequence[str]) -> str:
  if chrom in test_chroms:
    return 'test'
  if chrom in valid_chroms:
    return 'valid'
  return 'train'


def generate_dataset(
    out_dir: PathLike,
    fasta: PathLike,
    targets: Union[PathLike, pd.DataFrame],
    *,
    sequence_length: int = 131_072,
    crop_bp: int = 0,
    pool_width: int = 128,
    regions: Optional[PathLike] = None,
    stride: Optional[int] = None,
    chroms: Optional[Sequence[str]] = None,
    valid_chroms: Sequence[str] = DEFAULT_VALID_CHROMS,
    test_chroms: Sequence[str] = DEFAULT_TEST_CHROMS,
    blacklist: Optional[PathLike] = None,
    max_n_fraction: float = 0.1,
    input_tracks: Optional[Mapping[str, PathLike]] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Dict[str, int]:
  """Writes the Basenji2 layout from bigWig tracks (see the module docstring).

  Args:
    out_dir: output folder.
    fasta: genome FASTA.
    targets: targets table (path or DataFrame) with a bigWig per row.
    sequence_length: bp per record; target_length = (sequence_length − 2 × crop_bp) / pool_width.
    crop_bp: bp on each side without targets (Enformer: (196,608 − 896 × 128) / 2 = 40,960).
    pool_width: bp per bin.
    regions: BED of regions (resized to sequence_length around their centres); default: tiling.
    stride: tiling step (default sequence_length, no overlap).
    chroms: chromosomes to use (default all in the FASTA).
    valid_chroms, test_chroms: chromosomes of the valid and test subsets.
    blacklist: BED of regions to avoid; overlapping windows are skipped.
    max_n_fraction: skip windows with a larger fraction of N bases.
    input_tracks: name → bigWig of extra per-base input tracks (e.g. {'conservation': 'phyloP.bw'}).
    overwrite: replace an existing data set.
    progress: show a progress bar.

  Returns:
    {'train': n, 'valid': n, 'test': n, 'skipped_blacklist': n, 'skipped_n': n}.
  """
  check_output(os.fspath(out_dir), overwrite)
  if (sequence_length - 2 * crop_bp) % pool_width or sequence_length <= 2 * crop_bp:
    raise ValueError(
        f'sequence_length − 2 × crop_bp = {sequence_length - 2 * crop_bp} must be a '
        f'positive multiple of pool_width {pool_width}.'
    )
  target_length = (sequence_length - 2 * crop_bp) // pool_width
  table = read_target_table(targets)
  input_tracks = dict(input_tracks or {})
  for name, path in input_tracks.items():
    if not os.path.exists(str(path)):
      raise FileNotFoundError(f'Input track {name!r}: bigWig {path} does not exist.')
  extractor = FastaStringExtractor(fasta)
  sizes = extractor.chromosome_sizes
  if chroms is not None:
    unknown = [c for c in chroms if c not in sizes]
    if unknown:
      raise ValueError(f'Chromosomes {unknown} are not in {fasta} (it has {list(sizes)[:6]} …).')
  windows = list(
      bed_windows(regions, sequence_length)
      if regions is not None
      else tile_windows(sizes, sequence_length, stride, chroms)
  )
  if regions is not None and chroms is not None:
    windows = [w for w in windows if w[0] in chroms]

  def fasta_name(chrom: str) -> Optional[str]:
    try:
      return extractor.resolve_chromosome(chrom)
    except ValueError:
      return None

  available = {c: sizes[c] for c in (chroms if chroms is not None else sizes)}
  valid_chroms = _held_out(
      'Validation', '`valid_chroms`', valid_chroms, fasta, available, fasta_name
  )
  test_chroms = _held_out('Test', '`test_chroms`', test_chroms, fasta, available, fasta_name)
  window_chroms = list(dict.fromkeys(w[0] for w in windows))
  if not windows:
    raise ValueError(
        f'No window of {sequence_length} bp: the chromosomes used '
        f'({_shown(available)}) '
        'are shorter than `sequence_length`, or the regions BED is empty.'
    )
  for kind, flag, held_out in (
      ('validation', '`valid_chroms`', valid_chroms),
      ('test', '`test_chroms`', test_chroms),
  ):
    if held_out and not any(fasta_name(c) in held_out for c in window_chroms):
      raise ValueError(
          f'No window of {sequence_length} bp lies on the {kind} chromosome(s) '
          f'{held_out} (windows are on {_shown(window_chroms)}): they are shorter '
          f'than `sequence_length` or the regions miss them. Choose other {flag}.'
      )
  blacklisted = _read_blacklist(blacklist)
  readers = [_BigWigReader(str(path)) for path in table['file']]
  input_readers = [_BigWigReader(str(path)) for path in input_tracks.values()]
  for reader, identifier in zip(
      readers,
      table['identifier'] if 'identifier' in table else [f'track {i}' for i in range(len(table))],
  ):
    reader.check_chromosomes(window_chroms, f'Track {identifier!r}:')
  for reader, name in zip(input_readers, input_tracks):
    reader.check_chromosomes(window_chroms, f'Input track {name!r}:')
  written_table = table.copy()
  counts = {'train': 0, 'valid': 0, 'test': 0, 'skipped_blacklist': 0, 'skipped_n': 0}
  writer = BasenjiWriter(
      out_dir,
      sequence_length=sequence_length,
      target_length=target_length,
      num_targets=len(table),
      pool_width=pool_width,
      crop_bp=crop_bp,
      targets=written_table,
      input_track_names=tuple(input_tracks),
      overwrite=overwrite,
      extra_statistics={
          'valid_chroms': list(valid_chroms),
          'test_chroms': list(test_chroms),
          'max_n_fraction': max_n_fraction,
      },
  )
  clips = table['clip'].to_numpy(np.float64)
  scales = table['scale'].to_numpy(np.float64)
  track_max = np.zeros(len(table), np.float32)
  try:
    with writer:
      for chrom, start, end in tqdm(windows, desc='generate', unit='window', disable=not progress):
        if _overlaps(blacklisted, chrom, start, end):
          counts['skipped_blacklist'] += 1
          continue
        sequence = extractor.extract(kipoiseq.Interval(chrom, start, end))
        if sequence.count('N') > max_n_fraction * sequence_length:
          counts['skipped_n'] += 1
          continue
        target = np.empty((target_length, len(table)), np.float32)
        for t, (reader, sum_stat) in enumerate(zip(readers, table['sum_stat'])):
          values = reader.values(chrom, start + crop_bp, end - crop_bp)
          binned = np.minimum(bin_values(values, pool_width, sum_stat), clips[t]) * scales[t]
          target[:, t] = np.clip(binned, 0, FLOAT16_MAX)
        extra = None
        if input_readers:
          extra = np.stack([r.values(chrom, start, end) for r in input_readers], axis=1)
          extra = np.clip(extra, -FLOAT16_MAX, FLOAT16_MAX)
        subset = split_for(fasta_name(chrom) or chrom, valid_chroms, test_chroms)
        writer.add(subset, sequence, target, interval=(chrom, start, end), input_tracks=extra)
        track_max = np.maximum(track_max, target.max(axis=0))
        counts[subset] += 1
      _check_tracks_not_zero(table, track_max, sum(counts[s] for s in ('train', 'valid', 'test')))
  finally:
    for reader in readers + input_readers:
      reader.close()
    extractor.close()
  return counts
