"""Activation recomputation (`recompute=True`): same gradients, same batch-norm statistics, same
dropout masks as the plain training pass."""

import numpy as np
import pytest
import tensorflow as tf

from enformer import Enformer
from enformer.training import recompute
from enformer.testing import MICRO
from enformer.training import step as step_lib

CONFIG = dict(MICRO, heads={'human': 3})
LENGTH = 2048


def _model(**kwargs) -> Enformer:
  tf.random.set_seed(11)
  model = Enformer(**CONFIG, **kwargs)
  model.build_variables()
  return model


def _batch(size: int = 2):
  rng = np.random.default_rng(5)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(size, LENGTH))]
  y = rng.gamma(1.0, 1.0, size=(size, LENGTH // 128, 3)).astype(np.float32)
  return tf.constant(x), tf.constant(y)


def _moving_statistics(model):
  return {v.name + str(i): v.numpy() for i, v in enumerate(model.variables) if 'moving' in v.name}


def _gradients_and_statistics(recompute_flag: bool):
  """Gradients of the Poisson loss and the batch-norm moving statistics after one training pass."""
  model = _model(dropout_rate=0.0, attention_dropout_rate=0.0, positional_dropout_rate=0.0)
  train_step = step_lib.TrainStep(
      model,
      step_lib.Adam(1e-3),
      model.trainable_variables,
      tf.distribute.get_strategy(),
      2,
      0.2,
      recompute=recompute_flag,
  )
  x, y = _batch()

  @tf.function(autograph=False)
  def gradients():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(step_lib.poisson_loss(y, train_step._forward(x, 'human', True)))
    return loss, tape.gradient(loss, model.trainable_variables)

  loss, grads = gradients()
  return float(loss), [g.numpy() for g in grads], _moving_statistics(model)


@pytest.fixture(scope='module')
def plain_and_recomputed():
  return _gradients_and_statistics(False), _gradients_and_statistics(True)


def test_recompute_gives_the_same_gradients(plain_and_recomputed):
  (loss, grads, _), (loss_r, grads_r, _) = plain_and_recomputed
  assert loss == pytest.approx(loss_r, rel=1e-6)
  assert len(grads) == len(grads_r) > 50
  # Compare every tensor against the largest gradient entry overall: some gradients are pure
  # rounding noise (e.g. conv biases right before a batch norm, ~1e-8) and differ in relative terms.
  overall = max(np.abs(g).max() for g in grads)
  worst = max(float(np.abs(g - g_r).max()) for g, g_r in zip(grads, grads_r)) / overall
  for g, g_r in zip(grads, grads_r):
    np.testing.assert_allclose(g_r, g, rtol=1e-4, atol=1e-5 * overall)
  print(f'\nlargest gradient difference / largest gradient: {worst:.2e}')


def test_recompute_updates_batch_norm_statistics_once(plain_and_recomputed):
  (_, _, stats), (_, _, stats_r) = plain_and_recomputed
  assert sorted(stats) == sorted(stats_r) and len(stats) > 20
  counters = [k for k in stats if 'counter' in k]
  assert counters and all(stats_r[k] == 1 for k in counters)  # One update, not two.
  for key in stats:
    np.testing.assert_allclose(stats_r[key], stats[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_recomputed_block_reuses_dropout_masks():
  """With dropout on, the recomputed gradient equals the gradient of the very pass that ran."""
  model = _model(dropout_rate=0.4, attention_dropout_rate=0.3, positional_dropout_rate=0.3)
  block = model.trunk.layers[2].layers[0]  # Transformer block 0 (attention + MLP dropout).
  rng = np.random.default_rng(2)
  x = tf.constant(rng.normal(size=(2, LENGTH // 128, MICRO['channels'])).astype(np.float32))
  weights = tf.constant(rng.normal(size=(2, LENGTH // 128, MICRO['channels'])).astype(np.float32))
  seed = tf.constant([3, 4], tf.int64)
  variables = block.trainable_variables

  @tf.function(autograph=False)
  def gradients(checkpointed: bool):
    with tf.GradientTape() as tape:
      tape.watch(x)
      if checkpointed:
        out = recompute.recompute_block(block, x, seed)
      else:
        out = recompute.seeded_block_call(block, x, seed)
      loss = tf.reduce_sum(out * weights)
    return out, tape.gradient(loss, [x] + list(variables))

  out, grads = gradients(False)
  out_r, grads_r = gradients(True)
  np.testing.assert_allclose(out_r.numpy(), out.numpy(), rtol=1e-5, atol=1e-5)
  for g, g_r in zip(grads, grads_r):
    np.testing.assert_allclose(g_r.numpy(), g.numpy(), rtol=1e-4, atol=1e-4)
  # Dropout was active: the training pass differs from inference, and other seeds differ.
  assert np.abs(out.numpy() - block(x, is_training=False).numpy()).max() > 0.1
  other = recompute.seeded_block_call(block, x, tf.constant([3, 5], tf.int64))
  assert np.abs(out.numpy() - other.numpy()).max() > 0.1
  # Outside recomputed blocks tf.nn.dropout behaves as before.
  assert tf.nn.dropout(tf.ones([1000]), rate=0.5).numpy().min() == 0.0
