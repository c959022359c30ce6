"""bfloat16 mixed precision (`precision='bfloat16'`) on CPU: the step runs, the loss is finite and
close to the float32 loss, variables stay float32 and move.
Batch norm normalises in float32 (its statistics are float32 state); the positional features
follow the activations' dtype.
"""

import numpy as np
import pytest
import tensorflow as tf

from enformer import Enformer
from enformer.testing import MICRO
from enformer.training import step as step_lib

CONFIG = dict(
    MICRO,
    heads={'human': 3},
    dropout_rate=0.0,
    attention_dropout_rate=0.0,
    positional_dropout_rate=0.0,
)


def _first_loss_and_step(precision: str):
  tf.random.set_seed(2)
  model = Enformer(**CONFIG)
  model.build_variables()
  before = [v.numpy() for v in model.trainable_variables]
  optimizer = step_lib.Adam(learning_rate=tf.Variable(1e-3, trainable=False))
  optimizer.initialize(model.trainable_variables)
  train_step = step_lib.TrainStep(
      model,
      optimizer,
      model.trainable_variables,
      tf.distribute.get_strategy(),
      2,
      0.2,
      precision=precision,
  )
  rng = np.random.default_rng(0)
  batch = {
      'sequence': tf.constant(np.eye(4, dtype=np.float32)[rng.integers(0, 4, (2, 2048))]),
      'target': tf.constant(rng.gamma(1.0, 1.0, (2, 16, 3)).astype(np.float32)),
  }
  losses = [float(train_step.train(batch, 'human')[0]) for _ in range(2)]
  moved = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
  dtypes = {v.dtype for v in model.variables if v.dtype.is_floating}
  return losses, moved, dtypes


@pytest.mark.slow
def test_bfloat16_step_runs_with_finite_loss_close_to_float32():
  losses_32, _, _ = _first_loss_and_step('float32')
  losses_16, moved, dtypes = _first_loss_and_step('bfloat16')
  print(f'\nfirst two losses: float32 {losses_32}, bfloat16 {losses_16}')
  assert np.all(np.isfinite(losses_16))
  # Same weights, same batch: bf16 keeps ~3 significant digits.
  assert abs(losses_16[0] - losses_32[0]) < 0.02 * abs(losses_32[0])
  assert dtypes == {tf.float32}  # Variables (and the optimizer update) stay float32.
  assert moved > 50  # The bf16 gradients reached (almost) every variable.
