"""Complete-or-absent output files: write under a unique temporary name, rename when complete.

Every file a command writes (predictions.h5, bigWigs, bedGraphs, PNGs, .npz, sad.h5, TSV, JSON)
goes through `atomic_path` / `atomic_write` / `atomic_open`, so a run killed at any moment (kill -9,
full disk) leaves either the previous complete file or nothing under the final name, never a
half-written one. A full disk becomes `DiskFullError`: one line naming the path and the bytes
needed.

    with atomic_path('out/predictions.h5', expected_bytes=n) as temporary:
      with h5py.File(temporary, 'w') as h5: ...        # renamed to predictions.h5 on success
    with atomic_open('out/summary.json', 'w') as handle:
      json.dump(summary, handle)

Temporary names are unique per process and call (`.<name>.<host>-<pid>-<random>.tmp<ext>`, in the
same folder, keeping the extension so writers that infer the format from it still work);
temporaries left by killed processes of this host are removed by the next write of that file.
"""

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
from typing import Callable, IO, Iterator, Optional, Union

PathLike = Union[str, os.PathLike]

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_TEXT = re.compile(r'No space left on device|Disk quota exceeded|errno = 28\b', re.I)


class DiskFullError(OSError):
  """The file system of an output ran out of space (errno ENOSPC) while writing it."""


def is_disk_full(error: BaseException) -> bool:
  """Whether `error` (an OSError, or an h5py / pyBigWig error wrapping one) means a full disk."""
  if isinstance(error, DiskFullError):
    return True
  if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
    return True
  return bool(_DISK_FULL_TEXT.search(str(error)))


def free_bytes(path: PathLike) -> Optional[int]:
  """Free bytes on the file system holding `path` (or its nearest existing parent)."""
  folder = os.path.abspath(os.fspath(path))
  while folder and not os.path.exists(folder):
    folder = os.path.dirname(folder)
  try:
    return shutil.disk_usage(folder).free
  except OSError:
    return None


def _format_bytes(count: int) -> str:
  for unit in ('bytes', 'KiB', 'MiB', 'GiB', 'TiB'):
    if count < 1024 or unit == 'TiB':
      return f'{count} bytes' if unit == 'bytes' else f'{count:.1f} {unit}'
    count /= 1024
  return f'{count} bytes'


def disk_full_error(
    path: PathLike, needed: Optional[int] = None, written: Optional[int] = None
) -> DiskFullError:
  """The one-line error for a full disk while writing `path`."""
  path = os.fspath(path)
  free = free_bytes(path)
  parts = []
  if needed is not None:
    parts.append(f'it needs about {_format_bytes(needed)}')
  if written:
    parts.append(f'{_format_bytes(written)} were written before the disk filled')
  if free is not None:
    parts.append(f'{_format_bytes(free)} are free')
  detail = f' ({"; ".join(parts)})' if parts else ''
  return DiskFullError(
      errno.ENOSPC,
      f'No space left on the device to write {path}{detail}. Free '
      'some space or choose an output on another disk; files finished before '
      'were kept',
      path,
  )


def check_free_space(path: PathLike, needed: int) -> None:
  """Raises DiskFullError before writing when fewer than `needed` bytes are free for `path`."""
  free = free_bytes(path)
  if free is not None and needed > free:
    raise disk_full_error(path, needed=needed)


def temporary_name(path: PathLike) -> str:
  """A unique temporary path beside `path` that keeps its extension."""
  folder, name = os.path.split(os.path.abspath(os.fspath(path)))
  extension = _extension(name)
  token = f'{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}'
  return os.path.join(folder, f'.{name}.{token}.tmp{extension}')


def _extension(name: str) -> str:
  for double in ('.tsv.gz', '.bed.gz', '.vcf.gz', '.tar.gz'):
    if name.endswith(double):
      return double
  return os.path.splitext(name)[1]


def remove_stale_temporaries(path: PathLike) -> None:
  """Removes temporaries (files or folders) of `path` left by dead processes of this host."""
  folder, name = os.path.split(os.path.abspath(os.fspath(path)))
  pattern = re.compile(r'^\.' + re.escape(name) + r'\.(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]+\.tmp')
  try:
    entries = os.listdir(folder)
  except OSError:
    return
  host = socket.gethostname()
  for entry in entries:
    match = pattern.match(entry)
    if not match or match['host'] != host or _alive(int(match['pid'])):
      continue
    stale = os.path.join(folder, entry)
    if os.path.isdir(stale):
      shutil.rmtree(stale, ignore_errors=True)
    else:
      with contextlib.suppress(OSError):
        os.remove(stale)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _size(path: str) -> Optional[int]:
  try:
    return os.path.getsize(path)
  except OSError:
    return None


@contextlib.contextmanager
def atomic_path(path: PathLike, *, expected_bytes: Optional[int] = None) -> Iterator[str]:
  """Yields a temporary path to write; renames it to `path` once the block completes.

  On any error (or interruption) the temporary is removed and `path` is left as it was. An
  error that means a full disk is raised as `DiskFullError` naming `path`.

  Args:
    path: the final file path (its folder is created).
    expected_bytes: size of the output if known: checked against the free space first.
  """
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  if os.path.isdir(path):
    raise IsADirectoryError(
        errno.EISDIR,
        f'Cannot write the file {path}: a folder of that name '
        'exists. Remove it or choose another output name',
        path,
    )
  remove_stale_temporaries(path)
  if expected_bytes is not None:
    check_free_space(folder, expected_bytes)
  temporary = temporary_name(path)
  try:
    yield temporary
    if not os.path.exists(temporary):
      raise FileNotFoundError(errno.ENOENT, f'The writer of {path} wrote nothing', temporary)
    fsync_file(temporary)
    os.replace(temporary, path)
    _fsync_folder(folder)
  except BaseException as error:
    written = _size(temporary)
    with contextlib.suppress(OSError):
      os.remove(temporary)
    if (
        isinstance(error, Exception)
        and not isinstance(error, DiskFullError)
        and is_disk_full(error)
    ):
      raise disk_full_error(path, needed=expected_bytes, written=written) from error
    raise


def atomic_write(
    path: PathLike, write: Callable[[str], object], *, expected_bytes: Optional[int] = None
) -> str:
  """Calls write(temporary_path), then renames the temporary to `path`; returns `path`."""
  with atomic_path(path, expected_bytes=expected_bytes) as temporary:
    write(temporary)
  return os.fspath(path)


@contextlib.contextmanager
def atomic_open(
    path: PathLike, mode: str = 'w', *, expected_bytes: Optional[int] = None, **kwargs
) -> Iterator[IO]:
  """`open(path, mode)` for writing that renames into place when the block completes."""
  if not any(flag in mode for flag in 'wx'):
    raise ValueError(f'atomic_open writes whole files: mode must be "w" or "wb", got {mode!r}.')
  with atomic_path(path, expected_bytes=expected_bytes) as temporary:
    with open(temporary, mode.replace('x', 'w'), **kwargs) as handle:
      yield handle
      handle.flush()


def fsync_file(path: str) -> None:
  """Flushes a written file to disk (a full disk may only show here)."""
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError as error:
    if is_disk_full(error):
      raise
  finally:
    os.close(fd)


def _fsync_folder(folder: str) -> None:
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


@contextlib.contextmanager
def atomic_directory(path: PathLike, *, overwrite: bool = False) -> Iterator[str]:
  """Yields a temporary folder beside `path`; it replaces `path` once the block completes.

  A run killed midway leaves `path` as it was (plus a hidden temporary folder that the next run
  of this host removes). With an existing `path` and `overwrite=False`, FileExistsError;
  `overwrite=True` replaces the whole folder, so call it only on a folder that holds nothing
  but an earlier output (`enformer.io.outputs.check_replaceable_folder`). Hold an
  `enformer.io.lock.OutputLock` on `path` around this so no live process loses files.
  """
  path = os.path.abspath(os.fspath(path)).rstrip(os.sep)
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(
        errno.EEXIST,
        f'{path} already exists. Pass `overwrite` to replace it, or choose another output',
        path,
    )
  os.makedirs(os.path.dirname(path), exist_ok=True)
  remove_stale_temporaries(path)
  temporary = temporary_name(path)
  os.makedirs(temporary)
  try:
    yield temporary
    if os.path.exists(path):
      trash = temporary_name(path) + '.old'
      os.replace(path, trash)
      os.replace(temporary, path)
      shutil.rmtree(trash, ignore_errors=True)
    else:
      os.replace(temporary, path)
  except BaseException as error:
    shutil.rmtree(temporary, ignore_errors=True)
    if (
        isinstance(error, Exception)
        and not isinstance(error, DiskFullError)
        and is_disk_full(error)
    ):
      raise disk_full_error(path) from error
    raise
