"""`enformer benchmark`: time and memory of the plain and fast inference paths (and training)."""

import argparse

from enformer.cli import _common
from enformer.cli._inputs import check_output_path
from enformer.io.atomic import atomic_open


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'benchmark',
      help='benchmark plain vs fast (fused, chunked) inference: s/forward, GFLOP/s, peak RSS',
      description='Times the plain path (model(x, is_training=False) under tf.function) and the '
      'fast path (enformer.inference.fast.compile_forward, plain graph and XLA) interleaved in one '
      'process (median after warm-up), measures peak RSS of each in its own subprocess, '
      'checks that their outputs agree, and prints analytic GFLOP, GFLOP/s, variants/s, ISM '
      'positions/s and ratios. Weights are random. --size paper is the published architecture '
      '(196,608 bp, 1,536 channels, 11 layers); docs/performance.md has the run times.',
  )
  parser.add_argument(
      '--size',
      default='compact',
      choices=['compact', 'medium', 'paper'],
      help='architecture and input length of the benchmarked model: compact (384 '
      'channels, 2 layers, 32,768 bp), medium (768 channels, 4 layers, 196,608 '
      'bp) or paper (the published model, 196,608 bp)',
  )
  _common.add_sequence_length_argument(parser, help="override the size's input length in bp")
  parser.add_argument(
      '--repeats',
      type=int,
      default=3,
      help='timed forwards per path after warm-up; the median is reported',
  )
  parser.add_argument(
      '--no-memory', action='store_true', help='skip the per-path peak-RSS subprocesses'
  )
  parser.add_argument('--no-batch4', action='store_true', help='skip the batch-4 timings')
  parser.add_argument(
      '--plain-batch4',
      action='store_true',
      help='also time the plain path at batch 4 (slow, large memory)',
  )
  parser.add_argument(
      '--no-scoring',
      action='store_true',
      help='skip the variant-effect and ISM scoring rows (full passes vs '
      'incremental inference, float32 vs bfloat16)',
  )
  parser.add_argument(
      '--train',
      action='store_true',
      help="also measure enformer train's step (forward, backward, Adam) at batch 1",
  )
  parser.add_argument(
      '--recompute',
      action='store_true',
      help='with --train, also measure the step with activation recomputation',
  )
  parser.add_argument('--json', default=None, help='write all numbers to this JSON file')
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  import json
  import pathlib

  from enformer.benchmark import run_benchmark

  if args.json is not None and not pathlib.Path(args.json).parent.exists():
    raise FileNotFoundError(f'Directory of --json {args.json} does not exist; create it first.')
  if args.json is not None:
    check_output_path(args.json, '--json')
  report = run_benchmark(
      args.size,
      repeats=args.repeats,
      batch4=not args.no_batch4,
      memory=not args.no_memory,
      train=args.train,
      recompute=args.recompute,
      plain_batch4=args.plain_batch4,
      sequence_length=args.sequence_length,
      scoring=not args.no_scoring,
  )
  if args.json is not None:
    with atomic_open(args.json, 'w') as handle:
      handle.write(json.dumps(report, indent=1))
    print(f'wrote {args.json}')
  return 0
