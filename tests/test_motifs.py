"""enformer.interpret.motifs and `enformer motifs`: hypothetical contributions, peak picking,
TOMTOM against JASPAR, MEME files, the resumable contribution step and the command's checks.

The proof that the pipeline finds planted motifs (and none in an untrained model) is in
tests/test_motifs_learning.py.
"""

import h5py
import kipoiseq
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from memelite.io import write_meme
from pyjaspar import jaspardb

from conftest import model_arg_flags, write_random_fasta
from enformer.cli import main
from enformer.inference import load_model
from enformer.inference.predictor import Predictor
from enformer.interpret import contribution_input_grad, target_mask
from enformer.interpret import motifs
from enformer.interpret import scan as scan_lib
from enformer.interpret.gradients import input_gradient
from enformer.io import sad as sad_io
from enformer.io.bed import read_bed
from enformer.testing import MICRO, random_model, random_one_hot
from enformer.variants import score_vcf

LENGTH = 512


@pytest.fixture(scope='module')
def jaspar():
  return motifs.jaspar_motifs()


@pytest.fixture(scope='module')
def predictor():
  return Predictor.from_module(random_model(0, **dict(MICRO, heads={'human': 3})), LENGTH)


@pytest.mark.slow  # Traces two gradient functions (~11 s on 2 cores).
def test_hypothetical_contributions_come_from_the_input_gradient(predictor):
  x = random_one_hot(2, LENGTH, seed=1)
  mask = target_mask(LENGTH // 128, 3, [1, 2], [0, 2])
  gradient = input_gradient(predictor, x, mask, 'human', reduction='sum')  # [2, L, 4]
  # The gradient at the bases present is gradient × input.
  np.testing.assert_allclose(
      (gradient * x).sum(-1),
      contribution_input_grad(predictor, x, mask, 'human', 'sum'),
      rtol=1e-5,
      atol=1e-6,
  )
  hypothetical = motifs.hypothetical_from_gradient(gradient)
  np.testing.assert_allclose(hypothetical.sum(-1), 0, atol=1e-5)
  # Only the shift common to the 4 bases (which no one-hot input can change) is removed.
  np.testing.assert_allclose(
      (hypothetical * x).sum(-1), (gradient * x).sum(-1) - gradient.mean(-1), rtol=1e-5, atol=1e-6
  )
  ism = np.array([[0.0, -1.0, 2.0, 3.0]])  # Reference A.
  np.testing.assert_allclose(motifs.hypothetical_from_ism(ism), [[-1.0, -2.0, 1.0, 2.0]])


def test_target_bins_overlap_the_region():
  region = kipoiseq.Interval('chr1', 1000, 1300)
  # Input [488, 1512) of 1024 bp, 6 output bins from 576: bins cover [576 + 128 b, ...).
  assert motifs.target_bins(region, 488, 6, 1024) == [3, 4, 5]
  assert motifs.target_bins(kipoiseq.Interval('chr1', 0, 1), 488, 6, 1024) == [3]


def test_top_regions_takes_separated_peaks_of_the_summed_tracks():
  values = np.zeros((2, 8, 3), np.float32)  # [regions, bins, tracks in the file]
  values[0, 2, 1] = 5.0  # Strongest peak of track 11 (column 1).
  values[0, 3, 2] = 4.5  # Next bin: too close to the first.
  values[1, 6, 2] = 3.0
  values[1, 1, 0] = 100.0  # Track 10 is not selected.
  data = dict(
      predictions=values,
      track_index=np.array([10, 11, 12]),
      bin_start=np.stack([np.arange(8) * 128, 5000 + np.arange(8) * 128]),
      chrom=np.array(['chr1', 'chr1']),
      bin_size=128,
  )
  regions = motifs.top_regions(data, [11, 12], 5, width=200)
  assert [(r.chrom, r.start, r.end, r.name) for r in regions[:2]] == [
      ('chr1', 2 * 128 + 64 - 100, 2 * 128 + 64 + 100, 'peak0'),
      ('chr1', 5000 + 6 * 128 + 64 - 100, 5000 + 6 * 128 + 64 + 100, 'peak1'),
  ]
  assert all(
      abs(motifs.region_centre(a) - motifs.region_centre(b)) >= 200
      for i, a in enumerate(regions)
      for b in regions[i + 1 :]
      if a.chrom == b.chrom
  )
  with pytest.raises(ValueError, match='not in the predictions file'):
    motifs.top_regions(data, [3], 1, width=200)


def _pattern(name: str, ppm: np.ndarray) -> motifs.Pattern:
  """A pattern whose contributions are its information content (as a clean seqlet cluster's)."""
  ppm = np.asarray(ppm, np.float64)
  return motifs.Pattern(
      name=name, sign='pos', num_seqlets=30, ppm=ppm, cwm=motifs.plots_lib.information_content(ppm)
  )


def test_tomtom_names_a_jaspar_motif_and_not_noise(jaspar):
  ctcf = jaspar.matrices[jaspar.index('MA0139')].T  # [w, 4]
  rng = np.random.default_rng(0)
  noise = 0.25 + rng.uniform(-0.03, 0.03, (12, 4))
  table = motifs.match_patterns(
      [
          _pattern('pos_patterns.pattern_0', ctcf),
          _pattern('pos_patterns.pattern_1', noise / noise.sum(1)[:, None]),
      ],
      jaspar,
      num_matches=2,
  )
  assert list(table.columns[:7]) == list(motifs.TABLE_COLUMNS)
  # Noise is not queried: TOMTOM would find it "similar" to low-information motifs (q ~ 1e-12).
  assert motifs.information_bits(noise / noise.sum(1)[:, None]) < motifs.MIN_QUERY_BITS
  assert table[['pattern', 'match_rank']].values.tolist() == [
      ['pos_patterns.pattern_0', 1],
      ['pos_patterns.pattern_0', 2],
      ['pos_patterns.pattern_1', 0],
  ]
  assert motifs.best_matches(table) == {'pos_patterns.pattern_0': 'MA0139.2'}
  assert table['q_value'].between(0, 1).all() and (table['q_value'] >= table['p_value']).all()


@pytest.mark.parametrize('collection, tax_group', [('CORE', 'vertebrates'), ('CORE', 'insects')])
def test_jaspar_motifs_are_pyjaspars_selection(jaspar, collection, tax_group):
  """The motifs, order, names and matrices of pyjaspar's own `fetch_motifs` (latest versions:
  the insects' selection holds base ids with several versions, of which only the newest is
  kept)."""
  ours = (
      jaspar
      if tax_group == 'vertebrates'
      else motifs.jaspar_motifs(collection=collection, tax_group=tax_group)
  )
  database = jaspardb(release=motifs.JASPAR_RELEASE)
  theirs = database.fetch_motifs(collection=collection, tax_group=[tax_group], all_versions=False)
  if tax_group == 'insects':  # Small enough to list every version too (vertebrates: 4 s more).
    every_version = database.fetch_motifs(
        collection=collection, tax_group=[tax_group], all_versions=True
    )
    assert len(every_version) > len(theirs) > 100
  assert ours.ids == [m.matrix_id for m in theirs]
  assert ours.names == [m.name for m in theirs]
  for matrix, motif in zip(ours.matrices, theirs):
    counts = np.array([motif.counts[base] for base in 'ACGT'])
    np.testing.assert_array_equal(matrix, counts / counts.sum(0, keepdims=True))
  with pytest.raises(ValueError, match='has no CORE motifs'):
    motifs.jaspar_motifs(tax_group='no such taxon')


def test_a_meme_file_is_a_motif_database(tmp_path, jaspar):
  path = str(tmp_path / 'own.meme')
  chosen = [jaspar.index('MA0139'), jaspar.index('MA0079')]
  write_meme(path, {f'{jaspar.ids[i]} {jaspar.names[i]}': jaspar.matrices[i] for i in chosen})
  database = motifs.read_meme_motifs(path)
  assert database.ids == [jaspar.ids[i] for i in chosen]
  assert database.names == ['CTCF', 'SP1']
  np.testing.assert_allclose(database.matrices[0], jaspar.matrices[chosen[0]], atol=1e-6)
  (tmp_path / 'empty.meme').write_text('MEME version 4\n')
  with pytest.raises(ValueError, match='holds no motifs'):
    motifs.read_meme_motifs(tmp_path / 'empty.meme')


@pytest.fixture()
def genome(tmp_path):
  fasta = write_random_fasta(tmp_path / 'genome.fa', {'chr1': 6000}, seed=2)
  regions = [kipoiseq.Interval('chr1', 500 + 700 * i, 600 + 700 * i) for i in range(7)]
  return fasta, regions


def _interrupted_after_one_chunk(monkeypatch, run) -> None:
  """`run()` stopped by Ctrl-C when the contributions of its second chunk start (the first is
  in the chunk store); `region_contributions` is restored afterwards."""
  calls = []
  original = motifs.region_contributions

  def interrupted(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return original(*args, **kwargs)

  monkeypatch.setattr(motifs, 'region_contributions', interrupted)
  with pytest.raises(KeyboardInterrupt):
    run()
  monkeypatch.setattr(motifs, 'region_contributions', original)


def _contributions(out) -> dict:
  with h5py.File(out / 'contributions.h5', 'r') as h5:
    return {name: h5[name][()] for name in ('raw/seq', 'shap/seq', 'projected_shap/seq', 'start')}


@pytest.mark.slow  # Two runs and a resumed one (~9 s on 2 cores, most of it tracing).
def test_an_interrupted_run_resumes_to_the_same_contributions(
    tmp_path, genome, predictor, jaspar, monkeypatch
):
  fasta, regions = genome
  settings = dict(
      tracks=[0, 1], window=96, chunk_size=3, batch_size=2, motif_db=jaspar, progress=False
  )
  whole = motifs.find_motifs(predictor, fasta, regions, tmp_path / 'whole', **settings)
  assert whole.chunks_resumed == 0
  expected = _contributions(tmp_path / 'whole')
  assert expected['raw/seq'].shape == expected['shap/seq'].shape == (7, 4, 96)
  np.testing.assert_array_equal(
      expected['projected_shap/seq'], expected['shap/seq'] * expected['raw/seq']
  )
  assert {'contributions.h5', 'modisco.h5', 'motifs.tsv', 'report.html'} <= set(whole.files)
  assert list(pd.read_csv(tmp_path / 'whole' / 'motifs.tsv', sep='\t').columns[:7]) == list(
      motifs.TABLE_COLUMNS
  )

  _interrupted_after_one_chunk(
      monkeypatch,
      lambda: motifs.find_motifs(predictor, fasta, regions, tmp_path / 'resumed', **settings),
  )
  with pytest.raises(FileExistsError, match='changed: window'):
    motifs.find_motifs(predictor, fasta, regions, tmp_path / 'resumed', **dict(settings, window=64))
  resumed = motifs.find_motifs(predictor, fasta, regions, tmp_path / 'resumed', **settings)
  assert resumed.chunks_resumed == 1
  for name, values in _contributions(tmp_path / 'resumed').items():
    np.testing.assert_array_equal(values, expected[name], err_msg=name)
  assert not (tmp_path / 'resumed' / '.contributions.partial').exists()


@pytest.mark.parametrize(
    'flags, message',
    [
        (['--predictions', 'PRED'], '--predictions needs --top N'),
        (['--bed', 'BED', '--top', '3'], '--top picks peaks'),
        (['--bed', 'missing.bed'], '--bed missing.bed does not exist'),
        (['--scan', 'MA0139'], '--scan needs --vcf'),
        (['--bed', 'BED', '--vcf', 'BED'], '--vcf goes with --scan'),
    ],
)
def test_command_line_checks(tmp_path, capsys, flags, message):
  fasta = write_random_fasta(tmp_path / 'genome.fa', {'chr1': 1000})
  (tmp_path / 'regions.bed').write_text('chr1\t10\t20\n')
  (tmp_path / 'pred.h5').write_bytes(b'\x89HDF\r\n\x1a\n' + bytes(100))
  flags = [
      {'PRED': str(tmp_path / 'pred.h5'), 'BED': str(tmp_path / 'regions.bed')}.get(f, f)
      for f in flags
  ]
  code = main(
      [
          'motifs',
          '--model',
          str(tmp_path / 'ckpt'),
          '--fasta',
          fasta,
          '--tracks',
          '0',
          '--out',
          str(tmp_path / 'out'),
          *flags,
      ]
  )
  assert code == 2
  assert message in capsys.readouterr().err


def _planted_fasta(path, core: str) -> str:
  """chr1: 400 random bases with `core` planted at 200 (0-based)."""
  rng = np.random.default_rng(5)
  sequence = ''.join(rng.choice(list('ACGT'), 400))
  sequence = sequence[:200] + core + sequence[200 + len(core) :]
  path.write_text(f'>chr1\n{sequence}\n')
  return str(path)


def _vcf(path, rows) -> str:
  lines = ['##fileformat=VCFv4.2', '#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO']
  lines += [f'chr1\t{pos}\t{name}\t{ref}\t{alt}\t.\tPASS\t.' for name, pos, ref, alt in rows]
  path.write_text('\n'.join(lines) + '\n')
  return str(path)


def test_scan_finds_the_motifs_a_variant_breaks_or_creates(tmp_path, jaspar, capsys):
  ap1, broken = 'ATGACTCATC', 'ATCACTCATC'  # The planted AP1 site; its TGA core broken.
  intact = _planted_fasta(tmp_path / 'intact.fa', ap1)
  vcf = _vcf(tmp_path / 'v.vcf', [('core', 203, 'G', 'C'), ('far', 40, 'A', 'G')])
  fos_jun = f'{jaspar.ids[jaspar.index("MA0099")]} FOS::JUN'
  # The REF genome holds the second variant's REF only if base 40 is an A: write it so.
  sequence = open(intact).read().split('\n')[1]
  (tmp_path / 'intact.fa').write_text(f'>chr1\n{sequence[:39]}A{sequence[40:]}\n')
  table = scan_lib.scan_variants(intact, vcf, ['MA0099', 'MA0139'], database=jaspar)
  assert table['id'].tolist() == ['core', 'far']
  assert table['motif_lost'].tolist() == [fos_jun, '']
  assert table['motif_gained'].tolist() == ['', '']
  motif_id = fos_jun.split(' ')[0]
  assert table.loc[0, f'p_ref:{motif_id}'] < 1e-4 <= table.loc[0, f'p_alt:{motif_id}']

  mutant = _planted_fasta(tmp_path / 'mutant.fa', broken)
  own = str(tmp_path / 'own.meme')  # --motif-db: a MEME file of the user's.
  write_meme(own, {fos_jun: jaspar.matrices[jaspar.index('MA0099')]})
  assert (
      main(
          [
              'motifs',
              '--scan',
              'MA0099',
              '--motif-db',
              own,
              '--fasta',
              mutant,
              '--vcf',
              _vcf(tmp_path / 'back.vcf', [('restore', 203, 'C', 'G')]),
              '--out',
              str(tmp_path / 'scan'),
          ]
      )
      == 0
  )
  written = pd.read_csv(tmp_path / 'scan' / 'scan.tsv', sep='\t', keep_default_na=False)
  assert written['motif_gained'].tolist() == [fos_jun]
  assert '1 create one, 0 break one' in capsys.readouterr().out
  assert (
      main(
          [
              'motifs',
              '--scan',
              'NOPE',
              '--motif-db',
              own,
              '--fasta',
              mutant,
              '--vcf',
              vcf,
              '--out',
              str(tmp_path / 'scan2'),
          ]
      )
      == 2
  )
  assert "Motif 'NOPE' is not in" in capsys.readouterr().err


def test_scan_regions_lists_every_hit_in_genome_coordinates(tmp_path, jaspar):
  """FIMO over BED regions: the planted AP1 site at 200-210 is a FOS::JUN hit in genome
  coordinates whichever region holds it; a region without it has no hit there."""
  intact = _planted_fasta(tmp_path / 'intact.fa', 'ATGACTCATC')
  regions = [
      kipoiseq.Interval('chr1', 150, 260),
      kipoiseq.Interval('chr1', 180, 400),
      kipoiseq.Interval('chr1', 0, 150),
  ]
  table = scan_lib.scan_regions(intact, regions, ['MA0099'], database=jaspar)
  assert list(table.columns) == list(scan_lib.REGION_HIT_COLUMNS)
  planted = table[(table['start'] >= 200) & (table['end'] <= 210)]
  assert sorted(planted['region'].unique()) == ['chr1:151-260', 'chr1:181-400']
  assert (planted['motif_name'] == 'FOS::JUN').all() and (planted['p_value'] < 1e-4).all()
  # The same hits from both regions: the same genome positions and strands.
  hits = {
      region: set(zip(rows['start'], rows['end'], rows['strand']))
      for region, rows in planted.groupby('region')
  }
  assert hits['chr1:151-260'] == hits['chr1:181-400']
  assert not ((table['region'] == 'chr1:1-150') & (table['end'] > 150)).any()
  with pytest.raises(ValueError, match='chr9'):
    scan_lib.scan_regions(intact, [kipoiseq.Interval('chr9', 0, 100)], ['MA0099'], database=jaspar)
  bed = tmp_path / 'regions.bed'  # The command line: the same table in scan_regions.tsv.
  bed.write_text(''.join(f'chr1\t{r.start}\t{r.end}\n' for r in regions))
  assert (
      main(
          [
              'motifs',
              '--scan',
              'MA0099',
              '--fasta',
              intact,
              '--bed',
              str(bed),
              '--out',
              str(tmp_path / 'scan'),
          ]
      )
      == 0
  )
  written = pd.read_csv(tmp_path / 'scan' / 'scan_regions.tsv', sep='\t')
  assert len(written) == len(table) and set(written['region']) == set(table['region'])
  vcf = _vcf(tmp_path / 'v.vcf', [('core', 203, 'G', 'C')])
  assert (
      main(
          [
              'motifs',
              '--scan',
              'MA0099',
              '--fasta',
              intact,
              '--bed',
              str(bed),
              '--vcf',
              vcf,
              '--out',
              str(tmp_path / 'both'),
          ]
      )
      == 2
  )


class _BaseCounts:
  """Stand-in model for `score_vcf`: per 128 bp bin, G+C count and A count (2 tracks)."""

  sequence_length = 256
  heads = {'human': 2}

  def __init__(self):
    self.batches = 0

  def predict_on_batch(self, x):
    self.batches += 1
    bins = np.asarray(x).reshape(len(x), -1, 128, 4)
    return {
        'human': np.stack([bins[..., 1:3].sum((2, 3)), bins[..., 0].sum(2)], -1).astype(np.float32)
    }


def test_score_variants_scan_reports_the_planted_motif_lost(tmp_path, jaspar, capsys):
  """score_vcf(scan_motifs=...) / score-variants --scan: motif_gained / motif_lost of each
  variant in the TSV and sad.h5 (the planted AP1 site's core SNV breaks FOS::JUN)."""
  intact = _planted_fasta(tmp_path / 'intact.fa', 'ATGACTCATC')
  sequence = open(intact).read().split('\n')[1]
  (tmp_path / 'intact.fa').write_text(f'>chr1\n{sequence[:39]}A{sequence[40:]}\n')
  vcf = _vcf(tmp_path / 'v.vcf', [('far', 40, 'A', 'G'), ('core', 203, 'G', 'C')])
  fos_jun = f'{jaspar.ids[jaspar.index("MA0099")]} FOS::JUN'
  out = tmp_path / 'scores.h5'
  result = score_vcf(
      _BaseCounts(),
      intact,
      vcf,
      out,
      tsv=True,
      progress=False,
      scan_motifs=['MA0099', 'MA0139'],
      motif_database=jaspar,
  )
  assert result.scores.annotations['motif_lost'].tolist() == ['', fos_jun]
  table = pd.read_csv(result.paths['tsv'][0], sep='\t', keep_default_na=False)
  assert len(table) == 2 * 2
  assert table.groupby('snp')['motif_lost'].first().to_dict() == {'core': fos_jun, 'far': ''}
  assert (table['motif_gained'] == '').all()
  written = sad_io.read_sad_h5(out)
  assert written.annotations['motif_lost'].tolist() == ['', fos_jun]
  assert written.annotations['motif_gained'].tolist() == ['', '']
  assert written.sad.shape == (2, 2)
  model = _BaseCounts()
  with pytest.raises(ValueError, match="Motif 'NOPE' is not in"):
    score_vcf(
        model,
        intact,
        vcf,
        tmp_path / 'nope.h5',
        progress=False,
        scan_motifs=['NOPE'],
        motif_database=jaspar,
    )
  assert model.batches == 0  # Checked before any prediction.
  saved = tmp_path / 'model'  # The checks below stop before the model is loaded.
  saved.mkdir()
  (saved / 'saved_model.pb').write_bytes(b'graph')
  own = str(tmp_path / 'own.meme')
  write_meme(own, {fos_jun: jaspar.matrices[jaspar.index('MA0099')]})
  command = ['score-variants', '--model', str(saved), '--fasta', intact, '--vcf', vcf]
  assert main(command + ['--out', str(tmp_path / 'a.h5'), '--scan', 'NOPE', '--motif-db', own]) == 2
  assert "Motif 'NOPE' is not in" in capsys.readouterr().err
  assert (
      main(command + ['--out', str(tmp_path / 'b.h5'), '--scan', 'MA0099', '--shard', '1/2']) == 2
  )
  assert '--scan needs the whole run' in capsys.readouterr().err


@pytest.mark.slow  # Traces the incremental forward (~5 s on 2 cores).
def test_ism_contributions_are_the_mutagenesis_of_the_centred_window(tmp_path, predictor):
  fasta = write_random_fasta(tmp_path / 'genome.fa', {'chr1': 2000}, seed=4)
  region = kipoiseq.Interval('chr1', 900, 1000)
  extractor = motifs.FastaStringExtractor(fasta)
  arrays = motifs.region_contributions(
      predictor,
      extractor,
      [region],
      sequence_length=LENGTH,
      tracks=[1],
      head='human',
      method='ism',
      window=32,
  )
  x = extractor.extract_one_hot(motifs.centred('chr1', 950, LENGTH))  # [L, 4]
  offset = (LENGTH - 32) // 2
  bins = motifs.target_bins(region, 950 - LENGTH // 2, LENGTH // 128, LENGTH)
  ism = motifs.in_silico_mutagenesis(
      predictor,
      x,
      target_mask(LENGTH // 128, 3, bins, [1]),
      window=(offset, offset + 32),
      head='human',
      reduction='sum',
      progress=False,
  )
  np.testing.assert_array_equal(arrays['one_hot'][0], x[offset : offset + 32].astype(np.int8))
  np.testing.assert_allclose(
      arrays['hypothetical'][0], motifs.hypothetical_from_ism(ism), rtol=1e-5, atol=1e-7
  )


@pytest.mark.slow  # A Dask worker process loads TensorFlow and the model (~25 s on 2 cores).
def test_dask_contributions_equal_a_single_process_and_resume_its_store(
    tmp_path, jaspar, monkeypatch, capsys
):
  """`enformer motifs --workers 1` (a LocalCluster on 127.0.0.1): the workers compute the
  contributions (the driver's function is broken), continue a killed single-process run's chunk
  store, and write the files a single process writes."""
  config = dict(MICRO, heads={'human': 3})
  checkpoint = tf.train.Checkpoint(module=random_model(0, **config)).write(
      str(tmp_path / 'ckpt' / 'enformer')
  )
  fasta = write_random_fasta(tmp_path / 'genome.fa', {'chr1': 6000}, seed=6)
  bed = tmp_path / 'regions.bed'
  bed.write_text(''.join(f'chr1\t{500 + 650 * i}\t{1012 + 650 * i}\tr{i}\n' for i in range(8)))
  regions = read_bed(str(bed))
  own = str(tmp_path / 'own.meme')
  write_meme(
      own,
      {
          f'{jaspar.ids[i]} {jaspar.names[i]}': jaspar.matrices[i]
          for i in (jaspar.index('MA0139'), jaspar.index('MA0079'))
      },
  )
  settings = dict(
      tracks=[0, 2],
      window=128,
      chunk_size=3,
      batch_size=4,
      motif_db=motifs.read_meme_motifs(own),
      model_id=checkpoint,
      progress=False,
  )
  predictor = load_model(checkpoint, sequence_length=LENGTH, **config)
  motifs.find_motifs(predictor, fasta, regions, tmp_path / 'one', **settings)
  expected = _contributions(tmp_path / 'one')

  _interrupted_after_one_chunk(
      monkeypatch,
      lambda: motifs.find_motifs(  # Chunk 0 of 3 stored.
          predictor, fasta, regions, tmp_path / 'dask', **settings
      ),
  )

  def not_here(*args, **kwargs):
    raise AssertionError('contributions computed in the driver')

  monkeypatch.setattr(motifs, 'region_contributions', not_here)  # Spawned workers keep theirs.
  capsys.readouterr()
  assert (
      main(
          [
              'motifs',
              '--model',
              checkpoint,
              *model_arg_flags(config),
              '--sequence-length',
              str(LENGTH),
              '--fasta',
              fasta,
              '--bed',
              str(bed),
              '--tracks',
              '0',
              '2',
              '--window-size',
              '128',
              '--chunk-size',
              '3',
              '--batch-size',
              '4',
              '--motif-db',
              own,
              '--out',
              str(tmp_path / 'dask'),
              '--quiet',
              '--workers',
              '1',
          ]
      )
      == 0
  )
  assert 'resumed 1 chunks' in capsys.readouterr().err
  got = _contributions(tmp_path / 'dask')
  np.testing.assert_array_equal(got['raw/seq'], expected['raw/seq'])
  np.testing.assert_array_equal(got['start'], expected['start'])
  largest = np.abs(expected['shap/seq']).max()
  assert largest > 0
  for name in ('shap/seq', 'projected_shap/seq'):
    np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5 * largest, err_msg=name)
  with (
      h5py.File(tmp_path / 'one' / 'contributions.h5', 'r') as one,
      h5py.File(tmp_path / 'dask' / 'contributions.h5', 'r') as dask,
  ):
    assert sorted(one.keys()) == sorted(dask.keys())
    assert {k: str(v) for k, v in one.attrs.items()} == {k: str(v) for k, v in dask.attrs.items()}
  one_table = pd.read_csv(tmp_path / 'one' / 'motifs.tsv', sep='\t')
  dask_table = pd.read_csv(tmp_path / 'dask' / 'motifs.tsv', sep='\t')
  assert (
      list(dask_table.columns)
      == list(one_table.columns)
      == list(motifs.TABLE_COLUMNS) + ['p_value']
  )
  names = {p.name for p in (tmp_path / 'dask').iterdir()}
  assert names == {p.name for p in (tmp_path / 'one').iterdir()}
  assert {'contributions.h5', 'modisco.h5', 'motifs.tsv', 'report.html'} <= names
  assert not [name for name in names if name.endswith('.partial')]  # The chunk store is gone.


def test_command_line_cluster_flags_are_checked(tmp_path, capsys):
  fasta = write_random_fasta(tmp_path / 'genome.fa', {'chr1': 1000})
  (tmp_path / 'regions.bed').write_text('chr1\t10\t20\n')
  (tmp_path / 'v.vcf').write_text('##fileformat=VCFv4.2\n')
  common = ['motifs', '--fasta', fasta, '--out', str(tmp_path / 'out')]
  with pytest.raises(SystemExit) as exit_info:  # argparse: before anything is read.
    main(
        common
        + [
            '--model',
            str(tmp_path / 'ckpt'),
            '--tracks',
            '0',
            '--bed',
            str(tmp_path / 'regions.bed'),
            '--workers',
            '0',
        ]
    )
  assert exit_info.value.code == 2
  assert capsys.readouterr().err.strip().splitlines()[-1] == (
      'enformer motifs: error: argument --workers: must be at least 1, got 0'
  )
  assert (
      main(common + ['--scan', 'MA0139', '--vcf', str(tmp_path / 'v.vcf'), '--workers', '2']) == 2
  )
  assert '--scan runs no model: drop them' in capsys.readouterr().err
