"""BED regions and 'chr:start-end' strings as kipoiseq.Interval (0-based, half-open)."""

from typing import List, Union
import os
import re

import kipoiseq

_REGION = re.compile(r'^\s*([^:\s]+):([\d,_]+)-([\d,_]+)\s*$')


def parse_region(region: str) -> kipoiseq.Interval:
  """Parses 'chr1:1,000,001-1,001,000' (1-based, inclusive, like genome browsers) → Interval.

  The returned interval is 0-based half-open: chr1:1000000-1001000 (1,000 bp).
  """
  match = _REGION.match(region)
  if not match:
    raise ValueError(f'Cannot parse region {region!r}: use chrom:start-end, e.g. '
                     'chr11:5,225,000-5,230,000 (1-based inclusive coordinates).')
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
        raise ValueError(f'{path}:{line_number}: expected tab-separated chrom, start, end '
                         f'(integers), got {line.strip()!r}.') from None
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
