"""Sequence extraction from indexed FASTA files (pyfaidx), like the usage colab's
FastaStringExtractor.

Intervals are 0-based, half-open (BED / kipoiseq convention). Parts of an interval that fall
before position 0 or past the chromosome end are padded with 'N' (one-hot: all-zero rows), so
every extracted sequence has exactly `interval.width()` letters.
"""

from typing import Dict, Iterable, List, Union
import errno
import os

import kipoiseq
import numpy as np
import pyfaidx

from enformer.io.files import check_fasta_index
from enformer.sequence import NEUTRAL_VALUE, one_hot_encode

PathLike = Union[str, os.PathLike]


def alternative_chromosome_names(chrom: str) -> List[str]:
  """Names a chromosome may go by in another assembly naming style: 'chr1' ↔ '1', 'chrM' ↔ 'MT'."""
  names = []
  if chrom.startswith('chr'):
    bare = chrom[3:]
    names.append(bare)
    if bare == 'M':
      names.append('MT')
  else:
    names.append('chr' + chrom)
    if chrom == 'MT':
      names.append('chrM')
  return names


def _first_line(error: BaseException) -> str:
  lines = str(error).strip().splitlines()
  return lines[0] if lines else type(error).__name__


class FastaStringExtractor:
  """Extracts DNA strings for genomic intervals from an indexed FASTA file.

  Example:
    >>> extractor = FastaStringExtractor('hg38.fa')
    >>> extractor.extract(kipoiseq.Interval('chr1', 1_000_000, 1_196_608))  # 196,608 letters.

  A `.fai` index is created next to the FASTA when missing (pyfaidx). Chromosome names are
  matched exactly first, then with/without the 'chr' prefix ('chr1' ↔ '1', 'chrM' ↔ 'MT').
  """

  def __init__(self, fasta: PathLike):
    fasta = os.fspath(fasta)
    if not os.path.exists(fasta):
      raise FileNotFoundError(
          f'FASTA file {fasta} does not exist. Pass the path of the '
          'reference genome (e.g. hg38.fa, optionally bgzipped with a .fai).'
      )
    if os.path.isdir(fasta):
      raise IsADirectoryError(f'FASTA {fasta} is a folder; pass the genome FASTA file.')
    self.path = fasta
    check_fasta_index(fasta, f'FASTA {fasta}')  # Plain gzip, unwritable index folder.
    try:
      self.fasta = pyfaidx.Fasta(fasta, sequence_always_upper=False, rebuild=False)
    except ImportError:  # pyfaidx reads bgzip through BioPython.
      raise ValueError(
          f'FASTA {fasta} is bgzip-compressed, which needs BioPython to read '
          '(pip install biopython); or decompress it.'
      ) from None
    except (
        pyfaidx.FastaIndexingError,
        pyfaidx.UnsupportedCompressionFormat,
        EOFError,
        UnicodeDecodeError,
        ValueError,
    ) as error:
      reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
      raise ValueError(
          f'Cannot index the FASTA {fasta} ({reason}); check that it is a '
          'complete FASTA file (plain, or bgzip with its .fai/.gzi).'
      ) from None
    except OSError as error:  # Writing the index failed (pyfaidx hides why).
      raise PermissionError(
          errno.EACCES,
          f'Cannot write the index {fasta}.fai of FASTA {fasta} '
          f'({_first_line(error)}); run `samtools faidx {fasta}` where you may write, or '
          'copy the FASTA into a writable folder',
          fasta,
      ) from None
    self._chromosome_sizes = {name: len(record) for name, record in self.fasta.records.items()}
    if not self._chromosome_sizes:
      raise ValueError(f'FASTA {fasta} holds no sequences (empty, or not a FASTA file).')

  @property
  def chromosome_sizes(self) -> Dict[str, int]:
    """Chromosome name → length in bp, in FASTA order."""
    return dict(self._chromosome_sizes)

  def resolve_chromosome(self, chrom: str) -> str:
    """The FASTA's name for `chrom` (exact, else with/without 'chr'); ValueError if absent."""
    if chrom in self._chromosome_sizes:
      return chrom
    for name in alternative_chromosome_names(chrom):
      if name in self._chromosome_sizes:
        return name
    known = list(self._chromosome_sizes)
    shown = ', '.join(known[:8]) + (', ...' if len(known) > 8 else '')
    raise ValueError(
        f'Chromosome {chrom!r} is not in {self.path} (also tried '
        f'{alternative_chromosome_names(chrom)}); it has {len(known)} sequences: {shown}. '
        'Check that the regions and the FASTA use the same assembly.'
    )

  def check_regions(self, regions: Iterable[kipoiseq.Interval]) -> None:
    """ValueError for the first region on an unknown chromosome or entirely past its end."""
    for region in regions:
      chrom = self.resolve_chromosome(region.chrom)
      size = self._chromosome_sizes[chrom]
      if region.start >= size or region.end <= 0:
        coordinates = f'{region.chrom}:{region.start + 1:,}-{region.end:,}'
        name = getattr(region, 'name', '') or ''
        name = f' {name}' if name and name.replace(',', '') != coordinates.replace(',', '') else ''
        raise ValueError(
            f'Region{name} {coordinates} lies entirely '
            f'outside {chrom} ({size:,} bp in {self.path}); check the coordinates and that the '
            'regions use the assembly of the FASTA.'
        )

  def extract(self, interval: kipoiseq.Interval, **kwargs) -> str:
    """Sequence of `interval` (0-based, half-open), N-padded outside the chromosome.

    Args:
      interval: kipoiseq.Interval (or any object with chrom, start, end).

    Returns:
      String of length end - start; the strand is ignored (forward strand).
    """
    del kwargs  # Accepted for kipoiseq extractor compatibility.
    start, end = int(interval.start), int(interval.end)
    if end < start:
      raise ValueError(f'Interval {interval.chrom}:{start}-{end} ends before it starts.')
    chrom = self.resolve_chromosome(interval.chrom)
    size = self._chromosome_sizes[chrom]
    clipped_start, clipped_end = max(start, 0), min(end, size)
    if clipped_end > clipped_start:
      sequence = str(self.fasta.get_seq(chrom, clipped_start + 1, clipped_end).seq).upper()
    else:
      sequence = ''
    pad_upstream = clipped_start - start
    pad_downstream = end - start - pad_upstream - len(sequence)
    return 'N' * pad_upstream + sequence + 'N' * pad_downstream

  def extract_one_hot(
      self, interval: kipoiseq.Interval, neutral_value: float = NEUTRAL_VALUE
  ) -> np.ndarray:
    """One-hot sequence of `interval`: [end - start, 4] float32 (N rows = `neutral_value`, see
    `enformer.sequence`)."""
    return one_hot_encode(self.extract(interval), neutral_value=neutral_value)

  def extract_batch(
      self, intervals: Iterable[kipoiseq.Interval], neutral_value: float = NEUTRAL_VALUE
  ) -> np.ndarray:
    """One-hot sequences of equal-width intervals: [B, width, 4] float32."""
    return np.stack([self.extract_one_hot(interval, neutral_value) for interval in intervals])

  def close(self) -> None:
    self.fasta.close()

  def __enter__(self) -> 'FastaStringExtractor':
    return self

  def __exit__(self, *exc) -> None:
    self.close()
