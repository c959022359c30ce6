"""TensorFlow without its start-up lines on stderr, in this process and in Dask worker processes.

TensorFlow writes oneDNN, CUDA and absl notes to the process's stderr while it loads, before its
own log level applies (`TF_CPP_MIN_LOG_LEVEL` hides only the later ones). `quiet_tensorflow_import`
installs an import hook: whenever TensorFlow is first imported (by any module, at any later time),
stderr points at /dev/null for the duration of that import; Python errors of the import still
surface. Nothing is imported here, so installing the hook costs nothing and input checks that run
before TensorFlow stay fast.

    quiet_tensorflow_import()   # e.g. first thing in a command-line entry point
    ...                         # checks of the user's inputs: no TensorFlow yet
    import tensorflow           # silent

`dask_setup` makes this module a Dask worker preload (`preload=['enformer.io.quiet']`), so worker
processes load TensorFlow silently too.
"""

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from typing import Iterator, Optional

LOG_LEVEL_VARIABLE = 'TF_CPP_MIN_LOG_LEVEL'
QUIET_LEVEL = '3'  # Errors too: `failed call to cuInit` and oneDNN fallbacks do not concern users.


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
  """Points file descriptor 2 (also used by C++ code) at /dev/null inside the block."""
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
  """Runs another loader's `exec_module` with stderr pointing at /dev/null."""

  def __init__(self, loader: importlib.abc.Loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module) -> None:
    with stderr_to_devnull():
      self._loader.exec_module(module)

  def __getattr__(self, name: str):
    return getattr(self._loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
  """Finds `tensorflow` with the other finders and wraps its loader (once, then removes itself)."""

  def find_spec(
      self, name: str, path=None, target=None
  ) -> Optional[importlib.machinery.ModuleSpec]:
    if name != 'tensorflow':
      return None
    if self in sys.meta_path:
      sys.meta_path.remove(self)
    spec = importlib.util.find_spec(name)  # The other finders, as without this one.
    if spec is not None and spec.loader is not None:
      spec.loader = _QuietLoader(spec.loader)
    return spec


def quiet_tensorflow_import() -> bool:
  """TensorFlow's next first import in this process writes nothing to stderr.

  Sets `TF_CPP_MIN_LOG_LEVEL=3` unless the user set it (then their level applies and nothing is
  redirected: they chose what to see). Does nothing when TensorFlow is already imported.

  Returns:
    Whether the start-up lines are hidden.
  """
  os.environ.setdefault(LOG_LEVEL_VARIABLE, QUIET_LEVEL)
  if os.environ[LOG_LEVEL_VARIABLE] != QUIET_LEVEL or 'tensorflow' in sys.modules:
    return False
  if not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
  return True


def dask_setup(worker=None) -> None:  # pylint: disable=unused-argument
  """Dask preload entry point: the worker process imports TensorFlow silently."""
  quiet_tensorflow_import()
