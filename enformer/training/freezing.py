"""Freezing for fine-tuning: which variables train, and frozen batch-norm statistics.

Choices (`FREEZE_CHOICES`, `enformer train --freeze`): 'trunk' (heads only), 'heads-and-norms'
(heads + every LayerNorm/BatchNorm scale and offset) or 'none' (everything).
"""

from typing import List, Optional, Sequence

import numpy as np
import sonnet as snt
import tensorflow as tf

from enformer.enformer import Enformer
from enformer.presets import FREEZE_CHOICES, FREEZE_HELP


def norm_variables(module: tf.Module) -> List[tf.Variable]:
  """Trainable scale/offset variables of every LayerNorm and BatchNorm inside `module`."""
  ids = {
      id(v)
      for m in module.submodules
      if isinstance(m, (snt.LayerNorm, snt.BaseBatchNorm))
      for v in m.trainable_variables
  }
  return [v for v in module.trainable_variables if id(v) in ids]


def check_freeze(freeze: str) -> None:
  """Raises ValueError naming the choices when `freeze` is not one of FREEZE_CHOICES."""
  if freeze not in FREEZE_CHOICES:
    raise ValueError(
        f'Unknown freeze choice {freeze!r}; use one of {FREEZE_CHOICES}: '
        + '; '.join(f'{k}: {v}' for k, v in FREEZE_HELP.items())
        + '.'
    )


def trainable_variables(model: Enformer, freeze: str = 'none') -> List[tf.Variable]:
  """The variables to train for a `freeze` choice (in `model.trainable_variables` order).

  Args:
    model: an Enformer whose variables exist.
    freeze: 'trunk' (heads only), 'heads-and-norms' (heads + LayerNorm/BatchNorm scale and
      offset), or 'none' (everything).
  """
  check_freeze(freeze)
  if freeze == 'none':
    return list(model.trainable_variables)
  selected = {id(v) for head in model.heads.values() for v in head.trainable_variables}
  if freeze == 'heads-and-norms':
    selected |= {id(v) for v in norm_variables(model.trunk)}
  return [v for v in model.trainable_variables if id(v) in selected]


def freeze_model(
    model: Enformer, freeze: str = 'trunk', batch_norm_frozen: Optional[bool] = None
) -> List[tf.Variable]:
  """Applies a freezing choice: sets batch-norm statistics and returns the variables to train.

  Args:
    model: an Enformer (variables are created if needed).
    freeze: see `trainable_variables`.
    batch_norm_frozen: freeze batch-norm statistics (training then normalises with the moving
      averages and leaves them unchanged; dropout still follows `is_training`). Default: frozen
      unless `freeze == 'none'` — a frozen trunk should compute the features it was trained with.

  Returns:
    The variables an optimizer should update.
  """
  model.build_variables()
  variables = trainable_variables(model, freeze)
  if batch_norm_frozen is None:
    batch_norm_frozen = freeze != 'none'
  model.set_batch_norm_frozen(batch_norm_frozen)
  return variables


def count_parameters(variables: Sequence[tf.Variable]) -> int:
  """Number of scalar parameters in `variables`."""
  return int(sum(np.prod(v.shape) for v in variables))
