"""The CLI's error boundary: any failure becomes one line naming the file and the fix.

`describe(error, args)` turns an exception raised by a subcommand into `(message, known)`:
`known` marks failure classes of the user's inputs or environment (a missing, unreadable, empty,
truncated or corrupt file, a full disk, a held output lock, bad values, a worker killed for
memory) — the CLI prints `enformer CMD: error: MESSAGE` and exits 2. Anything else is a bug: one
line too, with a hint to rerun with --debug for the traceback (exit 1).

An error raised inside another library (a decoder, a parser) often names no file: the file being
read in the innermost traceback frame that holds one is named then ("... (in calls.vcf.gz)").
The package's own messages name what they need and get nothing added. A full disk is a full disk
whoever reports it (TensorFlow says RESOURCE_EXHAUSTED); a checkpoint that does not fit the
configuration gets its fix as --model-arg flags to paste.
"""

import argparse
import codecs
import concurrent.futures.process
import errno
import gzip
import json
import os
import re
import shlex
import sys
import types
import zlib
from typing import Dict, List, Optional, Tuple

from enformer.io.atomic import DiskFullError, is_disk_full
from enformer.io.lock import OutputLockedError

_ERRNO_FIX = {
    errno.ENOENT: 'check the path',
    errno.EACCES: 'check its permissions',
    errno.EPERM: 'check its permissions',
    errno.EISDIR: 'a folder was given where a file is expected',
    errno.ENOTDIR: 'a file was given where a folder is expected',
    errno.EROFS: 'the file system is read-only: choose another output',
    errno.EEXIST: 'choose another output or pass --overwrite',
}


def path_arguments(args: argparse.Namespace) -> Dict[str, str]:
  """{path: '--flag'} for every string argument of the command (each may be a file)."""
  found = {}
  for name, value in vars(args).items():
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
      if isinstance(item, tuple) and len(item) == 2:  # e.g. train --data HEAD=DIR
        item = item[1]
      if isinstance(item, str) and item and name not in ('command', 'func'):
        item = item.partition('=')[2] if '=' in item and not os.path.exists(item) else item
        if item:
          found.setdefault(item, '--' + name.replace('_', '-'))
  return found


def _frames(error: BaseException) -> List[types.FrameType]:
  """The frames of the error's traceback, innermost first."""
  frames = []
  traceback = error.__traceback__
  while traceback is not None:
    frames.append(traceback.tb_frame)
    traceback = traceback.tb_next
  return frames[::-1]


def _raised_by_the_package(error: BaseException) -> bool:
  """Whether the innermost frame is this package's code (its messages say what they need)."""
  frames = _frames(error)
  return bool(frames) and str(frames[0].f_globals.get('__name__', '')).startswith('enformer')


def _as_path(value) -> Optional[str]:
  """The path a frame local names: a path string, or the name of an open (or closed) file."""
  if isinstance(value, os.PathLike):
    value = os.fspath(value)
  elif not isinstance(value, (str, bytes)):
    try:  # Properties of closed files (h5py) or eager tensors may raise anything.
      value = getattr(value, 'name', None) or getattr(value, 'filename', None)
      if isinstance(value, os.PathLike):
        value = os.fspath(value)
    except Exception:  # pylint: disable=broad-except
      return None
  if isinstance(value, bytes):
    value = value.decode('utf-8', 'replace')
  if not isinstance(value, str) or not value or len(value) > 4096 or '\n' in value:
    return None
  return value


def _file_in_traceback(error: BaseException) -> Optional[str]:
  """The file being read where a third-party library raised `error`: the innermost frame's file
  object or path of an existing file (file objects first). None when the package raised it."""
  if _raised_by_the_package(error):
    return None
  for frame in _frames(error):
    values = list(frame.f_locals.values())
    ordered = [v for v in values if not isinstance(v, (str, bytes, os.PathLike))] + [
        v for v in values if isinstance(v, (str, bytes, os.PathLike))
    ]
    for value in ordered:
      path = _as_path(value)
      if path is not None and os.path.isfile(path):
        return path
  return None


def _output_in_traceback(error: BaseException, args: argparse.Namespace) -> Optional[str]:
  """'--flag path' of the innermost frame that holds one of the command's path arguments."""
  absolute = {}
  for path, flag in path_arguments(args).items():
    absolute[os.path.abspath(path).rstrip(os.sep)] = f'{flag} {path}'
  for frame in _frames(error):
    for value in list(frame.f_locals.values()):
      path = _as_path(value) if isinstance(value, (str, os.PathLike)) else None
      if path is not None and os.path.abspath(path).rstrip(os.sep) in absolute:
        return absolute[os.path.abspath(path).rstrip(os.sep)]
  return None


def _first_line(text: str) -> str:
  lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
  return lines[0] if lines else ''


def _os_error(error: OSError) -> str:
  """One line for an OSError, naming its file when it has one."""
  if error.filename is None or not error.strerror:
    return str(error).strip()
  fix = _ERRNO_FIX.get(error.errno)
  if os.fspath(error.filename) in error.strerror:  # Our own messages already name the file.
    return _first_line(error.strerror)
  target = os.fspath(error.filename)
  if error.filename2:
    target += f' → {os.fspath(error.filename2)}'
  text = f'{error.strerror}: {target}'
  return f'{text} ({fix})' if fix else text


def _tf_error(error) -> Optional[Tuple[str, bool]]:
  try:
    import tensorflow as tf  # Only when TensorFlow was loaded already.
  except ImportError:
    return None
  if not isinstance(error, tf.errors.OpError):
    return None
  message = _first_line(error.message)
  if isinstance(error, tf.errors.DataLossError):
    return f'corrupted or truncated file: {message}', True
  if isinstance(error, tf.errors.NotFoundError):
    return f'not found: {message}', True
  if isinstance(error, tf.errors.ResourceExhaustedError):
    return (
        f'out of memory: {message} (use a smaller --batch-size or a shorter --sequence-length)',
        True,
    )
  if isinstance(error, tf.errors.InvalidArgumentError):
    if re.search(r'\b(nan|inf)\b', message, re.I):
      return (
          f'non-finite values (NaN/Inf) reached the model: {message} (check the input data '
          'and the learning rate)',
          True,
      )
    return f'invalid input: {message}', True
  if isinstance(error, tf.errors.PermissionDeniedError):
    return f'permission denied: {message}', True
  return f'{type(error).__name__}: {message}', True


def describe(error: BaseException, args: argparse.Namespace) -> Tuple[str, bool]:
  """(one-line message, known failure class) for an error raised by a subcommand."""
  if isinstance(error, DiskFullError):
    return f'{error.strerror or error}.', True
  if isinstance(error, OutputLockedError):
    return _first_line(str(error)), True
  if is_disk_full(error):  # Whatever raised it: OSError, TensorFlow, h5py, pyBigWig.
    filename = getattr(error, 'filename', None)
    where = os.fspath(filename) if filename else _output_in_traceback(error, args)
    target = f' writing {where}' if where else ''
    return (
        f'No space left on the device{target}. Free some space or choose an output on '
        'another disk; files finished before were kept',
        True,
    )
  tf_result = _tf_error(error) if 'tensorflow' in sys.modules else None
  executor = sys.modules.get('enformer.distributed.executor')  # Loaded by the Dask runs only.
  if executor is not None and isinstance(error, executor.DistributedError):
    return _first_line(str(error)), True
  checkpoints = sys.modules.get('enformer.inference.checkpoints')  # Loaded with the model only.
  if checkpoints is not None and isinstance(error, checkpoints.CheckpointMismatchError):
    return _checkpoint_mismatch(error), True
  if tf_result is not None:
    message, known = tf_result
  elif isinstance(error, concurrent.futures.process.BrokenProcessPool):
    message, known = (
        'a worker process died unexpectedly (often: killed for lack of memory); '
        'use fewer --processes or a smaller --batch-size and rerun'
    ), True
  elif isinstance(error, MemoryError):
    message, known = 'out of memory: use a smaller --batch-size or fewer workers', True
  elif isinstance(error, json.JSONDecodeError):
    message, known = (
        f'malformed JSON ({error.msg} at line {error.lineno} column {error.colno})'
    ), True
  elif isinstance(error, UnicodeDecodeError):
    # Only the decoding of a user's text file as UTF-8 is the user's to fix; any other decoding
    # (e.g. of data the package wrote itself) is a bug.
    user_file = (
        codecs.lookup(error.encoding).name == 'utf-8' and _file_in_traceback(error) is not None
    )
    if user_file:
      message, known = (
          f'the file is not UTF-8 text (byte 0x{error.object[error.start]:02x} '
          f'at offset {error.start}); save it as UTF-8'
      ), True
    else:
      message, known = f'{type(error).__name__}: {_first_line(str(error))}', False
  elif isinstance(error, (EOFError, zlib.error, gzip.BadGzipFile)):
    detail = _first_line(str(error)) or type(error).__name__
    message, known = (
        f'truncated or corrupt compressed file ({detail}); download or write it again'
    ), True
  elif isinstance(error, OSError):
    message, known = _os_error(error), True
  elif isinstance(error, KeyError):
    message, known = f'missing entry {error.args[0]!r}' if error.args else 'missing entry', True
    if error.args and isinstance(error.args[0], str) and ' ' in error.args[0]:
      message = error.args[0]
  elif isinstance(error, ValueError):  # Our own messages may add lines of detail: keep them.
    message, known = str(error).strip(), True
  elif type(error).__module__.startswith(('h5py', 'pysam', 'pyBigWig')) or (
      isinstance(error, RuntimeError) and 'error during file opening' in str(error)
  ):
    message, known = f'could not read the file ({_first_line(str(error))})', True
  else:
    message, known = f'{type(error).__name__}: {_first_line(str(error))}', False
  if known and not _names_a_path(message, args):
    where = _file_in_traceback(error)  # Only for errors of other libraries, which name no file.
    if where and where not in message:
      message = f'{message.rstrip(".")} (in {where})'
  return with_flags(message, args), known


# Library arguments whose command-line flag is not `--` + the argument's name with dashes.
_FLAG_OF_ARGUMENT = {
    'extra_tracks': '--extra-track',
    'num_pcs': '--pcs',
    'train_data': '--data',
    'reverse_complement': '--rc',
    'neutral_value': '--n-value',
    'input_tracks': '--input-track',
}


def with_flags(message: str, args: argparse.Namespace) -> str:
  """The library's message with each argument it names (`run_dir`) as this command's flag.

  Library errors name arguments as the library spells them, in backticks; a command that has the
  matching flag shows the flag instead (`run_dir` → --run-dir). Other backticked words stay.
  """
  dests = vars(args)

  def flag(match: re.Match) -> str:
    name = match.group(1)
    spelled = _FLAG_OF_ARGUMENT.get(name, '--' + name.replace('_', '-'))
    return spelled if spelled[2:].replace('-', '_') in dests else match.group(0)

  return re.sub(r'`([a-z][a-z0-9_]*)`', flag, message)


def _json_text(value) -> str:
  """A --model-arg value: JSON, except text that JSON would not read (`max`, not `"max"`)."""
  if isinstance(value, str):
    try:
      json.loads(value)
    except json.JSONDecodeError:
      return value
  return json.dumps(value)


def _checkpoint_mismatch(error) -> str:
  """The library's checkpoint mismatch, its fix as --model-arg flags to paste."""
  lines = str(error).strip().splitlines()
  changes = getattr(error, 'changes', None) or {}
  if changes:
    flags = ' '.join(
        f'--model-arg {shlex.quote(f"{key}={_json_text(value)}")}' for key, value in changes.items()
    )
    lines = [line for line in lines if not line.strip().startswith('Change:')]
    lines.append(f'  Pass: {flags}')
  return '\n'.join(lines)


def _names_a_path(message: str, args: argparse.Namespace) -> bool:
  return any(path in message for path in path_arguments(args) if len(path) > 1)
