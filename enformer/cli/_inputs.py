"""Checks of a subcommand's inputs and outputs before TensorFlow and the model are loaded.

Each subcommand calls these first, so a missing, empty, unreadable or wrong-kind file is reported
in a fraction of a second, not after the model has loaded.
"""

import errno
import glob
import os
import re
from typing import Iterable, Optional

from enformer.io.files import check_input_file, check_input_folder, check_output_path, read_json


def is_remote(handle: str) -> bool:
  """A URL (TF-Hub, gs://, s3://) rather than a local path."""
  return bool(re.match(r'^[a-z][a-z0-9+.-]*://', handle))


def check_model(model: str, flag: str = '--model', *, run_folder: bool = False) -> None:
  """A local --model is a SavedModel folder, a checkpoint (folder or prefix) or, with
  `run_folder`, a training run folder (config.json); URLs are checked when loaded."""
  if is_remote(model):
    return
  if os.path.isfile(model + '.index'):  # A checkpoint prefix.
    check_input_file(model + '.index', flag)
    return
  if not os.path.exists(model):
    raise FileNotFoundError(errno.ENOENT, f'{flag} {model} does not exist (neither a folder nor '
                            'a checkpoint prefix with .index); check the path', model)
  if os.path.isfile(model):
    if model.endswith('.index'):
      return
    raise ValueError(f'{flag} {model} is a file; pass a SavedModel folder, a checkpoint folder '
                     'or prefix (the path without .index), or a TF-Hub URL.')
  check_input_folder(model, flag)
  saved_model = os.path.join(model, 'saved_model.pb')
  if os.path.exists(saved_model):
    if os.path.getsize(saved_model) == 0:
      raise ValueError(f'{flag} {model}: saved_model.pb is empty (an interrupted export or '
                       'copy); export or copy the model again.')
    return
  if run_folder and os.path.exists(os.path.join(model, 'config.json')):
    return
  if os.path.exists(os.path.join(model, 'checkpoint')) or glob.glob(
      os.path.join(glob.escape(model), '*.index')):
    return
  what = 'a training run folder (config.json), ' if run_folder else ''
  raise ValueError(f'{flag} {model} is neither {what}a SavedModel folder (saved_model.pb) nor a '
                   'checkpoint folder (checkpoint / *.index); for TF-Hub pass the handle URL, '
                   'e.g. https://tfhub.dev/deepmind/enformer/1.')


def check_data_folder(path: str, flag: str = '--data') -> None:
  """A local Basenji2 data folder exists and its statistics.json (if any) is readable JSON."""
  if is_remote(path):
    return
  check_input_folder(path, flag)
  statistics = os.path.join(path, 'statistics.json')
  if os.path.exists(statistics):
    check_input_file(statistics, f'{flag} {path}:')
    read_json(statistics)


def check_files(*specs) -> None:
  """check_input_file for each (path, flag, kind) whose path is set."""
  for path, flag, kind in specs:
    if path:
      check_input_file(path, flag, kind=kind)


def check_many(paths: Optional[Iterable[str]], flag: str, kind: Optional[str] = None) -> None:
  for path in paths or ():
    check_input_file(path, flag, kind=kind)


__all__ = ['check_data_folder', 'check_files', 'check_input_file', 'check_input_folder', 'check_many', 'check_model',
           'check_output_path', 'is_remote']
