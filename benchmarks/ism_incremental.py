"""ISM at one precision, timed on its own: incremental mutants against full passes.

Interleaved rounds (the first is a warm-up) of: one window's reference (a full pass that keeps its
conv-tower output), 3 mutants of one position as full passes (batch 3), and the same 3 mutants
by incremental inference. Prints the medians, the cost of a mutant relative to a full pass and
the ISM positions/s over a window of --window positions (one reference, then 3 mutants each), as
`enformer benchmark` derives them.

Usage:
  python benchmarks/ism_incremental.py --config full --rounds 4 [--precision bfloat16]
"""

import argparse
import json
import statistics
import time

import numpy as np

from enformer import benchmark, fast
from enformer.incremental import IncrementalForward


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', choices=sorted(benchmark.CONFIGS), default='quick')
  parser.add_argument('--rounds', type=int, default=4, help='timed rounds (after one warm-up)')
  parser.add_argument('--precision', choices=fast.PRECISIONS, default='float32')
  parser.add_argument('--window', type=int, default=benchmark.ISM_WINDOW,
                      help='ISM window (positions) for the positions/s figures')
  args = parser.parse_args()
  config = benchmark.CONFIGS[args.config]
  model = benchmark.random_model(config)
  length = config['sequence_length']
  forward = fast.compile_forward(model, length, precision=args.precision)
  incremental = IncrementalForward(forward)
  x = benchmark.random_one_hot(1, length, seed=1)
  mutants = np.repeat(x, 3, axis=0)
  for b in range(3):
    mutants[b, length // 2] = np.roll(x[0, length // 2], b + 1)
  kept = {}

  def reference() -> None:
    kept['reference'] = incremental.reference(x[0])

  def full() -> None:
    for value in forward(mutants).values():
      value.numpy()

  def alternatives() -> None:
    incremental.alternatives(kept['reference'], mutants, batch_size=3)

  p = args.precision
  steps = {f'ism_reference_{p}': reference, f'ism_full_{p}': full,
           f'ism_incremental_{p}': alternatives}
  times = {key: [] for key in steps}
  for round_index in range(args.rounds + 1):
    for key, step in steps.items():
      start = time.perf_counter()
      step()
      if round_index:
        times[key].append(time.perf_counter() - start)
    if round_index:
      print(f'round {round_index}: ' + ', '.join(f'{k} {v[-1]:.2f} s' for k, v in times.items()),
            flush=True)
  median = {key: statistics.median(value) for key, value in times.items()}
  rates = {kind: benchmark.ism_positions_per_s(median, 1, kind, p, args.window)
           for kind in ('full', 'incremental')}
  print(json.dumps(dict(
      config=args.config, precision=p, times_s=times, median_s=median,
      mutant_cost_incremental_over_full=median[f'ism_incremental_{p}'] / median[f'ism_full_{p}'],
      positions_per_s=rates, window=args.window,
      incremental_over_full_positions_per_s=rates['incremental'] / rates['full']), indent=1))


if __name__ == '__main__':
  main()
