"""Fine-tuning: new heads on a pretrained trunk, partial restore, freezing.

The Epiformer-style workflow: build `Enformer(heads={'atac': 16})` (any preset or config),
restore the trunk — and optionally heads that exist in the checkpoint with the same shapes — from a
full checkpoint, keep the new heads freshly initialised, then train a selection of variables:

    model, report = load_pretrained(checkpoint, heads={'atac': 16}, target_length=None)
    variables = freeze_model(model, 'trunk')  # heads only; batch-norm statistics frozen too
    ... train `variables` with `enformer.training` ...

The restore is partial only where you ask for it: every trunk variable of the model must be in the
checkpoint with the same shape, and every trunk variable of the checkpoint must be used (unless
`allow_unused_trunk=True`, e.g. a 5-layer Enformer initialised from the 11-layer one); otherwise a
ValueError lists the offending names and shapes. Checkpoints are read by variable path (DeepMind's
tree: `module/_trunk/...`, `module/_heads/<name>/...`), so the root object may be called `module`
(DeepMind, `enformer.inference`) or anything else (e.g. a training run's
`tf.train.Checkpoint(model=...)`).
"""

import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import tensorflow as tf

from enformer import presets
from enformer.enformer import Enformer
from enformer.inference.checkpoints import (
    VARIABLE_SUFFIX,
    checkpoint_prefix,
    checkpoint_variables,
    compare_with_checkpoint,
    infer_config,
    short_key,
)
from enformer.presets import FREEZE_CHOICES
from enformer.training import config as config_lib
from enformer.training import loop
from enformer.training import strategy as strategy_lib
from enformer.training.freezing import (
    check_freeze,
    count_parameters,
    freeze_model,
    norm_variables,
    trainable_variables,
)

__all__ = [
    'FREEZE_CHOICES',
    'RestoreReport',
    'count_parameters',
    'fine_tune',
    'freeze_model',
    'infer_config',
    'load_pretrained',
    'norm_variables',
    'restore_partial',
    'trainable_variables',
]

_MAX_LISTED = 12


@dataclasses.dataclass
class RestoreReport:
  """What `restore_partial` did.

  Attributes:
    checkpoint: checkpoint prefix that was read.
    root: name of the model's root object in the checkpoint (e.g. 'module').
    trunk_variables: number of trunk variables restored (all of the model's).
    restored_heads: heads restored from the checkpoint.
    fresh_heads: heads left freshly initialised.
    unused: checkpoint variables of the model tree that were not used (paths without the
      `/.ATTRIBUTES/VARIABLE_VALUE` suffix), e.g. heads not in the model.
    batch_norm_calibrated: every restored batch-norm moving average was updated at least once
      (False for a never-trained checkpoint: freezing its statistics would not normalise).
  """

  checkpoint: str
  root: str
  trunk_variables: int
  restored_heads: List[str]
  fresh_heads: List[str]
  unused: List[str]
  batch_norm_calibrated: bool = True

  def summary(self) -> str:
    relative = [k[len(self.root) + 1 :] for k in self.unused]
    unused_heads = sorted({k.split('/')[1] for k in relative if k.startswith('_heads/')})
    unused_trunk = [k for k in relative if k.startswith('_trunk/')]
    text = (
        f'Restored {self.trunk_variables} trunk variables from {self.checkpoint}; '
        f'heads restored: {self.restored_heads or "none"}; fresh: {self.fresh_heads or "none"}'
    )
    if unused_heads:
      text += f'; checkpoint heads not used: {unused_heads}'
    if unused_trunk:
      text += f'; {len(unused_trunk)} checkpoint trunk variables not used (allow_unused_trunk)'
    return text + '.'


def _describe(keys: Sequence[str], shapes: Mapping[str, Sequence[int]]) -> str:
  listed = [f'{short_key(k)} {list(shapes[k])}' for k in sorted(keys)[:_MAX_LISTED]]
  more = f' … and {len(keys) - _MAX_LISTED} more' if len(keys) > _MAX_LISTED else ''
  return '; '.join(listed) + more


def _model_head_of(key: str, root: str) -> Optional[str]:
  """Head name of a checkpoint key '<root>/_heads/<name>/...', else None."""
  if not key.startswith(f'{root}/_heads/'):
    return None
  return key[len(root) + len('/_heads/') :].split('/')[0]


def restore_partial(
    model: Enformer,
    checkpoint: Union[str, os.PathLike],
    *,
    restore_heads: Union[bool, Sequence[str]] = True,
    allow_unused_trunk: bool = False,
) -> RestoreReport:
  """Restores the trunk (and chosen heads) of `model` from a full Enformer checkpoint.

  Args:
    model: the model to fill, e.g. `Enformer(heads={'atac': 16})`. Variables are created here.
    checkpoint: checkpoint prefix or folder (latest checkpoint), local or any `tf.io.gfile` path.
    restore_heads: True: restore every model head that the checkpoint has (same name); the
      others stay fresh. A list: restore exactly these heads (each must be in the checkpoint).
      False: all heads stay fresh.
    allow_unused_trunk: accept checkpoint trunk variables the model does not have (e.g. the
      transformer layers 5–10 and the final pointwise block when a 5-layer model starts from the
      paper model); they are listed in the report. Missing or shape-mismatched variables are
      always refused.

  Returns:
    A `RestoreReport`.

  Raises:
    ValueError: the model has trunk variables that the checkpoint lacks or holds with another
      shape, the checkpoint has trunk variables the model lacks (unless allowed), or a head to
      restore is missing or has other shapes. Nothing is assigned in that case.
    FileNotFoundError: no checkpoint at that path.
  """
  comparison = compare_with_checkpoint(model, checkpoint)  # The package's one checker.
  prefix, root = comparison.prefix, comparison.root
  shapes, model_shapes = comparison.stored, comparison.expected
  variables = checkpoint_variables(model, root)
  model_config = {
      k: dict(v) if k == 'heads' else v for k, v in model.config.items() if k != 'target_length'
  }
  hint = f'The checkpoint holds {comparison.inferred_config()}; the model is {model_config}.'

  model_trunk = sorted(k for k in variables if k.startswith(f'{root}/_trunk/'))
  missing = comparison.missing('_trunk/')
  mismatched = comparison.mismatched('_trunk/')
  extra = comparison.unexpected('_trunk/')
  problems = []
  if missing:
    problems.append(
        f'{len(missing)} trunk variables of the model are not in the checkpoint: '
        f'{_describe(missing, model_shapes)}'
    )
  if mismatched:
    problems.append(
        f'{len(mismatched)} trunk variables differ in shape (checkpoint vs model): '
        + '; '.join(
            f'{short_key(k)} {list(shapes[k])} vs {list(model_shapes[k])}'
            for k in mismatched[:_MAX_LISTED]
        )
    )
  if extra and not allow_unused_trunk:
    problems.append(
        f'{len(extra)} trunk variables of the checkpoint are not in the model: '
        f'{_describe(extra, shapes)} (pass allow_unused_trunk=True to initialise a '
        'smaller model from the parts it shares with the checkpoint)'
    )

  ckpt_heads = sorted({h for k in shapes for h in [_model_head_of(k, root)] if h})
  if restore_heads is True:
    heads_to_restore = [h for h in model.head_names if h in ckpt_heads]
    explicit = False
  elif restore_heads is False:
    heads_to_restore, explicit = [], False
  else:
    heads_to_restore, explicit = list(restore_heads), True
    unknown = [h for h in heads_to_restore if h not in model.head_names]
    if unknown:
      raise ValueError(
          f'restore_heads names {unknown}, which the model does not have '
          f'(model heads: {model.head_names}).'
      )
  for head in heads_to_restore:
    keys = [k for k in variables if _model_head_of(k, root) == head]
    absent = comparison.missing(f'_heads/{head}/')
    if absent:
      problems.append(
          f'head {head!r} is not in the checkpoint (checkpoint heads: {ckpt_heads})'
          if explicit or len(absent) == len(keys)
          else f'head {head!r} lacks {_describe(absent, model_shapes)}'
      )
      continue
    bad = comparison.mismatched(f'_heads/{head}/')
    if bad:
      problems.append(
          f'head {head!r} has other shapes in the checkpoint: '
          + '; '.join(
              f'{short_key(k)} {list(shapes[k])} vs model {list(model_shapes[k])}' for k in bad
          )
          + ' (give the new head another name, or restore_heads=False / a list without it, to '
          'train it from scratch)'
      )
  if problems:
    raise ValueError(
        f'Cannot restore {prefix} into this model: ' + ' | '.join(problems) + f'. {hint}'
    )

  reader = tf.train.load_checkpoint(prefix)
  to_restore = model_trunk + [k for k in variables if _model_head_of(k, root) in heads_to_restore]
  for key in to_restore:
    variables[key].assign(reader.get_tensor(key))
  used = set(to_restore)
  unused = sorted(short_key(k) for k in shapes if k not in used)
  counters = [k for k in model_trunk if k.endswith('/_counter' + VARIABLE_SUFFIX)]
  calibrated = all(int(reader.get_tensor(k)) > 0 for k in counters)
  return RestoreReport(
      checkpoint=prefix,
      root=root,
      trunk_variables=len(model_trunk),
      batch_norm_calibrated=calibrated,
      restored_heads=heads_to_restore,
      fresh_heads=[h for h in model.head_names if h not in heads_to_restore],
      unused=unused,
  )


def load_pretrained(
    checkpoint: Union[str, os.PathLike],
    heads: Optional[Mapping[str, int]] = None,
    *,
    preset: Optional[str] = None,
    restore_heads: Union[bool, Sequence[str]] = True,
    allow_unused_trunk: bool = False,
    **config: Any,
) -> Tuple[Enformer, RestoreReport]:
  """Builds an Enformer for fine-tuning and restores it from `checkpoint`.

  The architecture comes from (later wins): the checkpoint's shapes (`infer_config`), the named
  `preset`, then `config` (e.g. `target_length=None`, `num_transformer_layers=5`).

  Args:
    checkpoint: full Enformer checkpoint (prefix or folder).
    heads: heads of the new model, name → tracks; default: the checkpoint's heads.
    preset: optional preset name (`enformer.presets`).
    restore_heads, allow_unused_trunk: see `restore_partial`.
    **config: further `Enformer` arguments.

  Returns:
    (model, report).
  """
  prefix = checkpoint_prefix(checkpoint)
  arguments = infer_config(prefix)
  if preset is not None:
    arguments.update(presets.preset_config(preset))
  arguments.update(config)
  if heads is not None:
    arguments['heads'] = dict(heads)
  model = Enformer(**arguments)
  report = restore_partial(
      model, prefix, restore_heads=restore_heads, allow_unused_trunk=allow_unused_trunk
  )
  return model, report


def _heads_for_training(config, train_data) -> Optional[Dict[str, int]]:
  """Heads implied by the training data: {head: number of target tracks}."""
  if config.data:
    return loop.heads_from_data(config)
  if train_data:
    heads = {}
    for head, source in train_data.items():
      dataset = source if isinstance(source, tf.data.Dataset) else source()
      heads[head] = int(dataset.element_spec['target'].shape[-1])
    return heads
  return None


def fine_tune(
    config: Any = None,
    *,
    init_from: Union[str, os.PathLike],
    freeze: str = 'trunk',
    batch_norm_frozen: Optional[bool] = None,
    restore_heads: Union[bool, Sequence[str]] = True,
    allow_unused_trunk: bool = False,
    preset: Optional[str] = None,
    train_data: Optional[Mapping[str, Any]] = None,
    valid_data: Optional[Mapping[str, Any]] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    **overrides: Any,
):
  """Fine-tunes a pretrained Enformer with the training loop (`enformer.training.train`).

  The model is built inside the training strategy's scope: architecture = checkpoint shapes
  (`infer_config`) < `preset` < `config.model_args`; heads = `model_args['heads']`, else one head
  per data source with its number of tracks (new names get fresh heads; names the checkpoint
  has are restored when `restore_heads` — another track count is a ValueError). Then the `freeze`
  selection is applied (`freeze_model`) and only those variables are trained. A run folder that
  already holds checkpoints resumes from them as usual (the restore here is then overwritten).

  Args:
    config: `TrainConfig` or mapping of its fields (`overrides` update it); `config.preset` is
      NOT applied (the checkpoint defines the architecture); pass `preset=` to apply one.
    init_from: full Enformer checkpoint (prefix or folder).
    freeze, batch_norm_frozen: see `freeze_model`.
    restore_heads, allow_unused_trunk: see `restore_partial`.
    preset: optional preset applied on top of the checkpoint's architecture.
    train_data, valid_data, strategy: as for `enformer.training.train`.

  Returns:
    `enformer.training.TrainResult`; `result.model` is the fine-tuned model. The restore report
    is written to `run_dir/finetune.json`.
  """
  if isinstance(config, config_lib.TrainConfig):
    config = config.replace(**overrides) if overrides else config
  else:
    config = config_lib.TrainConfig.from_dict({**dict(config or {}), **overrides})
  check_freeze(freeze)
  prefix = checkpoint_prefix(init_from)
  model_args = dict(config.model_args)
  heads = model_args.pop('heads', None) or _heads_for_training(config, train_data)

  def build() -> Enformer:
    model, report = load_pretrained(
        prefix,
        heads,
        preset=preset,
        restore_heads=restore_heads,
        allow_unused_trunk=allow_unused_trunk,
        **model_args,
    )
    frozen_statistics = freeze != 'none' if batch_norm_frozen is None else batch_norm_frozen
    if frozen_statistics and not report.batch_norm_calibrated:
      raise ValueError(
          f'The batch-norm statistics in {prefix} were never updated (moving-average counters '
          'are 0), so frozen batch norm would not normalise and training would diverge. '
          'Start from a trained checkpoint, or set `batch_norm_frozen` to false.'
      )
    if strategy_lib.is_chief(tf.distribute.get_strategy()):
      tf.io.gfile.makedirs(config.run_dir)
      with tf.io.gfile.GFile(os.path.join(config.run_dir, 'finetune.json'), 'w') as f:
        json.dump(
            dict(dataclasses.asdict(report), freeze=freeze, batch_norm_frozen=frozen_statistics),
            f,
            indent=1,
        )
      print(report.summary())
    return model

  def select(model: Enformer) -> List[tf.Variable]:
    variables = freeze_model(model, freeze, batch_norm_frozen)
    print(
        f'Training {count_parameters(variables):,} of '
        f'{count_parameters(model.trainable_variables):,} parameters (freeze={freeze}).'
    )
    return variables

  return loop.train(
      config,
      model_fn=build,
      trainable_variables=select,
      train_data=train_data,
      valid_data=valid_data,
      strategy=strategy,
  )
