"""Output folders that record what they hold: `overwrite` removes only a command's own files.

A command that writes into a folder (predict, attribute, evaluate) opens it as an `OutputFolder`.
Every file it writes is first recorded in the folder's manifest, `.enformer-outputs.json` (hidden,
beside the outputs), under the command's name. The one rule for an output folder:

  * a folder that holds files (hidden entries do not count) is refused unless `overwrite`;
  * `overwrite` removes only the files the manifest records for the same command (its earlier
    outputs), never others: the user's FASTA, models or another command's outputs stay;
  * a file this command did not write is never replaced: claiming its name is refused.

    folder = OutputFolder('out', 'predict', overwrite=True)  # removes predict's earlier outputs
    path = folder.claim('predictions.h5')                     # recorded, then written by the caller

`check_output_folder` runs the same checks without changing anything (a command line checks its
--out before loading a model). A command whose output is a whole folder (a SavedModel) uses
`check_replaceable_folder`: with `overwrite` it may replace only a folder of its own entries.

Hold an `enformer.io.lock.OutputLock` on the folder around all of this and the writing that
follows, so no live process loses files.
"""

import errno
import json
import os
import shutil
from typing import Collection, Dict, Iterable, List, Optional, Union

from enformer.io.atomic import atomic_open

PathLike = Union[str, os.PathLike]

MANIFEST = '.enformer-outputs.json'
_VERSION = 1
# An export of this package (`enformer.inference.export`): a SavedModel folder and its config.
EXPORT_CONFIG = 'enformer_config.json'
EXPORT_ENTRIES = (
    'saved_model.pb',
    'fingerprint.pb',
    'variables',
    'assets',
    'keras_metadata.pb',
    EXPORT_CONFIG,
)


def visible_entries(path: PathLike) -> List[str]:
  """Sorted entries of folder `path` that are not hidden (temporaries and the manifest are)."""
  try:
    return sorted(e for e in os.listdir(path) if not e.startswith('.'))
  except FileNotFoundError:
    return []


def _shown(entries: List[str]) -> str:
  return ', '.join(entries[:3]) + (', ...' if len(entries) > 3 else '')


def read_manifest(path: PathLike) -> Dict[str, List[str]]:
  """Command → entries (relative names) recorded in the manifest of folder `path` ({} if none).

  An unreadable or malformed manifest counts as empty: then nothing is known to be a command's
  own output, so nothing is removed.
  """
  try:
    with open(os.path.join(path, MANIFEST), encoding='utf-8') as handle:
      data = json.load(handle)
    outputs = data['outputs']
    return {
        str(command): [str(name) for name in names]
        for command, names in outputs.items()
        if isinstance(names, list)
    }
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return {}


def _write_manifest(path: str, outputs: Dict[str, List[str]]) -> None:
  with atomic_open(os.path.join(path, MANIFEST), 'w', encoding='utf-8') as handle:
    json.dump({'version': _VERSION, 'outputs': outputs}, handle, indent=1, sort_keys=True)


def _remove(path: str) -> None:
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path)
  elif os.path.lexists(path):
    os.remove(path)


def _folder_exists_error(path: str, entries: List[str], hint: str) -> FileExistsError:
  return FileExistsError(
      errno.EEXIST,
      f'{path} already holds files ({_shown(entries)}). Pass '
      f'{hint} to replace the outputs an earlier run of this command wrote '
      'there (other files are kept), or choose another output folder',
      path,
  )


def check_output_folder(
    path: PathLike, overwrite: bool = False, *, hint: str = '`overwrite`'
) -> None:
  """Raises what `OutputFolder` would raise for `path`, without changing anything.

  Args:
    path: the output folder (it need not exist).
    overwrite: whether the earlier outputs may be replaced.
    hint: how messages name the overwrite option (the argument `overwrite`, which the CLI's
      error boundary shows as the running command's flag).

  Raises:
    NotADirectoryError: `path` is a file.
    FileExistsError: `path` holds files and not `overwrite`.
  """
  path = os.fspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise NotADirectoryError(
        errno.ENOTDIR,
        f'{path} is a file, but an output folder is expected; choose a folder name',
        path,
    )
  entries = visible_entries(path)
  if entries and not overwrite:
    raise _folder_exists_error(path, entries, hint)


class OutputFolder:
  """An output folder of one command, its files recorded in the folder's manifest.

  Creating it checks the folder (see the module docstring), creates it, and with `overwrite`
  removes the entries the manifest records for `command`; every other file stays.
  """

  def __init__(
      self, path: PathLike, command: str, *, overwrite: bool = False, hint: str = '`overwrite`'
  ):
    """
    Args:
      path: the output folder (created).
      command: whose outputs these are, e.g. 'predict' (the manifest key).
      overwrite: remove this command's earlier outputs; otherwise a folder holding files is
        refused.
      hint: how the caller names the overwrite option in messages.
    """
    self.path = os.fspath(path)
    self.command = command
    check_output_folder(self.path, overwrite, hint=hint)
    os.makedirs(self.path, exist_ok=True)
    self._outputs = read_manifest(self.path)
    # Removed before the manifest forgets them: a run killed midway removes the rest next time.
    for name in self._outputs.pop(command, []):
      try:
        _remove(self._resolve(name))
      except ValueError:  # A name outside the folder (an edited manifest): never removed.
        continue
    self._outputs[command] = []
    self._save()

  def _resolve(self, name: str) -> str:
    """The path of entry `name`; ValueError for names outside the folder."""
    normal = os.path.normpath(name)
    if os.path.isabs(normal) or normal == '.' or normal.startswith('..'):
      raise ValueError(f'Output name {name!r} is not a name inside {self.path}.')
    return os.path.join(self.path, normal)

  def _save(self) -> None:
    _write_manifest(self.path, {k: v for k, v in self._outputs.items() if v or k == self.command})

  @property
  def claimed(self) -> List[str]:
    """Names recorded as this command's outputs in this run, in order."""
    return list(self._outputs[self.command])

  def claim(self, name: str) -> str:
    """Records `name` (relative to the folder) as an output of this command; returns its path.

    Raises FileExistsError when a file of that name exists that this command did not write in
    this run (the user's, or another command's): it is never replaced.
    """
    path = self._resolve(name)
    name = os.path.relpath(path, self.path)
    mine = self._outputs[self.command]
    if name in mine:
      return path
    if os.path.lexists(path):
      owner = next((command for command, names in self._outputs.items() if name in names), None)
      whose = (
          f'an output of another command ({owner})' if owner else ('not an output of this command')
      )
      raise FileExistsError(
          errno.EEXIST,
          f'{path} exists and is {whose}; it is not replaced. '
          'Move it away or choose another output folder',
          path,
      )
    mine.append(name)
    self._save()
    return path

  def claim_all(self, names: Iterable[str]) -> List[str]:
    """`claim` for each of `names`; returns their paths."""
    return [self.claim(name) for name in names]


def check_replaceable_folder(
    path: PathLike,
    own_entries: Collection[str],
    *,
    marker: str,
    overwrite: bool = False,
    what: str = 'output',
    hint: str = '`overwrite`',
    hidden: bool = False,
) -> bool:
  """Checks an output that is a whole folder (e.g. a SavedModel) before it is (re)written.

  A missing or empty folder is fine. One that holds files is refused unless `overwrite`, and
  even then unless it is an earlier output of the same kind: it holds `marker` and nothing but
  `own_entries`, so replacing it loses no other file.

  Args:
    path: the output folder.
    own_entries: the entries such an output consists of.
    marker: the entry that marks the folder as one (e.g. the export's config JSON).
    overwrite: whether an earlier output may be replaced.
    what: what the folder is, for messages ('SavedModel').
    hint: how the caller names the overwrite option in messages.
    hidden: hidden entries count too (for an output replaced as a whole folder, which would
      lose them).

  Returns:
    Whether `path` holds an earlier output that will be replaced.
  """
  path = os.fspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise NotADirectoryError(
        errno.ENOTDIR,
        f'{path} is a file, but an output folder is expected; choose a folder name',
        path,
    )
  entries = sorted(os.listdir(path)) if hidden and os.path.isdir(path) else visible_entries(path)
  if not entries:
    return False
  foreign = [e for e in entries if e not in own_entries]
  if not overwrite:
    fix = (
        f'Pass {hint} to replace the {what} there, or choose a new folder'
        if marker in entries and not foreign
        else 'Choose a new folder'
    )
    raise FileExistsError(
        errno.EEXIST, f'{path} already holds files ({_shown(entries)}). {fix}', path
    )
  if foreign or marker not in entries:
    kept = foreign or entries
    raise FileExistsError(
        errno.EEXIST,
        f'{path} holds files that are not a {what} written by '
        f'this package ({_shown(kept)}); {hint} replaces only such a folder, '
        'so nothing else is lost. Choose a new folder',
        path,
    )
  return True


def check_export_folder(
    path: PathLike, overwrite: bool = False, *, hint: str = '`overwrite`'
) -> bool:
  """`check_replaceable_folder` for a SavedModel export folder (hidden entries count too)."""
  return check_replaceable_folder(
      path,
      EXPORT_ENTRIES,
      marker=EXPORT_CONFIG,
      overwrite=overwrite,
      what='SavedModel',
      hint=hint,
      hidden=True,
  )


def file_in_folder(path: PathLike, name: str) -> str:
  """`path` for a file output, or `path/name` when `path` names a folder: an existing one, or a
  path written with a trailing separator (`results/`), as the commands that write folders take."""
  path = os.fspath(path)
  if os.path.isdir(path) or path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
    return os.path.join(path, name)
  return path


def remove_entries(
    path: PathLike, names: Iterable[str], keep: Optional[Collection[str]] = None
) -> List[str]:
  """Removes the entries `names` of folder `path` (files or folders) that exist; returns them.

  For commands that know their outputs by name (e.g. the demo's step folders); `keep` names
  entries never removed.
  """
  removed = []
  for name in names:
    if keep and name in keep:
      continue
    entry = os.path.join(os.fspath(path), name)
    if os.path.lexists(entry):
      _remove(entry)
      removed.append(name)
  return removed
