"""Attribution speed: seconds per gradient × input call and ISM positions per second.

  python benchmarks/attribution.py                     # quick size (384 ch, 4 heads, 1 layer)
  python benchmarks/attribution.py --config full       # published size, 196,608 bp: many minutes

Weights are random (the speed does not depend on them); batch-norm statistics are set to mean 0,
variance 1 so activations stay finite. The target is 3 central bins × 2 tracks of the human head
(5,313 tracks), as in the usage colab. Each measurement follows one untimed warm-up call (graph
tracing). ISM positions/s counts window positions, each of which needs 3 mutant forward passes.
"""

import argparse
import json
import os
import sys
import time
from typing import Dict

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np

CONFIGS = {
    'quick': dict(
        model=dict(channels=384, num_heads=4, num_transformer_layers=1, target_length=None),
        sequence_length=4096,
    ),
    'full': dict(model=dict(), sequence_length=196_608),
}


def _neutral_batch_norm(model) -> None:
  """Moving mean 0 and variance 1 in every batch norm (a random model with finite outputs)."""
  import tensorflow as tf
  from enformer.enformer import BatchNorm

  for module in model.submodules:
    if isinstance(module, BatchNorm):
      module.moving_mean.update(tf.zeros_like(module.moving_mean.value))
      module.moving_variance.update(tf.ones_like(module.moving_variance.value))


def run(config_name: str, grad_calls: int, ism_positions: int, batch_size: int) -> Dict:
  import tensorflow as tf
  from enformer import Enformer
  from enformer import interpret as attribution

  config = CONFIGS[config_name]
  length = config['sequence_length']
  tf.random.set_seed(0)
  model = Enformer(**config['model'])
  model.build_variables()
  _neutral_batch_norm(model)
  num_bins, num_tracks = attribution.output_shape(model, length, 'human')
  centre = num_bins // 2
  mask = attribution.target_mask(
      num_bins, num_tracks, [centre - 1, centre, centre + 1], [4828 % num_tracks, 5111 % num_tracks]
  )
  rng = np.random.default_rng(0)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, length)]

  results = dict(
      config=config_name, sequence_length=length, model=model.config, ism_batch_size=batch_size
  )
  start = time.perf_counter()
  scores = attribution.contribution_input_grad(model, x, mask)
  results['grad_first_call_s'] = time.perf_counter() - start
  if not np.isfinite(scores).all():
    raise RuntimeError('Non-finite contribution scores: the benchmark model is broken.')
  timings = []
  for _ in range(grad_calls):
    start = time.perf_counter()
    attribution.contribution_input_grad(model, x, mask)
    timings.append(time.perf_counter() - start)
  results['grad_s_per_call'] = float(np.median(timings)) if timings else None

  window = (length // 2, length // 2 + 1)
  start = time.perf_counter()
  attribution.in_silico_mutagenesis(
      model, x, mask, window=window, batch_size=batch_size, progress=False
  )  # Warm-up: traces the batched forward.
  results['ism_warmup_s'] = time.perf_counter() - start
  window = (length // 2, length // 2 + ism_positions)
  start = time.perf_counter()
  attribution.in_silico_mutagenesis(
      model, x, mask, window=window, batch_size=batch_size, progress=True
  )
  seconds = time.perf_counter() - start
  results['ism_positions'] = ism_positions
  results['ism_positions_per_s'] = ism_positions / seconds
  results['ism_mutants_per_s'] = 3 * ism_positions / seconds
  return results


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument('--config', choices=sorted(CONFIGS), default='quick')
  parser.add_argument(
      '--grad-calls',
      type=int,
      default=None,
      help='timed gradient × input calls (default 5 quick, 1 full)',
  )
  parser.add_argument(
      '--ism-positions', type=int, default=None, help='ISM window length (default 64 quick, 1 full)'
  )
  parser.add_argument(
      '--batch-size',
      type=int,
      default=None,
      help='ISM mutants per forward pass (default 8 quick, 3 full)',
  )
  args = parser.parse_args(argv)
  full = args.config == 'full'
  results = run(
      args.config,
      args.grad_calls if args.grad_calls is not None else (1 if full else 5),
      args.ism_positions or (1 if full else 64),
      args.batch_size or (3 if full else 8),
  )
  print(json.dumps(results, indent=2, default=str))
  return 0


if __name__ == '__main__':
  sys.exit(main())
