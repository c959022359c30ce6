"""Tests of enformer.io: FASTA extraction, BED regions, targets tables, bigWig/bedGraph."""

import kipoiseq
import numpy as np
import pyBigWig
import pytest

from conftest import shared_path
from enformer.io import bed, bigwig, fasta, targets

CHROMS = {'chr1': 'ACGT' * 50 + 'acgtn', 'chr2': 'GATTACA' * 30, '3': 'CCCCGGGGAA' * 20}


@pytest.fixture(scope='module')
def fasta_file(tmp_path_factory):
  path = tmp_path_factory.mktemp('genome') / 'genome.fa'
  with open(path, 'w') as handle:
    for name, sequence in CHROMS.items():
      handle.write(f'>{name} synthetic\n')
      for i in range(0, len(sequence), 60):
        handle.write(sequence[i : i + 60] + '\n')
  return path


def test_extract_inside_and_padding(fasta_file):
  with fasta.FastaStringExtractor(fasta_file) as extractor:
    assert extractor.chromosome_sizes == {k: len(v) for k, v in CHROMS.items()}
    assert extractor.extract(kipoiseq.Interval('chr1', 4, 12)) == CHROMS['chr1'][4:12]
    # Before the start and past the end: N padding, exact width.
    assert extractor.extract(kipoiseq.Interval('chr2', -3, 4)) == 'NNN' + 'GATT'
    size = len(CHROMS['chr2'])
    assert extractor.extract(kipoiseq.Interval('chr2', size - 2, size + 3)) == 'CA' + 'NNN'
    assert extractor.extract(kipoiseq.Interval('chr2', size + 5, size + 9)) == 'NNNN'
    # Soft-masked letters are returned upper case.
    assert extractor.extract(kipoiseq.Interval('chr1', 200, 205)) == 'ACGTN'
    one_hot = extractor.extract_one_hot(kipoiseq.Interval('chr2', -2, 2))
    assert one_hot.shape == (4, 4) and one_hot[:2].sum() == 0
    np.testing.assert_array_equal(one_hot[2:], np.eye(4)[[2, 0]])


def test_chromosome_name_resolution(fasta_file):
  with fasta.FastaStringExtractor(fasta_file) as extractor:
    assert extractor.resolve_chromosome('1') == 'chr1'
    assert extractor.resolve_chromosome('chr3') == '3'
    assert extractor.extract(kipoiseq.Interval('chr3', 0, 5)) == 'CCCCG'
    with pytest.raises(ValueError, match="'chr9' is not in"):
      extractor.extract(kipoiseq.Interval('chr9', 0, 5))


def test_missing_fasta(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    fasta.FastaStringExtractor(tmp_path / 'absent.fa')


def test_parse_region_and_bed(tmp_path):
  interval = bed.parse_region('chr11:5,225,001-5,230,000')
  assert (interval.chrom, interval.start, interval.end) == ('chr11', 5_225_000, 5_230_000)
  assert bed.format_region(interval) == 'chr11:5225001-5230000'
  for bad in ('chr1:100', 'chr1:200-100', 'chr1:0-5'):
    with pytest.raises(ValueError):
      bed.parse_region(bad)
  path = tmp_path / 'regions.bed'
  path.write_text('track name=x\n# comment\nchr1\t10\t20\tpromoter\t0\t-\n2\t5\t50\n\n')
  regions = bed.read_bed(path)
  assert [(r.chrom, r.start, r.end, r.name, r.strand) for r in regions] == [
      ('chr1', 10, 20, 'promoter', '-'),
      ('2', 5, 50, '2:6-50', '.'),
  ]
  path.write_text('chr1\tten\t20\n')
  with pytest.raises(ValueError, match=':1: expected'):
    bed.read_bed(path)


def test_targets_selection():
  table = targets.read_targets(shared_path('data', 'basenji_targets', 'targets_human.txt'))
  assert len(table) == 5313
  assert table.loc[0, 'identifier'] == 'ENCFF833POA'
  assert targets.select_tracks(table, [5, '7']) == [5, 7]
  assert targets.select_tracks(table, ['ENCFF110QGM']) == [1]
  k562_cage = targets.select_tracks(table, ['CAGE:chronic myelogenous leukemia'])
  assert k562_cage and all(targets.is_cage(d) for d in targets.track_labels(table, k562_cage))
  assert 'DNASE:chorion' in targets.track_labels(table, [2])
  with pytest.raises(ValueError, match='out of range'):
    targets.select_tracks(table, [6000])
  with pytest.raises(ValueError, match='No track'):
    targets.select_tracks(table, ['no such assay xyz'])
  with pytest.raises(ValueError, match='rows but the head has 1643'):
    targets.select_tracks(table, [1], num_tracks=1643)
  assert targets.select_tracks(None, [3]) == [3]
  with pytest.raises(ValueError, match='`targets`'):
    targets.select_tracks(None, ['CAGE'])


def test_bigwig_and_bedgraph_round_trip(tmp_path):
  sizes = {'chr1': 1000, 'chr2': 700}
  path = tmp_path / 'track.bw'
  values = np.arange(8, dtype=np.float32)
  # Second block starts before 0: its first bins are dropped; chr2 block crosses the end.
  bigwig.write_bigwig(
      path,
      sizes,
      [('chr2', 512, values[:3]), ('chr1', 0, values), ('chr1', -256, values[:4])],
      bin_size=128,
  )
  bw = pyBigWig.open(str(path))
  assert bw.chroms() == sizes
  assert bw.values('chr1', 128, 129)[0] == 1.0
  assert bw.values('chr2', 699, 700)[0] == 1.0  # Bin 640-768 clipped to 700.
  bw.close()
  binned = bigwig.read_bigwig_bins(path, '1', 0, 1024, bin_size=128)
  np.testing.assert_allclose(binned, [0, 1, 2, 3, 4, 5, 6, 7 * 104 / 128], rtol=1e-6)
  graph = tmp_path / 'track.bedGraph'
  bigwig.write_bedgraph(
      graph, sizes, [('chr2', 512, values[:3]), ('chr1', 896, values[:1])], track_name='t'
  )
  lines = graph.read_text().splitlines()
  assert lines[0].startswith('track type=bedGraph') and lines[1:] == [
      'chr1\t896\t1000\t0',
      'chr2\t512\t640\t0',
      'chr2\t640\t700\t1',
  ]


def test_read_sequences_bed_and_tss_bed(tmp_path):
  path = tmp_path / 'sequences.bed'
  path.write_text('1\t0\t100\ttrain\n1\t100\t200\tvalid\n')
  table = bed.read_sequences_bed(path)
  assert list(table.columns) == ['chrom', 'start', 'end', 'subset']
  assert table['chrom'].tolist() == ['1', '1'] and table['end'].dtype == np.int64
  with open(path) as handle:
    assert bed.read_sequences_bed(handle)['subset'].tolist() == ['train', 'valid']
  three = tmp_path / 'three.bed'
  three.write_text('# records\nchr2\t5\t10\n')
  assert bed.read_sequences_bed(three, default_subset='train')['subset'].tolist() == ['train']
  with pytest.raises(ValueError, match='chrom, start, end, subset'):
    bed.read_sequences_bed(three)
  tss = tmp_path / 'tss.bed'
  tss.write_text('chr1\t150\t151\tGENE\t0\t+\n')
  assert bed.read_tss_bed(tss).to_dict('records') == [
      {'chrom': 'chr1', 'start': 150, 'end': 151, 'name': 'GENE'}
  ]
  with pytest.raises(FileNotFoundError, match='TSS BED'):
    bed.read_tss_bed(tmp_path / 'missing.bed')
  numbered = tmp_path / 'numbered.bed'  # Ensembl-style names: '1' must match sequences.bed's.
  numbered.write_text('1\t150\t151\tGENE\n')
  assert bed.read_tss_bed(numbered)['chrom'].tolist() == ['1']
