"""Phased genotypes of a VCF, per sample and haplotype, within genome windows (read with pysam).

`PhasedVcf` opens a bgzipped, indexed (.tbi / .csi) VCF and returns, for a window, each selected
sample's two haplotypes as lists of edits (0-based start, REF, ALT) against the reference:

  * haplotype 1 is the allele left of '|' in the genotype, haplotype 2 the right one (`0|1` puts
    the ALT on haplotype 2, `1|0` on haplotype 1);
  * multi-allelic records: GT allele index k selects ALT k (`0|2` is ALT 2 on haplotype 2);
  * missing alleles (`.`, `./.`, `.|1`'s left) are the reference, and counted;
  * unphased heterozygous calls (`0/1`) are an error unless `unphased=True`, which reads them in
    the order written (first allele → haplotype 1: arbitrary, so only the mean of the two
    haplotypes is meaningful); unphased homozygous calls (`1/1`) have no phase to lose;
  * haploid calls (`1`, e.g. male chrX) put their allele on both haplotypes;
  * symbolic and structural ALTs (`<DEL>`, `*`, breakends) are skipped, and counted; so are ALTs
    with letters other than ACGTN and REF alleles that differ from the genome;
  * equal-length substitutions (MNVs) become one edit per differing base;
  * indels (REF and ALT of different lengths) are one edit each with `indels='full'` (the
    default); with `indels='skip'` they are left out (the haplotype takes the reference there,
    keeping its substitutions) and the carried indel alleles are counted: an approximation that
    keeps every haplotype a substitution haplotype (see `enformer.genes.haplotypes`).

Chromosome names are matched as the FASTA does ('chr1' ↔ '1'). Counts go into a
`GenotypeSummary`.
"""

import dataclasses
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import pysam

from enformer.io.fasta import alternative_chromosome_names
from enformer.io.vcf import is_symbolic_allele

PathLike = Union[str, os.PathLike]
_NUCLEOTIDES = frozenset('ACGTN')
INDEL_MODES = ('full', 'skip')


@dataclasses.dataclass(frozen=True, order=True)
class Edit:
  """A change of one haplotype: REF at 0-based `start` (genome coordinates) becomes ALT."""

  start: int
  ref: str
  alt: str

  @property
  def is_substitution(self) -> bool:
    return len(self.ref) == len(self.alt) == 1

  @property
  def is_indel(self) -> bool:
    """Whether the edit changes the sequence length."""
    return len(self.ref) != len(self.alt)


@dataclasses.dataclass
class GenotypeSummary:
  """What was read and skipped (counts over windows; a record read in two windows counts twice)."""

  records: int = 0
  alleles_used: int = 0
  missing_calls: int = 0
  unphased_calls: int = 0
  skipped_symbolic: int = 0
  skipped_invalid_allele: int = 0
  skipped_ref_mismatch: int = 0
  skipped_overlapping: int = 0
  skipped_indels: int = 0  # Carried indel alleles left out (indels='skip').

  def add(self, other: 'GenotypeSummary') -> None:
    for field in dataclasses.fields(self):
      setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

  def as_dict(self) -> Dict[str, int]:
    return dataclasses.asdict(self)

  def format(self) -> str:
    """A short report for the end of a run."""
    lines = [
        f'{self.records:,} VCF records in the windows, {self.alleles_used:,} ALT alleles '
        f'carried; {self.missing_calls:,} missing allele calls read as the reference.'
    ]
    for count, reason in (
        (self.unphased_calls, 'unphased calls read in the order written'),
        (self.skipped_symbolic, 'symbolic/structural ALTs skipped'),
        (self.skipped_invalid_allele, 'ALTs with letters other than ACGTN skipped'),
        (self.skipped_ref_mismatch, 'records whose REF differs from the genome skipped'),
        (
            self.skipped_overlapping,
            'alleles overlapping an earlier allele of the same haplotype skipped',
        ),
        (
            self.skipped_indels,
            'carried indel alleles left out (indels skipped: '
            'those haplotypes are predicted with their substitutions only)',
        ),
    ):
      if count:
        lines.append(f'  {count:,} {reason}')
    return '\n'.join(lines)


def check_indels(indels: str) -> str:
  """`indels` if it is one of `INDEL_MODES` ('full', 'skip'), else a ValueError."""
  if indels not in INDEL_MODES:
    raise ValueError(
        f"indels must be 'full' (an indel haplotype takes a full pass of its own "
        f"sequence) or 'skip' (indel alleles left out), got {indels!r}."
    )
  return indels


class UnphasedGenotypeError(ValueError):
  """An unphased heterozygous call where phased genotypes are needed."""


def read_samples(path: PathLike) -> List[str]:
  """The sample ids of a VCF's header, in file order."""
  with pysam.VariantFile(os.fspath(path)) as vcf:
    return list(vcf.header.samples)


def select_samples(path: PathLike, samples: Union[None, str, Iterable[str]] = None) -> List[str]:
  """Samples to read: all (None), ids, or the path of a file of ids (one per line).

  Raises:
    ValueError: an id that is not in the VCF (naming the known ones), or a VCF without samples.
  """
  known = read_samples(path)
  if not known:
    raise ValueError(f'VCF {path} has no sample columns; pass a VCF with genotypes.')
  if samples is None:
    return known
  if isinstance(samples, (str, os.PathLike)) and os.path.isfile(samples):
    with open(samples) as stream:
      samples = [line.split('#', 1)[0].strip() for line in stream]
  elif isinstance(samples, str):
    samples = samples.split(',')
  wanted = [s.strip() for s in samples if s and s.strip()]
  if not wanted:
    raise ValueError(
        'No sample ids given; pass ids, a file of ids, or leave samples unset for all samples.'
    )
  missing = [s for s in wanted if s not in set(known)]
  if missing:
    shown = ', '.join(known[:10]) + (f', ... ({len(known)} in all)' if len(known) > 10 else '')
    raise ValueError(
        f'Sample(s) {", ".join(missing[:5])} not in VCF {path}; its samples are: {shown}.'
    )
  return list(dict.fromkeys(wanted))


class PhasedVcf:
  """Haplotype edits of selected samples within windows of an indexed, bgzipped VCF.

  Example:
    >>> vcf = PhasedVcf('1kg.chr22.vcf.gz', samples=['HG00096'])
    >>> edits = vcf.haplotypes('chr22', 20_000_000, 20_196_608)   # 2 lists of Edit per sample
  """

  def __init__(
      self,
      path: PathLike,
      samples: Union[None, str, Iterable[str]] = None,
      *,
      unphased: bool = False,
      indels: str = 'full',
  ):
    """Opens `path` for `samples` (see `select_samples`); `unphased` and `indels`: see the
    module docstring."""
    self.path = os.fspath(path)
    self.indels = check_indels(indels)
    self.samples = select_samples(self.path, samples)
    self.unphased = bool(unphased)
    try:
      self._vcf = pysam.VariantFile(self.path)
      self._vcf.subset_samples(self.samples)
      index = self._vcf.index
    except (OSError, ValueError) as error:
      raise ValueError(
          f'Cannot read VCF {self.path} ({error}); pass a bgzipped VCF with a '
          'tabix index (bgzip x.vcf && tabix -p vcf x.vcf.gz).'
      ) from None
    if index is None:
      raise ValueError(
          f'VCF {self.path} has no index; pass a bgzipped VCF with a .tbi or .csi '
          'index (bgzip x.vcf && tabix -p vcf x.vcf.gz).'
      )
    self.contigs = list(index) or list(self._vcf.header.contigs)

  def close(self) -> None:
    self._vcf.close()

  def __enter__(self) -> 'PhasedVcf':
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def resolve_chromosome(self, chrom: str) -> Optional[str]:
    """The VCF's name for `chrom` (exact, else with/without 'chr'); None when it has none."""
    for name in [chrom] + alternative_chromosome_names(chrom):
      if name in self.contigs:
        return name
    return None

  def haplotypes(
      self,
      chrom: str,
      start: int,
      end: int,
      *,
      reference: Optional[Tuple[str, int]] = None,
      summary: Optional[GenotypeSummary] = None,
  ) -> List[List[Edit]]:
    """Edits of each sample's two haplotypes in [start, end) of `chrom` (0-based, half-open).

    Args:
      chrom: chromosome (the FASTA's or the VCF's name).
      start, end: the window (records overlapping it are read).
      reference: (sequence, its 0-based start) covering the window: REF alleles are checked
        against it (those that differ are skipped and counted); None: not checked.
      summary: counts are added here.

    Returns:
      2 × S lists (sample 1 haplotype 1, sample 1 haplotype 2, sample 2 haplotype 1, ...), each
      the haplotype's edits in position order (no two overlapping).

    Raises:
      UnphasedGenotypeError: an unphased heterozygous call without `unphased=True`.
    """
    summary = summary if summary is not None else GenotypeSummary()
    edits: List[List[Edit]] = [[] for _ in range(2 * len(self.samples))]
    ends = [-1] * len(edits)  # End of the last edit of each haplotype.
    name = self.resolve_chromosome(chrom)
    if name is None:
      return edits
    for record in self._vcf.fetch(name, max(0, start), end):
      summary.records += 1
      alleles = self._alleles(record, reference, summary)
      if alleles is None:
        continue
      for s, call in enumerate(record.samples.values()):
        genotype = call.get('GT') or (None,)
        if len(genotype) == 1:  # Haploid: the allele on both haplotypes.
          genotype = genotype * 2
        if not call.phased and genotype[0] != genotype[1] and None not in genotype:
          if not self.unphased:
            raise UnphasedGenotypeError(
                f'VCF {self.path}: sample {self.samples[s]} has an unphased genotype '
                f'{"/".join(map(str, genotype))} at {record.chrom}:{record.pos}; pass phased '
                'genotypes (e.g. from SHAPEIT or Beagle), or allow unphased calls (read in the '
                'order written: only the mean of the two haplotypes is meaningful).'
            )
          summary.unphased_calls += 1
        for h, allele in enumerate(genotype[:2]):
          if allele is None:
            summary.missing_calls += 1
            continue
          if allele == 0 or alleles.get(allele) is None:
            continue
          if self.indels == 'skip' and any(edit.is_indel for edit in alleles[allele]):
            summary.skipped_indels += 1
            continue
          row = 2 * s + h
          for edit in alleles[allele]:
            if edit.start < ends[row]:
              summary.skipped_overlapping += 1
              continue
            edits[row].append(edit)
            ends[row] = edit.start + max(len(edit.ref), 1)
          summary.alleles_used += 1
    return edits

  def _alleles(
      self, record, reference: Optional[Tuple[str, int]], summary: GenotypeSummary
  ) -> Optional[Dict[int, Optional[List[Edit]]]]:
    """Allele index → its edits (None: skipped), or None when the whole record is skipped."""
    ref = record.ref.upper()
    if reference is not None:
      sequence, offset = reference
      begin = record.start - offset
      genome = sequence[max(begin, 0) : begin + len(ref)]
      overlap = ref[max(-begin, 0) : max(-begin, 0) + len(genome)]
      if genome.upper() != overlap:
        summary.skipped_ref_mismatch += 1
        return None
    alleles: Dict[int, Optional[List[Edit]]] = {}
    for k, alt in enumerate(record.alts or (), start=1):
      alt = alt.upper()
      if is_symbolic_allele(alt):
        summary.skipped_symbolic += 1
        alleles[k] = None
      elif not set(alt) <= _NUCLEOTIDES or not set(ref) <= _NUCLEOTIDES:
        summary.skipped_invalid_allele += 1
        alleles[k] = None
      elif len(alt) == len(ref):  # SNV / MNV: one edit per differing base.
        alleles[k] = [
            Edit(record.start + i, r, a) for i, (r, a) in enumerate(zip(ref, alt)) if r != a
        ]
      else:
        alleles[k] = [Edit(record.start, ref, alt)]
    return alleles


def substitutions(
    edits: Sequence[Edit], offset: int, length: int
) -> Optional[List[Tuple[int, int]]]:
  """(window position, base index in 'ACGT') of a haplotype made only of substitutions, within
  the window [offset, offset + length) (records that straddle its ends may hold bases outside
  it: they are dropped), or None when it holds an indel (or an N allele), which needs its own
  sequence."""
  result = []
  for edit in edits:
    if not edit.is_substitution or edit.alt not in 'ACGT':
      return None
    if offset <= edit.start < offset + length:
      result.append((edit.start - offset, 'ACGT'.index(edit.alt)))
  return result
