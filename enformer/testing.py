"""Random models and inputs for tests and benchmarks (no checkpoint needed).

`random_model(seed, **config)` builds an `Enformer` with seeded random weights that behave like
trained ones where it matters for parity tests: a non-zero attention output projection (the
published initialisation is zero, which would hide the attention path) and batch-norm moving
statistics that are not the identity (calibrated by one training-mode pass on random sequences,
as training leaves them, or drawn at random where such a pass would be too costly).

`MICRO` (the `micro` preset) is the smallest configuration that exercises every block (stem, conv
tower, attention pooling, a transformer layer, the final pointwise block and the heads): 48
channels with the conv tower rounded to multiples of 16. A training step of it costs about 1/15 of
the `tiny` preset's.
"""

import os
import uuid
from typing import Any, Dict, List, Optional, Sequence, Union

import h5py
import numpy as np
import tensorflow as tf

from enformer import enformer as enformer_lib
from enformer import presets
from enformer.io.lock import Holder, lock_path

MICRO: Dict[str, Any] = presets.preset_config('micro')


def checkpoint_tree(module: tf.Module) -> Dict[str, List[int]]:
  """Name → shape of every entry of `tf.train.Checkpoint(module=module)`, as
  `tf.train.list_variables` gives them (DeepMind's reference tree is written so).

  The checkpoint is written to TensorFlow's in-memory file system (a full-size one is 1 GB: about
  8 s to a disk, 2 s to memory) and removed.
  """
  directory = f'ram://checkpoint_tree/{uuid.uuid4().hex}'
  try:
    prefix = tf.train.Checkpoint(module=module).write(f'{directory}/ckpt')
    # tf.train.list_variables takes a ram:// prefix for a folder; the reader opens the prefix.
    shapes = tf.compat.v1.train.NewCheckpointReader(prefix).get_variable_to_shape_map()
    return {name: list(shape) for name, shape in sorted(shapes.items())}
  finally:
    if tf.io.gfile.exists(directory):
      tf.io.gfile.rmtree(directory)


def read_checkpoint_tree(path: Union[str, os.PathLike]) -> Dict[str, List[int]]:
  """Name → shape from a file of `name<TAB>[d0, d1, ...]` lines, as DeepMind's reference trees
  are written (`checkpoint_variables_full.txt`); comparable with `checkpoint_tree`."""
  tree = {}
  with open(path) as handle:
    for line in handle.read().splitlines():
      name, shape = line.split('\t')
      tree[name] = [int(d) for d in shape.strip('[]').split(',') if d.strip()]
  return tree


def random_one_hot(batch: int, length: int, seed: int = 0, channels: int = 4) -> np.ndarray:
  """[batch, length, channels]: one-hot DNA, plus `channels - 4` extra channels of N(0, 1)."""
  rng = np.random.default_rng(seed)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(batch, length))]
  if channels > 4:
    extra = rng.normal(size=(batch, length, channels - 4)).astype(np.float32)
    x = np.concatenate([x, extra], axis=-1)
  return x


def random_model(
    seed: int = 0,
    *,
    calibration_length: Optional[int] = 2048,
    attention_projection: bool = True,
    **config: Any,
) -> enformer_lib.Enformer:
  """`Enformer(**config)` with seeded random weights.

  Args:
    seed: seed of the weights and of the calibration sequences.
    calibration_length: length (bp) of the two random sequences of one training-mode pass that
      sets each batch-norm moving average to its batch statistic; None draws the statistics at
      random instead (for full-size models, where such a pass is costly).
    attention_projection: False keeps the published (zero) attention output projection.
    **config: `Enformer` arguments.
  """
  tf.random.set_seed(seed)
  model = enformer_lib.Enformer(**config)
  model.build_variables()
  rng = np.random.default_rng(seed)
  for block in model.trunk.transformer.blocks if attention_projection else []:
    projection = block.attention_block.attention.embedding_layer.w
    projection.assign(
        rng.normal(0, projection.shape[0] ** -0.5, projection.shape).astype(np.float32)
    )
  if calibration_length is None:
    for module in model.submodules:
      if isinstance(module, enformer_lib.BatchNorm):
        mean, var = module.moving_mean.average, module.moving_variance.average
        mean.assign(rng.normal(0, 0.1, mean.shape).astype(np.float32))
        var.assign(rng.uniform(0.5, 1.5, var.shape).astype(np.float32))
    return model
  length = calibration_length
  if config.get('target_length') is not None:
    length = max(length, (config['target_length'] + 2) * enformer_lib.BIN_SIZE)
  model(random_one_hot(2, length, seed + 1, config.get('input_channels', 4)), is_training=True)
  return model


def read_holder(out: Union[str, os.PathLike]) -> Optional[Holder]:
  """The holder recorded in the lock file of `out` (live or stale), or None."""
  try:
    with open(lock_path(out)) as handle:
      return Holder.parse(handle.read())
  except OSError:
    return None


def compare_layout(
    path: Union[str, os.PathLike],
    reference: Union[str, os.PathLike],
    ignore: Optional[Sequence[str]] = ('SAD_pct', 'percentiles'),
) -> List[str]:
  """Differences in dataset kinds/dtypes/ranks between two sad.h5-layout files (empty = same).

  Byte-string widths and sizes are allowed to differ; `ignore` names datasets of `reference`
  that need not be present in `path` (basenji's percentile tables).
  """
  problems = []
  with h5py.File(path, 'r') as ours, h5py.File(reference, 'r') as theirs:
    for name in theirs:
      if name in (ignore or ()):
        continue
      if name not in ours:
        problems.append(f'missing dataset {name}')
        continue
      a, b = ours[name], theirs[name]
      if a.dtype.kind != b.dtype.kind or (a.dtype.kind != 'S' and a.dtype != b.dtype):
        problems.append(f'{name}: dtype {a.dtype} vs {b.dtype}')
      if a.ndim != b.ndim:
        problems.append(f'{name}: rank {a.ndim} vs {b.ndim}')
  return problems
