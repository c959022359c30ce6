"""Tests of enformer.inference.regions, enformer.plots.tracks and the `enformer predict` /
`enformer export` CLI."""

import os

import h5py
import kipoiseq
import matplotlib.image
import numpy as np
import pyBigWig
import pytest
import tensorflow as tf

from conftest import model_arg_flags, shared_path, write_random_fasta
from enformer import Predictor, load_model, one_hot_encode
from enformer.inference import regions as predict
from enformer.io.predictions import read_predictions
from enformer.plots import tracks as plots
from enformer.cli import main
from enformer.io.bed import parse_region
from enformer.io.fasta import FastaStringExtractor
from enformer.io.targets import read_targets
from enformer.testing import MICRO, random_model

CONFIG = dict(MICRO, target_length=32, heads={'human': 5313})
MODEL_LENGTH = 8_192
HUB_LENGTH = 16_384
CHROM_SIZES = {'chr1': 30_000, 'chr2': 20_000, '3': 12_000}
CONFIG_FLAGS = model_arg_flags(CONFIG)


@pytest.fixture(scope='module')
def genome(tmp_path_factory):
  return write_random_fasta(tmp_path_factory.mktemp('genome') / 'genome.fa', CHROM_SIZES)


@pytest.fixture(scope='module')
def model():
  return random_model(seed=1, **CONFIG)  # Calibrated batch norm: well-scaled outputs.


@pytest.fixture(scope='module')
def exported(model, tmp_path_factory):
  """`enformer export` of a checkpoint of `model` (CLI path), padded to HUB_LENGTH."""
  folder = tmp_path_factory.mktemp('models')
  prefix = tf.train.Checkpoint(module=model).write(str(folder / 'ckpt' / 'enformer'))
  out = str(folder / 'hub')
  assert (
      main(
          [
              'export',
              '--model',
              prefix,
              *CONFIG_FLAGS,
              '--sequence-length',
              str(MODEL_LENGTH),
              '--hub-length',
              str(HUB_LENGTH),
              '--out',
              out,
          ]
      )
      == 0
  )
  return out


@pytest.fixture(scope='module')
def targets_file():
  return str(shared_path('data', 'basenji_targets', 'targets_human.txt'))


def direct_prediction(model, genome, chrom, model_start):
  with FastaStringExtractor(genome) as fasta:
    x = fasta.extract_one_hot(kipoiseq.Interval(chrom, model_start, model_start + MODEL_LENGTH))
  return model(x[np.newaxis], is_training=False)['human'].numpy()[0]


def test_predict_region_coordinates_and_values(model, genome):
  predictor = Predictor.from_module(model, MODEL_LENGTH)
  with FastaStringExtractor(genome) as fasta:
    result = predict.predict_region(
        predictor, fasta, parse_region('chr1:10,001-12,000'), tracks=[41, 4799]
    )
  # Centre 11,000; input 8,192 bp around it; 32 bins = centre 4,096 bp.
  assert (result.input_interval.start, result.input_interval.end) == (11_000 - 4096, 15_096)
  assert (result.output_interval.start, result.output_interval.end) == (11_000 - 2048, 13_048)
  np.testing.assert_array_equal(result.bin_starts[:2], [8952, 9080])
  expected = direct_prediction(model, genome, 'chr1', 11_000 - 4096)[:, [41, 4799]]
  # The predictor's fused forward rounds differently: equal within 1e-5 of the largest value.
  np.testing.assert_allclose(result.values, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_batches_and_padding(model, genome):
  predictor = Predictor.from_module(model, MODEL_LENGTH)
  regions = [
      parse_region('chr2:19,901-20,000'),
      kipoiseq.Interval('chr3', 100, 200),
      kipoiseq.Interval('1', 5000, 5100),
  ]
  with FastaStringExtractor(genome) as fasta:
    batched = list(
        predict.iter_predictions(
            predictor, fasta, regions, tracks=[0, 1], batch_size=2, progress=False
        )
    )
    single = [predict.predict_region(predictor, fasta, r, tracks=[0, 1]) for r in regions]
  assert [r.region.chrom for r in batched] == ['chr2', '3', 'chr1']  # FASTA naming.
  for a, b in zip(batched, single):
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)
  # Past the chromosome end the input is N-padded (zero rows): equal to a manual padded input.
  start = batched[0].input_interval.start
  with FastaStringExtractor(genome) as fasta:
    sequence = fasta.extract(batched[0].input_interval)
  assert sequence.endswith('N' * (start + MODEL_LENGTH - 20_000))
  x = one_hot_encode(sequence)[np.newaxis]
  np.testing.assert_allclose(
      batched[0].values,
      model(x, is_training=False)['human'].numpy()[0][:, :2],
      rtol=1e-5,
      atol=1e-6,
  )


def test_plot_tracks_png(tmp_path):
  interval = kipoiseq.Interval('chr1', 1000, 1000 + 64 * 128)
  values = np.abs(np.sin(np.linspace(0, 6, 64))) * 10
  path = tmp_path / 'tracks.png'
  plots.plot_tracks(
      {'DNASE:x': values, 'CAGE:y': values},
      interval,
      observed={'CAGE:y': values * 2 + 1},
      chrom_size=5000,
      path=path,
  )
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 0
  assert plots.pearson_log2(values, values) == pytest.approx(1.0)
  with pytest.raises(ValueError, match='no predicted track'):
    plots.plot_tracks({'a': values}, interval, observed={'b': values})


@pytest.mark.slow
def test_cli_predict_region(exported, model, genome, targets_file, tmp_path):
  out = str(tmp_path / 'out')
  assert (
      main(
          [
              'predict',
              '--model',
              exported,
              '--fasta',
              genome,
              '--region',
              'chr1:10,001-12,000',
              '--targets',
              targets_file,
              '--tracks',
              'CAGE:Keratinocyte - epidermal',
              'ENCFF833POA',
              '41',
              '--bedgraph',
              '--out',
              out,
          ]
      )
      == 0
  )
  table = read_targets(targets_file)
  with h5py.File(os.path.join(out, 'predictions.h5')) as handle:
    assert handle['predictions'].shape == (1, 32, 3)
    tracks = list(handle['track_index'][()])
    assert tracks == [4799, 0, 41] and handle.attrs['complete'] == 1
    assert handle['track_description'][0].decode() == table.loc[4799, 'description']
    assert handle['chrom'][0].decode() == 'chr1' and handle.attrs['sequence_length'] == HUB_LENGTH
  result = read_predictions(os.path.join(out, 'predictions.h5'))
  # The hub input (16,384 bp) is centred like the model input, so the bins are the same.
  expected = direct_prediction(model, genome, 'chr1', 11_000 - 4096)[:, tracks]
  np.testing.assert_allclose(
      result['predictions'][0], expected, rtol=0, atol=1e-5 * np.abs(expected).max()
  )
  np.testing.assert_array_equal(result['bin_start'][0], 8952 + 128 * np.arange(32))
  assert result['input_start'][0] == 11_000 - 8192
  # bigWig per track with the FASTA's chromosomes; values at bin starts.
  bw = pyBigWig.open(os.path.join(out, f'human_4799_{table.loc[4799, "identifier"]}.bw'))
  assert bw.chroms() == CHROM_SIZES
  np.testing.assert_allclose(
      bw.values('chr1', 8952, 8952 + 4096)[::128], result['predictions'][0][:, 0], rtol=1e-6
  )
  bw.close()
  assert len(open(os.path.join(out, 'human_0_ENCFF833POA.bedGraph')).readlines()) == 33
  pngs = [f for f in os.listdir(out) if f.endswith('.png')]
  assert len(pngs) == 1
  image = matplotlib.image.imread(os.path.join(out, pngs[0]))
  assert image.shape[0] > 300 and image.std() > 0


@pytest.mark.slow
def test_cli_predict_bed_batch_npz_observed(exported, genome, tmp_path):
  bed = tmp_path / 'regions.bed'
  bed.write_text(
      'chr1\t1000\t1200\tnear_start\nchr3\t5000\t5100\tno_chr_prefix\n'
      'chr1\t1100\t1300\toverlapping\n'
  )
  observed = tmp_path / 'observed.bw'
  bw = pyBigWig.open(str(observed), 'w')
  bw.addHeader(list(CHROM_SIZES.items()))
  bw.addEntries(['chr1'], [0], ends=[30_000], values=[2.0])
  bw.close()
  out = str(tmp_path / 'out')
  assert (
      main(
          [
              'predict',
              '--model',
              exported,
              '--fasta',
              genome,
              '--bed',
              str(bed),
              '--tracks',
              '3',
              '5',
              '--batch-size',
              '2',
              '--format',
              'npz',
              '--observed',
              f'5={observed}',
              '--out',
              out,
          ]
      )
      == 0
  )
  result = read_predictions(os.path.join(out, 'predictions.npz'))
  assert result['predictions'].shape == (3, 32, 2)
  assert list(result['name']) == ['near_start', 'no_chr_prefix', 'overlapping']
  assert list(result['chrom']) == ['chr1', '3', 'chr1'] and result['complete'] == 1
  assert result['bin_start'][0, 0] == 1100 - 2048  # Before the chromosome start: kept in file.
  bw = pyBigWig.open(os.path.join(out, 'human_5_track_5.bw'))
  assert bw.chroms()['3'] == 12_000
  # Bin 7 [-52, 76) is clipped to [0, 76); bin 8 starts at 76.
  np.testing.assert_allclose(
      bw.values('chr1', 0, 204)[::100], result['predictions'][0, [7, 8, 8], 1], rtol=1e-6
  )
  bw.close()
  assert len([f for f in os.listdir(out) if f.endswith('.png')]) == 3


@pytest.mark.slow
def test_cli_predict_n_value(exported, model, genome, tmp_path):
  """--n-value 0.25 (the usage notebook's N) reaches the padding past the chromosome end."""
  out = str(tmp_path / 'out')
  assert (
      main(
          [
              'predict',
              '--model',
              exported,
              '--fasta',
              genome,
              '--region',
              'chr2:19,901-20,000',
              '--tracks',
              '0',
              '1',
              '--n-value',
              '0.25',
              '--no-bigwig',
              '--max-plots',
              '0',
              '--out',
              out,
          ]
      )
      == 0
  )
  result = read_predictions(os.path.join(out, 'predictions.h5'))
  assert result['neutral_value'] == 0.25
  model_input = kipoiseq.Interval('chr2', 19_950 - 4096, 19_950 + 4096)  # 4,046 bp past the end.
  with FastaStringExtractor(genome) as fasta:
    sequence = fasta.extract(model_input)
  outputs = {
      value: model(one_hot_encode(sequence, neutral_value=value)[np.newaxis], is_training=False)[
          'human'
      ].numpy()[0][:, :2]
      for value in (0.0, 0.25)
  }
  scale = np.abs(outputs[0.25]).max()
  np.testing.assert_allclose(result['predictions'][0], outputs[0.25], rtol=0, atol=1e-5 * scale)
  assert np.abs(outputs[0.25] - outputs[0.0]).max() > 1e-3 * scale  # The N value matters here.


@pytest.mark.slow
def test_cli_errors(exported, genome, tmp_path, capsys):
  checkpoint = os.path.join(os.path.dirname(exported), 'ckpt')
  code = main(
      [
          'predict',
          '--model',
          checkpoint,
          '--model-arg',
          'channels=96',
          '--model-arg',
          'conv_tower_divisible_by=16',
          '--fasta',
          genome,
          '--region',
          'chr1:1-10',
          '--out',
          str(tmp_path / 'o'),
      ]
  )
  error = capsys.readouterr().err
  assert code == 2 and 'The checkpoint fits: channels=48' in error
  assert (
      main(
          [
              'predict',
              '--model',
              exported,
              '--fasta',
              genome,
              '--region',
              'chrX:1-10',
              '--out',
              str(tmp_path / 'o'),
          ]
      )
      == 2
  )
  assert "'chrX' is not in" in capsys.readouterr().err
  assert (
      main(
          [
              'predict',
              '--model',
              exported,
              '--fasta',
              genome,
              '--region',
              'chr1:1-10',
              '--tracks',
              'CAGE',
              '--out',
              str(tmp_path / 'o'),
          ]
      )
      == 2
  )
  assert '--targets' in capsys.readouterr().err


@pytest.mark.slow
def test_export_cli_round_trip(exported, model):
  predictor = load_model(exported)
  assert (predictor.sequence_length, predictor.model_sequence_length) == (HUB_LENGTH, MODEL_LENGTH)
  assert predictor.output_length == 32 and predictor.heads == {'human': 5313}
