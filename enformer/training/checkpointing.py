"""Run checkpoints (model, optimizer, step, learning rate) and the best-by-validation export.

Layout of a run folder:
  checkpoints/ckpt-<step>.*   the last K checkpoints: `tf.train.Checkpoint(module=model,
                              optimizer=..., step=..., best_score=...)`; the model part has
                              DeepMind's tree (`module/_trunk/...`), so `enformer.load_model` and
                              `enformer.training.finetune.restore_partial` read these files directly.
  best/checkpoint/model-*     the best model by validation mean Pearson R (model only);
  best/best.json              its step and metrics; best/hub/ the TF-Hub SavedModel (end of run).

Under MultiWorkerMirroredStrategy every worker takes part in saving; only the chief writes into
the run folder, the others write to a temporary folder that is removed right away.
"""

import json
import os
import shutil
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf

from enformer.enformer import Enformer
from enformer.inference.export import export_hub_module
from enformer.io.atomic import atomic_open
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

  def __init__(self, run_dir: str, keep: int, chief: bool = True, worker: int = 0,
               **objects: Any):
    self.run_dir = run_dir
    self.chief = chief
    self.checkpoint = tf.train.Checkpoint(**objects)
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    self._directory = directory if chief else os.path.join(run_dir, f'.worker-{worker}-tmp')
    self.manager = tf.train.CheckpointManager(self.checkpoint, self._directory,
                                              max_to_keep=keep, checkpoint_name='ckpt')
    # Non-chief workers read the chief's files when resuming.
    self._chief_manager = self.manager if chief else tf.train.CheckpointManager(
        tf.train.Checkpoint(**objects), directory, max_to_keep=keep, checkpoint_name='ckpt')

  @property
  def latest(self) -> Optional[str]:
    return self._chief_manager.latest_checkpoint

  def restore_latest(self) -> Optional[str]:
    """Restores the latest checkpoint if there is one; returns its path (None: fresh start)."""
    latest = self.latest
    if latest is None:
      return None
    self.checkpoint.read(latest).assert_existing_objects_matched()
    return latest

  def save(self, step: int) -> str:
    path = self.manager.save(checkpoint_number=step)
    if not self.chief:
      shutil.rmtree(self._directory, ignore_errors=True)
    return path


def export_best(model: tf.Module, run_dir: str, step: int, record: Mapping[str, Any],
                chief: bool = True) -> Optional[str]:
  """Writes the model weights as the best model (DeepMind's tree) and best.json. Chief only."""
  if not chief:
    return None
  prefix = os.path.join(run_dir, BEST_CHECKPOINT)
  tmp_dir = os.path.join(run_dir, BEST_DIR, 'checkpoint.tmp')
  shutil.rmtree(tmp_dir, ignore_errors=True)
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


def export_best_hub(model_config: Mapping[str, Any], run_dir: str,
                    sequence_length: int) -> Optional[str]:
  """Exports the best checkpoint as a TF-Hub-compatible SavedModel (`enformer.inference.export`) to best/hub.

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
  return export_hub_module(model, export_dir, sequence_length=sequence_length,
                           model_sequence_length=sequence_length)
