"""BED files and 'chr:start-end' strings (0-based, half-open coordinates).

read_bed            regions of a BED file as kipoiseq.Interval
read_sequences_bed  a data set's sequences.bed (Basenji2's record index: chrom, start, end,
                    subset)
read_tss_bed        a TSS BED (chrom, start = the TSS, end, gene name)
parse_region / format_region  'chr1:1,000,001-1,001,000' ↔ Interval
"""

from typing import List, Optional, TextIO, Union
import os
import re

import kipoiseq
import numpy as np
import pandas as pd

_REGION = re.compile(r'^\s*([^:\s]+):([\d,_]+)-([\d,_]+)\s*$')


def parse_region(region: str) -> kipoiseq.Interval:
  """Parses 'chr1:1,000,001-1,001,000' (1-based, inclusive, like genome browsers) → Interval.

  The returned interval is 0-based half-open: chr1:1000000-1001000 (1,000 bp).
  """
  match = _REGION.match(region)
  if not match:
    raise ValueError(
        f'Cannot parse region {region!r}: use chrom:start-end, e.g. '
        'chr11:5,225,000-5,230,000 (1-based inclusive coordinates).'
    )
  chrom, start, end = match.group(1), *(int(re.sub('[,_]', '', g)) for g in match.groups()[1:])
  if start < 1 or end < start:
    raise ValueError(f'Region {region!r} must have 1 <= start <= end (1-based inclusive).')
  return kipoiseq.Interval(chrom, start - 1, end, name=region.strip())


def format_region(interval: kipoiseq.Interval) -> str:
  """'chrom:start-end' in 1-based inclusive coordinates (inverse of parse_region)."""
  return f'{interval.chrom}:{interval.start + 1}-{interval.end}'


def read_bed(path: Union[str, os.PathLike]) -> List[kipoiseq.Interval]:
  """Reads the regions of a BED file (BED3 or more columns; name and strand kept when present).

  Header lines (`track`, `browser`, `#`) and blank lines are skipped. Regions without a name
  get 'chrom:start-end' (1-based) as name.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'BED file {path} does not exist.')
  intervals = []
  with open(path) as handle:
    for line_number, line in enumerate(handle, start=1):
      if not line.strip() or line.startswith(('#', 'track', 'browser')):
        continue
      fields = line.rstrip('\n').split('\t')
      if len(fields) < 3:
        fields = line.split()
      try:
        chrom, start, end = fields[0], int(fields[1]), int(fields[2])
      except (IndexError, ValueError):
        raise ValueError(
            f'{path}:{line_number}: expected tab-separated chrom, start, end '
            f'(integers), got {line.strip()!r}.'
        ) from None
      if start < 0 or end <= start:
        raise ValueError(f'{path}:{line_number}: need 0 <= start < end, got {start}, {end}.')
      name = fields[3] if len(fields) > 3 and fields[3] not in ('', '.') else ''
      strand = fields[5] if len(fields) > 5 and fields[5] in ('+', '-') else '.'
      interval = kipoiseq.Interval(chrom, start, end, strand=strand)
      interval.name = name or format_region(interval)
      intervals.append(interval)
  if not intervals:
    raise ValueError(f'BED file {path} contains no regions.')
  return intervals


SEQUENCES_BED_COLUMNS = ('chrom', 'start', 'end', 'subset')
TSS_BED_COLUMNS = ('chrom', 'start', 'end', 'name')


def read_sequences_bed(
    source: Union[str, os.PathLike, TextIO], default_subset: Optional[str] = None
) -> pd.DataFrame:
  """Reads a data set's sequences.bed: one row per record, each subset's rows in record order.

  Args:
    source: a local path, or an open text file (e.g. a `tf.io.gfile.GFile` for remote folders).
    default_subset: the subset of every row when the file has only 3 columns (chrom, start, end);
      None: a 4th column (subset) is required.

  Returns:
    DataFrame with columns chrom (str), start, end (int64) and subset (str), in file order.
    Lines starting with '#' are skipped; columns after the 4th are ignored.
  """
  if not hasattr(source, 'read'):
    source = os.fspath(source)
  table = pd.read_csv(source, sep='\t', header=None, comment='#', dtype=str)
  table = table.iloc[:, : len(SEQUENCES_BED_COLUMNS)]
  if table.shape[1] < len(SEQUENCES_BED_COLUMNS):
    if default_subset is None or table.shape[1] < 3:
      raise ValueError(
          f'{getattr(source, "name", source)}: sequences.bed needs the columns '
          f'chrom, start, end, subset; found {table.shape[1]}.'
      )
    table[3] = default_subset
  table.columns = list(SEQUENCES_BED_COLUMNS)
  return table.astype({'start': np.int64, 'end': np.int64})


def read_tss_bed(path: Union[str, os.PathLike]) -> pd.DataFrame:
  """Reads a TSS BED: columns chrom (str), start (the TSS, 0-based), end, name (the gene).

  Lines starting with '#' are skipped; columns after the 4th are ignored.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: fewer than 4 columns.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'TSS BED {path} does not exist.')
  table = pd.read_csv(path, sep='\t', header=None, comment='#', dtype={0: str})  # chr '1': str.
  if table.shape[1] < len(TSS_BED_COLUMNS):
    raise ValueError(
        f'{path}: a TSS BED needs 4 columns (chrom, start, end, gene name), '
        f'found {table.shape[1]}.'
    )
  table = table.iloc[:, : len(TSS_BED_COLUMNS)]
  table.columns = list(TSS_BED_COLUMNS)
  return table
