"""Exclusive locks on the outputs a long job owns (run folder, `.partial/` store, output file).

A lock is `<output>.lock`, a small JSON file beside the output, held with `fcntl.flock` for as long
as the job runs and naming its holder (pid, host, start time, command). The kernel releases a
flock when its process dies, so a lock left behind by a killed job (kill -9, OOM, power cut of a
node) is recognised as stale and taken over with a warning; a live holder makes the second job
stop at once with one line naming it.

    with OutputLock('scores.h5'):      # or: lock = OutputLock(path).acquire() ... lock.release()
      ...                              # write scores.h5, scores.h5.partial/, scores.tsv ...

Locks are re-entrant within a process (the CLI and the library function it calls may both lock
the same output). On file systems without flock support (some network mounts) the holder file
alone is used: a holder on this host that is no longer running is stale, one on another host is
refused with the lock file's path, to delete by hand once that job is known to be gone.
"""

import dataclasses
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import warnings
from typing import Dict, Optional, Union

PathLike = Union[str, os.PathLike]

LOCK_SUFFIX = '.lock'

_held: Dict[str, 'OutputLock'] = {}  # Canonical output path → the lock this process holds.
_held_guard = threading.Lock()


class OutputLockedError(RuntimeError):
  """Another live process holds the lock on an output."""


@dataclasses.dataclass(frozen=True)
class Holder:
  """Who holds (or held) a lock."""

  pid: int
  host: str
  started: str  # ISO 8601, UTC.
  command: str = ''

  @classmethod
  def current(cls) -> 'Holder':
    return cls(
        pid=os.getpid(),
        host=socket.gethostname(),
        started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        command=' '.join(sys.argv),
    )

  @classmethod
  def parse(cls, text: str) -> Optional['Holder']:
    try:
      info = json.loads(text)
      return cls(
          pid=int(info['pid']),
          host=str(info['host']),
          started=str(info['started']),
          command=str(info.get('command', '')),
      )
    except (ValueError, KeyError, TypeError):
      return None

  def describe(self) -> str:
    command = f' running `{self.command}`' if self.command else ''
    return f'pid {self.pid} on host {self.host} (started {self.started}){command}'

  def is_alive_here(self) -> Optional[bool]:
    """True/False when the holder ran on this host; None when that cannot be known."""
    if self.host != socket.gethostname():
      return None
    try:
      os.kill(self.pid, 0)
    except ProcessLookupError:
      return False
    except PermissionError:
      return True
    return True


def lock_path(out: PathLike) -> str:
  """The lock file of an output file or folder: `<out>.lock` beside it."""
  return os.path.abspath(os.fspath(out)).rstrip(os.sep) + LOCK_SUFFIX


class OutputLock:
  """Exclusive, re-entrant lock on one output path (see the module docstring).

  Args:
    out: the output file or folder to own (need not exist yet; its parent folder is created).
    what: how to name the output in messages, e.g. '--out scores.h5' or 'run folder runs/a'.
  """

  def __init__(self, out: PathLike, what: Optional[str] = None):
    self.output = os.path.abspath(os.fspath(out)).rstrip(os.sep)
    self.path = self.output + LOCK_SUFFIX
    self.what = what or self.output
    self._fd: Optional[int] = None
    self._depth = 0
    self._delegate: Optional['OutputLock'] = None
    self.took_over: Optional[Holder] = None  # The stale holder replaced on acquiring, if any.

  @property
  def held(self) -> bool:
    return self._depth > 0

  def acquire(self) -> 'OutputLock':
    """Takes the lock or raises OutputLockedError naming the live holder."""
    with _held_guard:
      if self._depth:
        self._depth += 1
        return self
      owner = _held.get(self.output)
      if owner is not None:  # Another lock object of this process holds the path: share it.
        owner._depth += 1
        self._delegate, self._depth = owner, 1
        return self
      self._acquire_new()
      _held[self.output] = self
      self._depth = 1
      return self

  def _acquire_new(self) -> None:
    try:
      os.makedirs(os.path.dirname(self.path), exist_ok=True)
      self._acquire_file()
    except OSError as error:  # The folder cannot hold files: name the output, not its lock.
      raise type(error)(
          error.errno,
          f'cannot write {self.what} there (its lock file '
          f'{self.path}: {error.strerror}); choose an output in a writable folder',
          self.output,
      ) from error

  def _acquire_file(self) -> None:
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        supported = _try_flock(fd)
      except BlockingIOError:
        holder = _read_fd(fd)
        os.close(fd)
        raise OutputLockedError(self._refusal(holder)) from None
      except BaseException:
        os.close(fd)
        raise
      # The lock file may have been removed (and recreated) by a holder releasing meanwhile:
      # only the lock on the file now at self.path counts.
      try:
        same = os.path.samestat(os.fstat(fd), os.stat(self.path))
      except FileNotFoundError:
        same = False
      if not same:
        os.close(fd)
        continue
      previous = _read_fd(fd)
      if not supported and previous is not None and previous.pid != os.getpid():
        alive = previous.is_alive_here()
        if alive is not False:
          os.close(fd)
          raise OutputLockedError(self._refusal(previous, unsupported=alive is None))
      if previous is not None and previous.pid != os.getpid():
        self.took_over = previous
        warnings.warn(
            f'Taking over the lock on {self.what}: its holder, {previous.describe()}, '
            'is no longer running.',
            RuntimeWarning,
            stacklevel=3,
        )
      _write_fd(fd, Holder.current())
      self._fd = fd
      return

  def _refusal(self, holder: Optional['Holder'], unsupported: bool = False) -> str:
    who = holder.describe() if holder else 'another process (it is still starting)'
    if unsupported:
      return (
          f'{self.what} may be in use by {who}; this file system has no file locks. If that '
          f'job is gone, delete {self.path} and rerun.'
      )
    return (
        f'{self.what} is in use by {who}. Wait for it to finish (or stop it), or choose '
        'another output.'
    )

  def release(self) -> None:
    """Releases one level of the lock; the last release removes the lock file."""
    with _held_guard:
      if not self._depth:
        return
      self._depth -= 1
      if self._depth:
        return
      owner, self._delegate = (self._delegate or self), None
      if owner is not self:
        owner._depth -= 1
        if owner._depth:
          return
      owner._release_fd()

  def _release_fd(self) -> None:
    _held.pop(self.output, None)
    if self._fd is None:
      return
    try:
      os.remove(self.path)  # While still locked, so no one else can hold this inode.
    except OSError:
      pass
    os.close(self._fd)  # Closing releases the flock.
    self._fd = None
    self._depth = 0

  def __enter__(self) -> 'OutputLock':
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def _try_flock(fd: int) -> bool:
  """Non-blocking exclusive flock; False when the file system does not support locks."""
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except OSError as error:
    if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      raise BlockingIOError(error.errno, error.strerror) from None
    if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
      return False
    raise


def _read_fd(fd: int) -> Optional[Holder]:
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    return Holder.parse(os.read(fd, 65536).decode('utf-8', 'replace'))
  except OSError:
    return None


def _write_fd(fd: int, holder: Holder) -> None:
  data = json.dumps(dataclasses.asdict(holder)).encode()
  os.ftruncate(fd, 0)
  os.pwrite(fd, data, 0)
  os.fsync(fd)
