"""Training-step benchmark: seconds per step and peak memory (RSS) of `enformer.training`'s step.

Runs the same distributed step `enformer train` uses (Poisson loss, all-reduce, clipping, Sonnet
Adam) on random one-hot inputs, after one warm-up step that traces the function.

  python benchmarks/train_step.py                       # tiny preset, 16,384 bp, batch 4
  python benchmarks/train_step.py --config full --batch 1 --steps 2             # the paper model
  python benchmarks/train_step.py --config full --batch 1 --steps 2 --recompute # less memory
  python benchmarks/train_step.py --config quick --precision bfloat16

--config full = preset paper (1,536 channels, 11 layers, human 5,313 + mouse 1,643 heads) on
196,608 bp; --config quick = preset tiny (384 channels, 1 layer) on 16,384 bp. --recompute
recomputes conv-tower and transformer block activations in the backward pass
(`enformer.training.recompute`); --precision bfloat16 computes in bf16.

Prints: steps, median seconds per step, examples per second, peak RSS in GB (10^9 bytes; the
process maximum, so it includes the model, optimizer state and activations kept for the backward
pass). The measurement is `enformer.benchmark.measure_train_step`, as in `enformer benchmark
--train`.
"""

import argparse
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

CONFIGS = {'quick': ('tiny', 16_384), 'full': ('paper', 196_608)}


def main() -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
      '--config', choices=sorted(CONFIGS), help='shorthand for --preset and --sequence-length'
  )
  parser.add_argument('--preset', default=None, help='model preset (default tiny)')
  parser.add_argument('--sequence-length', type=int, default=None, help='bp (default 16,384)')
  parser.add_argument('--batch-size', '--batch', type=int, default=4)
  parser.add_argument(
      '--recompute', action='store_true', help='recompute block activations in the backward pass'
  )
  parser.add_argument('--precision', choices=('float32', 'bfloat16'), default='float32')
  parser.add_argument('--steps', type=int, default=5, help='timed steps after the warm-up step')
  parser.add_argument(
      '--tracks',
      type=int,
      default=None,
      help='tracks of the human head (default: the preset heads)',
  )
  parser.add_argument('--model-arg', action='append', default=[], metavar='KEY=JSON')
  args = parser.parse_args()
  preset, length = CONFIGS[args.config or 'quick']
  args.preset = args.preset or preset
  args.sequence_length = args.sequence_length or length

  from enformer.models import build_model  # pylint: disable=import-outside-toplevel
  from enformer.benchmark import measure_train_step  # pylint: disable=import-outside-toplevel

  overrides = {k: json.loads(v) for k, v in (a.split('=', 1) for a in args.model_arg)}
  if args.tracks:
    overrides['heads'] = {'human': args.tracks}
  model = build_model(args.preset, **overrides)
  result = measure_train_step(
      model,
      args.sequence_length,
      args.batch_size,
      args.steps,
      recompute=args.recompute,
      precision=args.precision,
  )
  median = result['step_s']
  print(
      f'preset {args.preset} {overrides or ""}: {result["parameters_m"]:.1f} M parameters, '
      f'{args.sequence_length:,} bp, batch {args.batch_size}, {args.precision}'
      f'{", recompute" if args.recompute else ""}; loss {result["loss"]:.4f}'
  )
  print(
      f'first step (tracing) {result["first_step_s"]:.1f} s; median of {args.steps} steps '
      f'{median:.3f} s/step ({args.batch_size / median:.2f} examples/s); peak RSS '
      f'{result["peak_rss_gb"]:.2f} GB'
  )


if __name__ == '__main__':
  main()
