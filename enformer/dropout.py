"""Dropout whose masks can be replayed (for activation recomputation).

Outside `seeded_dropout(...)` this is ordinary `tf.nn.dropout`. Inside it, every dropout call of
this thread draws its mask with `tf.nn.experimental.stateless_dropout` from (seed, call index),
so running a block again under the same seed reuses exactly the masks of its first run
(`enformer.training.recompute`). The model's `Dropout` layers and the attention/positional dropout
of `MultiheadAttention` all go through `dropout()`.
"""

import contextlib
import threading
from typing import Iterator, Optional, Sequence

import sonnet as snt
import tensorflow as tf

_STATE = threading.local()


class _Seeds:
  """Seeds of the dropout calls within one `seeded_dropout` block: seed + [0, call index]."""

  def __init__(self, seed: tf.Tensor):
    self.seed = tf.cast(seed, tf.int64)
    self.calls = 0

  def next_seed(self) -> tf.Tensor:
    self.calls += 1
    return self.seed + tf.constant([0, self.calls], tf.int64)


@contextlib.contextmanager
def seeded_dropout(seed: tf.Tensor) -> Iterator[None]:
  """In this thread, dropout masks come from `seed` (int64 [2]) and the call order."""
  previous = getattr(_STATE, 'seeds', None)
  _STATE.seeds = _Seeds(seed)
  try:
    yield
  finally:
    _STATE.seeds = previous


def dropout(x: tf.Tensor, rate: float, noise_shape: Optional[Sequence[int]] = None) -> tf.Tensor:
  """`tf.nn.dropout(x, rate)`, or its seeded stateless form inside `seeded_dropout`."""
  seeds = getattr(_STATE, 'seeds', None)
  if seeds is None:
    return tf.nn.dropout(x, rate=rate, noise_shape=noise_shape)
  return tf.nn.experimental.stateless_dropout(
      x, rate, seed=seeds.next_seed(), noise_shape=noise_shape
  )


class Dropout(snt.Dropout):
  """`snt.Dropout` drawing its masks through `dropout()` (replayable under `seeded_dropout`)."""

  def __call__(self, x: tf.Tensor, is_training: bool) -> tf.Tensor:
    if not is_training:
      return x
    return dropout(x, self._rate, self._noise_shape)
