"""Run checkpoints (model, optimizer, step, learning rate) and the best-by-validation export.

Layout of a run folder:
  checkpoints/ckpt-<step>.*   the last K checkpoints: `tf.train.Checkpoint(module=model,
                              optimizer=..., step=..., best_score=...)`; the model part has
                              DeepMind's tree (`module/_trunk/...`), so `enformer.load_model` and
                              `enformer.training.finetune.restore_partial` read these files
                              directly.
  best/checkpoint/model-*     the best model by validation mean Pearson R (model only);
  best/best.json              its step and metrics; best/hub/ the TF-Hub SavedModel (end of run).

Under MultiWorkerMirroredStrategy every worker takes part in saving; only the chief writes into
the run folder, the others write to a temporary folder that is removed right away.
"""

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import warnings
from typing import Any, Dict, Iterator, List, Mapping, Optional

import tensorflow as tf

from enformer.enformer import Enformer
from enformer.inference.export import export_hub_module
from enformer.io.atomic import DiskFullError, atomic_open, is_disk_full
from enformer.io.files import read_json

CHECKPOINT_DIR = 'checkpoints'
BEST_DIR = 'best'
BEST_CHECKPOINT = os.path.join(BEST_DIR, 'checkpoint', 'model')
BEST_JSON = os.path.join(BEST_DIR, 'best.json')
BEST_HUB = os.path.join(BEST_DIR, 'hub')


class RunCheckpoints:
  """Keeps the last `keep` checkpoints of a run and restores the latest one.

  Args:
    run_dir: the run folder.
    keep: number of checkpoints to keep.
    chief: whether this process writes the real files (see module docstring).
    worker: worker index (names the temporary folder of non-chief workers).
    **objects: what to checkpoint, e.g. module=model, optimizer=optimizer, step=step_variable.
  """

  def __init__(self, run_dir: str, keep: int, chief: bool = True, worker: int = 0, **objects: Any):
    self.run_dir = run_dir
    self.chief = chief
    self.checkpoint = tf.train.Checkpoint(**objects)
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    self._directory = directory if chief else os.path.join(run_dir, f'.worker-{worker}-tmp')
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, self._directory, max_to_keep=keep, checkpoint_name='ckpt'
    )
    # Non-chief workers read the chief's files when resuming.
    self._chief_manager = (
        self.manager
        if chief
        else tf.train.CheckpointManager(
            tf.train.Checkpoint(**objects), directory, max_to_keep=keep, checkpoint_name='ckpt'
        )
    )

  @property
  def latest(self) -> Optional[str]:
    return self._chief_manager.latest_checkpoint

  def restore_latest(self) -> Optional[str]:
    """Restores the newest readable checkpoint; returns its path (None: fresh start).

    A checkpoint whose files are truncated or corrupt (e.g. the disk filled up, or a copy was cut
    short) is skipped with a warning naming it and the older checkpoint restored instead; when
    none can be read, ValueError says so. A checkpoint of another model (variables that do not
    match) is an error, not a reason to fall back.
    """
    candidates = run_checkpoints(
        os.path.dirname(self._chief_manager.directory + os.sep), self._chief_manager.checkpoints
    )
    failures = []
    for path in candidates:
      try:
        self.checkpoint.read(path).assert_existing_objects_matched()
      except (tf.errors.OpError, IndexError, ValueError) as error:  # Truncated or corrupt files.
        failures.append((path, _first_line(error)))
        continue
      if failures:
        warnings.warn(
            f'Checkpoint {failures[0][0]} cannot be read ({failures[0][1]}); resumed from the '
            f'previous intact checkpoint {path} instead'
            + (
                f' (also unreadable: {", ".join(p for p, _ in failures[1:])})'
                if failures[1:]
                else ''
            )
            + '.',
            stacklevel=2,
        )
      return path
    if failures:
      raise ValueError(
          f'No checkpoint of {self.run_dir} can be read: '
          + '; '.join(f'{p}: {e}' for p, e in failures)
          + f'. Delete {os.path.join(self.run_dir, CHECKPOINT_DIR)} to start this run over, or '
          'train into another `run_dir`.'
      )
    return None

  def save(self, step: int) -> str:
    with disk_full_named(self._directory):
      path = self.manager.save(checkpoint_number=step)
    if not self.chief:
      shutil.rmtree(self._directory, ignore_errors=True)
    return path


@contextlib.contextmanager
def disk_full_named(folder: str) -> Iterator[None]:
  """Turns a full disk while writing checkpoint files into `folder` into a `DiskFullError` that
  names the folder (TensorFlow reports it as RESOURCE_EXHAUSTED, which reads like memory)."""
  try:
    yield
  except (tf.errors.OpError, OSError) as error:
    if not is_disk_full(error) or isinstance(error, DiskFullError):
      raise
    raise DiskFullError(
        errno.ENOSPC,
        f'No space left on the device to write a checkpoint into {folder}. Free '
        'some space (or train into a `run_dir` on another disk) and rerun: the run resumes from '
        'its last complete checkpoint',
        folder,
    ) from None


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0][:200] if text else ""}'


def run_checkpoints(directory: str, listed: List[str] = ()) -> List[str]:
  """Checkpoint prefixes of a run's checkpoints folder, newest (highest step) first.

  `listed` (the 'checkpoint' state file's list) is merged with the ckpt-<step>.index files found,
  so a damaged state file does not hide intact checkpoints.
  """
  found = {
      p[: -len('.index')] for p in glob.glob(os.path.join(glob.escape(directory), 'ckpt-*.index'))
  }
  found.update(p for p in listed if os.path.exists(p + '.index'))

  def step(prefix: str) -> int:
    match = re.search(r'ckpt-(\d+)$', prefix)
    return int(match.group(1)) if match else -1

  return sorted(found, key=step, reverse=True)


def export_best(
    model: tf.Module, run_dir: str, step: int, record: Mapping[str, Any], chief: bool = True
) -> Optional[str]:
  """Writes the model weights as the best model (DeepMind's tree) and best.json. Chief only."""
  if not chief:
    return None
  prefix = os.path.join(run_dir, BEST_CHECKPOINT)
  tmp_dir = os.path.join(run_dir, BEST_DIR, 'checkpoint.tmp')
  shutil.rmtree(tmp_dir, ignore_errors=True)
  with disk_full_named(tmp_dir):
    tf.train.Checkpoint(module=model).write(os.path.join(tmp_dir, 'model'))
  # Replace the previous best only once the new one is completely written.
  final_dir = os.path.dirname(prefix)
  shutil.rmtree(final_dir, ignore_errors=True)
  os.replace(tmp_dir, final_dir)
  with atomic_open(os.path.join(run_dir, BEST_JSON), 'w') as f:
    json.dump({'step': int(step), **record}, f, indent=2, sort_keys=True)
  return prefix


def read_best(run_dir: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(run_dir, BEST_JSON)
  if not os.path.exists(path):
    return None
  return read_json(path, 'the best-model record')


def export_best_hub(
    model_config: Mapping[str, Any], run_dir: str, sequence_length: int
) -> Optional[str]:
  """Exports the best checkpoint as a TF-Hub-compatible SavedModel (`enformer.inference.export`)
  to best/hub.

  Returns the export folder, or None when there is no best checkpoint yet.
  """
  prefix = os.path.join(run_dir, BEST_CHECKPOINT)
  if not tf.io.gfile.exists(prefix + '.index'):
    return None
  model = Enformer(**model_config)
  model.build_variables()
  tf.train.Checkpoint(module=model).read(prefix).assert_existing_objects_matched()
  export_dir = os.path.join(run_dir, BEST_HUB)
  shutil.rmtree(export_dir, ignore_errors=True)
  return export_hub_module(
      model, export_dir, sequence_length=sequence_length, model_sequence_length=sequence_length
  )
