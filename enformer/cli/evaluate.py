"""`enformer evaluate`: per-track Pearson R / R² (TSV + summary + plot), optional TSS gene level."""

import argparse

from enformer.cli import _common
from enformer.cli._inputs import check_data_folder, check_files, check_model, check_output_path

_DESCRIPTION = """\
Evaluate a model on a Basenji2 data subset: per-track Pearson R over all bins and sequences (the
paper's metric) and R², written to OUT/per_track.tsv with track names, OUT/summary.json, and
OUT/per_track_by_assay.png (correlations by assay type: CAGE / DNASE / CHIP / ATAC, from the
targets description). With --tss BED (chrom, start = TSS, end, gene), also the Enformer
paper's gene-level metric: TSS bin ±1 summed, log1p, z-scored per track across genes, then
correlation across genes (per track) and across tracks (per gene) → OUT/gene_level.tsv.
A used --out is refused unless --overwrite, which replaces only the files an earlier evaluate
wrote there.

--model takes a training run folder (its best model; RUN:latest for its latest checkpoint), a
checkpoint folder/prefix (with --model-arg KEY=VALUE for its architecture), a SavedModel folder or
a TF-Hub handle. The input length is the data's.

Example:
  enformer evaluate --model runs/tiny --data data/synthetic --subset test --out eval/tiny
"""


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'evaluate',
      help='per-track Pearson R / R² of a model on a data subset (+ TSS gene level)',
      description=_DESCRIPTION,
  )
  _common.add_model_argument(parser)
  parser.add_argument('--data', required=True, help='Basenji2 (or legacy basenji) data folder')
  parser.add_argument('--subset', default='test', help='subset to evaluate')
  parser.add_argument('--head', default=None, help='head to evaluate (default: the only/first)')
  _common.add_out_argument(parser, help='output folder (created)')
  _common.add_targets_argument(
      parser, help=_common.TARGETS_HELP + ' (default: DATA/targets.txt when present)'
  )
  parser.add_argument('--tss', default=None, help='TSS BED for the gene-level metric')
  parser.add_argument(
      '--batch-size', type=_common.positive_int, default=4, help='sequences per model call'
  )
  parser.add_argument(
      '--max-batches',
      type=_common.positive_int,
      default=None,
      help='evaluate only this many batches (default: all)',
  )
  parser.add_argument(
      '--layout',
      default=None,
      choices=('basenji2', 'legacy'),
      help='data layout (default: detected)',
  )
  _common.add_overwrite_argument(parser)
  _common.add_quiet_argument(parser)
  _common.add_model_config_arguments(parser, sequence_length=False)
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  # The user's inputs first: a bad file is reported before TensorFlow and the model load.
  check_model(args.model)
  from enformer.data.sets import is_named_set  # pylint: disable=import-outside-toplevel

  if not is_named_set(args.data):  # Named sets live under $ENFORMER_DATA_DIR.
    check_data_folder(args.data, '--data')
  check_files((args.targets, '--targets', 'text'), (args.tss, '--tss', 'text'))
  check_output_path(args.out, '--out', folder=True)
  _common.check_unused_output_folder(args.out, args.overwrite)
  # One run per --out: a second run stops here, naming the first, before loading the model.
  with _common.output_lock(args.out):
    return _evaluate(args)


def _evaluate(args: argparse.Namespace) -> int:
  """`run` once the inputs are checked and --out is locked."""
  from enformer.evaluation import tracks as evaluate_lib  # pylint: disable=import-outside-toplevel

  result, paths = evaluate_lib.evaluate_to_files(
      args.model,
      args.data,
      args.out,
      subset=args.subset,
      head=args.head,
      targets=args.targets,
      tss=args.tss,
      layout=args.layout,
      batch_size=args.batch_size,
      max_batches=args.max_batches,
      model_config=_common.model_config_from_args(args),
      progress=not args.quiet,
      overwrite=args.overwrite,
  )
  for line in evaluate_lib.summary_lines(result):
    print(line)
  print('Wrote ' + ', '.join(paths.values()))
  return 0
