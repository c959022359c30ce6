"""What a model path names, read from the files alone (no TensorFlow): the one definition of the
model sources that `enformer.load_model` takes, used by the loader and by the command line's
input checks alike.

    resolve_model_source('runs/a:latest')   # ModelSource('run', 'runs/a', choice='latest')
    resolve_model_source('hub/')            # ModelSource('saved_model', 'hub/')
    resolve_model_source('ckpt/ckpt-3.index')  # ModelSource('checkpoint', 'ckpt/ckpt-3')

Sources: a URL (TF-Hub handle, gs://, s3://: checked when loaded), a SavedModel folder
(saved_model.pb), a Sonnet checkpoint (a prefix with its .index, the .index file itself, or a
folder holding one) and a training run folder of `enformer train` (config.json; `RUN` or
`RUN:best` for its best model, `RUN:latest` for its latest checkpoint). The file system functions
are parameters, so the loader can pass `tf.io.gfile`'s for gs:// paths.
"""

import dataclasses
import glob as glob_lib
import os
import re
from typing import Callable, List, Optional, Tuple

from enformer.io.files import content_identity, read_json

# The layout `enformer train` writes (enformer.training.config and .checkpointing; a test checks
# that the names agree).
RUN_CONFIG = 'config.json'
RUN_CHECKPOINTS = 'checkpoints'
RUN_BEST_CHECKPOINT = os.path.join('best', 'checkpoint', 'model')
RUN_BEST_HUB = os.path.join('best', 'hub')
RUN_CHOICES = ('best', 'latest')
SAVED_MODEL_FILE = 'saved_model.pb'

_URL = re.compile(r'^[a-z][a-z0-9+.-]*://')
_DATA_SHARD = re.compile(r'\.data-(\d+)-of-(\d+)$')


@dataclasses.dataclass(frozen=True)
class ModelSource:
  """A resolved model source.

  Attributes:
    kind: 'url', 'saved_model', 'checkpoint' (`path` is a prefix or a folder holding one) or
      'run' (a training run folder).
    path: the URL, folder or checkpoint prefix.
    choice: runs only: 'best' or 'latest'.
  """

  kind: str
  path: str
  choice: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class FileSystem:
  """The file system calls the checks need (local by default; `tf.io.gfile` for gs://)."""

  exists: Callable[[str], bool] = os.path.exists
  isdir: Callable[[str], bool] = os.path.isdir
  glob: Callable[[str], List[str]] = glob_lib.glob


LOCAL = FileSystem()


def is_url(source: str) -> bool:
  """A URL (https://, gs://, s3://, ...) rather than a local path."""
  return bool(_URL.match(os.fspath(source)))


def parse_run_folder(source: str, fs: FileSystem = LOCAL) -> Optional[Tuple[str, str]]:
  """(run folder, 'best' or 'latest') when `source` names a training run folder, else None.

  Raises:
    ValueError: `:best` / `:latest` after something that is not a run folder.
  """
  source = os.fspath(source)
  folder, choice = source, 'best'
  for suffix in RUN_CHOICES:
    if source.endswith(':' + suffix) and not fs.exists(source):
      folder, choice = source[: -len(suffix) - 1], suffix
  if fs.exists(os.path.join(folder, RUN_CONFIG)):
    return folder, choice
  if folder != source:
    raise ValueError(
        f'{source}: ":{choice}" chooses a checkpoint of a training run folder (one '
        f'with {RUN_CONFIG}, written by enformer train), and {folder} is not one.'
    )
  return None


_PRECISION = ' precision='


def join_model_id(handle: str, precision: str = 'float32') -> str:
  """A model's id in resume fingerprints and metadata: its handle, with ' precision=P' unless
  float32 (a bfloat16 run never resumes a float32 run's results)."""
  return handle + ('' if precision == 'float32' else f'{_PRECISION}{precision}')


def split_model_id(model_id: Optional[str]) -> Tuple[str, str]:
  """`join_model_id`'s id → (handle, precision; '' when the id names none)."""
  handle, _, precision = (model_id or '').partition(_PRECISION)
  return handle, precision


def model_identity(model_path: str) -> str:
  """Content identity of a model path for resume fingerprints ('' for none): the files' sizes and
  times (`enformer.io.files.content_identity`); a run folder's `RUN:latest` / `RUN:best` count by
  the run folder's files (its config and checkpoint indexes) and the choice."""
  if not model_path:
    return ''
  try:
    run = parse_run_folder(model_path)
  except ValueError:
    run = None
  if run is None:
    return content_identity(model_path)
  return f'{content_identity(run[0])}:{run[1]}'


def _escape(path: str) -> str:
  return glob_lib.escape(path)


def check_checkpoint_data(prefix: str, label: str, fs: FileSystem = LOCAL) -> None:
  """FileNotFoundError when the data files of a checkpoint prefix (.data-K-of-N) are missing."""
  shards = [m for m in (_DATA_SHARD.search(p) for p in fs.glob(_escape(prefix) + '.data-*')) if m]
  expected = {int(m.group(2)) for m in shards}
  present = {int(m.group(1)) for m in shards}
  if shards and len(expected) == 1 and present == set(range(expected.pop())):
    return
  where = os.path.basename(prefix)
  raise FileNotFoundError(
      f'{label}: the variables data ({where}.data-00000-of-00001 or its shards) beside '
      f'{prefix}.index is missing or incomplete; copy the whole model folder again (the .index '
      'file alone holds no weights).'
  )


def _checkpoint_prefixes(folder: str, fs: FileSystem) -> List[str]:
  return sorted(p[: -len('.index')] for p in fs.glob(os.path.join(_escape(folder), '*.index')))


def _latest_prefix(folder: str) -> Optional[str]:
  """The prefix named by a local checkpoint folder's 'checkpoint' file (None: none, unreadable)."""
  try:
    with open(os.path.join(folder, 'checkpoint'), encoding='utf-8') as handle:
      match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', handle.read(), re.M)
  except (OSError, UnicodeDecodeError):
    return None
  return os.path.join(folder, match.group(1)) if match else None


def resolve_model_source(
    source: str, label: Optional[str] = None, fs: FileSystem = LOCAL
) -> ModelSource:
  """What `source` names; one-line errors for local paths that are no model source.

  Args:
    source: a URL, a SavedModel folder, a checkpoint (prefix, .index file or folder) or a run
      folder (`RUN`, `RUN:best`, `RUN:latest`).
    label: how messages name the source (default: the path itself), e.g. '--model runs/a'.
    fs: file system calls (gs:// paths: pass tf.io.gfile's).

  Raises:
    FileNotFoundError: the path does not exist or holds no model, a run folder has no such
      checkpoint yet, or a checkpoint / SavedModel lacks its variables data.
    ValueError: a file that is no model source; an empty saved_model.pb; a run folder whose
      config.json is not valid JSON or has no model_config.
  """
  source = os.fspath(source)
  label = label or source
  if is_url(source) and not source.startswith('gs://'):
    return ModelSource('url', source)
  run = parse_run_folder(source, fs)
  if run is not None:
    return _resolve_run(*run, label, fs)
  if fs.exists(source + '.index') and not fs.isdir(source + '.index'):
    check_checkpoint_data(source, label, fs)
    return ModelSource('checkpoint', source)
  if not fs.exists(source):
    if source.startswith('gs://'):
      return ModelSource('url', source)  # Unreachable buckets are reported by the loader.
    raise FileNotFoundError(
        f'{label} does not exist (neither a SavedModel or checkpoint folder '
        'nor a checkpoint prefix with .index); check the path.'
    )
  if not fs.isdir(source):
    if source.endswith('.index'):
      check_checkpoint_data(source[: -len('.index')], label, fs)
      return ModelSource('checkpoint', source[: -len('.index')])
    raise ValueError(
        f'{label} is a file; pass a SavedModel folder, a checkpoint folder or prefix '
        '(the path without .index), a training run folder or a TF-Hub URL.'
    )
  saved_model = os.path.join(source, SAVED_MODEL_FILE)
  if fs.exists(saved_model):
    if not source.startswith('gs://') and os.path.getsize(saved_model) == 0:
      raise ValueError(
          f'{label}: {SAVED_MODEL_FILE} is empty (an interrupted export or copy); '
          'export or copy the model again.'
      )
    variables = os.path.join(source, 'variables', 'variables')
    if fs.exists(variables + '.index'):
      check_checkpoint_data(variables, label, fs)
    return ModelSource('saved_model', source)
  prefixes = _checkpoint_prefixes(source, fs)
  if fs.exists(os.path.join(source, 'checkpoint')) or prefixes:
    prefix = _latest_prefix(source) or (prefixes[0] if len(prefixes) == 1 else None)
    if prefix is not None and fs.exists(prefix + '.index'):
      check_checkpoint_data(prefix, label, fs)
    return ModelSource('checkpoint', source)
  raise FileNotFoundError(
      f'{label} is neither a SavedModel folder ({SAVED_MODEL_FILE}), a checkpoint folder '
      '(checkpoint / *.index) nor a training run folder (config.json); for TF-Hub pass the '
      'handle URL, e.g. https://tfhub.dev/deepmind/enformer/1.'
  )


def _resolve_run(folder: str, choice: str, label: str, fs: FileSystem) -> ModelSource:
  config = os.path.join(folder, RUN_CONFIG)
  if not folder.startswith('gs://'):  # The loader reads remote ones.
    record = read_json(config, f'{label}:')
    if not isinstance(record, dict) or 'model_config' not in record:
      raise ValueError(
          f'{label}: {config} has no model_config; not a run folder of enformer train.'
      )
  if choice == 'best':
    prefix = os.path.join(folder, RUN_BEST_CHECKPOINT)
    if not fs.exists(prefix + '.index'):
      raise FileNotFoundError(
          f'{label}: the run {folder} has no best model yet (validation has '
          f'not run); use {folder}:latest for its latest checkpoint.'
      )
    check_checkpoint_data(prefix, label, fs)
  else:
    checkpoints = os.path.join(folder, RUN_CHECKPOINTS)
    if not (
        fs.exists(os.path.join(checkpoints, 'checkpoint')) or _checkpoint_prefixes(checkpoints, fs)
    ):
      raise FileNotFoundError(
          f'{label}: the run {folder} has no checkpoint yet (in {RUN_CHECKPOINTS}/).'
      )
  return ModelSource('run', folder, choice)
