"""Benchmark of the plain and fast (`enformer.inference.fast`, plain graph and XLA) inference paths,
and of
the training step.

Timings of the two paths are taken in ONE process, interleaved (plain, fast, plain, fast, …) after
a warm-up, and summarised by the median, so that load from other processes affects both alike.
Peak memory is measured in a fresh subprocess per configuration (`ru_maxrss`), so each number is
the peak of that path alone.

Weights are random (seeded), with non-trivial batch-norm statistics and attention output
projections so every op contributes; outputs of both paths are compared (max |Δ| / max |value|).

Benchmark sizes (`CONFIGS`; a size, not a model preset of `enformer.presets`):
  compact  384 channels, 4 heads, 2 transformer layers on 32,768 bp: seconds (the configuration of
           DeepMind's small reference checkpoint used by the tests, on a shorter input)
  medium   768 channels, 8 heads, 4 layers on 196,608 bp
  paper    the `paper` preset (the published architecture) on 196,608 bp: minutes and several GB
`enformer benchmark` runs `run_benchmark`.

  flops    analytic FLOPs of a forward pass; measured matmul throughput
  harness  the timed measurements (`run_benchmark`, `measure_train_step`, `worker_scoring`)
"""

from enformer.benchmark.flops import analytic_gflop, matmul_gflops
from enformer.benchmark.harness import (
    CONFIGS,
    ISM_WINDOW,
    SCORING_ROWS,
    ism_positions_per_s,
    scoring_rows,
    measure_train_step,
    random_model,
    run_benchmark,
    worker_scoring,
)

__all__ = [
    'CONFIGS',
    'ISM_WINDOW',
    'SCORING_ROWS',
    'analytic_gflop',
    'ism_positions_per_s',
    'scoring_rows',
    'matmul_gflops',
    'measure_train_step',
    'random_model',
    'run_benchmark',
    'worker_scoring',
]
