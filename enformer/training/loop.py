"""`train(config)`: the training loop — distributed input, alternating heads, validation,
checkpoints with automatic resume, best-model export, TensorBoard summaries, progress bar.

Data: each head has a source of single examples {'sequence': [L, C_in], 'target': [T, N]} — by
default `enformer.data.get_dataset(config.data[head], ...)`, or a `tf.data.Dataset` (or a function
returning one) passed as `train_data` / `valid_data`. The loop repeats the training stream,
batches it to the global batch size and hands it to the strategy, which splits every global batch
across replicas (and shards it across workers).

Resume: on start, the latest checkpoint of `run_dir/checkpoints` is restored (model, optimizer,
step, learning rate, best score) and every head's data stream skips the batches it already
consumed, so with `deterministic=True` a killed and resumed run ends with the same weights as an
uninterrupted one. For that, dropout is reseeded at the start of every checkpoint interval
(tf.random.set_seed(seed, step) and a retrace), so the random stream after a checkpoint does not
depend on what ran before it.
"""

import contextlib
import dataclasses
import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import sonnet as snt
import tensorflow as tf
from tensorflow.core.framework import summary_pb2
from tqdm.auto import tqdm

from enformer.models import build_model
from enformer.data import augment as augment_lib
from enformer.data import basenji
from enformer.data.errors import data_errors
from enformer.io.lock import OutputLock
from enformer.training import checkpointing
from enformer.training import config as config_lib
from enformer.training import freezing
from enformer.training import metrics as metrics_lib
from enformer.training import step as step_lib
from enformer.training import strategy as strategy_lib

DataSource = Union[tf.data.Dataset, Callable[[], tf.data.Dataset]]
VariableSelection = Union[None, str, Sequence[tf.Variable], Callable[[Any], Sequence[tf.Variable]]]
HISTORY_FILE = 'history.jsonl'


_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars')
).SerializeToString()


def write_scalar(name: str, value: float) -> None:
  """Writes a TensorBoard scalar to the default summary writer (no tensorboard package needed)."""
  tf.summary.write(name, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA)


class TrainingDivergedError(ValueError):
  """The loss became NaN or infinite; the run stopped, its last good checkpoint is kept."""


@dataclasses.dataclass
class TrainResult:
  """What `train` returns.

  Attributes:
    run_dir: the run folder.
    step: steps completed.
    model: the trained model (last step's weights).
    losses: (step, head, loss, gradient norm) of every step run in this call.
    validation: one record per evaluation and head: step, head, pearson_r, r2, nan_tracks.
    best: best.json contents (step, score, per-head means) or None.
    resumed_from: checkpoint the run resumed from (None: fresh start).
    steps_per_second: training throughput of this call (excluding the first step's tracing).
    strategy: description of the strategy.
  """

  run_dir: str
  step: int
  model: Any
  losses: List[tuple]
  validation: List[Dict[str, Any]]
  best: Optional[Dict[str, Any]]
  resumed_from: Optional[str]
  steps_per_second: float
  strategy: str

  @property
  def final_pearson_r(self) -> float:
    """Mean over heads of the last validation's mean Pearson R."""
    if not self.validation:
      return float('nan')
    last = max(r['step'] for r in self.validation)
    return float(np.nanmean([r['pearson_r'] for r in self.validation if r['step'] == last]))


def _as_factory(source: DataSource) -> Callable[[], tf.data.Dataset]:
  if isinstance(source, tf.data.Dataset):
    return lambda: source
  if callable(source):
    return source
  raise ValueError(
      f'A data source must be a tf.data.Dataset or a function returning one, got '
      f'{type(source).__name__}.'
  )


def _data_sources(
    config: config_lib.TrainConfig, subset: str, training: bool
) -> Dict[str, Callable[[], tf.data.Dataset]]:
  """Per-head example sources from config.data (Basenji2 folders via enformer.data)."""
  sources = {}
  for offset, (head, path) in enumerate(config.data.items()):
    settings = basenji.DatasetSettings(
        seed=config.seed + offset, deterministic=config.deterministic, prefetch=None
    )
    if training:
      augmentation = (
          augment_lib.Augmentation(max_shift=config.max_shift) if config.augment else False
      )
      settings = dataclasses.replace(
          settings, shuffle=config.shuffle_buffer or False, repeat=True, augment=augmentation
      )

    def source(path=path, settings=settings):
      return basenji.get_dataset(path, subset, layout=config.data_layout, settings=settings)

    sources[head] = source
  return sources


def heads_from_data(config: config_lib.TrainConfig) -> Dict[str, int]:
  return {
      head: basenji.load_info(basenji.resolve_path(path), config.data_layout).num_targets
      for head, path in config.data.items()
  }


def _select_variables(model, selection: VariableSelection) -> List[tf.Variable]:
  if selection is None:
    return list(model.trainable_variables)
  if isinstance(selection, str):
    return list(freezing.trainable_variables(model, selection))
  if callable(selection):
    return list(selection(model))
  return list(selection)


def _examples_consumed(step: int, head_index: int, num_heads: int) -> int:
  """Batches head `head_index` consumed in steps [0, step) when heads alternate."""
  return len(range(head_index, step, num_heads))


def _training_stream(
    source: Callable[[], tf.data.Dataset], global_batch: int, skip_batches: int
) -> tf.data.Dataset:
  dataset = source().repeat().batch(global_batch, drop_remainder=True)
  if skip_batches:
    dataset = dataset.skip(skip_batches)
  return dataset.prefetch(2)


def _check_sources(sources: Mapping[str, Callable[[], tf.data.Dataset]], model, kind: str):
  unknown = [h for h in sources if h not in model.heads]
  if unknown:
    raise ValueError(
        f'{kind} data for head(s) {unknown}, but the model has heads '
        f'{list(model.heads)}. Name data after model heads (e.g. `data` human=DIR).'
    )


def _sequence_length(source: Callable[[], tf.data.Dataset]) -> Optional[int]:
  spec = source().element_spec
  shape = spec['sequence'].shape
  return int(shape[0]) if shape.rank == 2 and shape[0] is not None else None


def _model_from_config(config: config_lib.TrainConfig, model_fn):
  if model_fn is not None:
    return model_fn()
  overrides = dict(config.model_args)
  if 'heads' not in overrides:
    if not config.data:
      raise ValueError(
          'Say which heads the model has: give data (head → folder) or '
          "model_args={'heads': {...}}."
      )
    overrides['heads'] = heads_from_data(config)
  return build_model(config.preset, **overrides)


def build_variables(model, strategy: tf.distribute.Strategy) -> None:
  """Creates the model's missing variables under `strategy` (call inside `strategy.scope()`).

  Cross-replica batch norm only runs in a replica context, so the cheap build pass runs through
  `strategy.run` (in a tf.function with eager variable creation on TPU, as Sonnet recommends).
  """
  if isinstance(strategy, tf.distribute.TPUStrategy):
    tf.function(
        snt.distribute.create_variables_eagerly(lambda: strategy.run(model.build_variables))
    )()
  else:
    strategy.run(model.build_variables)


def _check_model_in_scope(model, strategy: tf.distribute.Strategy) -> None:
  if strategy.num_replicas_in_sync == 1 and not isinstance(
      strategy, tf.distribute.MultiWorkerMirroredStrategy
  ):
    return
  outside = [v.name for v in model.variables if not strategy.extended.variable_created_in_scope(v)]
  if outside:
    raise ValueError(
        f'{len(outside)} model variables (e.g. {outside[0]}) were created outside the training '
        'strategy scope. Build (and restore) the model inside `strategy.scope()` of '
        '`enformer.training.get_strategy()` and pass that strategy, or pass model_fn=.'
    )


def validate(
    train_step: step_lib.TrainStep,
    sources: Mapping[str, Callable[[], tf.data.Dataset]],
    batch_size: int,
    max_batches: Optional[int] = None,
) -> Dict[str, Dict[str, object]]:
  """Distributed validation: per head, per-track Pearson R and R² over all (sequence, bin) pairs.

  Returns:
    head → `metrics.head_metrics(...)` (per-track arrays and NaN-aware means).
  """
  results = {}
  for head, source in sources.items():
    dataset = source().batch(batch_size)
    if max_batches:
      dataset = dataset.take(max_batches)
    correlation = metrics_lib.TrackCorrelation()
    with data_errors(f'the validation data of head {head}'):
      for batch in train_step.strategy.experimental_distribute_dataset(dataset):
        correlation.update(train_step.evaluate(batch, head))
    results[head] = metrics_lib.head_metrics(correlation)
  return results


def train(
    config: Union[config_lib.TrainConfig, Mapping[str, Any], None] = None,
    *,
    model=None,
    model_fn: Optional[Callable[[], Any]] = None,
    trainable_variables: VariableSelection = None,
    train_data: Optional[Mapping[str, DataSource]] = None,
    valid_data: Optional[Mapping[str, DataSource]] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    **overrides: Any,
) -> TrainResult:
  """Trains (or resumes training of) an Enformer; see the module docstring.

  Args:
    config: a TrainConfig, a mapping of its fields, or None (defaults); `overrides` update it,
      e.g. train(run_dir='runs/x', preset='tiny', num_steps=100, ...).
    model: a pre-built (e.g. pre-restored for fine-tuning) model. Under a multi-replica strategy
      it must have been built inside `strategy.scope()` (pass that `strategy`), or use model_fn.
    model_fn: builds the model; called inside the strategy scope.
    trainable_variables: what to train: None (all), a freeze choice of `enformer.training.freezing`
      ('trunk', 'heads-and-norms', 'none'), a list of variables, or a function model → list.
    train_data, valid_data: head → tf.data.Dataset (or function returning one) of single
      examples; default: read config.data with `enformer.data.get_dataset`.
    strategy: default `get_strategy(config.tpu)` (from the environment).

  Returns:
    TrainResult. Raises TrainingDivergedError (a ValueError) if the loss becomes NaN/Inf, and
    OutputLockedError if another live process trains into the same run folder.
  """
  if isinstance(config, config_lib.TrainConfig):
    config = config.replace(**overrides) if overrides else config
  else:
    config = config_lib.TrainConfig.from_dict({**dict(config or {}), **overrides})
  if model is not None and model_fn is not None:
    raise ValueError('Pass model or model_fn, not both.')
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  tf.random.set_seed(config.seed)
  strategy = strategy or strategy_lib.get_strategy(config.tpu)
  chief = strategy_lib.is_chief(strategy)
  # One live run per folder: the chief holds its lock (the other workers of its cluster write
  # only their own temporary checkpoint folders).
  lock = (
      OutputLock(config.run_dir, what=f'run folder {config.run_dir}')
      if chief
      else contextlib.nullcontext()
  )
  with lock:
    return _train(
        config, strategy, chief, model, model_fn, trainable_variables, train_data, valid_data
    )


def _train(
    config: config_lib.TrainConfig,
    strategy: tf.distribute.Strategy,
    chief: bool,
    model,
    model_fn: Optional[Callable[[], Any]],
    trainable_variables: VariableSelection,
    train_data: Optional[Mapping[str, DataSource]],
    valid_data: Optional[Mapping[str, DataSource]],
) -> TrainResult:
  """`train` once the run folder is locked."""

  train_sources = {h: _as_factory(s) for h, s in (train_data or {}).items()} or _data_sources(
      config, config.train_subset, training=True
  )
  valid_sources = (
      {h: _as_factory(s) for h, s in (valid_data or {}).items()}
      if train_data is not None
      else _data_sources(config, config.valid_subset, training=False)
  )
  if not train_sources:
    raise ValueError(
        'No training data: give `data` (head → Basenji2 folder, e.g. '
        'human=path/to/human) or `train_data`.'
    )

  with strategy.scope():
    if model is None:
      model = _model_from_config(config, model_fn)
    build_variables(model, strategy)
    _check_model_in_scope(model, strategy)
    learning_rate = tf.Variable(0.0, trainable=False, name='learning_rate')
    optimizer = step_lib.Adam(
        learning_rate=learning_rate,
        beta1=config.adam_beta1,
        beta2=config.adam_beta2,
        epsilon=config.adam_epsilon,
    )
    variables = _select_variables(model, trainable_variables)
    optimizer.initialize(variables)
    step_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    best_score = tf.Variable(-np.inf, dtype=tf.float64, trainable=False, name='best_score')
  _check_sources(train_sources, model, 'Training')
  _check_sources(valid_sources, model, 'Validation')

  config_lib.save_resolved(
      config, model.config, strategy_lib.describe_strategy(strategy)
  ) if chief else None
  checkpoints = checkpointing.RunCheckpoints(
      config.run_dir,
      config.keep_checkpoints,
      chief=chief,
      worker=strategy_lib.worker_id(strategy),
      module=model,
      optimizer=optimizer,
      step=step_variable,
      best_score=best_score,
  )
  resumed_from = checkpoints.restore_latest()
  start = int(step_variable.numpy())

  train_step = step_lib.TrainStep(
      model,
      optimizer,
      variables,
      strategy,
      config.batch_size,
      config.clip_norm,
      config.precision,
      config.recompute,
  )
  heads = list(train_sources)
  iterators = {
      head: iter(
          strategy.experimental_distribute_dataset(
              _training_stream(
                  train_sources[head], config.batch_size, _examples_consumed(start, i, len(heads))
              )
          )
      )
      for i, head in enumerate(heads)
  }

  if chief:
    train_writer = tf.summary.create_file_writer(os.path.join(config.run_dir, 'train'))
    valid_writer = tf.summary.create_file_writer(os.path.join(config.run_dir, 'valid'))
  else:
    train_writer = valid_writer = tf.summary.create_noop_writer()

  # The rate is the mean over the run (smoothing=0), from the end of the traced first steps.
  progress = tqdm(
      total=config.num_steps,
      initial=start,
      unit='step',
      dynamic_ncols=True,
      smoothing=0,
      disable=not (config.progress and chief),
      desc='train',
  )
  if resumed_from and chief:
    progress.write(f'Resumed from {resumed_from} (step {start}).')

  losses: List[tuple] = []
  validation: List[Dict[str, Any]] = []
  timed_steps, timed_seconds = 0, 0.0
  eval_batch_size = config.eval_batch_size or config.batch_size
  try:
    for step in range(start, config.num_steps):
      if config.deterministic and (step == start or step % config.checkpoint_every == 0):
        # Dropout's random stream restarts at every checkpoint boundary (see module docstring).
        tf.random.set_seed(config.seed * 1_000_003 + step)
        train_step.reset_functions()
      head = heads[step % len(heads)]
      lr = step_lib.learning_rate_at(step, config.learning_rate, config.warmup_steps)
      learning_rate.assign(lr)
      began = time.perf_counter()
      with data_errors(f'the training data of head {head}'):
        batch = next(iterators[head])
      loss, grad_norm = train_step.train(batch, head)
      loss, grad_norm = float(loss), float(grad_norm)
      if step > start:
        timed_steps += 1
        timed_seconds += time.perf_counter() - began
      if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        bad = _non_finite_features(strategy, batch)
        if bad:
          source = f' ({config.data[head]})' if head in config.data else ''
          raise TrainingDivergedError(
              f'The training data of head {head}{source} holds NaN or infinite values in '
              f'{" and ".join(repr(b) for b in bad)} of the batch of step {step} (loss {loss}): '
              'training stopped. Fix the data (targets must be finite and ≥ 0) and rerun; the '
              f'last good checkpoint is kept: {checkpoints.latest or "none saved"}.'
          )
        raise TrainingDivergedError(
            f'Loss {loss} / gradient norm {grad_norm} at step {step} (head {head}): training '
            f'stopped. The last good checkpoint is kept: {checkpoints.latest or "none saved"}. '
            'Check the data for NaN/huge targets, or lower `learning_rate` / `clip_norm`.'
        )
      step_variable.assign(step + 1)
      losses.append((step + 1, head, loss, grad_norm))
      progress.update(1)
      if step + 1 - start == len(heads):
        # Each head's first step traced its function: the rate (and ETA) starts after them.
        progress.reset(total=config.num_steps)
        progress.initial = progress.n = step + 1
      progress.set_postfix(head=head, loss=f'{loss:.4f}', lr=f'{lr:.2e}', refresh=False)
      if (step + 1) % config.log_every == 0:
        with train_writer.as_default(step=step + 1):
          write_scalar(f'loss/{head}', loss)
          write_scalar('learning_rate', lr)
          write_scalar('gradient_norm', grad_norm)
          if timed_seconds:
            write_scalar('steps_per_second', timed_steps / timed_seconds)

      last = step + 1 == config.num_steps
      if valid_sources and ((step + 1) % config.eval_every == 0 or last):
        results = validate(train_step, valid_sources, eval_batch_size, config.eval_batches)
        records = _validation_records(step + 1, results)
        validation.extend(records)
        _log_validation(config.run_dir, records, valid_writer, progress, chief)
        score = float(np.nanmean([r['pearson_r'] for r in records]))
        if math.isfinite(score) and score > float(best_score.numpy()):
          best_score.assign(score)
          checkpointing.export_best(
              model, config.run_dir, step + 1, {'score': score, 'heads': records}, chief=chief
          )
      if (step + 1) % config.checkpoint_every == 0 or last:
        checkpoints.save(step + 1)
  finally:
    progress.close()
    train_writer.flush()
    valid_writer.flush()

  if chief and config.export_hub and valid_sources:
    length = _sequence_length(next(iter(valid_sources.values())))
    if length:
      checkpointing.export_best_hub(model.config, config.run_dir, length)
  return TrainResult(
      run_dir=config.run_dir,
      step=int(step_variable.numpy()),
      model=model,
      losses=losses,
      validation=validation,
      best=checkpointing.read_best(config.run_dir),
      resumed_from=resumed_from,
      steps_per_second=timed_steps / timed_seconds if timed_seconds else float('nan'),
      strategy=strategy_lib.describe_strategy(strategy),
  )


def _non_finite_features(strategy: tf.distribute.Strategy, batch: Mapping[str, Any]) -> List[str]:
  """Names of the floating-point features of a (distributed) batch holding NaN or ±inf."""
  bad = []
  for name, value in batch.items():
    for part in strategy.experimental_local_results(value):
      if part.dtype.is_floating and not np.all(np.isfinite(part.numpy())):
        bad.append(name)
        break
  return bad


def _validation_records(step: int, results: Mapping[str, Mapping[str, Any]]) -> List[Dict]:
  return [
      {
          'step': step,
          'head': head,
          'pearson_r': m['pearson_r_mean'].mean,
          'r2': m['r2_mean'].mean,
          'nan_tracks': m['pearson_r_mean'].num_nan,
          'num_tracks': m['pearson_r_mean'].num_tracks,
      }
      for head, m in results.items()
  ]


def _log_validation(run_dir: str, records: List[Dict], writer, progress, chief: bool) -> None:
  with writer.as_default(step=records[0]['step']):
    for r in records:
      write_scalar(f'pearson_r/{r["head"]}', r['pearson_r'])
      write_scalar(f'r2/{r["head"]}', r['r2'])
      write_scalar(f'nan_tracks/{r["head"]}', r['nan_tracks'])
  if not chief:
    return
  with open(os.path.join(run_dir, HISTORY_FILE), 'a') as f:
    for r in records:
      f.write(json.dumps(r) + '\n')
  for r in records:
    nan = f', {r["nan_tracks"]} NaN track(s) skipped' if r['nan_tracks'] else ''
    progress.write(
        f'step {r["step"]} valid {r["head"]}: Pearson R {r["pearson_r"]:.4f}, '
        f'R² {r["r2"]:.4f} (mean over {r["num_tracks"] - r["nan_tracks"]} '
        f'tracks{nan})'
    )
