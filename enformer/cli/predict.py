"""`enformer predict`: predict genomic regions from a FASTA with a TF-Hub module, SavedModel or checkpoint."""

import argparse
import json
import os

from enformer.cli._inputs import (check_files, check_input_file, check_many, check_model,
                                  check_output_path)
from enformer.io.lock import OutputLock

DESCRIPTION = """Predict genomic tracks for regions of a genome.

Each region (--region chr:start-end, 1-based inclusive, or every line of --bed) is resized around its
centre to the model's input length (393,216 bp for the published TF-Hub module; sequence past
chromosome ends is N-padded) and predicted. Writes to --out:
  predictions.h5 (or .npz)   [regions, bins, tracks] with bin coordinates and track names
  <head>_<track>_<id>.bw     bigWig per chosen track (chromosome sizes from the FASTA index)
  <head>_<track>_<id>.bedGraph  with --bedgraph
  NNNN_<region>.png          the chosen tracks (CAGE on log10(1+x)); --observed adds measured tracks
                             with the Pearson r of log2(1+x)
A used --out is refused unless --overwrite (which replaces its contents); a region entirely past
its chromosome's end is an error.

Models with extra input channels (input_channels = 4 + E, e.g. one-hot + conservation) take E
--extra-track bigWigs in channel order: raw per-base values over the same N-padded input interval,
missing data and positions past chromosome ends = 0, rounded to float16 (as `enformer make-dataset
--input-track` stores them for training). A checkpoint's input_channels is read from the checkpoint.

Examples:
  enformer predict --model https://tfhub.dev/deepmind/enformer/1 --fasta hg38.fa \\
      --region chr11:5,225,001-5,230,000 --targets targets_human.txt --tracks CAGE:K562 41 --out out/
  enformer predict --model exported_model/ --fasta hg38.fa --bed promoters.bed --batch-size 2 --out out/
  enformer predict --model runs/atac/checkpoints --model-config '{"heads": {"atac": 16}}' \
      --fasta hg38.fa --region chr1:1,000,001-1,100,000 --extra-track phyloP.bw \
      --observed 0=atac_observed.bw --out out/   # fine-tuned one-hot + conservation model
"""


def register(subparsers) -> None:
  parser = subparsers.add_parser(
      'predict', help='predict tracks for genomic regions (FASTA + region/BED)',
      description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--model', required=True,
                      help='TF-Hub handle/URL, SavedModel folder, or checkpoint folder/prefix '
                      '(checkpoints take the model config flags below).')
  parser.add_argument('--fasta', required=True, help='genome FASTA (a .fai index is created if '
                      'missing).')
  where = parser.add_mutually_exclusive_group(required=True)
  where.add_argument('--region', action='append',
                     help='chrom:start-end, 1-based inclusive (repeatable).')
  where.add_argument('--bed', help='BED file of regions (batch mode).')
  parser.add_argument('--targets', help='targets_{organism}.txt track table (names, selection by '
                      'identifier or description).')
  parser.add_argument('--tracks', nargs='+', default=None,
                      help='tracks to keep, plot and write as bigWig: indices, identifiers or '
                      'description substrings (default: all tracks stored; the usage colab tracks '
                      'or the first 4 plotted).')
  parser.add_argument('--out', required=True, help='output folder (created).')
  parser.add_argument('--head', default='human', help='output head (default human).')
  parser.add_argument('--batch-size', type=int, default=1, help='regions per model call.')
  parser.add_argument('--format', choices=('h5', 'npz'), default='h5',
                      help='predictions file format (default h5).')
  parser.add_argument('--bedgraph', action='store_true', help='also write bedGraph files.')
  parser.add_argument('--no-bigwig', action='store_true', help='do not write bigWig files.')
  parser.add_argument('--max-plots', type=int, default=10, help='PNGs for the first N regions.')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace the contents of a used --out folder.')
  parser.add_argument('--observed', nargs='+', default=[], metavar='TRACK=BIGWIG',
                      help='observed coverage to draw under a predicted track, e.g. '
                      '4799=keratinocyte_cage.bw (the track is an index, identifier or '
                      'description substring matching one track).')
  add_extra_track_argument(parser)
  add_n_value_argument(parser)
  add_model_config_arguments(parser)
  add_precision_argument(parser)
  parser.set_defaults(func=run)


def add_n_value_argument(parser: argparse.ArgumentParser) -> None:
  """--n-value V: the one-hot value of N (library keyword `neutral_value`)."""
  parser.add_argument('--n-value', type=float, default=0.0, metavar='V',
                      help='one-hot value of N (and of the padding past chromosome ends) in each '
                      "of the 4 channels: 0 (default) as DeepMind's enformer.py and the Basenji2 "
                      "training data; 0.25 as DeepMind's usage notebook (kipoiseq's default), to "
                      'reproduce its numbers.')


def add_extra_track_argument(parser: argparse.ArgumentParser) -> None:
  """--extra-track FILE.bw (repeatable): per-base inputs of a model's extra input channels."""
  parser.add_argument('--extra-track', action='append', default=[], metavar='BIGWIG',
                      help='per-base bigWig of an extra input channel (e.g. conservation), '
                      'repeatable in channel order, for models with input_channels = 4 + the '
                      'number given; missing values count as 0.')


def load_predictor(args: argparse.Namespace):
  """The Predictor of --model with the config flags, checked against --extra-track.

  A checkpoint's input_channels is read from its stem convolution unless given, so a model with
  extra input channels needs no config flag for them, and a wrong number of --extra-track is
  reported before the model is built.
  """
  import tensorflow as tf
  from enformer.inference import checkpoint_prefix, checkpoint_root, infer_config, load_model
  from enformer.predict import check_extra_tracks

  config = model_config_from_args(args)
  extra_tracks = list(getattr(args, 'extra_track', None) or [])
  if 'input_channels' not in config and not args.model.startswith(('http://', 'https://')):
    try:
      shape_map = tf.train.load_checkpoint(
          checkpoint_prefix(args.model)).get_variable_to_shape_map()
      config['input_channels'] = infer_config(shape_map,
                                              checkpoint_root(shape_map))['input_channels']
    except (FileNotFoundError, ValueError, tf.errors.OpError):
      pass  # Not a checkpoint of this model (a SavedModel, or an error load_model explains).
  if 'input_channels' in config:
    check_extra_tracks(config['input_channels'], extra_tracks)
  predictor = load_model(args.model, sequence_length=args.sequence_length,
                         precision=getattr(args, 'precision', 'float32'), **config)
  check_extra_tracks(predictor.input_channels, extra_tracks)
  return predictor


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--precision', choices=('float32', 'bfloat16'), default='float32',
                      help='inference precision (default float32). bfloat16 runs matmuls and '
                      'convolutions in bfloat16 (about 2x faster on CPUs with AVX-512 BF16, and '
                      'on GPUs/TPUs) with float32 normalisation and outputs; needs the Sonnet '
                      'module (checkpoint or an export of this package). Its accuracy is '
                      'measured in docs/performance.md.')


def add_model_config_arguments(parser: argparse.ArgumentParser) -> None:
  """Model config flags for loading Sonnet checkpoints (defaults: the published model)."""
  group = parser.add_argument_group('model config (checkpoints only)')
  group.add_argument('--channels', type=int, help='default 1536.')
  group.add_argument('--num-transformer-layers', type=int, help='default 11.')
  group.add_argument('--num-heads', type=int, help='attention heads, default 8.')
  group.add_argument('--pooling-type', choices=('attention', 'max'), help='default attention.')
  group.add_argument('--input-channels', type=int,
                     help='input depth: 4 one-hot + extra tracks (default: read from the '
                     'checkpoint).')
  group.add_argument('--target-length', type=int,
                     help='output bins (default 896; 0 keeps all L/128 bins).')
  group.add_argument('--model-heads', nargs='+', metavar='NAME=TRACKS',
                     help='output heads, default human=5313 mouse=1643.')
  group.add_argument('--sequence-length', type=int,
                     help='input length in bp of the model (default 196,608).')
  group.add_argument('--model-config', metavar='JSON',
                     help='any Enformer arguments as a JSON object, e.g. \'{"channels": 384, '
                     '"final_pointwise": false}\'; the flags above take precedence.')


def model_config_from_args(args: argparse.Namespace) -> dict:
  """Enformer constructor arguments given on the command line (only those set)."""
  try:
    config = json.loads(args.model_config) if getattr(args, 'model_config', None) else {}
  except json.JSONDecodeError as error:
    raise ValueError(f'--model-config is not valid JSON ({error.msg} at column {error.colno}): '
                     f'{args.model_config!r}.') from None
  if not isinstance(config, dict):
    raise ValueError('--model-config must be a JSON object of Enformer arguments, e.g. '
                     '\'{"channels": 384, "num_heads": 4}\'.')
  for key in ('channels', 'num_transformer_layers', 'num_heads', 'pooling_type', 'input_channels'):
    if getattr(args, key, None) is not None:
      config[key] = getattr(args, key)
  if getattr(args, 'target_length', None) is not None:
    config['target_length'] = args.target_length or None
  if getattr(args, 'model_heads', None):
    heads = {}
    for item in args.model_heads:
      name, _, count = item.partition('=')
      if not count.isdigit():
        raise ValueError(f'--model-heads takes NAME=TRACKS items (e.g. human=5313), got {item!r}.')
      heads[name] = int(count)
    config['heads'] = heads
  return config


def check_unused_output_folder(out: str, overwrite: bool) -> None:
  """Refuses an --out folder that holds files unless --overwrite (no stale outputs beside new)."""
  if overwrite or not os.path.isdir(out):
    return
  entries = sorted(e for e in os.listdir(out) if not e.startswith('.'))
  if entries:
    shown = ', '.join(entries[:3]) + (', ...' if len(entries) > 3 else '')
    raise FileExistsError(f'--out {out} already holds files ({shown}). Pass --overwrite to '
                          'replace them, or choose another --out.')


def _resolve_track(spec: str, targets, num_tracks: int) -> int:
  from enformer.io.targets import select_tracks
  found = select_tracks(targets, [spec], num_tracks)
  if len(found) != 1:
    raise ValueError(f'--observed track {spec!r} matches {len(found)} tracks; use an index or an '
                     'identifier.')
  return found[0]


def run(args: argparse.Namespace) -> int:
  # The user's inputs first: a bad file is reported before TensorFlow and the model load.
  check_files((args.fasta, '--fasta', 'fasta'), (args.bed, '--bed', 'text'),
              (args.targets, '--targets', 'text'))
  check_many(args.extra_track, '--extra-track', 'bigwig')
  check_model(args.model)
  model_config_from_args(args)
  check_output_path(args.out, '--out', folder=True)
  check_unused_output_folder(args.out, args.overwrite)
  from enformer.io.bed import parse_region, read_bed
  from enformer.io.fasta import FastaStringExtractor
  from enformer.io.targets import read_targets
  regions = read_bed(args.bed) if args.bed else [parse_region(r) for r in args.region]
  with FastaStringExtractor(args.fasta) as extractor:
    extractor.check_regions(regions)
  targets = read_targets(args.targets) if args.targets else None
  observed_paths = []
  for item in args.observed:
    spec, _, path = item.partition('=')
    if not path:
      raise ValueError(f'--observed takes TRACK=BIGWIG items, got {item!r}.')
    check_input_file(path, '--observed', kind='bigwig')
    observed_paths.append((spec, path))
  # One run per --out: a second run stops here, naming the first, before loading the model.
  with OutputLock(args.out, what=f'--out {args.out}'):
    return _predict(args, regions, targets, observed_paths)


def _predict(args: argparse.Namespace, regions, targets, observed_paths) -> int:
  """`run` once the inputs are checked and --out is locked."""
  from enformer.io.targets import select_tracks
  from enformer.predict import predict_to_files  # TensorFlow: only once the inputs are checked.
  predictor = load_predictor(args)
  if args.head not in predictor.heads:
    raise ValueError(f'--head {args.head!r} is not a head of the model: {sorted(predictor.heads)}.')
  num_tracks = predictor.heads[args.head]
  tracks = select_tracks(targets, args.tracks, num_tracks) if args.tracks else None
  observed = {}
  for spec, path in observed_paths:
    observed[_resolve_track(spec, targets, num_tracks)] = path
  plot_tracks = None
  if observed and tracks is None:
    plot_tracks = list(observed)
  elif observed:
    missing = [t for t in observed if t not in tracks]
    if missing:
      raise ValueError(f'--observed tracks {missing} are not among --tracks.')
  print(f'{predictor}; {len(regions)} region(s).')
  summary = predict_to_files(
      predictor, args.fasta, regions, args.out, head=args.head, tracks=tracks,
      plot_tracks=plot_tracks, targets=targets, batch_size=args.batch_size,
      output_format=args.format, bigwig=not args.no_bigwig, bedgraph=args.bedgraph,
      max_plots=args.max_plots, observed=observed, extra_tracks=args.extra_track,
      overwrite=args.overwrite, neutral_value=args.n_value)
  print(f'Predictions: {summary["predictions"]} ({summary["regions"]} regions × '
        f'{predictor.output_length} bins × {summary["tracks"]} tracks)')
  for key in ('bigwig', 'bedgraph', 'plots'):
    if summary[key]:
      print(f'{key}: {len(summary[key])} file(s), e.g. {summary[key][0]}')
  return 0
