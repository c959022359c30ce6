"""DeepMind's code and notebooks on this package: its module names at the top level, its
`Sequential` keyword arguments, every positional basis of its attention module, and gradients
through an exported SavedModel as exact and as lean as the library's attribution."""

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

import enformer
from enformer import attention_module, interpret, testing
from enformer import enformer as enformer_module

# Every public name of DeepMind's enformer.py and attention_module.py.
DEEPMIND_ENFORMER_NAMES = (
    'SEQUENCE_LENGTH',
    'BIN_SIZE',
    'TARGET_LENGTH',
    'Enformer',
    'TargetLengthCrop1D',
    'Sequential',
    'pooling_module',
    'SoftmaxPooling1D',
    'Residual',
    'gelu',
    'one_hot_encode',
    'exponential_linspace_int',
    'accepts_is_training',
)
DEEPMIND_ATTENTION_NAMES = (
    'TransformerBlock',
    'MultiheadAttention',
    'relative_shift',
    'get_positional_feature_function',
    'positional_features_all',
    'positional_features_exponential',
    'positional_features_central_mask',
    'gamma_pdf',
    'positional_features_gamma',
    'positional_features_cosine',
    'positional_features_linear_masks',
    'positional_features_sin_cos',
)


# --------------------------------------------------------------------------- names


def test_import_enformer_stays_lazy():
  """`import enformer` loads no TensorFlow; the DeepMind names are listed without loading it."""
  code = (
      'import sys, enformer\n'
      f'assert set({DEEPMIND_ENFORMER_NAMES!r}) <= set(enformer.__all__)\n'
      f'assert set({DEEPMIND_ENFORMER_NAMES!r}) <= set(dir(enformer))\n'
      "assert 'tensorflow' not in sys.modules, 'import enformer loaded TensorFlow'\n"
  )
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run(
      [sys.executable, '-c', code], capture_output=True, text=True, env=env, check=False
  )
  assert result.returncode == 0, result.stderr


def test_deepmind_enformer_names_at_the_top_level():
  """The training notebook's `import enformer; enformer.TargetLengthCrop1D(...)` and the rest."""
  for name in DEEPMIND_ENFORMER_NAMES:
    assert getattr(enformer, name) is getattr(enformer_module, name), name
  # The notebook crops a numpy batch of 393,216 bp to 196,608 bp (here 4,096 → 2,048).
  inputs = np.random.default_rng(0).random((1, 4096, 4)).astype(np.float32)
  cropped = enformer.TargetLengthCrop1D(2048)(inputs)
  np.testing.assert_array_equal(np.asarray(cropped), inputs[:, 1024:3072])
  assert enformer.exponential_linspace_int(768, 1536, 6, divisible_by=128) == [
      768,
      896,
      1024,
      1152,
      1280,
      1536,
  ]
  assert isinstance(enformer.pooling_module('attention', 2), enformer.SoftmaxPooling1D)
  x = tf.constant([-1.0, 0.0, 2.0])
  np.testing.assert_allclose(enformer.gelu(x).numpy(), tf.nn.sigmoid(1.702 * x).numpy() * x)
  assert enformer.accepts_is_training(enformer.Residual(enformer.Sequential([])))
  assert not enformer.accepts_is_training(tf.nn.relu)


def test_deepmind_attention_module_names():
  for name in DEEPMIND_ATTENTION_NAMES:
    assert callable(getattr(enformer.attention_module, name)), name
    if name.startswith('positional_features_') and name != 'positional_features_all':
      assert attention_module.get_positional_feature_function(name) is getattr(
          attention_module, name
      )


def _deepmind_one_hot(
    sequence, alphabet='ACGT', neutral_alphabet='N', neutral_value=0, dtype=np.float32
):
  """DeepMind's encoding: a table indexed by ASCII code, rows of the identity for the alphabet
  and `neutral_value` for the neutral letters."""
  table = np.zeros((255, len(alphabet)), dtype=dtype)
  table[np.frombuffer(alphabet.encode(), np.uint8)] = np.eye(len(alphabet), dtype=dtype)
  table[np.frombuffer(neutral_alphabet.encode(), np.uint8)] = neutral_value
  return table.astype(dtype)[np.frombuffer(sequence.encode(), np.uint8)]


@pytest.mark.parametrize(
    'kwargs',
    [
        {},
        dict(neutral_value=0.25),
        dict(dtype=np.uint8),
        dict(dtype=np.float16, neutral_value=1),
        dict(alphabet='TGCA'),
        dict(neutral_alphabet='NX'),
    ],
)
def test_one_hot_encode_equals_deepmind(kwargs):
  rng = np.random.default_rng(1)
  letters = 'ACGTN' + ('X' if 'X' in kwargs.get('neutral_alphabet', '') else '')
  sequence = ''.join(rng.choice(list(letters), 500)) + letters
  ours = enformer.one_hot_encode(sequence, **kwargs)
  theirs = _deepmind_one_hot(sequence, **kwargs)
  assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == (len(sequence), 4)
  np.testing.assert_array_equal(ours, theirs)


# --------------------------------------------------------------------------- Sequential


class _Scaled(snt.Module):
  """Records what it was called with: x · scale (+ 1 when training)."""

  def __init__(self):
    super().__init__()
    self.calls = []

  def __call__(self, x, is_training, scale=1.0):
    self.calls.append((is_training, scale))
    return x * scale + (1.0 if is_training else 0.0)


def test_accepts_is_training_reads_the_signature_as_written():
  """Through Sonnet's name-scope wrapper of `__call__`, whose own signature is (*args, **kwargs)."""

  def function(x, is_training):
    return x

  class Plain(snt.Module):

    def __call__(self, x):
      return x

  class CallableObject:

    def __call__(self, x, is_training=False):
      return x

  for layer in (
      _Scaled(),
      function,
      functools.partial(function),
      CallableObject(),
      snt.BatchNorm(True, True),
      enformer.Sequential([]),
  ):
    assert enformer.accepts_is_training(layer), layer
  for layer in (Plain(), snt.Linear(2), tf.nn.relu, lambda x: x):
    assert not enformer.accepts_is_training(layer), layer


def test_sequential_passes_keyword_arguments_to_every_layer():
  """As DeepMind's: `is_training` to the layers that take it, **kwargs to every layer."""
  module = _Scaled()
  plain = lambda x, scale=1.0: x * scale  # pylint: disable=unnecessary-lambda-assignment
  model = enformer.Sequential([module, plain, enformer.Residual(enformer.Sequential([plain]))])
  output = model(tf.constant(1.0), is_training=True, scale=3.0)
  # ((1 · 3 + 1) · 3) → residual: 12 + 12 · 3 = 48.
  assert float(output) == 48.0
  assert module.calls == [(True, 3.0)]
  assert float(model(tf.constant(1.0), is_training=False)) == 2.0  # No kwargs: scale 1.
  with pytest.raises(TypeError):  # A layer that takes no such argument fails, as DeepMind's.
    enformer.Sequential([tf.nn.relu])(tf.constant(1.0), is_training=False, scale=2.0)


# --------------------------------------------------------------------------- positional bases


def test_cosine_linear_mask_and_sin_cos_features():
  """DeepMind's formulas, at signed distances -6..6 in a batch of 2."""
  positions = tf.constant(np.arange(-6, 7, dtype=np.float32)[np.newaxis].repeat(2, 0))  # [2, 13]
  p = positions.numpy()[..., np.newaxis]
  cosine = attention_module.positional_features_cosine(positions, 5)
  np.testing.assert_allclose(
      cosine.numpy(), np.cos(2 * np.pi * p / (1.25 * 2.0 ** np.arange(5))), atol=1e-5
  )
  masks = attention_module.positional_features_linear_masks(positions, 4)
  np.testing.assert_array_equal(masks.numpy(), (np.abs(p) == np.arange(4)).astype(np.float32))
  sin_cos = attention_module.positional_features_sin_cos(positions, 6, max_time=100.0)
  timescales = 100.0 ** (np.arange(0, 6, 2) / 6)
  np.testing.assert_allclose(
      sin_cos.numpy(),
      np.concatenate([np.sin(p / timescales), np.cos(p / timescales)], -1),
      rtol=1e-5,
      atol=1e-6,
  )
  for features, size in ((cosine, 5), (masks, 4), (sin_cos, 6)):
    assert features.shape == (2, 13, size) and features.dtype == tf.float32
  with pytest.raises(ValueError, match='even feature_size'):
    attention_module.positional_features_sin_cos(positions, 5)
  # Through positional_features_all (each basis sees |position|, then a sign-multiplied copy).
  both = attention_module.positional_features_all(
      positions,
      16,
      seq_length=13,
      feature_functions=['positional_features_linear_masks', 'positional_features_cosine'],
  )
  np.testing.assert_array_equal(both.numpy()[..., :4], masks.numpy())
  np.testing.assert_array_equal(both.numpy()[..., 8:12], np.sign(p) * masks.numpy())


@pytest.mark.parametrize(
    'functions',
    [
        ['positional_features_sin_cos'],
        ['positional_features_cosine', 'positional_features_linear_masks'],
    ],
)
def test_attention_with_the_other_bases(functions):
  """DeepMind's docstring example (smaller): attention with sin/cos features; the fused
  inference path equals the reference call; DeepMind's stand-alone TransformerBlock runs it."""
  tf.random.set_seed(0)
  kwargs = dict(
      value_size=12,
      key_size=8,
      num_heads=2,
      relative_positions=True,
      relative_position_functions=functions,
      zero_initialize=False,
  )
  attention = attention_module.MultiheadAttention(**kwargs)
  x = tf.random.normal([2, 16, 24])
  reference = attention(x, is_training=False)
  fused = attention.fused(x, attention.positional_basis(16))
  np.testing.assert_allclose(fused.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)
  block = attention_module.TransformerBlock(channels=24, dropout_rate=0.4, attention_kwargs=kwargs)
  assert block(x, is_training=True).shape == (2, 16, 24)
  for name in (
      'mha_ln',
      'mha',
      'mha_dropout',
      'mlp_ln',
      'mlp_linear1',
      'mlp_dropout1',
      'mlp_linear2',
      'mlp_dropout2',
  ):  # DeepMind's attribute names.
    assert isinstance(getattr(block, name), snt.Module), name
  assert len(block.trainable_variables) == 2 + 8 + 2 + 4  # Norms, attention, norm, linears.


# --------------------------------------------------------------------------- gradients via export

EXPORT_LENGTH = 4352  # 4,096 bp seen by the network + 128 bp of context each side.
MODEL_LENGTH = 4096
EXPORT_HEADS = {'human': 4, 'mouse': 2}


@pytest.fixture(scope='module')
def micro_export(tmp_path_factory):
  """(model, loaded export, path) of a micro model."""
  model = testing.random_model(seed=3, **dict(testing.MICRO, heads=EXPORT_HEADS))
  path = str(tmp_path_factory.mktemp('export') / 'hub')
  enformer.export_hub_module(
      model, path, sequence_length=EXPORT_LENGTH, model_sequence_length=MODEL_LENGTH
  )
  return model, tf.saved_model.load(path), path


@pytest.mark.slow
def test_gradient_through_export_is_the_library_gradient(micro_export):
  """An eager tape through the SavedModel, and the library differentiating the SavedModel, give
  the library's own gradient × input of the Sonnet module (the same single graph: at 131 kb an
  eager tape was 3x further from the exact gradient)."""
  model, loaded, _ = micro_export
  x = testing.random_one_hot(1, MODEL_LENGTH, seed=5)[0]
  bins = MODEL_LENGTH // 128
  mask = interpret.target_mask(bins, 4, range(bins // 2 - 2, bins // 2 + 2), [0, 3])
  library = interpret.contribution_input_grad(model, x, mask)
  pad = (EXPORT_LENGTH - MODEL_LENGTH) // 2
  xt = tf.constant(np.pad(x, [(pad, pad), (0, 0)])[np.newaxis])
  with tf.GradientTape() as tape:  # Eager, watching the variables too (the default).
    tape.watch(xt)
    score = tf.reduce_sum(loaded.model.predict_on_batch(xt)['human'] * mask) / mask.sum()
  eager = (tape.gradient(score, xt) * xt).numpy()[0].sum(-1)
  assert not eager[:pad].any() and not eager[pad + MODEL_LENGTH :].any()
  scale = np.abs(library).max()
  assert np.abs(eager[pad:-pad] - library).max() <= 1e-7 * scale
  through_library = interpret.contribution_input_grad(loaded, xt.numpy()[0], mask)
  assert np.abs(through_library[pad:-pad] - library).max() <= 1e-7 * scale


@pytest.mark.slow
def test_variable_gradients_through_export(micro_export):
  """Fine-tuning through the export: the variables' gradients are those of the module."""
  model, loaded, _ = micro_export
  x = tf.constant(testing.random_one_hot(2, EXPORT_LENGTH, seed=6))
  pad = (EXPORT_LENGTH - MODEL_LENGTH) // 2
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(loaded(x)['human'] ** 2) + tf.reduce_sum(loaded(x)['mouse'])
  through_export = tape.gradient(loss, loaded.trainable_variables)
  with tf.GradientTape() as tape:
    outputs = model(x[:, pad:-pad], is_training=False)
    loss = tf.reduce_sum(outputs['human'] ** 2) + tf.reduce_sum(outputs['mouse'])
  expected = tape.gradient(loss, model.trainable_variables)
  assert len(through_export) == len(expected) == len(model.trainable_variables)
  for variable, got, want in zip(model.trainable_variables, through_export, expected):
    np.testing.assert_allclose(
        got.numpy(),
        want.numpy(),
        rtol=2e-3,
        atol=2e-4 * np.abs(want.numpy()).max() + 1e-12,
        err_msg=variable.name,
    )


_MEMORY_PROBE = """
import json, os, sys
os.environ['TF_CPU_ALLOCATOR_USE_BFC'] = 'true'  # Allocator statistics on the CPU.
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import numpy as np
import tensorflow as tf
from enformer import enformer as enformer_lib
from enformer import testing

def allocated_mb(key):
  return tf.config.experimental.get_memory_info('CPU:0')[key] / 2**20

# Memory an eager tape holds between the forward and the backward pass through the export.
loaded = tf.saved_model.load(sys.argv[1])
x = tf.constant(testing.random_one_hot(1, int(sys.argv[2]), seed=7))
held = []
for _ in range(2):  # The first pass traces the gradient functions.
  before = allocated_mb('current')
  with tf.GradientTape() as tape:
    tape.watch(x)
    score = tf.reduce_sum(loaded.model.predict_on_batch(x)['human'])
  held.append(allocated_mb('current') - before)
  tape.gradient(score, x)

# Peak of the weight gradient of a fused pooling layer (run eagerly, op by op).
pool = enformer_lib.SoftmaxPooling1D(per_channel=True, w_init_scale=2.0)
h = tf.random.normal([1, 4096, 96])
pool(h)
tf.config.experimental.reset_memory_stats('CPU:0')
before = allocated_mb('current')
with tf.GradientTape() as tape:
  y = tf.reduce_sum(pool.fused(h))
tape.gradient(y, pool.trainable_variables)
print(json.dumps(dict(held_mb=held[-1], pool_gradient_mb=allocated_mb('peak') - before)))
"""


@pytest.mark.slow  # A second process (allocator statistics need a fresh TensorFlow).
def test_gradient_through_export_is_lean(micro_export):
  """An eager tape through the export holds no activations (they are recomputed in the backward
  pass, as the library's gradient computes them), and the fused forward's weight gradients
  allocate no per-position outer products (a [C, C] matrix per position)."""
  _, _, path = micro_export
  env = dict(
      os.environ,
      PYTHONPATH=os.pathsep.join(
          [os.path.dirname(os.path.dirname(enformer.__file__)), os.environ.get('PYTHONPATH', '')]
      ),
  )
  result = subprocess.run(
      [sys.executable, '-c', _MEMORY_PROBE, path, str(EXPORT_LENGTH)],
      capture_output=True,
      text=True,
      env=env,
      check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  measured = json.loads(result.stdout.strip().splitlines()[-1])
  # Input 68 kB, outputs < 1 kB; the activations of the forward pass are 13 MB.
  assert measured['held_mb'] < 0.1, measured
  # Input 1.5 MB; outer products would be 2,048 × 96 × 96 × 4 B = 72 MB.
  assert measured['pool_gradient_mb'] < 12, measured
