"""`enformer evaluate`: per-track Pearson R / R² (TSV + summary + plot), optional TSS gene level."""

import argparse
import json
import os

from enformer.cli._inputs import check_data_folder, check_files, check_model, check_output_path
from enformer.io.files import read_json
from enformer.io.lock import OutputLock

_DESCRIPTION = """\
Evaluate a model on a Basenji2 data subset: per-track Pearson R over all bins and sequences (the
paper's metric) and R², written to OUT/per_track.tsv with track names, OUT/summary.json, and
OUT/per_track_by_assay.png (correlations by assay type: CAGE / DNASE / CHIP / ATAC, from the
targets description). With --tss BED (chrom, start = TSS, end, gene), also the gene-level metric
of FT_S2A: TSS bin ±1 summed, log1p, z-scored per track across genes, then correlation across
genes (per track) and across tracks (per gene) → OUT/gene_level.tsv.

--model takes a training run folder (its best model, or --checkpoint latest), a checkpoint
folder/prefix (with --model-config), a SavedModel folder or a TF-Hub handle.

Example:
  enformer evaluate --model runs/tiny --data data/synthetic --subset test --out eval/tiny
"""


def register(subparsers) -> None:
  parser = subparsers.add_parser(
      'evaluate', help='per-track Pearson R / R² of a model on a data subset (+ TSS gene level)',
      description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--model', required=True, help='run folder, checkpoint, SavedModel or hub')
  parser.add_argument('--data', required=True, help='Basenji2 (or legacy basenji) data folder')
  parser.add_argument('--subset', default='test', help='subset to evaluate (default test)')
  parser.add_argument('--head', default=None, help='head to evaluate (default: the only/first)')
  parser.add_argument('--out', required=True, help='output folder')
  parser.add_argument('--targets', default=None,
                      help='targets table (default DATA/targets.txt when present)')
  parser.add_argument('--tss', default=None, help='TSS BED for the gene-level metric')
  parser.add_argument('--checkpoint', choices=('best', 'latest'), default='best',
                      help='for a run folder: its best model or latest checkpoint')
  parser.add_argument('--model-config', default=None,
                      help='JSON Enformer arguments for a bare checkpoint')
  parser.add_argument('--batch-size', type=int, default=4)
  parser.add_argument('--max-batches', type=int, default=None,
                      help='evaluate only this many batches')
  parser.add_argument('--layout', default=None, help="data layout: 'basenji2' or 'legacy'")
  parser.set_defaults(func=run)


def resolve_model(model: str, checkpoint: str = 'best', model_config=None):
  """(checkpoint-or-handle, config) for a run folder or anything `enformer.load_model` reads."""
  from enformer.training import checkpointing  # pylint: disable=import-outside-toplevel
  config_path = os.path.join(model, 'config.json')
  if os.path.isdir(model) and os.path.exists(config_path):
    record = read_json(config_path, 'the run configuration')
    if not isinstance(record, dict) or 'model_config' not in record:
      raise ValueError(f'{config_path} has no "model_config": not a run folder written by '
                       '`enformer train`.')
    config = record['model_config']
    if checkpoint == 'best':
      path = os.path.join(model, checkpointing.BEST_CHECKPOINT)
      if not os.path.exists(path + '.index'):
        raise FileNotFoundError(f'{model} has no best model yet (no validation ran); use '
                                '--checkpoint latest.')
    else:
      path = os.path.join(model, checkpointing.CHECKPOINT_DIR)
    return path, {**config, **(model_config or {})}
  return model, dict(model_config or {})


def run(args: argparse.Namespace) -> int:
  if args.batch_size <= 0:
    raise ValueError(f'--batch-size must be positive, got {args.batch_size}.')
  # The user's inputs first: a bad file is reported before TensorFlow and the model load.
  check_model(args.model, run_folder=True)
  if '://' not in args.data and not (args.data in ('human', 'mouse') and
                                     not os.path.exists(args.data)):  # $ENFORMER_DATA_DIR sets.
    check_data_folder(args.data, '--data')
  check_files((args.targets, '--targets', 'text'), (args.tss, '--tss', 'text'))
  check_output_path(args.out, '--out', folder=True)

  import pandas as pd  # pylint: disable=import-outside-toplevel
  from enformer.data import basenji  # pylint: disable=import-outside-toplevel
  from enformer.inference import load_model  # pylint: disable=import-outside-toplevel
  from enformer.io.targets import read_targets  # pylint: disable=import-outside-toplevel
  from enformer.training import evaluate as evaluate_lib  # pylint: disable=import-outside-toplevel
  try:
    model_config = json.loads(args.model_config) if args.model_config else None
  except json.JSONDecodeError as error:
    raise ValueError(f'--model-config is not valid JSON: {error}') from None
  info = basenji.load_info(basenji.resolve_path(args.data), args.layout)
  source, config = resolve_model(args.model, args.checkpoint, model_config)
  predictor = load_model(source, sequence_length=info.sequence_length, **config)
  head = args.head or next(iter(predictor.heads))
  if head not in predictor.heads:
    raise ValueError(f'--head {head!r} is not a head of the model ({list(predictor.heads)}).')

  targets_path = args.targets or os.path.join(info.path, 'targets.txt')
  targets = read_targets(targets_path) if os.path.exists(targets_path) else None
  tss_index = None
  if args.tss:
    bed = os.path.join(info.path, 'sequences.bed')
    if not os.path.exists(bed):
      raise FileNotFoundError(f'--tss needs {bed} (record coordinates; Basenji2 layout).')
    sequences = pd.read_csv(bed, sep='\t', header=None).iloc[:, :4]
    sequences.columns = ['chrom', 'start', 'end', 'subset']
    sequences = sequences[sequences['subset'] == args.subset].reset_index(drop=True)
    tss_index = evaluate_lib.index_tss(args.tss, sequences, info.target_length, info.pool_width,
                                       info.crop_bp)
  dataset = basenji.get_dataset(info.path, args.subset, layout=args.layout, deterministic=True)
  result = evaluate_lib.evaluate(predictor.predict_on_batch, dataset, head,
                                 batch_size=args.batch_size, max_batches=args.max_batches,
                                 targets=targets, tss_index=tss_index)
  with OutputLock(args.out, what=f'--out {args.out}'):
    paths = evaluate_lib.write_evaluation(result, args.out)
  for line in evaluate_lib.summary_lines(result):
    print(line)
  print('Wrote ' + ', '.join(paths.values()))
  return 0
