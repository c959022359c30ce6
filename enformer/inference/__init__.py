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

from enformer.lazy import lazy_attributes

_EXPORTS = {
    'VARIABLE_SUFFIX': 'enformer.inference.checkpoints',
    'checkpoint_prefix': 'enformer.inference.checkpoints',
    'checkpoint_root': 'enformer.inference.checkpoints',
    'checkpoint_variables': 'enformer.inference.checkpoints',
    'infer_config': 'enformer.inference.checkpoints',
    'model_variable_shapes': 'enformer.inference.checkpoints',
    'restore_checkpoint': 'enformer.inference.checkpoints',
    'verify_checkpoint': 'enformer.inference.checkpoints',
    'CONFIG_FILENAME': 'enformer.inference.export',
    'HUB_SEQUENCE_LENGTH': 'enformer.inference.export',
    'export_hub_module': 'enformer.inference.export',
    'load_model': 'enformer.inference.loading',
    'Predictor': 'enformer.inference.predictor',
    'predict_to_files': 'enformer.inference.regions',
    'PredictionOutputs': 'enformer.inference.regions',
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())
