"""`enformer merge-scores`: join the shard files of `score-variants --shard K/N` into one sad.h5."""

import argparse
import sys

from enformer.cli import _common


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'merge-scores',
      help='join the N shard files of `score-variants` (sad.h5) or `score-genes` (sed.h5) '
      '--shard K/N into one file',
      description=(
          'Checks that the shard files are complete, disjoint and from the same model, VCF, '
          'targets and settings (naming any mismatch), and writes the sad.h5 a single '
          '`enformer score-variants` run would have written, with the optional TSV, z-scores and '
          'PC tables.'
      ),
  )
  parser.add_argument('out', help='output HDF5, e.g. scores.h5')
  parser.add_argument('shards', nargs='+', help='the N shard files (any order)')
  parser.add_argument(
      '--tsv',
      action='store_true',
      help='also write a long-format TSV (one row per variant and track)',
  )
  parser.add_argument(
      '--plot',
      action='store_true',
      help='also write <out>.png: SAD heatmap of the tracks with the largest effects',
  )
  parser.add_argument(
      '--transform',
      default=None,
      help='fitted transform (.npz): adds z-scores (SAD_z) to the output',
  )
  parser.add_argument(
      '--pcs',
      type=_common.positive_int,
      default=None,
      help='with --transform: write the top-k PCs per chromosome as bgzip+tabix '
      'TSVs (<out>.PCs.<chrom>.tsv.gz)',
  )
  _common.add_overwrite_argument(parser, help=_common.OVERWRITE_HELP + ' (a finished merged file)')
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from enformer.io.sed import is_sed_file

  if args.shards and is_sed_file(args.shards[0]):  # Shards of `enformer score-genes`.
    return _merge_gene_scores(args)
  from enformer.variants import ScoreTransform, merge_scores

  if args.pcs is not None and not args.transform:
    raise ValueError('--pcs needs a fitted transform: pass --transform t.npz.')
  transform = ScoreTransform.load(args.transform) if args.transform else None
  written = merge_scores(
      args.out,
      args.shards,
      transform=transform,
      num_pcs=args.pcs,
      tsv=args.tsv,
      plot=args.plot,
      overwrite=args.overwrite,
  )
  print(f'Merged {len(args.shards)} shards.', file=sys.stderr)
  for kind, paths in written.items():
    shown = paths if len(paths) <= 3 else paths[:3] + [f'... ({len(paths)} files)']
    print(f'  {kind}: {", ".join(shown)}', file=sys.stderr)
  return 0


def _merge_gene_scores(args: argparse.Namespace) -> int:
  """Joins sed.h5 shards of `enformer score-genes --shard K/N`."""
  from enformer.genes import merge_gene_scores

  if args.transform or args.pcs or args.plot:
    raise ValueError(
        '--transform, --pcs and --plot apply to score-variants shards; these are '
        'score-genes shards (sed.h5): pass --tsv at most.'
    )
  written = merge_gene_scores(args.out, args.shards, tsv=args.tsv, overwrite=args.overwrite)
  print(f'Merged {len(args.shards)} shards.', file=sys.stderr)
  for kind, paths in written.items():
    print(f'  {kind}: {", ".join(paths)}', file=sys.stderr)
  return 0
