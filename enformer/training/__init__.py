"""Training Enformer: one machine, several devices, several workers or TPUs (`tf.distribute`).

    from enformer.training import train
    result = train(run_dir='runs/tiny', preset='tiny', data={'human': 'data/human'},
                   batch_size=8, num_steps=1000, warmup_steps=100)
    result.final_pearson_r, result.run_dir

Modules:
  config         TrainConfig (defaults < JSON/YAML file < flags), resolved config in the run folder
  strategy       get_strategy(): TPU / TF_CONFIG multi-worker / local multi-device / default
  step           Poisson loss, warm-up schedule, Sonnet Adam, the distributed train/eval step
  metrics        streaming per-track Pearson R and R² from summed sufficient statistics
  checkpointing  keep-last-K checkpoints, resume, best-by-validation export
  loop           train(...) → TrainResult
  (evaluation of trained models: `enformer.evaluation`)
  recompute      activation recomputation (`recompute=True`, `enformer train --recompute`)
  windows        shorter bin-aligned training windows cut from long records
"""

from enformer.lazy import lazy_attributes

# Public name → module (imported lazily, so `enformer train --help` does not load TensorFlow).
_EXPORTS = {
    'TrainConfig': 'enformer.training.config',
    'resolve_config': 'enformer.training.config',
    'TrainResult': 'enformer.training.loop',
    'TrainingDivergedError': 'enformer.training.loop',
    'train': 'enformer.training.loop',
    'validate': 'enformer.training.loop',
    'get_strategy': 'enformer.training.strategy',
    'cut_windows': 'enformer.training.windows',
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())
