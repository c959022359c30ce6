"""Attribution: gradient × input, ISM, pooling, enhancer links, plots and `enformer attribute`.

Unit tests use a micro Enformer (`enformer.testing.MICRO`) with calibrated batch-norm statistics
(one training-mode pass) and
random weights; `test_attribution_learning.py` checks attributions of a trained model.
"""

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from enformer import Enformer
from enformer.inference import fast
from enformer import interpret as attribution
from enformer.sequence import one_hot_encode
from enformer.plots import attribution as attribution_plots
from enformer.testing import MICRO
from conftest import SMALL_REFERENCE_CONFIG, model_arg_flags

LENGTH = 2048
NUM_BINS = LENGTH // 128
NUM_TRACKS = 3
CONFIG = dict(MICRO, heads={'human': NUM_TRACKS})


def _random_one_hot(rng: np.random.Generator, *shape: int) -> np.ndarray:
  return np.eye(4, dtype=np.float32)[rng.integers(0, 4, shape)]


@pytest.fixture(scope='module')
def model() -> Enformer:
  """Micro model, batch-norm moving averages set by one training-mode pass (no NaN/overflow)."""
  tf.random.set_seed(1)
  model = Enformer(**CONFIG)
  model(_random_one_hot(np.random.default_rng(1), 4, LENGTH), is_training=True)
  return model


@pytest.fixture(scope='module')
def sequences() -> np.ndarray:
  return _random_one_hot(np.random.default_rng(2), 2, LENGTH)


@pytest.fixture(scope='module')
def mask() -> np.ndarray:
  return attribution.target_mask(NUM_BINS, NUM_TRACKS, '7-8', [0, 2])


def _target(model, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Reference target (mean of the masked predictions), computed directly."""
  predictions = model(x, is_training=False)['human'].numpy()
  return (predictions * mask).sum(axis=(1, 2)) / mask.sum()


@pytest.mark.slow
def test_gradient_times_input_matches_tape(model, sequences, mask):
  x = tf.constant(sequences)
  with tf.GradientTape() as tape:
    tape.watch(x)
    target = tf.reduce_sum(model(x, is_training=False)['human'] * mask) / mask.sum()
  expected = (tape.gradient(target, x) * x).numpy().sum(-1)  # Batch sum: each row its own.
  batched = attribution.contribution_input_grad(model, sequences, mask)
  single = attribution.contribution_input_grad(model, sequences[1], mask, head='human')
  assert batched.shape == (2, LENGTH) and single.shape == (LENGTH,)
  # Attribution differentiates the fused forward of enformer.inference.fast: other float32 rounding.
  tolerance = 1e-4 * np.abs(expected).max()
  np.testing.assert_allclose(batched, expected, rtol=0, atol=tolerance)
  np.testing.assert_allclose(single, expected[1], rtol=0, atol=tolerance)
  assert np.abs(batched).max() > 0
  summed = attribution.contribution_input_grad(model, sequences, mask, reduction='sum')
  np.testing.assert_allclose(summed, batched * mask.sum(), rtol=1e-4, atol=1e-6)


def test_gradient_times_input_is_first_order_ism(model, sequences, mask):
  """Gradient × input predicts the effect of deleting a base (setting its row to 0) to first
  order: summed over a sequence it tracks target(x) − target(0 · x) only loosely, so compare
  per-base signs on the strongest bases against explicit deletions."""
  scores = attribution.contribution_input_grad(model, sequences[0], mask)
  strongest = np.argsort(-np.abs(scores))[:5]
  deleted = np.repeat(sequences[:1], len(strongest), axis=0)
  deleted[np.arange(len(strongest)), strongest] = 0
  delta = _target(model, sequences[:1], mask)[0] - _target(model, deleted, mask)
  assert np.mean(np.sign(delta) == np.sign(scores[strongest])) >= 0.8


def test_ism_matches_direct_forward_differences(model, sequences, mask):
  x = sequences[0]
  window = (900, 912)
  ism = attribution.in_silico_mutagenesis(
      model, x, mask, window=window, batch_size=5, progress=False
  )
  assert ism.shape == (12, 4)
  reference = x[window[0] : window[1]]
  np.testing.assert_array_equal(ism[reference == 1], 0)  # 0 at the reference base.
  # Every substitution, computed one forward pass at a time.
  mutants = []
  for i in range(12):
    for base in range(4):
      mutant = x.copy()
      mutant[window[0] + i] = np.eye(4)[base]
      mutants.append(mutant)
  reference_target = _target(model, x[np.newaxis], mask)[0]
  direct = (_target(model, np.stack(mutants), mask) - reference_target).reshape(12, 4)
  np.testing.assert_allclose(ism, direct, rtol=1e-3, atol=1e-5)
  assert np.abs(ism).max() > 1e-4
  np.testing.assert_allclose(
      attribution.target_prediction(model, x, mask), reference_target, rtol=1e-5
  )


def test_ism_at_n_substitutes_all_bases(model, sequences, mask):
  x = sequences[0].copy()
  x[1000] = 0  # N
  ism = attribution.in_silico_mutagenesis(model, x, mask, window=(1000, 1001), progress=False)
  assert np.all(ism != 0)


def test_ism_of_a_bfloat16_predictor_runs_in_bfloat16(model, sequences, mask):
  """A Predictor's precision reaches ISM, on the incremental and on the full path."""
  from enformer.inference import Predictor
  from enformer.interpret import ism as ism_lib

  x, window = sequences[1], (1000, 1006)
  bf16 = Predictor.from_module(model, LENGTH, precision='bfloat16')
  forward = ism_lib.incremental_forward(model, LENGTH, 'human', 'bfloat16')
  before = forward.incremental_passes
  incremental = attribution.in_silico_mutagenesis(bf16, x, mask, window=window, progress=False)
  assert forward.incremental_passes - before == 18  # 6 positions x 3 substitutions.
  assert forward.forward.precision == 'bfloat16'
  full = attribution.in_silico_mutagenesis(
      bf16, x, mask, window=window, progress=False, incremental=False
  )
  float32 = attribution.in_silico_mutagenesis(model, x, mask, window=window, progress=False)
  # Both bfloat16 paths agree; they differ from float32 by bfloat16 rounding (ISM deltas are small
  # differences of large targets, where rounding weighs most): measured r 0.985 with AVX-512 BF16,
  # 0.939 where TensorFlow emulates bfloat16 (AVX2 only).
  assert np.abs(incremental - full).max() <= 1e-3 * np.abs(full).max()
  changed = float32 != 0
  r = np.corrcoef(incremental[changed], float32[changed])[0, 1]
  assert r > (0.8 if fast.bfloat16_is_emulated() else 0.9), r
  assert not np.array_equal(incremental, float32)


def test_predictor_crops_like_predict_on_batch(model, sequences, mask):
  from enformer.inference import Predictor

  predictor = Predictor.from_module(
      model, sequence_length=LENGTH + 512, model_sequence_length=LENGTH
  )
  padded = np.pad(sequences[0], ((256, 256), (0, 0)))
  padded[:256, 0] = 1
  padded[-256:, 3] = 1
  scores = attribution.contribution_input_grad(predictor, padded, mask)
  assert scores.shape == (LENGTH + 512,)
  np.testing.assert_array_equal(scores[:256], 0)
  np.testing.assert_array_equal(scores[-256:], 0)
  np.testing.assert_allclose(
      scores[256:-256],
      attribution.contribution_input_grad(model, sequences[0], mask),
      rtol=1e-5,
      atol=1e-7,
  )
  np.testing.assert_allclose(
      predictor.contribution_input_grad(padded, mask), scores, rtol=1e-5, atol=1e-7
  )
  assert attribution.output_shape(predictor, LENGTH + 512) == (NUM_BINS, NUM_TRACKS)


def test_pool_contributions_aligns_with_output_bins():
  scores = np.zeros(8 * 128, np.float32)
  scores[3 * 128 + 5] = -6.4  # Bin 3 of 8; bin 1 of the central 4 (bins 2..5).
  pooled = attribution.pool_contributions(scores, num_bins=4)
  np.testing.assert_allclose(pooled, [0, 0.05, 0, 0], rtol=1e-6)
  np.testing.assert_allclose(
      attribution.pool_contributions(scores, statistic='sum')[3], 6.4, rtol=1e-6
  )
  assert attribution.pool_contributions(np.stack([scores, scores])).shape == (2, 8)
  with pytest.raises(ValueError, match='even difference'):
    attribution.pool_contributions(scores, num_bins=3)
  with pytest.raises(ValueError, match='divisible by bin_size'):
    attribution.pool_contributions(scores[:-1])


def test_target_mask_and_errors(model, sequences):
  mask = attribution.target_mask(16, 5, '3-5', '1,4')
  assert mask.sum() == 6 and mask[3:6][:, [1, 4]].all()
  assert attribution.parse_index_list('1, 5-7,2') == [1, 2, 5, 6, 7]
  with pytest.raises(ValueError, match='out of range'):
    attribution.target_mask(16, 5, [16], [0])
  with pytest.raises(ValueError, match='Cannot read index'):
    attribution.parse_index_list('4-x')
  # Tracks are read by the one track-selector parser (names need a targets table).
  table = pd.DataFrame(
      {
          'identifier': [f'T{i}' for i in range(5)],
          'description': ['CAGE:a', 'DNASE:b', 'CAGE:c', 'ATAC:d', 'CHIP:e'],
      }
  )
  np.testing.assert_array_equal(
      attribution.target_mask(16, 5, [3], 'CAGE', targets=table),
      attribution.target_mask(16, 5, [3], '0,2'),
  )
  with pytest.raises(ValueError, match='not an index'):
    attribution.target_mask(16, 5, [3], 'CAGE')
  with pytest.raises(ValueError, match='out of range'):
    attribution.target_mask(16, 5, [3], [5])
  with pytest.raises(ValueError, match='selects nothing'):
    attribution.contribution_input_grad(model, sequences, np.zeros((NUM_BINS, NUM_TRACKS)))
  with pytest.raises(ValueError, match='target_mask has shape'):
    attribution.contribution_input_grad(model, sequences, np.ones((NUM_BINS, 7)))
  with pytest.raises(ValueError, match='Unknown head'):
    attribution.contribution_input_grad(model, sequences, np.ones((NUM_BINS, 3)), head='mouse')
  with pytest.raises(ValueError, match='window'):
    attribution.in_silico_mutagenesis(
        model, sequences[0], np.ones((NUM_BINS, 3)), window=(2000, 3000)
    )


def test_enhancer_link_scores():
  contributions = np.zeros(10_000, np.float32)
  contributions[2_000:2_010] = -1.0  # Enhancer A (centre 2,005 → genomic 102,005).
  contributions[7_000] = 3.0  # Enhancer B.
  enhancers = [
      ('chr2', 101_990, 102_020, 'A'),
      ('chr2', 106_900, 107_100, 'B'),
      ('chr2', 104_000, 104_100, 'C'),
      ('chr3', 102_000, 102_010, 'other'),
      ('chr2', 500_000, 500_100, 'outside'),
  ]
  links = attribution.enhancer_link_scores(
      contributions, 'chr2', 100_000, enhancers, window=100, tss=105_000
  )
  scores = {link.name: link.score for link in links}
  assert scores['A'] == pytest.approx(10.0)
  assert scores['B'] == pytest.approx(3.0)
  assert scores['C'] == 0.0
  assert np.isnan(scores['other']) and np.isnan(scores['outside'])
  assert links[0].distance_to_tss == 102_005 - 105_000
  assert attribution.tss_window_bins(16, 100_000, 2048, 100_000 + 1030) == [7, 8, 9]
  with pytest.raises(ValueError, match='outside the output bins'):
    attribution.tss_window_bins(8, 100_000, 2048, 100_000 + 100)


def test_enhancer_gene_link_scores_uses_tss_window_bins(model, sequences):
  contributions, links = attribution.enhancer_gene_link_scores(
      model,
      sequences[0],
      'chr1',
      50_000,
      tss=50_000 + 1024,
      enhancers=[('chr1', 50_900, 51_100, 'near'), ('chr1', 40_000, 40_100, 'outside')],
      tracks=[1],
      window=200,
  )
  mask = attribution.target_mask(NUM_BINS, NUM_TRACKS, [7, 8, 9], [1])
  np.testing.assert_allclose(
      contributions,
      attribution.contribution_input_grad(model, sequences[0], mask),
      rtol=1e-5,
      atol=1e-7,
  )
  assert links[0].score == pytest.approx(float(np.abs(contributions[900:1100]).sum()), rel=1e-5)
  assert links[0].score > 0 and np.isnan(links[1].score)


def _assert_png(path) -> None:
  image = matplotlib.image.imread(str(path))
  assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 200
  assert image[..., :3].std() > 0.01  # Not a blank canvas.


def test_plots(tmp_path, model, sequences, mask):
  scores = attribution.contribution_input_grad(model, sequences[0], mask)
  predictions = model(sequences[:1], is_training=False)['human'].numpy()[0]
  attribution_plots.plot_tracks_with_contributions(
      {'track 0': predictions[:, 0], 'track 2': predictions[:, 2]},
      attribution.pool_contributions(scores, NUM_BINS),
      ('chr1', 10_000, 10_000 + LENGTH),
      highlight_bins=[7, 8],
      path=tmp_path / 'tracks.png',
  )
  attribution_plots.plot_contribution_logo(
      sequences[0][950:1010], scores[950:1010], start=951, path=tmp_path / 'logo.png'
  )
  rng = np.random.default_rng(0)
  attribution_plots.plot_ism(
      sequences[0][:30],
      rng.normal(size=(30, 4)) * (1 - sequences[0][:30]),
      path=tmp_path / 'ism.png',
  )
  for name in ('tracks.png', 'logo.png', 'ism.png'):
    _assert_png(tmp_path / name)
  with pytest.raises(ValueError, match='same number of bins'):
    attribution_plots.plot_tracks_with_contributions(
        {'a': np.ones(3)}, np.ones(4), ('chr1', 0, 512)
    )


@pytest.mark.slow
def test_cli_attribute(tmp_path, model):
  """`enformer attribute` on a FASTA and checkpoint written here: npz, bigWig and PNGs."""
  import pyBigWig
  from enformer.cli import main

  rng = np.random.default_rng(5)
  genome = ''.join(rng.choice(list('ACGT'), 6_000))
  fasta = tmp_path / 'genome.fa'
  fasta.write_text('>chr7\n' + '\n'.join(genome[i : i + 60] for i in range(0, 6_000, 60)) + '\n')
  prefix = tf.train.Checkpoint(module=model).write(str(tmp_path / 'ckpt' / 'model'))
  config = model_arg_flags(CONFIG)
  common = [
      'attribute',
      '--model',
      prefix,
      *config,
      '--sequence-length',
      str(LENGTH),
      '--fasta',
      str(fasta),
      '--region',
      'chr7:2001-3000',
      '--tracks',
      '0,2',
      '--bins',
      '7-8',
      '--quiet',
  ]
  assert main(common + ['--method', 'grad', '--out', str(tmp_path / 'grad')]) == 0
  result = np.load(tmp_path / 'grad' / 'attribution.npz')
  start = int(result['start'])
  assert start == 2500 - LENGTH // 2 and int(result['end']) == start + LENGTH  # Centred.
  one_hot = one_hot_encode(genome[start : start + LENGTH])
  mask = attribution.target_mask(NUM_BINS, NUM_TRACKS, [7, 8], [0, 2])
  np.testing.assert_allclose(
      result['scores'],
      attribution.contribution_input_grad(model, one_hot, mask),
      rtol=1e-4,
      atol=1e-6,
  )
  assert result['pooled'].shape == (NUM_BINS,) and result['predictions'].shape == (NUM_BINS, 2)
  bigwig = pyBigWig.open(str(tmp_path / 'grad' / 'grad_scores.bw'))
  np.testing.assert_allclose(
      bigwig.values('chr7', start, start + LENGTH), result['scores'], rtol=1e-5, atol=1e-6
  )
  bigwig.close()
  for name in ('tracks.png', 'logo.png'):
    _assert_png(tmp_path / 'grad' / name)

  # Bases 2,500..2,505 lie in the target bins 7-8 (input positions 1,024..1,029).
  assert (
      main(
          common
          + [
              '--method',
              'ism',
              '--window',
              'chr7:2501-2505',
              '--batch-size',
              '4',
              '--out',
              str(tmp_path / 'ism'),
          ]
      )
      == 0
  )
  result = np.load(tmp_path / 'ism' / 'attribution.npz')
  assert result['ism'].shape == (5, 4) and np.abs(result['ism']).max() > 0
  np.testing.assert_array_equal(result['window'], [2500 - start, 2505 - start])
  _assert_png(tmp_path / 'ism' / 'logo.png')

  # --precision bfloat16 reaches ISM; gradients are float32 only, which is said, not ignored.
  assert (
      main(
          common
          + [
              '--method',
              'ism',
              '--window',
              'chr7:2501-2505',
              '--precision',
              'bfloat16',
              '--out',
              str(tmp_path / 'ism_bf16'),
          ]
      )
      == 0
  )
  bf16 = np.load(tmp_path / 'ism_bf16' / 'attribution.npz')['ism']
  # The same numbers as the library's ISM with a bfloat16 Predictor (how close bfloat16 is to
  # float32 depends on the CPU: emulated bfloat16 rounds more than AVX-512 BF16 hardware).
  from enformer.inference import Predictor

  expected = attribution.in_silico_mutagenesis(
      Predictor.from_module(model, LENGTH, precision='bfloat16'),
      one_hot,
      mask,
      window=(2500 - start, 2505 - start),
      progress=False,
  )
  np.testing.assert_allclose(bf16, expected, rtol=0, atol=1e-3 * np.abs(expected).max())
  assert not np.array_equal(bf16, result['ism'])
  assert (
      main(
          common
          + ['--method', 'grad', '--precision', 'bfloat16', '--out', str(tmp_path / 'grad_bf16')]
      )
      == 2
  )
  assert not (tmp_path / 'grad_bf16').exists()

  # A window outside the input is a clear error (exit 2), not a traceback.
  assert (
      main(
          common + ['--method', 'ism', '--window', 'chr7:5001-5010', '--out', str(tmp_path / 'bad')]
      )
      == 2
  )

  # --n-value 0.25 (the usage notebook's N): the padding before the chromosome start.
  near_start = [a if a != 'chr7:2001-3000' else 'chr7:1-1000' for a in common]
  assert main(near_start + ['--n-value', '0.25', '--out', str(tmp_path / 'n')]) == 0
  result = np.load(tmp_path / 'n' / 'attribution.npz')
  padding = -int(result['start'])  # Input positions before the chromosome start.
  assert padding > 0 and float(result['n_value']) == 0.25
  assert (result['sequence_index'][:padding] == 4).all()  # N, not A.
  one_hot = one_hot_encode('N' * padding + genome[: LENGTH - padding], neutral_value=0.25)
  np.testing.assert_allclose(
      result['scores'],
      attribution.contribution_input_grad(model, one_hot, mask),
      rtol=1e-4,
      atol=1e-6,
  )


@pytest.mark.slow
def test_gradient_of_deepmind_reference_weights_equals_the_reference_op_sequence(
    reference_small_dir, reference_small_io
):
  """With DeepMind's small reference weights on the central 32,768 bp of its input (all 256 bins
  kept; the high-resolution stages run in two chunks of 16,384 bp), the fused forward's
  gradient × input equals the tape through model(x, is_training=False)."""
  length = 32_768
  assert fast.chunk_length_for(length) < length  # Chunked, as at full length.
  model = Enformer(**SMALL_REFERENCE_CONFIG, target_length=None)
  model.build_variables()
  tf.train.Checkpoint(module=model).read(
      str(reference_small_dir / 'checkpoint' / 'enformer')
  ).assert_existing_objects_matched()
  start = (reference_small_io['one_hot'].shape[1] - length) // 2
  x = reference_small_io['one_hot'][:1, start : start + length]
  mask = attribution.target_mask(length // 128, 5313, range(120, 136), [10, 4828])

  # Graph mode: eager gradients of the pooling would allocate [L/2, C, C].
  @tf.function(autograph=False)
  def reference_gradient_times_input(xt):
    with tf.GradientTape() as tape:
      tape.watch(xt)
      target = tf.reduce_sum(model(xt, is_training=False)['human'] * mask)
    return tape.gradient(target, xt) * xt

  expected = reference_gradient_times_input(tf.constant(x)).numpy().sum(-1)[0] / mask.sum()
  scores = attribution.contribution_input_grad(model, x[0], mask)
  assert np.abs(scores - expected).max() <= 2e-5 * np.abs(expected).max()
