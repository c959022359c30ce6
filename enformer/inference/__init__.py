"""Inference: load a model from any source, predict, export TF-Hub SavedModels, check checkpoints.

  predictor    `Predictor`: predict_on_batch on one-hot sequences of a fixed length
  loading      `load_model`: TF-Hub handle, SavedModel folder or Sonnet checkpoint → Predictor
  export       `export_hub_module`: a TF-Hub-compatible SavedModel (and reading it back)
  checkpoints  checkpoint prefixes and keys, `infer_config`, `verify_checkpoint` (the one checker)
"""

from enformer.inference.checkpoints import (VARIABLE_SUFFIX, checkpoint_prefix, checkpoint_root,
                                            checkpoint_variables, infer_config,
                                            looks_like_checkpoint, model_variable_shapes,
                                            restore_checkpoint, verify_checkpoint)
from enformer.inference.export import CONFIG_FILENAME, HUB_SEQUENCE_LENGTH, export_hub_module
from enformer.inference.loading import load_model
from enformer.inference.predictor import Predictor

__all__ = [
    'CONFIG_FILENAME', 'HUB_SEQUENCE_LENGTH', 'VARIABLE_SUFFIX', 'Predictor', 'checkpoint_prefix',
    'checkpoint_root', 'checkpoint_variables', 'export_hub_module', 'infer_config',
    'load_model', 'looks_like_checkpoint', 'model_variable_shapes', 'restore_checkpoint',
    'verify_checkpoint',
]
