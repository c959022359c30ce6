"""VCF reading (enformer.io.vcf): formats, multi-allelic split, skip policies, chr prefixes."""

import gzip
import pathlib
import shutil
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import pytest

from conftest import shared_path
from enformer.io import vcf as vcf_io
from enformer.io.fasta import FastaStringExtractor

Window = Tuple[str, int, int, Optional[str]]  # chrom, 0-based start, end, bases (None = random).


def write_sparse_genome(
    path: pathlib.Path, sizes: Dict[str, int], windows: Iterable[Window], seed: int = 0
) -> pathlib.Path:
  """Writes a FASTA (+ .fai) with real chromosome lengths but bases only inside `windows`.

  hg38 chromosomes are hundreds of Mb, so each chromosome is one FASTA line written as a sparse
  file: only the windows around the test variants hold bases (random A/C/G/T, or the given
  string, later windows overwrite earlier ones); the rest is a hole on disk that no test reads.
  The .fai is written directly (one line per sequence), so pyfaidx never scans the holes.
  """
  rng = np.random.default_rng(seed)
  windows = list(windows)
  index_lines = []
  with open(path, 'wb') as handle:
    for chrom, size in sizes.items():
      handle.write(f'>{chrom}\n'.encode())
      offset = handle.tell()
      index_lines.append(f'{chrom}\t{size}\t{offset}\t{size}\t{size + 1}\n')
      for name, start, end, bases in windows:
        if name != chrom:
          continue
        start, end = max(start, 0), min(end, size)
        if bases is None:
          data = np.frombuffer(b'ACGT', np.uint8)[rng.integers(0, 4, end - start)].tobytes()
        else:
          data = bases[: end - start].encode()
        handle.seek(offset + start)
        handle.write(data)
      handle.seek(offset + size)
      handle.write(b'\n')
  pathlib.Path(str(path) + '.fai').write_text(''.join(index_lines))
  return path


def hg38_sizes(chromosomes: Sequence[str]) -> Dict[str, int]:
  sizes = {}
  for line in shared_path('data', 'genomes', 'human.hg38.genome').read_text().splitlines():
    chrom, size = line.split()[:2]
    if chrom in chromosomes:
      sizes[chrom] = int(size)
  return sizes


def genome_for_vcf(
    path: pathlib.Path,
    vcf: pathlib.Path,
    flank: int = 8192,
    rename=lambda chrom: chrom,
    extra: Sequence[Window] = (),
) -> pathlib.Path:
  """Sparse hg38-sized genome with random bases ±flank around each VCF site and REF placed."""
  sites = list(vcf_io.read_vcf_sites(vcf))
  sizes = {rename(c): s for c, s in hg38_sizes({s.chrom for s in sites}).items()}
  windows = [(rename(s.chrom), s.pos - 1 - flank, s.pos - 1 + flank, None) for s in sites]
  windows += [(rename(s.chrom), s.pos - 1, s.pos - 1 + len(s.ref), s.ref) for s in sites]
  return write_sparse_genome(path, sizes, windows + list(extra))


@pytest.fixture(scope='module')
def regulatory_vcf() -> pathlib.Path:
  return shared_path('data', 'vcf', 'regulatory_validated.vcf')


@pytest.fixture(scope='module')
def genome(tmp_path_factory, regulatory_vcf) -> FastaStringExtractor:
  path = genome_for_vcf(tmp_path_factory.mktemp('genome') / 'hg38_sparse.fa', regulatory_vcf)
  return FastaStringExtractor(path)


def write_vcf(path: pathlib.Path, rows: Sequence[str]) -> pathlib.Path:
  header = ['##fileformat=VCFv4.2', '#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO']
  path.write_text('\n'.join(header + list(rows)) + '\n')
  return path


def keys(sites):
  return [(v.chrom, v.pos, v.ref, v.alt, v.id) for s in sites for v in s.variants]


def test_regulatory_vcf_all_kept(genome, regulatory_vcf):
  summary = vcf_io.VcfSummary()
  sites = vcf_io.read_variants(regulatory_vcf, genome, summary=summary)
  assert len(sites) == 16 and summary.kept == 16 and summary.skipped == 0
  assert summary.sorted
  assert keys(sites)[2] == ('chr1', 226595403, 'A', 'AGGGCCC', 'rs144361550')  # The insertion.
  assert '16 scored, 0 skipped' in summary.format()


def test_bgzip_and_gzip_read_like_plain(tmp_path, genome, regulatory_vcf):
  import pysam

  bgzipped = str(tmp_path / 'regulatory.vcf.gz')
  pysam.tabix_compress(str(regulatory_vcf), bgzipped)
  gzipped = tmp_path / 'regulatory_gzip.vcf.gz'
  with open(regulatory_vcf, 'rb') as source, gzip.open(gzipped, 'wb') as target:
    shutil.copyfileobj(source, target)
  plain = keys(vcf_io.read_variants(regulatory_vcf, genome))
  assert keys(vcf_io.read_variants(bgzipped, genome)) == plain
  assert keys(vcf_io.read_variants(gzipped, genome)) == plain


def test_misref_skip_and_error(genome):
  misref = shared_path('data', 'vcf', 'regulatory_validated_misref.vcf')
  summary = vcf_io.VcfSummary()
  sites = vcf_io.read_variants(misref, genome, summary=summary)
  assert len(sites) == 15 and summary.skipped_ref_mismatch == 1
  assert 'rs72664324' not in [v.id for s in sites for v in s.variants]
  assert 'REF differs from the genome' in summary.format()
  with pytest.raises(vcf_io.RefMismatchError, match=r'line 3: REF A at chr1:56972353'):
    vcf_io.read_variants(misref, genome, ref_mismatch='error')
  with pytest.raises(ValueError, match='ref_mismatch must be one of'):
    vcf_io.read_variants(misref, genome, ref_mismatch='ignore')


def test_unsorted_input_keeps_file_order(genome, regulatory_vcf):
  misorder = shared_path('data', 'vcf', 'regulatory_validated_misorder.vcf')
  summary = vcf_io.VcfSummary()
  unsorted = keys(vcf_io.read_variants(misorder, genome, summary=summary))
  assert not summary.sorted and 'not sorted' in summary.format()
  expected = [k for k in keys(vcf_io.read_variants(regulatory_vcf, genome))]
  assert sorted(unsorted) == sorted(expected) and unsorted != expected
  lines = [l.split('\t')[2] for l in misorder.read_text().splitlines() if not l.startswith('#')]
  assert [k[4] for k in unsorted] == lines


def test_multiallelic_symbolic_unknown_and_out_of_range(tmp_path, genome):
  rows = [
      'chr1\t56972353\tmulti\tG\tA,T,<DEL>\t.\t.\t.',  # 2 scorable ALTs, 1 symbolic.
      'chr1\t109817590\tspan\tG\t*\t.\t.\t.',
      'chr2\t60718043\tbnd1\tT\tG]17:198982]\t.\t.\t.',
      'chr2\t60718043\tbnd2\tT\t.T\t.\t.\t.',
      'chr2\t60718043\tmissing\tT\t.\t.\t.\t.',
      'chr4\t90646886\tiupac\tG\tR\t.\t.\t.',
      'chrUn_KI270302v1\t100\tunknown\tA\tC\t.\t.\t.',
      'chr22\t50818469\tpast_end\tA\tC\t.\t.\t.',  # chr22 is 50,818,468 bp long.
      'chr6\t117210052\tdeletion\tT\tC,TA\t.\t.\t.',
  ]
  summary = vcf_io.VcfSummary()
  sites = vcf_io.read_variants(write_vcf(tmp_path / 'mixed.vcf', rows), genome, summary=summary)
  assert [(v.id, v.alt) for s in sites for v in s.variants] == [
      ('multi', 'A'),
      ('multi', 'T'),
      ('deletion', 'C'),
      ('deletion', 'TA'),
  ]
  assert [len(s.variants) for s in sites] == [2, 2]
  assert summary.lines == 9 and summary.alleles == 12 and summary.multiallelic_sites == 2
  assert summary.skipped_symbolic == 5
  assert summary.skipped_invalid_allele == 1
  assert summary.skipped_unknown_chromosome == 1
  assert summary.unknown_chromosomes == {'chrUn_KI270302v1': 1}
  assert summary.skipped_out_of_range == 1
  assert summary.kept == 4 and summary.skipped == 8
  report = summary.format()
  assert 'chrUn_KI270302v1 (1)' in report and 'symbolic' in report


@pytest.mark.parametrize('vcf_prefix,fasta_prefix', [('', 'chr'), ('chr', '')])
def test_chr_prefix_mismatch(tmp_path, regulatory_vcf, vcf_prefix, fasta_prefix):
  rename = lambda chrom: fasta_prefix + chrom[3:]
  fasta = FastaStringExtractor(
      genome_for_vcf(tmp_path / 'g.fa', regulatory_vcf, flank=16, rename=rename)
  )
  rows = [l for l in regulatory_vcf.read_text().splitlines() if not l.startswith('#')]
  vcf = write_vcf(tmp_path / 'renamed.vcf', [vcf_prefix + r[3:] for r in rows])
  summary = vcf_io.VcfSummary()
  sites = vcf_io.read_variants(vcf, fasta, summary=summary)
  assert summary.kept == 16 and summary.skipped == 0
  assert sites[0].chrom == vcf_prefix + '1' and sites[0].fasta_chrom == fasta_prefix + '1'
  assert sum(summary.renamed_chromosomes.values()) == 16
  assert 'chr prefix' in summary.format()


def test_minimal_columns_and_errors(tmp_path):
  two = shared_path('data', 'vcf', 'variants.vcf')  # Header ' QUAL', six columns.
  assert [(s.chrom, s.pos, s.id, s.ref, s.alts) for s in vcf_io.read_vcf_sites(two)] == [
      ('chr16', 67596294, 'rsDK1', 'G', ('A',)),
      ('chr16', 67596297, 'rsDK2', 'C', ('G',)),
  ]
  assert len(vcf_io.read_variants(two)) == 2  # No FASTA: no genome checks.
  with pytest.raises(ValueError, match='line 3: expected at least 5 columns'):
    list(vcf_io.read_vcf_sites(write_vcf(tmp_path / 'short.vcf', ['chr1\t5\tx\tA'])))
  with pytest.raises(ValueError, match="POS 'five' is not an integer"):
    list(vcf_io.read_vcf_sites(write_vcf(tmp_path / 'pos.vcf', ['chr1\tfive\tx\tA\tC'])))
  with pytest.raises(FileNotFoundError, match='does not exist'):
    list(vcf_io.read_vcf_sites(tmp_path / 'missing.vcf'))


def test_symbolic_allele_classification():
  for alt in (
      '<DEL>',
      '<INS:ME:ALU>',
      '*',
      '.',
      'G]17:198982]',
      ']13:123456]T',
      'C[2:321682[',
      '.A',
      'G.',
  ):
    assert vcf_io.is_symbolic_allele(alt), alt
  for alt in ('A', 'ACGT', 'N'):
    assert not vcf_io.is_symbolic_allele(alt), alt
