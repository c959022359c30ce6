"""ISM at one precision, timed on its own: incremental mutants against full passes.

`enformer.benchmark.worker_scoring` restricted to its ISM rows, interleaved rounds after a warm-up:
one window's reference (a full pass that keeps its conv-tower output), 3 mutants of one position
as full passes (batch 3), and the same 3 mutants by incremental inference. Prints the medians, the
cost of a mutant relative to a full pass and the ISM positions/s over a window of --window
positions (one reference, then 3 mutants each), as `enformer benchmark` derives them.

Usage:
  python benchmarks/ism_incremental.py --config full --rounds 4 [--precision bfloat16]
"""

import argparse
import json

from enformer import benchmark
from enformer.inference import fast


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', choices=sorted(benchmark.CONFIGS), default='compact')
  parser.add_argument('--rounds', type=int, default=4, help='timed rounds (after one warm-up)')
  parser.add_argument('--precision', choices=fast.PRECISIONS, default='float32')
  parser.add_argument(
      '--window',
      type=int,
      default=benchmark.ISM_WINDOW,
      help='ISM window (positions) for the positions/s figures',
  )
  args = parser.parse_args()
  p = args.precision
  scoring = benchmark.worker_scoring(
      benchmark.CONFIGS[args.config],
      args.rounds,
      precisions=(p,),
      rows=('ism_reference', 'ism_full', 'ism_incremental'),
  )
  median = scoring['median_s']
  rates = {
      kind: benchmark.ism_positions_per_s(median, 1, kind, p, args.window)
      for kind in ('full', 'incremental')
  }
  print(
      json.dumps(
          dict(
              config=args.config,
              precision=p,
              times_s=scoring['times'],
              median_s=median,
              mutant_cost_incremental_over_full=median[f'ism_incremental_{p}']
              / median[f'ism_full_{p}'],
              positions_per_s=rates,
              window=args.window,
              incremental_over_full_positions_per_s=rates['incremental'] / rates['full'],
              reference_tower_mb=scoring['reference_tower_mb'],
              peak_rss_gb=scoring['peak_rss_gb'],
          ),
          indent=1,
      )
  )


if __name__ == '__main__':
  main()
