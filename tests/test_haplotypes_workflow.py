"""predict_haplotypes (enformer.genes.haplotypes) and the phased-VCF reader (enformer.io.genotypes)
on files the tests write: values equal full passes of hand-built haplotype sequences; phasing,
multi-allelic sites, missing calls, unknown samples, chromosome naming, chromosome ends, resume."""

import anndata
import numpy as np
import pysam
import pytest

from conftest import write_random_fasta
from enformer.genes import haplotypes as haplotypes_lib
from enformer.genes.expression import gene_expression
from enformer.genes.predict import predict_gene_expression
from enformer.inference import fast
from enformer.inference.predictor import Predictor
from enformer.io.fasta import FastaStringExtractor
from enformer.io.genotypes import (
    Edit,
    GenotypeSummary,
    PhasedVcf,
    UnphasedGenotypeError,
    substitutions,
)
from enformer.sequence import one_hot_encode
from enformer.testing import MICRO, random_model
from test_genes_annotation import gtf_line, write_gtf

LENGTH = 2048
CONFIG = dict(MICRO, target_length=8, heads={'human': 3})
SAMPLES = ['S1', 'S2', 'S3', 'S4']


def write_phased_vcf(path, rows, samples=SAMPLES, contigs=('chr1', 'chr2')):
  """bgzipped + tabix-indexed VCF; `rows`: (chrom, 1-based pos, ref, alts, [GT per sample])."""
  header = ['##fileformat=VCFv4.2', '##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">']
  header += [f'##contig=<ID={c}>' for c in contigs]
  header.append(
      '\t'.join(
          ['#CHROM', 'POS', 'ID', 'REF', 'ALT', 'QUAL', 'FILTER', 'INFO', 'FORMAT'] + list(samples)
      )
  )
  lines = [
      f'{c}\t{p}\t.\t{r}\t{a}\t.\tPASS\t.\tGT\t' + '\t'.join(g)
      for c, p, r, a, g in sorted(rows, key=lambda row: (row[0], row[1]))
  ]
  path.write_text('\n'.join(header + lines) + '\n')
  return pysam.tabix_index(str(path), preset='vcf', force=True)


@pytest.fixture(scope='module')
def genome(tmp_path_factory):
  folder = tmp_path_factory.mktemp('haplotypes')
  fasta = write_random_fasta(folder / 'g.fa', {'1': 6000, '2': 3000}, seed=3)
  extractor = FastaStringExtractor(fasta)
  base = lambda chrom, pos: extractor.extract(
      type('I', (), dict(chrom=chrom, start=pos - 1, end=pos))()
  )
  other = lambda b: 'G' if b != 'G' else 'T'
  third = lambda b: 'C' if b not in 'CG' else 'A'
  rows = [
      # VCF names 'chr1', 'chr2'; the FASTA and GTF '1', '2'.
      ('chr1', 3000, base('1', 3000), other(base('1', 3000)), ['0|1', '1|0', '0|0', '1|1']),
      (
          'chr1',
          3100,
          base('1', 3100),
          f'{other(base("1", 3100))},{third(base("1", 3100))}',
          ['0|2', '2|1', '.|1', '0|0'],
      ),  # Multi-allelic, a missing allele.
      ('chr1', 3500, base('1', 3500), '<DEL>', ['1|1', '0|0', '0|0', '0|0']),  # Symbolic.
      ('chr1', 2500, base('1', 2500), other(base('1', 2500)), ['0|0', '0|0', '0|1', '0|0']),
      ('chr2', 50, base('2', 50), other(base('2', 50)), ['1|0', '0|0', '0|0', '0|1']),
      ('chr2', 120, base('2', 120), base('2', 120) + 'AC', ['0|0', '0|0', '0|0', '1|0']),  # Ins.
  ]
  vcf = write_phased_vcf(folder / 'p.vcf', rows)
  gtf = write_gtf(
      folder / 'g.gtf',
      [
          gtf_line('1', 'transcript', 3001, 3600, '+', 'GENE1', 'T1'),
          gtf_line('1', 'transcript', 2801, 3050, '-', 'GENE2', 'T2'),
          gtf_line('2', 'transcript', 101, 900, '+', 'EDGE', 'T3'),  # Its window passes the start.
      ],
  )
  model = random_model(seed=5, **CONFIG)
  predictor = Predictor.from_module(model, LENGTH)
  return dict(
      folder=folder,
      fasta=fasta,
      vcf=vcf,
      gtf=gtf,
      rows=rows,
      predictor=predictor,
      forward=fast.compile_forward(model, LENGTH, ['human']),
  )


def built_haplotype(fasta, chrom, start, rows, sample, haplotype):
  """The SNV haplotype of `sample` in [start, start + L), written from the rows by hand."""
  sequence = list(
      FastaStringExtractor(fasta).extract(
          type('I', (), dict(chrom=chrom, start=start, end=start + LENGTH))()
      )
  )
  for vcf_chrom, pos, ref, alts, genotypes in rows:
    allele = genotypes[SAMPLES.index(sample)].split('|')[haplotype]
    if vcf_chrom != 'chr' + chrom or allele in ('0', '.') or not start < pos <= start + LENGTH:
      continue
    alt = alts.split(',')[int(allele) - 1]
    if len(alt) == 1 == len(ref) and not alt.startswith('<'):
      sequence[pos - 1 - start] = alt
  return ''.join(sequence)


def test_values_equal_full_passes_of_hand_built_haplotypes(genome, tmp_path):
  result = haplotypes_lib.predict_haplotypes(
      genome['predictor'],
      genome['fasta'],
      genome['vcf'],
      tmp_path,
      gtf=genome['gtf'],
      samples=['S1', 'S2', 'S3'],
      progress=False,
      settings=haplotypes_lib.HaplotypeSettings(tsv=True, mean_haplotypes=True),
  )
  data = anndata.read_h5ad(tmp_path / 'haplotypes.h5ad')
  assert list(data.var['gene_id'][::3]) == ['GENE1', 'GENE2', 'EDGE']
  assert list(data.var.index[:2]) == ['GENE1|t0', 'GENE1|t1']  # Gene × track, gene-major.
  assert list(data.obs['sample'][:6]) == ['S1', 'S1', 'S2', 'S2', 'S3', 'S3']
  assert list(data.obs['haplotype']) == ['1', '2'] * 3 + ['mean'] * 3
  assert list(data.uns['tracks']) == ['t0', 't1', 't2'] and data.shape == (9, 9)
  assert haplotypes_lib.track_matrix(data, 't2').shape == (9, 3)
  windows = haplotypes_lib.gene_windows(
      haplotypes_lib.read_genes(genome['gtf'], fasta=genome['fasta']), LENGTH
  )
  for g, window in enumerate(windows):  # EDGE: its window starts before chromosome 2.
    for i, sample in enumerate(['S1', 'S2', 'S3']):
      for h in (0, 1):
        x = one_hot_encode(
            built_haplotype(genome['fasta'], window.chrom, window.start, genome['rows'], sample, h)
        )
        predictions = genome['forward'](x[np.newaxis])['human'].numpy()[0]
        expected = gene_expression(predictions, window.start + (LENGTH - 8 * 128) // 2, window.tss)
        ours = data.X[2 * i + h, 3 * g : 3 * g + 3]
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
  layer = haplotypes_lib.track_matrix(data, 't0')
  # S1 (0|1, 0|2) and S2 (1|0, 2|1): S1's haplotype 2 is S2's haplotype 1; S1's haplotype 1 is
  # the reference, S2's haplotype 2 carries one ALT.
  assert layer[1, 0] == layer[2, 0] and len({layer[0, 0], layer[1, 0], layer[3, 0]}) == 3
  np.testing.assert_allclose(layer[6:], (layer[0:6:2] + layer[1:6:2]) / 2, rtol=1e-6)
  summary = result.summary
  # The windows of GENE1 and GENE2 hold S3's '.' and the symbolic ALT (S1's 1|1: 2 alleles).
  assert summary.missing_calls == 2 and summary.skipped_symbolic == 2
  assert result.stats.reused > 0 and result.stats.full_passes == 0
  # The patches' exact cost comes back from the chunk store into the stats and the h5ad.
  assert result.stats.tower_work > 0 and data.uns['work']['tower_work'] == result.stats.tower_work
  table = (tmp_path / 'haplotypes.tsv').read_text().splitlines()
  assert table[0].split('\t') == ['sample', 'haplotype', 'gene_id', 'track', 'expression']
  assert len(table) == 1 + 9 * 3 * 3


def test_indel_haplotypes_take_full_passes_aligned_to_reference(genome, tmp_path):
  result = haplotypes_lib.predict_haplotypes(
      genome['predictor'],
      genome['fasta'],
      genome['vcf'],
      tmp_path,
      gtf=genome['gtf'],
      genes=['EDGE'],
      samples=['S4', 'S1'],
      progress=False,
  )
  # S4 haplotype 1 carries the insertion (full pass), S4 haplotype 2 the SNV at 50 (chr2 start).
  assert result.stats.full_passes == 1 and result.stats.haplotypes == 4
  values = haplotypes_lib.track_matrix(result.data, 't0')[:, 0]
  assert len(set(values.tolist())) >= 3
  # The insertion's sequence: built by hand, centred on the haplotype position of the centre.
  fasta = FastaStringExtractor(genome['fasta'])
  window = haplotypes_lib.gene_windows(
      haplotypes_lib.read_genes(genome['gtf'], fasta=fasta, genes=['EDGE']), LENGTH
  )[0]
  ref = genome['rows'][-1][2]
  sequence, place = haplotypes_lib._haplotype_sequence(  # pylint: disable=protected-access
      fasta, window, LENGTH, [Edit(119, ref, ref + 'AC')]
  )
  reference = fasta.extract(
      type('I', (), dict(chrom='2', start=window.start, end=window.start + LENGTH))()
  )
  assert window.start + LENGTH // 2 < 119  # Right of the centre: the right flank moves.
  hand = reference[: 120 - window.start] + 'AC' + reference[120 - window.start :]
  assert sequence == hand[:LENGTH] and len(sequence) == LENGTH
  assert place(window.start + LENGTH // 2) == LENGTH // 2
  assert place(119) == 119 - window.start and place(130) == 130 - window.start + 2


def test_reader_phasing_errors_and_naming(genome, tmp_path):
  with pytest.raises(ValueError, match='Sample.*NOBODY.*its samples are: S1, S2, S3, S4'):
    PhasedVcf(genome['vcf'], ['S1', 'NOBODY'])
  rows = [('1', 10, 'A', 'G', ['0/1', '1|1'])]
  vcf = write_phased_vcf(tmp_path / 'u.vcf', rows, samples=['A', 'B'], contigs=('1',))
  with PhasedVcf(vcf) as genotypes, pytest.raises(UnphasedGenotypeError, match='unphased'):
    genotypes.haplotypes('chr1', 0, 100)  # 'chr1' finds the VCF's '1'.
  with PhasedVcf(vcf, unphased=True) as genotypes:
    edits = genotypes.haplotypes('chr1', 0, 100)
  assert edits == [[], [Edit(9, 'A', 'G')], [Edit(9, 'A', 'G')], [Edit(9, 'A', 'G')]]
  # An MNV that straddles the window's start: only its base inside the window counts.
  assert substitutions([Edit(99, 'A', 'C'), Edit(100, 'G', 'T')], 100, 50) == [(0, 3)]
  assert substitutions([Edit(120, 'A', 'AT')], 100, 50) is None  # An indel: its own sequence.
  with PhasedVcf(genome['vcf'], ['S2']) as genotypes:
    s2 = genotypes.haplotypes('1', 2990, 3200)
  assert [[e.start for e in h] for h in s2] == [[2999, 3099], [3099]]  # 1|0 and 2|1.


def test_resume_after_a_crash_equals_an_uninterrupted_run(genome, tmp_path, monkeypatch):
  common = dict(
      gtf=genome['gtf'],
      samples=['S1', 'S3'],
      progress=False,
      settings=haplotypes_lib.HaplotypeSettings(tsv=True),
  )
  haplotypes_lib.predict_haplotypes(
      genome['predictor'], genome['fasta'], genome['vcf'], tmp_path / 'whole', **common
  )
  original = haplotypes_lib.predict_window
  calls = []

  def crash_on_second(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise RuntimeError('simulated kill')
    return original(*args, **kwargs)

  monkeypatch.setattr(haplotypes_lib, 'predict_window', crash_on_second)
  with pytest.raises(RuntimeError, match='simulated kill'):
    haplotypes_lib.predict_haplotypes(
        genome['predictor'], genome['fasta'], genome['vcf'], tmp_path / 'resumed', **common
    )
  assert (tmp_path / 'resumed' / 'haplotypes.h5ad.partial' / 'chunk_000000.npz').exists()
  monkeypatch.setattr(haplotypes_lib, 'predict_window', original)
  result = haplotypes_lib.predict_haplotypes(
      genome['predictor'], genome['fasta'], genome['vcf'], tmp_path / 'resumed', **common
  )
  assert result.windows_resumed == 1
  assert (tmp_path / 'whole' / 'haplotypes.tsv').read_bytes() == (
      tmp_path / 'resumed' / 'haplotypes.tsv'
  ).read_bytes()
  whole = anndata.read_h5ad(tmp_path / 'whole' / 'haplotypes.h5ad')
  resumed = anndata.read_h5ad(tmp_path / 'resumed' / 'haplotypes.h5ad')
  np.testing.assert_array_equal(whole.X, resumed.X)
  assert list(whole.var.index) == list(resumed.var.index)
  assert not (tmp_path / 'resumed' / 'haplotypes.h5ad.partial').exists()
  with pytest.raises(FileExistsError, match='already exists'):
    haplotypes_lib.predict_haplotypes(
        genome['predictor'], genome['fasta'], genome['vcf'], tmp_path / 'resumed', **common
    )


def test_regions_with_bins(genome, tmp_path):
  bed = tmp_path / 'r.bed'
  bed.write_text('1\t2900\t3200\tR1\n')
  result = haplotypes_lib.predict_haplotypes(
      genome['predictor'],
      genome['fasta'],
      genome['vcf'],
      tmp_path / 'out',
      bed=bed,
      samples=['S1'],
      settings=haplotypes_lib.HaplotypeSettings(bins=True, tracks=[1]),
      progress=False,
  )
  data = result.data
  assert data.shape == (2, 8) and list(data.var['bin']) == list(range(8))
  window = haplotypes_lib.region_windows(
      haplotypes_lib.read_bed(bed), FastaStringExtractor(genome['fasta']), LENGTH
  )[0]
  x = one_hot_encode(built_haplotype(genome['fasta'], '1', window.start, genome['rows'], 'S1', 1))
  expected = genome['forward'](x[np.newaxis])['human'].numpy()[0][:, 1]
  np.testing.assert_allclose(
      haplotypes_lib.track_matrix(data, 't1')[1],
      expected,
      rtol=1e-5,
      atol=1e-5 * np.abs(expected).max(),
  )


def test_a_reference_haplotype_equals_predict_gtf(genome, tmp_path):
  """The same windows and expression at the TSSs as `predict --gtf` (predict_gene_expression):
  S3's haplotype 1 holds only 0 and '.' alleles at GENE1 and GENE2, so it is the reference."""
  expression = predict_gene_expression(
      genome['predictor'], genome['fasta'], genome['gtf'], genes=['GENE1', 'GENE2'], progress=False
  ).expression
  ours = haplotypes_lib.predict_haplotypes(
      genome['predictor'],
      genome['fasta'],
      genome['vcf'],
      tmp_path,
      gtf=genome['gtf'],
      genes=['GENE1', 'GENE2'],
      samples=['S3'],
      progress=False,
  ).data.X.reshape(2, 2, 3)
  np.testing.assert_allclose(ours[0], expression, rtol=1e-5, atol=1e-5 * np.abs(expression).max())
  assert not np.allclose(ours[1], expression)  # Haplotype 2 carries two ALTs.


@pytest.fixture(scope='module')
def indel_vcf(genome):
  """S1 carries SNVs and an indel on each haplotype; S2 the same SNVs without the indels."""
  fasta = FastaStringExtractor(genome['fasta'])
  bases = lambda pos, n=1: fasta.extract(
      type('I', (), dict(chrom='2', start=pos - 1, end=pos - 1 + n))()
  )
  other = lambda b: 'G' if b != 'G' else 'T'
  rows = [
      ('chr2', 50, bases(50), other(bases(50)), ['1|0', '1|0']),
      ('chr2', 120, bases(120), bases(120) + 'AC', ['1|0', '0|0']),  # Insertion.
      ('chr2', 200, bases(200), other(bases(200)), ['1|1', '1|1']),
      ('chr2', 300, bases(300, 4), bases(300), ['0|1', '0|0']),
  ]  # Deletion of 3 bp.
  return dict(
      rows=rows, vcf=write_phased_vcf(genome['folder'] / 'indels.vcf', rows, samples=['S1', 'S2'])
  )


def test_reader_skips_indels_and_counts_the_carried_ones(indel_vcf):
  summaries = {}
  for mode in ('full', 'skip'):
    summaries[mode] = GenotypeSummary()
    with PhasedVcf(indel_vcf['vcf'], indels=mode) as genotypes:
      edits = genotypes.haplotypes('2', 0, 1000, summary=summaries[mode])
    starts = [[e.start for e in h] for h in edits]
    if mode == 'skip':  # S1's haplotypes are S2's: the SNVs, the reference at the indels.
      assert starts == [[49, 199], [199], [49, 199], [199]]
    else:
      assert starts == [[49, 119, 199], [199, 299], [49, 199], [199]]
  assert summaries['skip'].skipped_indels == 2 and summaries['full'].skipped_indels == 0
  assert summaries['skip'].alleles_used == 6 and summaries['full'].alleles_used == 8
  assert '2 carried indel alleles left out' in summaries['skip'].format()
  assert 'indel' not in summaries['full'].format()
  with pytest.raises(ValueError, match="indels must be 'full'.*or 'skip'.*'drop'"):
    PhasedVcf(indel_vcf['vcf'], indels='drop')


def test_skipped_indels_give_the_snv_haplotypes_without_full_passes(
    genome, indel_vcf, tmp_path, monkeypatch
):
  common = dict(gtf=genome['gtf'], genes=['EDGE'], samples=['S1', 'S2'], progress=False)
  run = lambda out, indels='full', **extra: haplotypes_lib.predict_haplotypes(
      genome['predictor'],
      genome['fasta'],
      indel_vcf['vcf'],
      tmp_path / out,
      **common,
      settings=haplotypes_lib.HaplotypeSettings(indels=indels),
      **extra,
  )

  # A 'full' run killed before its first window, resumed with 'skip': refused, as any changed
  # setting is, until `overwrite` discards it.
  def killed(*args, **kwargs):
    raise RuntimeError('simulated kill')

  with monkeypatch.context() as patch:
    patch.setattr(haplotypes_lib, 'predict_window', killed)
    with pytest.raises(RuntimeError, match='simulated kill'):
      run('skip')
  with pytest.raises(FileExistsError, match=r'changed: indels\)'):
    run('skip', indels='skip')
  skip = run('skip', indels='skip', overwrite=True)
  full = run('full')
  assert skip.stats.full_passes == 0 and skip.stats.haplotypes == 4
  assert full.stats.full_passes == 2 and full.summary.skipped_indels == 0
  assert skip.summary.skipped_indels == 2 and skip.summary.alleles_used == 6
  data = anndata.read_h5ad(tmp_path / 'skip' / 'haplotypes.h5ad')
  assert data.uns['indels'] == 'skip' and data.uns['vcf_summary']['skipped_indels'] == 2
  assert data.uns['work']['full_passes'] == 0
  assert full.data.uns['indels'] == 'full'
  # S1's haplotypes without their indels are S2's (the same distinct haplotypes) ...
  np.testing.assert_array_equal(skip.data.X[0:2], skip.data.X[2:4])
  np.testing.assert_allclose(skip.data.X[2:4], full.data.X[2:4], rtol=1e-6)  # S2: no indel.
  assert not np.allclose(full.data.X[0], full.data.X[2])  # 'full' predicts the insertion.
  # ... and equal full passes of the SNV haplotypes built by hand (indels left out).
  window = haplotypes_lib.gene_windows(
      haplotypes_lib.read_genes(genome['gtf'], fasta=genome['fasta'], genes=['EDGE']), LENGTH
  )[0]
  for h in (0, 1):
    sequence = built_haplotype(genome['fasta'], '2', window.start, indel_vcf['rows'], 'S1', h)
    predictions = genome['forward'](one_hot_encode(sequence)[np.newaxis])['human'].numpy()[0]
    expected = gene_expression(predictions, window.start + (LENGTH - 8 * 128) // 2, window.tss)
    np.testing.assert_allclose(
        skip.data.X[h], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()
    )
  with (
      PhasedVcf(indel_vcf['vcf'], indels='skip') as genotypes,
      pytest.raises(ValueError, match="handles indels as 'skip', the settings as 'full'"),
  ):
    haplotypes_lib.predict_window(
        None, None, genotypes, window, haplotypes_lib.WindowSettings('g.fa', 'v.vcf', ('S1',))
    )
  with pytest.raises(ValueError, match="HaplotypeSettings.indels must be 'full'"):
    haplotypes_lib.HaplotypeSettings(indels='drop')
