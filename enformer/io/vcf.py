"""VCF reading for variant scoring: plain or bgzip/gzip, multi-allelic split, policies, summary.

Only the first five columns (CHROM, POS, ID, REF, ALT) are used, so minimal VCFs without
QUAL/FILTER/INFO work. Records are read in file order; unsorted input is fine.

What is skipped, and counted in `VcfSummary`:
  * symbolic / structural ALT alleles: `<DEL>`, `<INS:ME>`, `*` (spanning deletion), breakends
    (`G]17:198982]`, `.A`, `A.`), and missing ALT (`.`);
  * alleles with letters other than A, C, G, T, N;
  * chromosomes missing from the FASTA (after trying with/without the `chr` prefix);
  * positions past the chromosome end;
  * REF alleles that differ from the genome (policy `ref_mismatch='skip'`, the default; `'error'`
    raises `RefMismatchError` naming the line).
"""

import collections
import dataclasses
import gzip
import os
import zlib
from typing import Counter, Iterator, List, Optional, Tuple, Union

import kipoiseq

PathLike = Union[str, os.PathLike]

REF_MISMATCH_POLICIES = ('skip', 'error')
_NUCLEOTIDES = frozenset('ACGTN')


class RefMismatchError(ValueError):
  """A VCF REF allele differs from the reference genome (policy `ref_mismatch='error'`)."""


@dataclasses.dataclass(frozen=True)
class VcfSite:
  """One VCF data line: `pos` is 1-based; `alts` holds every ALT allele of the line."""

  chrom: str
  pos: int
  id: str
  ref: str
  alts: Tuple[str, ...]
  line: int


@dataclasses.dataclass(frozen=True)
class VariantSite:
  """The scorable ALT alleles of one VCF line; they share one reference sequence.

  `variants[i].chrom` is the VCF's chromosome name (used in outputs); `fasta_chrom` is the name
  the FASTA uses for it (used for sequence extraction).
  """

  variants: Tuple[kipoiseq.Variant, ...]
  fasta_chrom: str

  @property
  def chrom(self) -> str:
    return self.variants[0].chrom

  @property
  def pos(self) -> int:
    return self.variants[0].pos

  @property
  def ref(self) -> str:
    return self.variants[0].ref


@dataclasses.dataclass
class VcfSummary:
  """Counts of what was read, kept and skipped (one VCF line with k ALTs = k alleles)."""

  lines: int = 0
  alleles: int = 0
  multiallelic_sites: int = 0
  kept: int = 0
  skipped_symbolic: int = 0
  skipped_invalid_allele: int = 0
  skipped_unknown_chromosome: int = 0
  skipped_out_of_range: int = 0
  skipped_ref_mismatch: int = 0
  renamed_chromosomes: Counter = dataclasses.field(default_factory=collections.Counter)
  unknown_chromosomes: Counter = dataclasses.field(default_factory=collections.Counter)
  sorted: bool = True

  @property
  def skipped(self) -> int:
    return (
        self.skipped_symbolic
        + self.skipped_invalid_allele
        + self.skipped_unknown_chromosome
        + self.skipped_out_of_range
        + self.skipped_ref_mismatch
    )

  def format(self) -> str:
    """A short human-readable report, e.g. for the end of a CLI run."""
    lines = [
        f'{self.lines} VCF records, {self.alleles} ALT alleles '
        f'({self.multiallelic_sites} multi-allelic records split): {self.kept} scored, '
        f'{self.skipped} skipped.'
    ]
    reasons = [
        ('symbolic/structural ALT (<DEL>, *, breakends)', self.skipped_symbolic),
        ('ALT/REF with letters other than ACGTN', self.skipped_invalid_allele),
        ('chromosome not in the FASTA', self.skipped_unknown_chromosome),
        ('position past the chromosome end', self.skipped_out_of_range),
        ('REF differs from the genome', self.skipped_ref_mismatch),
    ]
    for reason, count in reasons:
      if count:
        lines.append(f'  skipped {count}: {reason}')
    if self.unknown_chromosomes:
      names = ', '.join(f'{c} ({n})' for c, n in self.unknown_chromosomes.most_common(10))
      lines.append(f'  unknown chromosomes: {names}')
    if self.renamed_chromosomes:
      names = ', '.join(sorted(self.renamed_chromosomes))
      lines.append(f'  chromosome names matched to the FASTA by chr prefix: {names}')
    if not self.sorted:
      lines.append('  note: the VCF is not sorted (fine: records are scored in file order).')
    return '\n'.join(lines)


def open_text(path: PathLike):
  """Opens a text file that may be gzip/bgzip-compressed (detected from its magic bytes).

  Decoded as UTF-8 with a leading byte-order mark dropped; bytes that are not UTF-8 are kept as
  surrogate escapes (U+DC80–U+DCFF), so a reader can tolerate them in columns it never uses.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'VCF file {path} does not exist.')
  if os.path.isdir(path):
    raise IsADirectoryError(f'VCF {path} is a folder; pass the .vcf or .vcf.gz file.')
  with open(path, 'rb') as handle:
    magic = handle.read(2)
  if magic == b'\x1f\x8b':
    return gzip.open(path, 'rt', encoding='utf-8-sig', errors='surrogateescape')
  return open(path, 'rt', encoding='utf-8-sig', errors='surrogateescape')


def _undecodable(text: str) -> bool:
  return any('\udc80' <= char <= '\udcff' for char in text)


def read_vcf_sites(path: PathLike) -> Iterator[VcfSite]:
  """Yields the data lines of a VCF (plain, gzip or bgzip) in file order.

  Columns are tab-separated (whitespace-separated lines are accepted too); lines starting with
  '#' are headers. Raises ValueError for lines with fewer than 5 columns, a non-integer POS or
  bytes that are not UTF-8 in CHROM/POS/REF/ALT (elsewhere, e.g. in INFO, they are tolerated; in
  ID they become '?'), and for a truncated or corrupt gzip file.
  """
  try:
    yield from _read_vcf_sites(path)
  except (EOFError, gzip.BadGzipFile, zlib.error) as error:
    raise ValueError(
        f'VCF {os.fspath(path)} is truncated or corrupt ({error}); download or '
        'compress it again (bgzip).'
    ) from error


def _read_vcf_sites(path: PathLike) -> Iterator[VcfSite]:
  with open_text(path) as handle:
    for number, line in enumerate(handle, start=1):
      if line.startswith('#') or not line.strip():
        continue
      fields = line.rstrip('\r\n').split('\t')
      if len(fields) < 5:
        fields = line.split()
      if len(fields) < 5:
        raise ValueError(
            f'{path}, line {number}: expected at least 5 columns (CHROM POS ID REF '
            f'ALT), got {len(fields)}: {line.strip()[:80]!r}.'
        )
      chrom, pos, variant_id, ref, alt = (field.strip() for field in fields[:5])
      if _undecodable(chrom + pos + ref + alt):
        raise ValueError(
            f'{path}, line {number}: CHROM, POS, REF or ALT holds bytes that are '
            'not UTF-8 text; fix or remove that line.'
        )
      if _undecodable(variant_id):
        variant_id = ''.join('?' if '\udc80' <= c <= '\udcff' else c for c in variant_id)
      try:
        position = int(pos)
      except ValueError:
        raise ValueError(f'{path}, line {number}: POS {pos!r} is not an integer.') from None
      if position < 1:
        raise ValueError(f'{path}, line {number}: POS {position} must be ≥ 1 (VCF is 1-based).')
      yield VcfSite(chrom, position, variant_id, ref.upper(), tuple(alt.upper().split(',')), number)


def is_symbolic_allele(alt: str) -> bool:
  """True for ALT alleles that are not sequences: `<...>`, `*`, `.`, and breakends."""
  return (
      alt in ('*', '.', '')
      or alt.startswith('<')
      or '[' in alt
      or ']' in alt
      or alt.startswith('.')
      or alt.endswith('.')
  )


def read_variants(
    path: PathLike, fasta=None, ref_mismatch: str = 'skip', summary: Optional[VcfSummary] = None
) -> List[VariantSite]:
  """Reads a VCF into scorable sites, applying the skip policies (see the module docstring).

  Args:
    path: VCF, plain or gzip/bgzip-compressed.
    fasta: `enformer.io.fasta.FastaStringExtractor` of the genome, used to resolve chromosome
      names (`chr1` ↔ `1`) and check REF alleles. None: no genome checks.
    ref_mismatch: 'skip' (count and skip ALTs whose REF differs from the genome) or 'error'.
    summary: VcfSummary to fill (pass one to read the counts afterwards).

  Returns:
    VariantSite per VCF line with at least one scorable ALT, in file order; ALTs of a
    multi-allelic line are split into separate `kipoiseq.Variant`s of one site.
  """
  if ref_mismatch not in REF_MISMATCH_POLICIES:
    raise ValueError(f'ref_mismatch must be one of {REF_MISMATCH_POLICIES}, got {ref_mismatch!r}.')
  summary = summary if summary is not None else VcfSummary()
  sizes = fasta.chromosome_sizes if fasta is not None else None
  resolved = {}
  last_position = {}
  finished_chromosomes = set()
  previous_chrom = None
  sites = []
  for site in read_vcf_sites(path):
    summary.lines += 1
    summary.alleles += len(site.alts)
    if len(site.alts) > 1:
      summary.multiallelic_sites += 1
    # Sortedness (informational): positions non-decreasing within contiguous chromosome blocks.
    if site.chrom != previous_chrom:
      if previous_chrom is not None:
        finished_chromosomes.add(previous_chrom)
      if site.chrom in finished_chromosomes:
        summary.sorted = False
      previous_chrom = site.chrom
    elif site.pos < last_position.get(site.chrom, 0):
      summary.sorted = False
    last_position[site.chrom] = site.pos

    alts = []
    for alt in site.alts:
      if is_symbolic_allele(alt):
        summary.skipped_symbolic += 1
      elif not (set(alt) <= _NUCLEOTIDES and site.ref and set(site.ref) <= _NUCLEOTIDES):
        summary.skipped_invalid_allele += 1
      else:
        alts.append(alt)
    if not alts:
      continue

    fasta_chrom = site.chrom
    if fasta is not None:
      if site.chrom not in resolved:
        try:
          resolved[site.chrom] = fasta.resolve_chromosome(site.chrom)
        except ValueError:
          resolved[site.chrom] = None
      fasta_chrom = resolved[site.chrom]
      if fasta_chrom is None:
        summary.skipped_unknown_chromosome += len(alts)
        summary.unknown_chromosomes[site.chrom] += len(alts)
        continue
      if fasta_chrom != site.chrom:
        summary.renamed_chromosomes[site.chrom] += len(alts)
      if site.pos - 1 + len(site.ref) > sizes[fasta_chrom]:
        summary.skipped_out_of_range += len(alts)
        continue
      genome = fasta.extract(
          kipoiseq.Interval(fasta_chrom, site.pos - 1, site.pos - 1 + len(site.ref))
      ).upper()
      if genome != site.ref:
        if ref_mismatch == 'error':
          raise RefMismatchError(
              f'{path}, line {site.line}: REF {site.ref} at {site.chrom}:{site.pos} differs from '
              f'the genome ({genome}). Check that the VCF and FASTA use the same assembly, or '
              "skip such records with `ref_mismatch` 'skip'."
          )
        summary.skipped_ref_mismatch += len(alts)
        continue
    summary.kept += len(alts)
    variants = tuple(
        kipoiseq.Variant(site.chrom, site.pos, site.ref, alt, id=site.id) for alt in alts
    )
    sites.append(VariantSite(variants, fasta_chrom))
  return sites
