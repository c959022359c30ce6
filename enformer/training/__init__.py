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
  evaluate       per-track and gene-level (TSS) evaluation, TSV + plots
"""

from enformer.training.config import TrainConfig, resolve_config
from enformer.training.loop import TrainingDivergedError, TrainResult, train, validate
from enformer.training.strategy import get_strategy

__all__ = ['TrainConfig', 'TrainResult', 'TrainingDivergedError', 'get_strategy',
           'resolve_config', 'train', 'validate']
