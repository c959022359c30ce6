"""Training configuration: one dataclass, filled from defaults < a JSON/YAML file < flags.

The run folder stores the resolved configuration (`config.json`, including the resolved model
architecture), so a run can be resumed or reproduced from its folder alone.
"""

import dataclasses
import json
import os
from typing import Any, Dict, Mapping, Optional, Union

import yaml

from enformer.io.atomic import atomic_open
from enformer.io.files import read_json

CONFIG_FILE = 'config.json'
PRECISIONS = ('float32', 'bfloat16')
# Fields that may change when a run is resumed (they do not change what a step computes).
RESUMABLE_CHANGES = (
    'num_steps',
    'eval_every',
    'eval_batches',
    'checkpoint_every',
    'keep_checkpoints',
    'log_every',
    'progress',
    'tpu',
    'export_hub',
    'recompute',
)


@dataclasses.dataclass
class TrainConfig:
  """Everything that defines a training run (defaults follow the paper where it says).

  Attributes:
    run_dir: run folder: config.json, checkpoints/, best/, train/ and valid/ TensorBoard logs.
    preset: model preset (`enformer.presets`), e.g. 'paper', 'notebook', 'small', 'tiny'.
    model_args: `Enformer` constructor arguments overriding the preset (e.g. {'channels': 384}).
      Heads default to {name: tracks} of `data`.
    data: head name → Basenji2 data folder (or 'human'/'mouse' under $ENFORMER_DATA_DIR). With
      several heads, training alternates between them step by step (human, mouse, human, ...).
    data_layout: 'basenji2', 'legacy' or None (detect).
    train_subset, valid_subset: subsets used for training and validation.
    batch_size: global batch size (split across replicas).
    num_steps: total optimizer steps.
    learning_rate: peak learning rate, reached after `warmup_steps` of linear warm-up.
    warmup_steps: linear warm-up length (paper: 5,000 steps to 5e-4).
    clip_norm: global-norm gradient clipping threshold (paper: 0.2).
    adam_beta1, adam_beta2, adam_epsilon: Adam hyper-parameters.
    precision: 'float32' or 'bfloat16' (bf16 compute, float32 variables; for TPU/GPU).
    recompute: recompute each conv-tower and transformer block's activations in the backward
      pass instead of storing them (less memory, about one extra forward pass per step).
    augment: stochastic shift (±max_shift bp) and reverse complement of training examples.
    max_shift: largest augmentation shift in bp.
    shuffle_buffer: examples in the shuffle buffer (0: no shuffling).
    seed: seed of shuffling, augmentation, initialisation and dropout.
    deterministic: reproducible runs: op determinism, ordered input, dropout reseeded at every
      checkpoint boundary, so a killed and resumed run equals an uninterrupted one.
    eval_every: validate every this many steps (and at the end).
    eval_batches: validation batches per evaluation (None: the whole validation subset).
    eval_batch_size: validation global batch size (None: batch_size).
    checkpoint_every: save a checkpoint every this many steps (and at the end).
    keep_checkpoints: how many recent checkpoints to keep.
    log_every: write training summaries every this many steps.
    export_hub: also export the best model as a TF-Hub-compatible SavedModel at the end.
    tpu: TPU name or address (TPUClusterResolver); None uses TF_CONFIG or local devices.
    progress: show a progress bar.
  """

  run_dir: str = 'runs/enformer'
  preset: str = 'paper'
  model_args: Dict[str, Any] = dataclasses.field(default_factory=dict)
  data: Dict[str, str] = dataclasses.field(default_factory=dict)
  data_layout: Optional[str] = None
  train_subset: str = 'train'
  valid_subset: str = 'valid'
  batch_size: int = 64
  num_steps: int = 150_000
  learning_rate: float = 5e-4
  warmup_steps: int = 5_000
  clip_norm: float = 0.2
  adam_beta1: float = 0.9
  adam_beta2: float = 0.999
  adam_epsilon: float = 1e-8
  precision: str = 'float32'
  recompute: bool = False
  augment: bool = True
  max_shift: int = 3
  shuffle_buffer: int = 256
  seed: int = 42
  deterministic: bool = False
  eval_every: int = 1_000
  eval_batches: Optional[int] = None
  eval_batch_size: Optional[int] = None
  checkpoint_every: int = 1_000
  keep_checkpoints: int = 5
  log_every: int = 10
  export_hub: bool = True
  tpu: Optional[str] = None
  progress: bool = True

  def __post_init__(self):
    self.validate()

  def validate(self) -> None:
    """Raises ValueError naming the first invalid setting and how to fix it."""
    positive = (
        'batch_size',
        'num_steps',
        'eval_every',
        'checkpoint_every',
        'keep_checkpoints',
        'log_every',
    )
    for name in positive:
      if int(getattr(self, name)) <= 0:
        raise ValueError(f'{name} must be a positive integer, got {getattr(self, name)}.')
    for name in ('warmup_steps', 'max_shift', 'shuffle_buffer'):
      if int(getattr(self, name)) < 0:
        raise ValueError(f'{name} must be ≥ 0, got {getattr(self, name)}.')
    if not self.learning_rate > 0:
      raise ValueError(f'learning_rate must be > 0, got {self.learning_rate}.')
    if not self.clip_norm > 0:
      raise ValueError(f'clip_norm must be > 0, got {self.clip_norm}.')
    if self.precision not in PRECISIONS:
      raise ValueError(f'precision must be one of {PRECISIONS}, got {self.precision!r}.')
    for name in ('eval_batches', 'eval_batch_size'):
      value = getattr(self, name)
      if value is not None and int(value) <= 0:
        raise ValueError(f'{name} must be positive or None, got {value}.')
    if not isinstance(self.model_args, Mapping):
      raise ValueError(
          f'model_args must be a mapping of Enformer arguments, got {self.model_args!r}.'
      )
    if not isinstance(self.data, Mapping):
      raise ValueError(f'data must map head name → data folder, got {self.data!r}.')

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> 'TrainConfig':
    """Builds a config; unknown keys raise a ValueError listing the valid ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
      raise ValueError(f'Unknown training setting(s) {unknown}. Valid settings: {sorted(names)}.')
    return cls(**dict(values))

  def replace(self, **changes: Any) -> 'TrainConfig':
    return self.from_dict({**self.to_dict(), **changes})


def read_config_file(path: Union[str, os.PathLike]) -> Dict[str, Any]:
  """Reads training settings from a JSON (.json) or YAML (.yaml / .yml) file."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'Config file {path} does not exist.')
  with open(path) as f:
    text = f.read()
  if path.endswith(('.yaml', '.yml')):
    values = yaml.safe_load(text)
  else:
    try:
      values = json.loads(text)
    except json.JSONDecodeError as error:
      raise ValueError(f'{path} is not valid JSON ({error}); use .yaml/.yml for YAML.') from None
  if values is None:
    return {}
  if not isinstance(values, dict):
    raise ValueError(f'{path} must hold a mapping of settings, got {type(values).__name__}.')
  return values


def resolve_config(file: Optional[Union[str, os.PathLike]] = None, **overrides: Any) -> TrainConfig:
  """Defaults, updated by a config file, updated by `overrides` (None values are ignored)."""
  values: Dict[str, Any] = read_config_file(file) if file else {}
  for key, value in overrides.items():
    if value is None:
      continue
    if key == 'model_args' and isinstance(value, Mapping):
      values['model_args'] = {**values.get('model_args', {}), **value}
    else:
      values[key] = value
  return TrainConfig.from_dict(values)


def save_resolved(
    config: TrainConfig, model_config: Mapping[str, Any], strategy_description: str
) -> str:
  """Writes config.json (settings, resolved model architecture, strategy) into the run folder.

  If the folder already holds a config (a resume), settings other than RESUMABLE_CHANGES must be
  equal, otherwise the run would silently change what it trains.
  """
  os.makedirs(config.run_dir, exist_ok=True)
  path = os.path.join(config.run_dir, CONFIG_FILE)
  record = {
      'train': config.to_dict(),
      'model_config': dict(model_config),
      'strategy': strategy_description,
  }
  if os.path.exists(path):
    previous = read_json(path, 'the run configuration')
    changed = _changed_settings(previous, record)
    if changed:
      raise ValueError(
          f'{config.run_dir} holds a run with different settings ({"; ".join(changed)}). '
          'Resume with the same settings or choose a new `run_dir`.'
      )
  with atomic_open(path, 'w') as f:
    json.dump(record, f, indent=2, sort_keys=True)
  return path


def _changed_settings(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list:
  changed = []
  before, after = previous.get('train', {}), current['train']
  for key in sorted(set(before) | set(after)):
    if key in RESUMABLE_CHANGES or key == 'run_dir':
      continue
    if before.get(key) != after.get(key):
      changed.append(f'{key}: {before.get(key)!r} → {after.get(key)!r}')
  if previous.get('model_config') != current['model_config']:
    changed.append(f'model: {previous.get("model_config")} → {current["model_config"]}')
  return changed
