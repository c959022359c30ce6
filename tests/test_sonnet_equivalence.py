"""Where the library re-drives Sonnet's code for speed, it computes what Sonnet computes, bit for
bit: Adam with its per-step scalars computed once per step, batch norm called without
Sonnet's `smart_autograph` wrapper."""

import numpy as np
import sonnet as snt
import tensorflow as tf

from enformer import enformer as enformer_lib
from enformer.training import step as step_lib


def test_adam_equals_sonnets_adam_bit_for_bit():
  rng = np.random.default_rng(0)
  shapes = [(3, 4), (5,), (2, 2, 2)]
  initial = [rng.normal(size=s).astype(np.float32) for s in shapes]
  updates = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(4)]
  updates[2][1] = None  # A variable without a gradient this step keeps its value and moments.
  results = []
  for optimizer in (
      step_lib.Adam(learning_rate=tf.Variable(1e-2, trainable=False)),
      snt.optimizers.Adam(learning_rate=tf.Variable(1e-2, trainable=False)),
  ):
    variables = [tf.Variable(v) for v in initial]
    apply = tf.function(lambda u, o=optimizer, v=variables: o.apply(u, v), autograph=False)
    for step, update in enumerate(updates):
      optimizer.learning_rate.assign(1e-2 * (step + 1))
      apply(update)
    results.append(
        [v.numpy() for v in variables]
        + [m.numpy() for m in optimizer.m]
        + [v.numpy() for v in optimizer.v]
    )
  for ours, theirs in zip(*results):
    np.testing.assert_array_equal(ours, theirs)
  assert not np.array_equal(results[0][0], initial[0])


def test_batch_norm_equals_sonnets_in_training_and_inference():
  x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (4, 6, 5)).astype(np.float32))
  outputs, names = [], []
  for module in (
      enformer_lib.BatchNorm(),
      snt.distribute.CrossReplicaBatchNorm(
          create_scale=True,
          create_offset=True,
          scale_init=snt.initializers.Ones(),
          moving_mean=snt.ExponentialMovingAverage(0.9),
          moving_variance=snt.ExponentialMovingAverage(0.9),
      ),
  ):
    call = tf.function(lambda y, training, m=module: m(y, is_training=training), autograph=False)
    trained = [call(x * (i + 1), True).numpy() for i in range(3)]  # Updates the averages.
    outputs.append(
        trained
        + [
            call(x, False).numpy(),
            module.moving_mean.value.numpy(),
            module.moving_variance.value.numpy(),
        ]
    )
    names.append(sorted(v.name for v in module.variables))  # Created inside the traced call.
  for ours, theirs in zip(*outputs):
    np.testing.assert_array_equal(ours, theirs)
  assert names[0] == names[1] and 'cross_replica_batch_norm/scale:0' in names[0], names
