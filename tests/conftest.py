"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('ENFORMER_SHARED', REPO.parent / 'shared'))

# The configuration of ../shared/reference/small (written by DeepMind's implementation).
SMALL_REFERENCE_CONFIG = dict(channels=384, num_heads=4, num_transformer_layers=2,
                              pooling_type='attention')
SMALL_REFERENCE_LENGTH = 131_072


def shared_path(*parts: str) -> pathlib.Path:
  """Path inside ../shared, or skips the test when it is not there."""
  path = SHARED.joinpath(*parts)
  if not path.exists():
    pytest.skip(f'{path} not found: the ../shared fixtures are only present in the project '
                'workspace (set ENFORMER_SHARED to point elsewhere).')
  return path


@pytest.fixture(scope='session')
def reference_small_dir() -> pathlib.Path:
  return shared_path('reference', 'small')


@pytest.fixture(scope='session')
def reference_small_model(reference_small_dir):
  """Enformer(384 channels, 4 heads, 2 layers) with DeepMind's small reference weights."""
  import tensorflow as tf
  from enformer import Enformer
  model = Enformer(**SMALL_REFERENCE_CONFIG)
  model.build_variables()
  status = tf.train.Checkpoint(module=model).read(str(reference_small_dir / 'checkpoint' /
                                                      'enformer'))
  status.assert_consumed()
  return model


@pytest.fixture(scope='session')
def reference_small_io(reference_small_dir):
  """Arrays of io.npz, plus `one_hot` [2, 131072, 4] decoded from `sequence_index`."""
  io = dict(np.load(reference_small_dir / 'io.npz'))
  io['one_hot'] = np.eye(5, dtype=np.float32)[io['sequence_index']][..., :4]
  return io


# Background scripts. A test module may define BACKGROUND_SCRIPT: Python source run as
# `python -c SCRIPT ROOT` in a fresh process (one-thread deterministic training, minutes long).
# The scripts of the selected modules start when collection ends and run one after another, in
# test order, beside the in-process tests: those leave one of the two cores idle much of the time,
# and a one-thread run's result does not depend on the load. A module's fixture waits for its own
# script with `background_run(__name__)`.


@dataclasses.dataclass
class BackgroundRun:
  script: str
  root: pathlib.Path
  done: threading.Event = dataclasses.field(default_factory=threading.Event)
  process: subprocess.Popen | None = None
  stdout: str = ''
  stderr: str = ''


_BACKGROUND: dict[str, BackgroundRun] = {}
_BACKGROUND_STOP = threading.Event()
_BACKGROUND_LOCK = threading.Lock()  # No run starts after the session's end has killed the others.


def _run_in_order(runs: list[BackgroundRun]) -> None:
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'CUDA_VISIBLE_DEVICES': ''}
  for run in runs:
    try:
      with _BACKGROUND_LOCK:
        if _BACKGROUND_STOP.is_set():
          continue
        run.process = subprocess.Popen([sys.executable, '-c', run.script, str(run.root)],
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
      run.stdout, run.stderr = run.process.communicate()
    except Exception as error:  # Reported by the waiting fixture, not lost in this thread.
      run.stderr += f'\n{type(error).__name__}: {error}'
    finally:
      run.done.set()


def pytest_collection_finish(session):
  if session.config.option.collectonly:
    return
  modules = []
  for item in session.items:
    module = getattr(item, 'module', None)
    if hasattr(module, 'BACKGROUND_SCRIPT') and module not in modules:
      modules.append(module)
  if not modules:
    return
  base = pathlib.Path(tempfile.mkdtemp(prefix='enformer-tests-background-'))
  for module in modules:
    root = base / module.__name__.rsplit('.', 1)[-1]
    root.mkdir()
    _BACKGROUND[module.__name__] = BackgroundRun(module.BACKGROUND_SCRIPT, root)
  threading.Thread(target=_run_in_order, args=(list(_BACKGROUND.values()),), daemon=True).start()


def pytest_sessionfinish(session):
  with _BACKGROUND_LOCK:
    _BACKGROUND_STOP.set()
    for run in _BACKGROUND.values():
      if run.process is not None and run.process.poll() is None:
        run.process.kill()
  for run in _BACKGROUND.values():
    run.done.wait(timeout=60)
  if _BACKGROUND:
    shutil.rmtree(next(iter(_BACKGROUND.values())).root.parent, ignore_errors=True)


def background_run(module_name: str) -> BackgroundRun:
  """Waits for the module's BACKGROUND_SCRIPT (started after collection); fails on its error."""
  run = _BACKGROUND[module_name]
  run.done.wait()
  assert run.process is not None and run.process.returncode == 0, run.stderr[-3000:]
  return run
