"""Inference: load a model from any source, predict, export TF-Hub SavedModels, check checkpoints.

  predictor    `Predictor`: predict_on_batch on one-hot sequences of a fixed length
  loading      `load_model`: TF-Hub handle, SavedModel folder or Sonnet checkpoint → Predictor
  export       `export_hub_module`: a TF-Hub-compatible SavedModel (and reading it back)
  checkpoints  checkpoint prefixes and keys, `infer_config`, `verify_checkpoint` (the one checker)
  fast         the fused inference forward (`compile_forward`: chunked, optionally XLA, bfloat16)
  incremental  exact incremental inference: the reference conv tower once, a window per variant
  regions      predictions of genomic regions from a FASTA (`predict_to_files`, `enformer predict`)

The names below are importable from here and loaded on first use, so that importing one
submodule (e.g. `enformer.inference.fast`) does not import the others.
"""

import importlib
from typing import Any

_EXPORTS = {
    'VARIABLE_SUFFIX': 'checkpoints', 'checkpoint_prefix': 'checkpoints',
    'checkpoint_root': 'checkpoints', 'checkpoint_variables': 'checkpoints',
    'infer_config': 'checkpoints', 'looks_like_checkpoint': 'checkpoints',
    'model_variable_shapes': 'checkpoints', 'restore_checkpoint': 'checkpoints',
    'verify_checkpoint': 'checkpoints',
    'CONFIG_FILENAME': 'export', 'HUB_SEQUENCE_LENGTH': 'export', 'export_hub_module': 'export',
    'load_model': 'loading',
    'Predictor': 'predictor',
    'predict_to_files': 'regions',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name in _EXPORTS:
    return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(list(globals()) + list(_EXPORTS))
