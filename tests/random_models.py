"""Enformer models with trained-looking weights for parity tests (no checkpoint needed).

`random_model(seed, **config)`: seeded random weights, a non-zero attention output projection
(the published initialisation is zero, which would hide the attention path) and batch-norm
moving statistics calibrated on random sequences, as training leaves them.
"""

import numpy as np
import tensorflow as tf

from enformer import enformer as enformer_lib


def random_one_hot(batch: int, length: int, seed: int = 0, channels: int = 4) -> np.ndarray:
  """[batch, length, channels]: one-hot DNA, plus extra channels of random values."""
  rng = np.random.default_rng(seed)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(batch, length))]
  if channels > 4:
    extra = rng.normal(size=(batch, length, channels - 4)).astype(np.float32)
    x = np.concatenate([x, extra], axis=-1)
  return x


def random_model(seed: int = 0, calibration_length: int = 2048,
                 **config) -> enformer_lib.Enformer:
  """`Enformer(**config)` with seeded random weights and calibrated batch-norm statistics."""
  tf.random.set_seed(seed)
  model = enformer_lib.Enformer(**config)
  model.build_variables()
  rng = np.random.default_rng(seed)
  for block in model.trunk.transformer.blocks:
    projection = block.attention_block.attention.embedding_layer.w
    projection.assign(rng.normal(0, projection.shape[0]**-0.5, projection.shape)
                      .astype(np.float32))
  # One training-mode pass: each (zero-debiased) moving average becomes its batch statistic.
  length = calibration_length
  if config.get('target_length') is not None:
    length = max(length, (config['target_length'] + 2) * enformer_lib.BIN_SIZE)
  model(random_one_hot(2, length, seed + 1, config.get('input_channels', 4)), is_training=True)
  return model
