"""Fine-tuning: partial restore (trunk from a checkpoint, new heads fresh), refusals, freezing."""

import json

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from enformer import Enformer
from enformer import inference as hub
from enformer.training import finetune
from enformer.testing import MICRO, random_one_hot
from enformer.training import step as step_lib

TRUNK = dict(MICRO)
LENGTH = 2048


def randomize(model: Enformer, seed: int) -> None:
  """Sets every variable (weights and batch-norm moving averages) to random values."""
  rng = np.random.default_rng(seed)
  for var in model.variables:
    if var.dtype.is_floating:
      var.assign(
          rng.uniform(0.5, 1.5, var.shape).astype(var.dtype.as_numpy_dtype)
          * np.where(rng.random(var.shape) < 0.5, -1, 1)
          * 0.1
      )
  for module in model.submodules:  # Keep variances positive and the EMA "initialised".
    if isinstance(module, snt.ExponentialMovingAverage):
      module._counter.assign(10)
      module._hidden.assign(tf.abs(module._hidden) + 0.5)
      module.average.assign(tf.abs(module.average) + 0.5)


def values(variables) -> list:
  return [v.numpy().copy() for v in variables]


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  """A full checkpoint (trunk + heads human/mouse) with every variable randomised."""
  model = Enformer(**TRUNK, heads={'human': 7, 'mouse': 5})
  model.build_variables()
  randomize(model, seed=1)
  prefix = tf.train.Checkpoint(module=model).write(str(tmp_path_factory.mktemp('src') / 'ckpt'))
  return model, prefix


def test_partial_restore_trunk_equal_new_heads_fresh(source):
  src, prefix = source
  model = Enformer(**TRUNK, heads={'human': 7, 'atac': 3})
  model.build_variables()
  fresh_atac = values(model.heads['atac'].variables)
  report = finetune.restore_partial(model, prefix)
  assert report.restored_heads == ['human'] and report.fresh_heads == ['atac']
  assert report.trunk_variables == len(src.trunk.variables) == len(model.trunk.variables)
  assert any('/_heads/mouse/' in key for key in report.unused)
  for a, b in zip(src.trunk.variables, model.trunk.variables):
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  for a, b in zip(src.heads['human'].variables, model.heads['human'].variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  for before, after in zip(fresh_atac, model.heads['atac'].variables):
    np.testing.assert_array_equal(before, after.numpy())
  x = random_one_hot(2, LENGTH)
  np.testing.assert_allclose(
      model.trunk(x, is_training=False), src.trunk(x, is_training=False), rtol=1e-6, atol=1e-6
  )
  np.testing.assert_allclose(
      model(x, is_training=False)['human'], src(x, is_training=False)['human'], rtol=1e-6, atol=1e-6
  )


def test_restore_heads_false_keeps_all_heads_fresh(source):
  src, prefix = source
  model = Enformer(**TRUNK, heads={'human': 7})
  model.build_variables()
  before = values(model.heads['human'].variables)
  report = finetune.restore_partial(model, prefix, restore_heads=False)
  assert report.restored_heads == [] and report.fresh_heads == ['human']
  for b, v in zip(before, model.heads['human'].variables):
    np.testing.assert_array_equal(b, v.numpy())
  np.testing.assert_array_equal(model.trunk.variables[0].numpy(), src.trunk.variables[0].numpy())


@pytest.mark.parametrize(
    'config,message',
    [
        (dict(TRUNK, num_transformer_layers=2), 'not in the checkpoint'),
        (dict(TRUNK, num_transformer_layers=0), 'not in the model'),
        (dict(TRUNK, channels=96, num_heads=4), 'differ in shape'),
        (dict(TRUNK, input_channels=5), 'differ in shape'),
        (dict(TRUNK, final_pointwise=False), 'not in the model'),
        (dict(TRUNK, pooling_type='max'), 'not in the model'),
    ],
)
def test_trunk_mismatch_refused_and_nothing_assigned(source, config, message):
  _, prefix = source
  model = Enformer(**config, heads={'atac': 3})
  model.build_variables()
  before = values(model.variables)
  with pytest.raises(ValueError, match=message) as error:
    finetune.restore_partial(model, prefix)
  assert 'module/_trunk/' in str(error.value)  # The offending names are listed.
  assert "'channels': 48" in str(error.value)  # And the checkpoint's configuration.
  for b, v in zip(before, model.variables):
    np.testing.assert_array_equal(b, v.numpy())


def test_unused_trunk_allowed_on_request(source):
  """A shallower model without the final block starts from the parts it shares."""
  src, prefix = source
  model = Enformer(
      **dict(TRUNK, num_transformer_layers=0, final_pointwise=False), heads={'atac': 3}
  )
  report = finetune.restore_partial(model, prefix, allow_unused_trunk=True)
  assert any('/_trunk/_layers/4/' in key for key in report.unused)
  assert 'not used' in report.summary()
  np.testing.assert_array_equal(
      model.trunk.layers[1].variables[0].numpy(), src.trunk.layers[1].variables[0].numpy()
  )


def test_head_shape_mismatch_refused(source):
  _, prefix = source
  model = Enformer(**TRUNK, heads={'human': 4})
  with pytest.raises(ValueError, match="head 'human' has other shapes"):
    finetune.restore_partial(model, prefix)
  with pytest.raises(ValueError, match="head 'atac' is not in the checkpoint"):
    finetune.restore_partial(Enformer(**TRUNK, heads={'atac': 3}), prefix, restore_heads=['atac'])
  # Training the mismatched head from scratch is an explicit choice.
  report = finetune.restore_partial(model, prefix, restore_heads=False)
  assert report.fresh_heads == ['human']


def test_other_checkpoint_root_and_folder(source, tmp_path):
  """A training run's checkpoint (`Checkpoint(model=..., step=...)`, a folder) restores too."""
  src, _ = source
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=src, step=tf.Variable(3, dtype=tf.int64)), str(tmp_path), 2
  )
  manager.save()
  assert finetune.infer_config(tmp_path) == dict(
      channels=48,
      num_transformer_layers=1,
      num_heads=2,
      conv_tower_divisible_by=16,
      pooling_type='attention',
      input_channels=4,
      final_pointwise=True,
      transformer_mlp=True,
      heads={'human': 7, 'mouse': 5},
  )
  model, report = finetune.load_pretrained(tmp_path, heads={'atac': 2}, target_length=None)
  assert report.root == 'model' and report.fresh_heads == ['atac']
  assert model.config['num_heads'] == 2
  np.testing.assert_array_equal(model.trunk.variables[-1].numpy(), src.trunk.variables[-1].numpy())
  with pytest.raises(FileNotFoundError, match='No checkpoint at'):
    finetune.restore_partial(model, tmp_path / 'nothing')


def test_restore_deepmind_reference_into_new_heads(reference_small_dir):
  """DeepMind's own small checkpoint: trunk restored into a model with a new 'atac' head."""
  prefix = str(reference_small_dir / 'checkpoint' / 'enformer')
  model, report = finetune.load_pretrained(prefix, heads={'human': 5313, 'atac': 16})
  assert report.restored_heads == ['human'] and report.fresh_heads == ['atac']
  reader = tf.train.load_checkpoint(prefix)
  keys = hub.checkpoint_variables(model)
  for key, var in keys.items():
    if '/_heads/atac/' not in key:
      np.testing.assert_array_equal(var.numpy(), reader.get_tensor(key))


def train_steps(model: Enformer, variables, steps: int = 3) -> None:
  """A few steps of the package's training step (Poisson loss, Adam) on random targets."""
  train_step = step_lib.TrainStep(
      model,
      step_lib.Adam(learning_rate=1e-2),
      variables,
      tf.distribute.get_strategy(),
      global_batch_size=2,
      clip_norm=10.0,
  )
  rng = np.random.default_rng(0)
  for head, tracks in model.config['heads'].items():
    batch = {
        'sequence': tf.constant(random_one_hot(2, LENGTH, seed=3)),
        'target': tf.constant(rng.gamma(1.0, 1.0, (2, LENGTH // 128, tracks)), tf.float32),
    }
    for _ in range(steps):
      train_step.train(batch, head)


@pytest.mark.slow
@pytest.mark.parametrize('choice', finetune.FREEZE_CHOICES)
def test_frozen_variables_unchanged_after_steps(source, choice):
  _, prefix = source
  model, _ = finetune.load_pretrained(prefix, heads={'atac': 3}, target_length=None)
  variables = finetune.freeze_model(model, choice)
  selected = {id(v) for v in variables}
  norms = {id(v) for v in finetune.norm_variables(model.trunk)}
  heads = {id(v) for h in model.heads.values() for v in h.variables}
  expected = {
      'trunk': heads,
      'heads-and-norms': heads | norms,
      'none': {id(v) for v in model.trainable_variables},
  }[choice]
  assert selected == expected
  before = {id(v): v.numpy().copy() for v in model.variables}
  train_steps(model, variables)
  changed = {id(v) for v in model.variables if not np.array_equal(before[id(v)], v.numpy())}
  moving = {id(v) for v in model.variables if not v.trainable}
  if choice == 'none':  # Batch-norm statistics follow the batches.
    assert changed == selected | moving
  else:  # Frozen: weights and batch-norm statistics untouched; the selection changes.
    assert changed == selected


@pytest.mark.slow
def test_fine_tune_with_the_training_loop(source, tmp_path):
  """`fine_tune`: restore, freeze the trunk, train a new head with `enformer.training.train`."""
  src, prefix = source
  rng = np.random.default_rng(2)
  examples = {
      'sequence': random_one_hot(8, LENGTH, seed=4),
      'target': rng.gamma(1.0, 1.0, (8, LENGTH // 128, 2)).astype(np.float32),
  }
  dataset = tf.data.Dataset.from_tensor_slices(examples)
  result = finetune.fine_tune(
      run_dir=str(tmp_path / 'run'),
      init_from=prefix,
      freeze='trunk',
      train_data={'atac': dataset},
      valid_data={'atac': dataset},
      model_args={'target_length': None},
      batch_size=4,
      num_steps=3,
      warmup_steps=0,
      learning_rate=1e-2,
      export_hub=False,
      progress=False,
      augment=False,
  )
  model = result.model
  assert result.step == 3 and list(model.heads) == ['atac']
  for a, b in zip(src.trunk.variables, model.trunk.variables):  # Trunk (and BN stats) frozen.
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  report = json.loads((tmp_path / 'run' / 'finetune.json').read_text())
  assert report['fresh_heads'] == ['atac'] and report['freeze'] == 'trunk'
  assert report['batch_norm_frozen'] is True
  fresh = Enformer(**TRUNK, heads={'atac': 2})
  fresh.build_variables()
  assert not np.array_equal(
      model.heads['atac'].variables[1].numpy(), fresh.heads['atac'].variables[1].numpy()
  )
  with pytest.raises(ValueError, match='Unknown freeze choice'):
    finetune.fine_tune(
        run_dir=str(tmp_path / 'x'), init_from=prefix, freeze='stem', train_data={'atac': dataset}
    )
