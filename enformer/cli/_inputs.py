"""Checks of a subcommand's inputs and outputs before TensorFlow and the model are loaded.

Each subcommand calls these first, so a missing, empty, unreadable or wrong-kind file is reported
in a fraction of a second, not after the model has loaded.
"""

import os
from typing import Iterable, Optional, Sequence

from enformer.io import model_source
from enformer.io.files import check_input_file, check_input_folder, check_output_path, read_json


def is_remote(handle: str) -> bool:
  """A URL (TF-Hub, gs://, s3://) rather than a local path."""
  return model_source.is_url(handle)


def check_model(
    model: str,
    flag: str = '--model',
    *,
    kinds: Sequence[str] = ('url', 'saved_model', 'checkpoint', 'run'),
) -> None:
  """A --model is any source `load_model` takes (`enformer.io.model_source`, the one definition):
  a SavedModel folder, a checkpoint (folder, prefix or .index file), a training run folder (`RUN`,
  `RUN:best`, `RUN:latest`) or a URL (checked when loaded); `kinds` narrows that down."""
  if model_source.is_url(model):
    return
  source = model_source.resolve_model_source(model, label=f'{flag} {model}')
  if source.kind not in kinds:
    what = {'saved_model': 'a SavedModel', 'run': 'a training run folder'}[source.kind]
    raise ValueError(f'{flag} {model} is {what}; pass a checkpoint (folder or prefix).')
  if source.kind == 'run':
    return  # Its config.json and checkpoint were read by resolve_model_source.
  if os.path.isdir(source.path):
    check_input_folder(source.path, flag)
  else:
    check_input_file(source.path + '.index', flag)


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


__all__ = [
    'check_data_folder',
    'check_files',
    'check_input_file',
    'check_input_folder',
    'check_many',
    'check_model',
    'check_output_path',
    'is_remote',
]
