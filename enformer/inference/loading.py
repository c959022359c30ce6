"""Published weights in: `load_model` returns a `Predictor` for any model source.

`load_model` takes any of
  * a TF-Hub handle or URL (`https://tfhub.dev/deepmind/enformer/1`), downloaded into
    `$TFHUB_CACHE_DIR` by tensorflow_hub;
  * a local SavedModel folder (DeepMind's downloaded hub module, or one written by
    `export_hub_module`): `hub.load(path).model.predict_on_batch(x)`;
  * a Sonnet checkpoint written with `tf.train.Checkpoint(module=model)` (DeepMind's
    `sonnet_weights`), as a folder or a prefix, on local disk or any `tf.io.gfile` path (gs://);
  * a run folder of `enformer train` (`RUN` or `RUN:best`: its best model, `RUN:latest`: its
    latest checkpoint), with the architecture and input length the run stored;
and returns a `Predictor`: `predict_on_batch(x [B, L, C]) -> {head: [B, T, N] numpy}` in graph mode.

Checkpoints are verified variable by variable before restoring (`enformer.inference.checkpoints`),
so a wrong configuration never silently leaves random weights: the error lists the offending names
and shapes and the configuration the checkpoint was written for.
"""

import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import tensorflow as tf
import tensorflow_hub as hub

from enformer.enformer import SEQUENCE_LENGTH, Enformer
from enformer.inference.export import (
    CONFIG_FILENAME,
    read_export_metadata,
    restore_exported_variables,
)
from enformer.inference.checkpoints import (
    checkpoint_prefix,
    checkpoint_root,
    infer_config,
    restore_checkpoint,
)
from enformer.inference.predictor import Predictor
from enformer.io import model_source
from enformer.io.files import parse_json
from enformer.io.model_source import (
    RUN_BEST_CHECKPOINT,
    RUN_BEST_HUB,
    RUN_CHECKPOINTS,
    RUN_CHOICES,
    RUN_CONFIG,
)

# The file system of every source the loader reads (local paths and gs:// alike).
_GFILE = model_source.FileSystem(
    exists=tf.io.gfile.exists, isdir=tf.io.gfile.isdir, glob=tf.io.gfile.glob
)


def _load_checkpoint(
    path: str,
    sequence_length: Optional[int],
    config: Dict[str, Any],
    fast: bool = True,
    precision: str = 'float32',
) -> Predictor:
  if 'input_channels' not in config:  # One-hot + extra tracks: the stem's depth says how many.
    try:
      shape_map = tf.train.load_checkpoint(checkpoint_prefix(path)).get_variable_to_shape_map()
      config = {
          **config,
          'input_channels': int(
              infer_config(shape_map, checkpoint_root(shape_map))['input_channels']
          ),
      }
    except (tf.errors.OpError, RuntimeError, ValueError, KeyError):
      pass  # An unreadable or foreign checkpoint: `restore_checkpoint` says what is wrong.
  model = Enformer(**config)
  prefix = restore_checkpoint(model, path)
  predictor = Predictor.from_module(model, sequence_length, fast=fast, precision=precision)
  predictor.source = f'checkpoint {prefix}'
  return predictor


def _signature_shapes(predict_fn) -> Tuple[tf.TensorShape, Dict[str, tf.TensorShape]]:
  """(input shape, {head: output shape}) of a restored predict_on_batch tf.function."""
  concrete = (
      predict_fn.concrete_functions[0]
      if hasattr(predict_fn, 'concrete_functions')
      else predict_fn.get_concrete_function()
  )
  args, _ = concrete.structured_input_signature
  outputs = concrete.structured_outputs
  return args[0].shape, {k: v.shape for k, v in outputs.items()}


def _is_url(handle: str) -> bool:
  return bool(re.match(r'^(https?|gs|s3)://', handle))


def _first_line(text: str) -> str:
  lines = [line.strip() for line in str(text).splitlines() if line.strip()]
  return lines[0][:300] if lines else ''


def _hub_load(handle: str):
  if not _is_url(handle):
    saved_model = os.path.join(handle, 'saved_model.pb')
    if tf.io.gfile.exists(saved_model) and tf.io.gfile.stat(saved_model).length == 0:
      raise ValueError(
          f'{saved_model} is empty (an interrupted export or copy); export or copy '
          'the model again.'
      )
  try:
    return hub.load(handle)
  except Exception as error:  # Network, cache and format errors alike: one clear message.
    reason = _first_line(str(error)) or type(error).__name__
    if not _is_url(handle):
      raise ValueError(
          f'Could not read the SavedModel in {handle} ({type(error).__name__}: {reason}); it may '
          'be truncated or from an interrupted export: export or copy it again.'
      ) from None
    raise ValueError(
        f'Could not load the TF-Hub model {handle!r} ({type(error).__name__}: {reason}). '
        'Offline? Download the module once where there is internet and either pass its local '
        'folder (the one holding saved_model.pb) or set TFHUB_CACHE_DIR to the cache folder that '
        'holds it.'
    ) from None


def _load_saved_model(
    handle: str, config: Dict[str, Any], fast: bool = True, precision: str = 'float32'
) -> Predictor:
  metadata = (
      None if _is_url(handle) and not handle.startswith('gs://') else (read_export_metadata(handle))
  )
  if metadata is not None:
    # Written by export_hub_module: rebuild the Sonnet module from the stored config and restore
    # the SavedModel's variables into it (one copy of the weights; `model` available).
    model = Enformer(**{**metadata['config'], **config})
    restore_exported_variables(model, handle)
    predictor = Predictor.from_module(
        model,
        metadata['sequence_length'],
        metadata['model_sequence_length'],
        fast=fast,
        precision=precision,
    )
    predictor.source = f'SavedModel {handle}'
    return predictor
  if config:
    raise ValueError(
        f'{handle} is a SavedModel without {CONFIG_FILENAME}: its architecture '
        f'is fixed, so config arguments ({", ".join(config)}) cannot apply.'
    )
  if precision != 'float32':
    raise ValueError(
        f'precision={precision!r} needs the Sonnet module, but {handle} is a '
        "SavedModel without it (e.g. DeepMind's TF-Hub module), which runs its own "
        'float32 graph. Load the Sonnet checkpoint instead, or use float32.'
    )
  loaded = _hub_load(handle)
  predict_fn = getattr(getattr(loaded, 'model', None), 'predict_on_batch', None)
  if predict_fn is None:
    raise ValueError(
        f'{handle} is a SavedModel without model.predict_on_batch: not an Enformer '
        'TF-Hub module (export one with enformer.export_hub_module).'
    )
  input_shape, output_shapes = _signature_shapes(predict_fn)
  heads = {k: int(s[-1]) for k, s in output_shapes.items()}
  output_length = {int(s[1]) for s in output_shapes.values() if s[1] is not None}
  if len(output_length) != 1 or input_shape[1] is None:
    raise ValueError(
        f'Cannot tell the input length and output bins of {handle} from its '
        f'signature (input {input_shape}, outputs {output_shapes}).'
    )
  sequence_length = int(input_shape[1])
  return Predictor(
      predict_fn,
      sequence_length=sequence_length,
      heads=heads,
      output_length=output_length.pop(),
      input_channels=int(input_shape[2]),
      model=None,
      model_sequence_length=min(sequence_length, SEQUENCE_LENGTH),
      source=f'TF-Hub module {handle}',
      differentiable=loaded,
  )


# --------------------------------------------------------------------------- training run folders


def parse_run_folder(source: str) -> Optional[Tuple[str, str]]:
  """(run folder, 'best' or 'latest') when `source` names a training run folder, else None.

  A run folder holds the config.json that `enformer train` writes. `RUN` and `RUN:best` choose
  its best model by validation, `RUN:latest` its latest checkpoint.

  Raises:
    ValueError: `:best`/`:latest` after something that is not a run folder.
  """
  return model_source.parse_run_folder(source, _GFILE)


def _run_sequence_length(folder: str, record: Mapping[str, Any]) -> Optional[int]:
  """Input length a run trained on: its export's, else its data's statistics.json."""
  metadata = read_export_metadata(os.path.join(folder, RUN_BEST_HUB))
  if metadata is not None:
    return int(metadata['model_sequence_length'])
  for data in (record.get('train', {}).get('data') or {}).values():
    path = os.path.join(str(data), 'statistics.json')
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path, 'rb') as handle:
        return int(parse_json(handle.read(), path)['seq_length'])
  return None


def resolve_run_folder(
    folder: str, choice: str = 'best'
) -> Tuple[str, Dict[str, Any], Optional[int]]:
  """(checkpoint prefix, Enformer config, training input length or None) of a run folder.

  Args:
    folder: a run folder of `enformer train` (config.json, checkpoints/, best/).
    choice: 'best' (the best model by validation) or 'latest' (the latest checkpoint).
  """
  if choice not in RUN_CHOICES:
    raise ValueError(f'Choose the best or latest checkpoint of a run folder, got {choice!r}.')
  with tf.io.gfile.GFile(os.path.join(folder, RUN_CONFIG), 'rb') as handle:
    record = parse_json(handle.read(), os.path.join(folder, RUN_CONFIG))
  if 'model_config' not in record:
    raise ValueError(
        f'{os.path.join(folder, RUN_CONFIG)} has no model_config: not a run folder '
        'of enformer train.'
    )
  if choice == 'best':
    prefix = os.path.join(folder, RUN_BEST_CHECKPOINT)
    if not tf.io.gfile.exists(prefix + '.index'):
      raise FileNotFoundError(
          f'{folder} has no best model yet (validation has not run); use '
          f'{folder}:latest for its latest checkpoint.'
      )
  else:
    prefix = tf.train.latest_checkpoint(os.path.join(folder, RUN_CHECKPOINTS))
    if prefix is None:
      raise FileNotFoundError(f'{folder} has no checkpoint yet (in {RUN_CHECKPOINTS}/).')
  return prefix, dict(record['model_config']), _run_sequence_length(folder, record)


def checkpoint_input_channels(source: str) -> Optional[int]:
  """Input depth of a checkpoint or run folder (4 + extra tracks); None for other sources."""
  try:
    resolved = model_source.resolve_model_source(source, fs=_GFILE)
    if resolved.kind == 'run':
      return int(resolve_run_folder(resolved.path, resolved.choice)[1].get('input_channels', 4))
    if resolved.kind != 'checkpoint':
      return None
    shape_map = tf.train.load_checkpoint(
        checkpoint_prefix(resolved.path)
    ).get_variable_to_shape_map()
    return int(infer_config(shape_map, checkpoint_root(shape_map))['input_channels'])
  except (FileNotFoundError, ValueError, tf.errors.OpError):
    return None  # Not readable here; load_model explains.


def load_model(
    handle_or_path: str,
    sequence_length: Optional[int] = None,
    *,
    fast: bool = True,
    precision: str = 'float32',
    **config: Any,
) -> Predictor:
  """Loads Enformer from a TF-Hub handle, a SavedModel, a checkpoint or a training run folder.

  Args:
    handle_or_path: `https://tfhub.dev/deepmind/enformer/1` (or another hub URL), a local or
      gfile SavedModel folder, a checkpoint folder / prefix (local or gs://), or a run folder of
      `enformer train`: `RUN` or `RUN:best` (its best model), `RUN:latest` (latest checkpoint).
    sequence_length: checkpoints only: input length of the predictor (default 196,608; run
      folders: the length they trained on). SavedModels define their own (393,216 for
      DeepMind's module): for them, a different value is an error (ValueError).
    fast: when the Sonnet module is available (checkpoints, exports of this package), predict
      with the fused forward of `enformer.inference.fast` (equal within 1e-5 relative); False: the
      reference op sequence. DeepMind's hub module always runs its own saved graph.
    precision: 'float32' (default) or 'bfloat16' (fast path with the Sonnet module only; see
      `Predictor.from_module`).
    **config: checkpoints: `Enformer` constructor arguments (default: the published full-size
      model); run folders and SavedModels written by `export_hub_module`: overrides of their
      stored config.

  Returns:
    A Predictor.

  Raises:
    ValueError: unreachable handle, or a checkpoint that does not fit `config` (the message says
      which config would fit).
    FileNotFoundError: a local path that does not exist.
  """
  handle = os.fspath(handle_or_path)
  try:  # The one definition of the sources (shared with the command line's input checks).
    source = model_source.resolve_model_source(handle, fs=_GFILE)
  except tf.errors.OpError as error:  # gs:// unreachable (offline, no credentials).
    raise ValueError(
        f'Could not reach {handle} ({type(error).__name__}: '
        f'{_first_line(error.message)}). Offline? Copy the model to a local '
        'folder and pass that folder.'
    ) from None
  if source.kind == 'run':
    prefix, run_config, run_length = resolve_run_folder(source.path, source.choice)
    predictor = _load_checkpoint(
        prefix, sequence_length or run_length, {**run_config, **config}, fast, precision
    )
    predictor.source = f'run {source.path} ({source.choice}: {prefix})'
    return predictor
  if source.kind == 'saved_model':
    return _check_saved_model_length(
        _load_saved_model(handle, config, fast, precision), sequence_length
    )
  if source.kind == 'checkpoint':
    return _load_checkpoint(source.path, sequence_length, config, fast, precision)
  if config:
    raise ValueError(
        'Model config arguments only apply to checkpoints; a TF-Hub module defines '
        'its own architecture and input length.'
    )
  return _check_saved_model_length(_load_saved_model(handle, {}, fast, precision), sequence_length)


def _check_saved_model_length(predictor: Predictor, sequence_length: Optional[int]) -> Predictor:
  """`predictor` of a SavedModel; ValueError when `sequence_length` is given and differs.

  A SavedModel defines its own input length (and the length its network sees, after a centre
  crop): a different requested length cannot apply, and ignoring it would predict other
  windows than asked for.
  """
  lengths = {predictor.sequence_length, predictor.model_sequence_length}
  if sequence_length is not None and int(sequence_length) not in lengths:
    seen = (
        ''
        if predictor.model_sequence_length == predictor.sequence_length
        else f', of which its network sees the centre {predictor.model_sequence_length:,} bp'
    )
    raise ValueError(
        f'{predictor.source} takes {predictor.sequence_length:,} bp inputs{seen}; '
        f'a SavedModel defines its own input length, so sequence_length='
        f'{int(sequence_length):,} cannot apply. Leave it out, or load the '
        'checkpoint the SavedModel was exported from at that length.'
    )
  return predictor
