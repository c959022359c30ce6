"""`enformer demo`: train, export, predict, attribute and score variants on a synthetic genome."""

import argparse

from enformer.cli import _common
from enformer.cli._inputs import check_output_path


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'demo',
      help='run the workflows end to end offline on a synthetic genome (report in index.html)',
      description='Runs every workflow of the package offline on a built-in synthetic genome with '
      'planted motifs: writes the genome and signal tracks, a Basenji2 data set, trains a small '
      'Enformer (human and mouse heads), evaluates per-track Pearson R against a shuffled-label '
      'baseline, exports a TF-Hub SavedModel, predicts a region, computes contribution scores and '
      'scores a VCF of motif-destroying and neutral variants. Finishes with OUT/index.html '
      'linking every file and plot. Finished steps are reused when run again.',
  )
  _common.add_out_argument(parser, help='output folder', required=False, default='enformer_demo')
  parser.add_argument(
      '--quick', action='store_true', help='smaller genome, shorter sequences and training'
  )
  _common.add_overwrite_argument(
      parser,
      help=_common.OVERWRITE_HELP + ': delete the previous results in --out and redo '
      'every step (default: reuse finished steps)',
  )
  parser.add_argument('--seed', type=int, default=0, help='random seed')
  _common.add_quiet_argument(parser)
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  check_output_path(args.out, '--out', folder=True)
  from enformer.demo import run_demo

  path = run_demo(
      args.out, quick=args.quick, overwrite=args.overwrite, seed=args.seed, progress=not args.quiet
  )
  print(f'Demo report: {path}')
  return 0
