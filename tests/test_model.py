"""The Enformer module: shapes, DeepMind layout and parity, training mode, gradients, errors."""

import pathlib

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from conftest import SMALL_REFERENCE_CONFIG, shared_path
from enformer import Enformer
from enformer import enformer as enformer_lib
from enformer.testing import (
    MICRO,
    checkpoint_tree,
    random_model,
    random_one_hot,
    read_checkpoint_tree,
)

TINY = {k: v for k, v in MICRO.items() if k not in ('target_length', 'pooling_type')}


@pytest.fixture(scope='module')
def tiny_model() -> Enformer:
  return Enformer(**TINY, target_length=None)


@pytest.mark.parametrize(
    'length,target_length,bins',
    [
        (2048, None, 16),
        (4096, None, 32),
        (4096, 16, 16),
        (8192, 32, 32),
    ],
)
def test_output_shapes(length, target_length, bins):
  model = Enformer(**TINY, target_length=target_length)
  outputs = model(random_one_hot(2, length), is_training=False)
  assert outputs['human'].shape == (2, bins, 5313)
  assert outputs['mouse'].shape == (2, bins, 1643)
  assert model.output_length(length) == bins
  assert all(np.all(o.numpy() >= 0) for o in outputs.values())  # Softplus.


def test_custom_heads_max_pooling_and_options():
  model = Enformer(
      **TINY,
      pooling_type='max',
      target_length=None,
      heads={'atac': 3, 'rna': 2},
      final_pointwise=False,
      transformer_mlp=False,
  )
  outputs = model(random_one_hot(1, 2048), is_training=False)
  assert {k: v.shape for k, v in outputs.items()} == {'atac': (1, 16, 3), 'rna': (1, 16, 2)}
  assert model.trunk(random_one_hot(1, 2048), is_training=False).shape == (1, 16, 48)
  assert model.trunk_channels == 48
  # Max pooling has no variables; no Keras layers are used.
  assert not any('logit_linear' in v.name for v in model.variables)
  only_rna = model(random_one_hot(1, 2048), is_training=False, output_heads=['rna'])
  assert list(only_rna) == ['rna']


def test_extra_input_channels():
  model = Enformer(**TINY, target_length=None, input_channels=5)
  x = np.concatenate([random_one_hot(1, 2048), np.ones((1, 2048, 1), np.float32)], axis=-1)
  assert model(x, is_training=False)['human'].shape == (1, 16, 5313)


def test_small_variable_tree_equals_deepmind():
  expected = read_checkpoint_tree(shared_path('reference', 'small', 'checkpoint_variables.txt'))
  model = Enformer(**SMALL_REFERENCE_CONFIG)
  model.build_variables()
  assert checkpoint_tree(model) == expected


@pytest.mark.slow
def test_full_size_variable_tree_equals_deepmind():
  """Full size built without a 196,608 bp pass (build_variables uses one 128 bp bin)."""
  expected = read_checkpoint_tree(shared_path('reference', 'checkpoint_variables_full.txt'))
  model = Enformer()
  model.build_variables()
  assert checkpoint_tree(model) == expected
  num_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
  assert 245e6 < num_params < 255e6  # ~251 M parameters.


def test_variable_names_equal_deepmind(tmp_path):
  """Each variable's `.name` is the one DeepMind's module gives it (recorded from their code),
  so tools that match variables by name (weight converters) work; checkpoint paths are mapped
  to variables by writing a distinct value into each."""
  recorded = {}
  for line in (
      (pathlib.Path(__file__).parent / 'files' / 'deepmind_variable_names.tsv')
      .read_text()
      .splitlines()
  ):
    if not line.startswith('#'):
      path, name = line.split('\t')
      recorded[path] = name
  model = Enformer(**SMALL_REFERENCE_CONFIG)
  model.build_variables()
  for index, variable in enumerate(model.variables):
    variable.assign(tf.fill(variable.shape, tf.cast(index, variable.dtype)))
  prefix = tf.train.Checkpoint(module=model).write(str(tmp_path / 'ckpt'))
  reader = tf.train.load_checkpoint(prefix)
  names = {}
  for key, _ in tf.train.list_variables(prefix):
    if key.startswith('module/'):
      index = int(np.ravel(reader.get_tensor(key))[0])
      names[key.replace('/.ATTRIBUTES/VARIABLE_VALUE', '')] = model.variables[index].name
  assert len(names) == len(recorded) == len(model.variables)
  assert names == recorded


@pytest.mark.slow
def test_parity_with_deepmind_small_reference(reference_small_model, reference_small_io):
  """Restored DeepMind checkpoint reproduces DeepMind's outputs (is_training=False): its trunk,
  and its heads on that trunk (as `Enformer.__call__` composes them)."""
  model, io = reference_small_model, reference_small_io
  trunk = model.trunk(io['one_hot'], is_training=False)
  outputs = {k: head(trunk, is_training=False).numpy() for k, head in model.heads.items()}
  trunk = trunk.numpy()
  comparisons = {
      'trunk': (trunk, io['trunk']),
      'human_every10th_track': (outputs['human'][..., ::10], io['human_every10th_track']),
      'mouse_every10th_track': (outputs['mouse'][..., ::10], io['mouse_every10th_track']),
      'human_mean_over_bins': (outputs['human'].mean(axis=1), io['human_mean_over_bins']),
      'mouse_mean_over_bins': (outputs['mouse'].mean(axis=1), io['mouse_mean_over_bins']),
  }
  for name, (ours, theirs) in comparisons.items():
    assert ours.shape == theirs.shape, name
    relative_error = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f'{name}: max |Δ| / max |value| = {relative_error:.2e}')
    assert relative_error <= 1e-5, name


def test_restore_consumes_every_variable(reference_small_dir):
  model = Enformer(**SMALL_REFERENCE_CONFIG)
  model.build_variables()
  status = tf.train.Checkpoint(module=model).read(
      str(reference_small_dir / 'checkpoint' / 'enformer')
  )
  status.assert_consumed()  # Raises if any checkpoint value or model variable is left over.
  status.assert_existing_objects_matched()


@pytest.mark.slow
@pytest.mark.parametrize('graph', [False, True], ids=['eager', 'tf.function'])
def test_is_training_reaches_batch_norm_and_dropout(graph):
  """The reference's signature inspection fails on Sonnet 2.0.2; ours passes is_training."""
  model = Enformer(**TINY, target_length=None)
  x = random_one_hot(2, 2048)
  call = tf.function(model.__call__) if graph else model.__call__
  call(x, is_training=False)
  counters = [v for v in model.variables if 'counter' in v.name]
  assert counters and all(int(c.numpy()) == 0 for c in counters)
  call(x, is_training=True)
  assert all(int(c.numpy()) == 1 for c in counters)  # Moving averages updated.
  a, b = call(x, is_training=True)['human'], call(x, is_training=True)['human']
  assert not np.allclose(a, b)  # Dropout active.
  c, d = call(x, is_training=False)['human'], call(x, is_training=False)['human']
  np.testing.assert_array_equal(c, d)  # Deterministic at inference.


def test_frozen_batch_norm_keeps_statistics():
  model = Enformer(**TINY, target_length=None)
  x = random_one_hot(2, 2048)
  model(x, is_training=True)
  model.set_batch_norm_frozen(True)
  before = [v.numpy().copy() for v in model.variables if 'moving' in v.name]
  model(x, is_training=True)
  after = [v.numpy() for v in model.variables if 'moving' in v.name]
  assert all(np.array_equal(p, q) for p, q in zip(before, after))


def test_every_trainable_variable_gets_a_gradient_from_each_head():
  model = Enformer(**TINY, target_length=None, heads={'human': 6, 'mouse': 3})
  x = random_one_hot(2, 2048)
  model(x, is_training=True)  # Create variables.
  rng = np.random.default_rng(1)
  for head, tracks in model.config['heads'].items():
    target = rng.poisson(1.0, size=(2, 16, tracks)).astype(np.float32)
    with tf.GradientTape() as tape:
      prediction = model(x, is_training=True)[head]
      loss = tf.reduce_mean(prediction - target * tf.math.log(prediction))  # Poisson NLL.
    trunk_and_head = model.trunk.trainable_variables + model.heads[head].trainable_variables
    gradients = tape.gradient(loss, trunk_and_head)
    missing = [v.name for v, g in zip(trunk_and_head, gradients) if g is None]
    assert not missing, f'{head}: no gradient for {missing}'
    assert all(np.isfinite(g.numpy()).all() for g in gradients)


@pytest.mark.parametrize(
    'kwargs,message',
    [
        (dict(pooling_type='average'), "Unknown pooling_type 'average'"),
        (dict(channels=385), 'positive even number'),
        (dict(channels=128, conv_tower_divisible_by=128), 'too small'),
        (dict(conv_tower_divisible_by=0), 'must be positive'),
        (dict(channels=384, num_heads=5), 'divisible by num_heads'),
        (dict(channels=512, num_heads=8), 'must be divisible by 6'),
    ],
)
def test_configuration_errors(kwargs, message):
  config = dict(TINY)
  config.update(kwargs)
  with pytest.raises(ValueError, match=message):
    Enformer(**config)


@pytest.mark.parametrize(
    'shape,message',
    [
        ((2048, 4), 'rank 3'),
        ((1, 2048, 5), 'last input dimension must be 4'),
        ((1, 2000, 4), 'not divisible by 128'),
    ],
)
def test_input_errors(tiny_model, shape, message):
  with pytest.raises(ValueError, match=message):
    tiny_model(np.zeros(shape, np.float32), is_training=False)


def test_too_short_for_target_length():
  model = Enformer(**TINY)  # target_length=896 needs ≥ 114,688 bp.
  with pytest.raises(ValueError, match='fewer than target_length=896'):
    model(random_one_hot(1, 4096), is_training=False)


def test_unknown_head(tiny_model):
  with pytest.raises(ValueError, match=r"Unknown head\(s\) \['rat'\]"):
    tiny_model(random_one_hot(1, 2048), is_training=False, output_heads=['rat'])


def test_exponential_linspace_int_matches_published_tower():
  assert enformer_lib.conv_tower_filters(1536) == [768, 896, 1024, 1152, 1280, 1536]
  assert enformer_lib.conv_tower_filters(384) == [256, 256, 256, 256, 384, 384]
  assert enformer_lib.conv_tower_filters(48, divisible_by=16) == [32, 32, 32, 32, 48, 48]


def test_conv_tower_rounding_is_inferred_from_a_checkpoint(tmp_path):
  """A micro model's checkpoint (tower widths in multiples of 16) loads with the configuration
  that fits it; the published rounding (128) is not written into configurations."""
  from enformer.inference import infer_config, load_model

  model = random_model(seed=2, **MICRO, heads={'human': 3})
  assert [
      c.w.shape[-1]
      for c in model.trunk.conv_tower.submodules
      if isinstance(c, snt.Conv1D) and c.w.shape[0] == 5
  ] == [32, 32, 32, 32, 48, 48]
  prefix = tf.train.Checkpoint(module=model).write(str(tmp_path / 'micro' / 'ckpt'))
  config = infer_config(prefix)
  assert config['conv_tower_divisible_by'] == 16 and config['channels'] == 48
  loaded = load_model(prefix, sequence_length=2048, **config, target_length=None)
  x = random_one_hot(1, 2048)
  np.testing.assert_allclose(
      loaded.predict_on_batch(x)['human'],
      model(x, is_training=False)['human'].numpy(),
      rtol=1e-5,
      atol=1e-6,
  )
  assert 'conv_tower_divisible_by' not in Enformer(channels=384, num_heads=4).config
