"""enformer.inference.fast: the fast inference path equals the plain path and DeepMind's reference
outputs."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_REFERENCE_LENGTH
from enformer import attention_module
from enformer.inference import fast
from enformer import presets
from enformer.testing import MICRO, random_model, random_one_hot


def rel_error(ours: np.ndarray, theirs: np.ndarray) -> float:
  return float(np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max())


def small_random_model(pooling_type: str, target_length=None):
  """Micro model with random weights and calibrated BN statistics (the attention output
  projection stays zero-initialised: the model-family test covers a non-zero one)."""
  return random_model(
      seed=3,
      **dict(MICRO, pooling_type=pooling_type, target_length=target_length),
      attention_projection=False,
  )


@pytest.fixture(scope='module')
def reference_fast(reference_small_model):
  return fast.compile_forward(reference_small_model, SMALL_REFERENCE_LENGTH)


@pytest.mark.slow
def test_fast_path_matches_deepmind_reference(
    reference_fast, reference_small_model, reference_small_io
):
  """The compiled conv tower and the compiled rest (the stages `__call__` chains; it is run
  whole in the next test) reproduce DeepMind's trunk and outputs; the conv tower runs once."""
  io = reference_small_io
  tower = reference_fast.tower(io['one_hot'])
  outputs = reference_fast.after_tower(tower)
  assert rel_error(outputs['human'].numpy()[..., ::10], io['human_every10th_track']) <= 1e-5
  assert rel_error(outputs['mouse'].numpy()[..., ::10], io['mouse_every10th_track']) <= 1e-5
  assert rel_error(outputs['human'].numpy().mean(axis=1), io['human_mean_over_bins']) <= 1e-5
  trunk = reference_small_model.trunk.fused_after_tower(tower)
  assert rel_error(trunk, io['trunk']) <= 1e-5


def test_fast_path_accepts_uint8_and_selected_heads(reference_small_model, reference_small_io):
  forward = fast.compile_forward(reference_small_model, SMALL_REFERENCE_LENGTH, heads=['mouse'])
  outputs = forward(reference_small_io['one_hot'][:1].astype(np.uint8))
  assert list(outputs) == ['mouse']
  assert (
      rel_error(
          outputs['mouse'].numpy()[..., ::10], reference_small_io['mouse_every10th_track'][:1]
      )
      <= 1e-5
  )


@pytest.mark.parametrize(
    'pooling_type,target_length,lengths',
    [
        pytest.param('attention', None, [2048, 6144], marks=pytest.mark.slow),
        ('attention', 24, [4096]),
        ('max', None, [2048, 4096]),
    ],
)
def test_fast_equals_plain(pooling_type, target_length, lengths):
  model = small_random_model(pooling_type, target_length)
  plain = fast.plain_forward(model)
  rng = np.random.default_rng(0)
  for i, length in enumerate(lengths):
    x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(2, length))]
    expected = plain(x)
    for mode in fast.MODES if i == 0 else ('graph',):  # XLA compiles are slow: one length.
      outputs = fast.compile_forward(model, length, mode=mode)(x)
      assert sorted(outputs) == sorted(expected)
      for head in outputs:
        assert outputs[head].shape == expected[head].shape
        assert rel_error(outputs[head], expected[head].numpy()) <= 1e-5, (length, head)


@pytest.mark.slow
@pytest.mark.parametrize('pooling_type', ['attention', 'max'])
def test_chunked_high_resolution_stages_equal_the_whole_sequence(pooling_type):
  """Chunks with halo (masked like 'SAME' padding at the sequence ends) give the same numbers,
  including chunks that touch either end and a single-bin chunk length."""
  model = small_random_model(pooling_type)
  plain = fast.plain_forward(model)
  x = np.eye(4, dtype=np.float32)[np.random.default_rng(5).integers(0, 4, size=(2, 6144))]
  expected = plain(x)
  for chunk_length, mode in [(128, 'graph'), (1024, 'xla'), (2048, 'graph')]:
    forward = fast.compile_forward(model, 6144, mode=mode, chunk_length=chunk_length)
    outputs = forward(x)
    for head in expected:
      assert rel_error(outputs[head], expected[head].numpy()) <= 1e-5, (chunk_length, mode)
  whole = fast.compile_forward(model, 6144, chunk_length=None).trunk(x)
  chunked = fast.compile_forward(model, 6144, chunk_length=1024).trunk(x)
  assert rel_error(chunked, whole.numpy()) <= 1e-5


def test_chunk_lengths():
  assert fast.chunk_length_for(196_608) == 16_384
  assert fast.chunk_length_for(131_072) == 16_384
  assert fast.chunk_length_for(6144, 4096) == 3072
  assert fast.chunk_length_for(2048) == 2048  # Short inputs: one chunk, no loop.
  with pytest.raises(ValueError, match='divides the input length'):
    fast.compile_forward(small_random_model('max'), 6144, chunk_length=4096)(
        np.zeros((1, 6144, 4), np.float32)
    )


def test_fast_path_reads_the_model_variables():
  """Weights assigned after compilation (e.g. a restored checkpoint) are used."""
  model = small_random_model('attention')
  forward = fast.compile_forward(model, 2048)
  x = np.eye(4, dtype=np.float32)[np.random.default_rng(1).integers(0, 4, size=(1, 2048))]
  before = forward(x)['human'].numpy()
  for variable in model.heads['human'].trainable_variables:
    variable.assign(variable * 0.5 + 0.1)
  after = forward(x)['human'].numpy()
  assert not np.allclose(before, after)
  assert rel_error(after, model(x, is_training=False)['human'].numpy()) <= 1e-5


def test_positional_features_are_cached_and_equal_to_the_module():
  model = small_random_model('attention')
  mha = model.trunk.transformer.blocks[0].attention_block.attention
  args = (
      32,
      MICRO['channels'] // MICRO['num_heads'],
      tuple(mha.relative_position_functions),
      False,
  )
  features = attention_module.positional_features_cached(*args)
  assert features is attention_module.positional_features_cached(*args)
  np.testing.assert_array_equal(features, mha.relative_position_encodings(32).numpy()[0])
  assert not features.flags.writeable


def test_errors_name_the_fix(reference_fast):
  with pytest.raises(ValueError, match='compile_forward'):
    reference_fast(np.zeros((1, 196_608, 4), np.float32))
  with pytest.raises(ValueError, match='divisible by 128'):
    fast.compile_forward(small_random_model('max'), 1000)
  with pytest.raises(ValueError, match='last input dimension'):
    reference_fast(np.zeros((1, SMALL_REFERENCE_LENGTH, 5), np.float32))


def test_compiled_function_runs_inside_a_cropping_tf_function():
  """How a predictor adopts the fast path: crop inside its own tf.function, then call it."""
  model = small_random_model('attention')
  forward = fast.compile_forward(model, 2048)

  @tf.function(input_signature=[tf.TensorSpec([None, 2048 + 256, 4], tf.float32)])
  def predict(x):
    return forward.function(x[:, 128 : 128 + 2048])

  x = np.eye(4, dtype=np.float32)[np.random.default_rng(2).integers(0, 4, size=(3, 2048 + 256))]
  expected = model(x[:, 128 : 128 + 2048], is_training=False)
  outputs = predict(x)
  for head in expected:
    assert rel_error(outputs[head], expected[head].numpy()) <= 1e-5


def test_predictor_from_module_fast_equals_plain():
  from enformer.inference import Predictor

  model = small_random_model('attention')
  x = np.eye(4, dtype=np.float32)[np.random.default_rng(4).integers(0, 4, size=(2, 2048 + 256))]
  plain = Predictor.from_module(model, sequence_length=2048 + 256, model_sequence_length=2048)
  quick = Predictor.from_module(
      model, sequence_length=2048 + 256, model_sequence_length=2048, fast=True
  )
  expected, outputs = plain.predict_on_batch(x), quick.predict_on_batch(x)
  for head in expected:
    assert rel_error(outputs[head], expected[head]) <= 1e-5


# Every configuration of the model family at the micro width (48 channels, conv tower in
# multiples of 16): (preset, overrides).
NARROW = dict(channels=48, conv_tower_divisible_by=16)
FAMILY = [
    ('paper', dict(NARROW, target_length=8)),  # 11 layers, 8 heads, attention pooling.
    ('notebook', dict(NARROW, target_length=None)),  # Max pooling, 11 layers.
    ('small', dict(NARROW, target_length=None)),  # 5 layers, no final pointwise block.
    ('small-no-mlp', dict(NARROW, target_length=None)),  # Also no transformer MLPs.
    ('tiny', dict(NARROW)),
    ('tiny', dict(NARROW, num_transformer_layers=0)),
    ('tiny', dict(NARROW, pooling_type='max', input_channels=5, heads={'atac': 3})),
]


@pytest.mark.parametrize(
    'preset,overrides',
    [pytest.param(p, o, marks=pytest.mark.slow) if p != 'tiny' else (p, o) for p, o in FAMILY],
    ids=[
        f'{p}-{"-".join(str(v) for k, v in o.items() if k not in NARROW) or "default"}'
        for p, o in FAMILY
    ],
)
def test_fast_equals_reference_across_the_model_family(preset, overrides):
  """Each block's fused inference equals its reference __call__ for every configuration, with
  calibrated batch-norm statistics, chunked and whole-sequence high-resolution stages.

  Deep random models amplify float32 rounding, so the bound is 1e-5 of the largest output or
  twice the reference path's own error against the same math in float64 (the fused methods
  evaluated in float64), whichever is larger; and the fast path must be as close to the float64
  value as the reference path is (within 1.5 times its error: measured up to 1.26 times).
  """
  config = presets.preset_config(preset, **overrides)
  model = random_model(seed=7, **config)
  length = 4096
  x = random_one_hot(2, length, seed=8, channels=config.get('input_channels', 4))
  expected = model(x, is_training=False)
  exact = fast.fast_heads(
      model, fast.fast_trunk(model, tf.constant(x, tf.float64)), model.head_names
  )
  for chunk_length in (1024, None):
    outputs = fast.compile_forward(model, length, chunk_length=chunk_length)(x)
    assert sorted(outputs) == sorted(expected)
    for head in outputs:
      assert outputs[head].shape == expected[head].shape
      reference_error = rel_error(expected[head], exact[head].numpy())
      assert reference_error <= 5e-5, head  # The float64 evaluation is the same function.
      assert rel_error(outputs[head], expected[head].numpy()) <= max(1e-5, 2 * reference_error)
      assert rel_error(outputs[head], exact[head].numpy()) <= max(1e-5, 1.5 * reference_error)


@pytest.mark.slow
def test_bfloat16_inference_is_close_to_float32():
  """precision='bfloat16': float32 outputs close to float32 inference (per-track correlation),
  through Predictor and the incremental path alike."""
  from enformer.inference.incremental import IncrementalForward
  from enformer.inference import Predictor

  model = random_model(seed=21, **MICRO)
  x = random_one_hot(2, 4096, seed=22)
  expected = Predictor.from_module(model, 4096).predict_on_batch(x)['human']
  predictor = Predictor.from_module(model, 4096, precision='bfloat16')
  assert predictor.precision == 'bfloat16'
  outputs = predictor.predict_on_batch(x)['human']
  assert outputs.dtype == np.float32
  assert rel_error(outputs, expected) > 1e-4  # Really bfloat16 (a random model: no tolerance
  correlations = [
      np.corrcoef(outputs[..., t].ravel(), expected[..., t].ravel())[0, 1]
      for t in range(0, 5313, 50)
  ]  # on the error; trained models: performance.md).
  # CPUs without bfloat16 instructions run TensorFlow's emulation, whose batched matmuls (the
  # attention's einsums) accumulate with less precision: median r measured 0.86 on an AVX2-only
  # EPYC (it warns there); on AVX-512 BF16 hardware the median r is above 0.95.
  assert np.median(correlations) > (0.8 if fast.bfloat16_is_emulated() else 0.95), np.median(
      correlations
  )
  forward = fast.compile_forward(model, 4096, precision='bfloat16')
  alt = x[1:].copy()
  alt[0, 2000] = np.roll(alt[0, 2000], 1)
  _, alts = IncrementalForward(forward)(x[1], alt)
  assert rel_error(alts['human'], forward(alt)['human'].numpy()) <= 1e-2
  with pytest.raises(ValueError, match='fast path'):
    Predictor.from_module(model, 4096, fast=False, precision='bfloat16')


def test_bfloat16_warns_on_a_cpu_without_bfloat16_instructions(monkeypatch):
  model = random_model(seed=0, **MICRO)
  monkeypatch.setattr(fast, 'cpu_has_bfloat16', lambda: False)
  with pytest.warns(RuntimeWarning, match='slower than float32'):
    fast.compile_forward(model, 2048, precision='bfloat16')
  monkeypatch.setattr(fast, 'cpu_has_bfloat16', lambda: True)
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    fast.compile_forward(model, 2048, precision='bfloat16')
    monkeypatch.setattr(fast, 'cpu_has_bfloat16', lambda: False)
    fast.compile_forward(model, 2048, precision='float32')
