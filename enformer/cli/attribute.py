"""`enformer attribute`: gradient × input or in-silico mutagenesis of chosen tracks and bins."""

import argparse
import os

from enformer.cli import _common
from enformer.cli._inputs import check_files, check_many, check_model, check_output_path


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'attribute',
      help='contribution scores (gradient × input or ISM) of chosen tracks/bins for a region',
      description=(
          'Explains the prediction of chosen tracks (--tracks) in chosen output bins (--bins) for '
          'a genomic region: gradient × input of every input base (--method grad, the usage '
          "colab's contribution scores) or in-silico saturation mutagenesis of a window (--method "
          'ism: every base to each alternative, Δ of the mean masked prediction). The region is '
          "resized around its centre to the model's input length. Writes attribution.npz, a "
          'bigWig of per-base scores, tracks.png (predictions + pooled |scores| per bin) and '
          'logo.png (sequence logo of the window; ISM adds a Δ heatmap). Models with extra input '
          'channels (e.g. one-hot + conservation) take --extra-track bigWigs as `enformer '
          'predict` does; gradient × input scores the bases (4 one-hot channels) and the extra '
          "channels' gradient × input is saved separately (extra_scores in attribution.npz); ISM "
          'mutates bases only and keeps the extra channels.'
      ),
      epilog='Example: enformer attribute --model enformer_ckpt --fasta hg38.fa --region '
      'chr11:5,225,000-5,230,000 --tracks 4828 5111 --bins 447-449 --method grad --out attr/',
  )
  _common.add_model_argument(parser)
  _common.add_fasta_argument(parser)
  parser.add_argument(
      '--region',
      required=True,
      help='chrom:start-end (1-based inclusive); resized to the input length',
  )
  parser.add_argument('--head', default='human', help='output head')
  _common.add_tracks_argument(parser, required=True)
  parser.add_argument(
      '--bins',
      default=None,
      help='output bins to explain, e.g. 447-449 (default: the 3 central bins)',
  )
  _common.add_targets_argument(parser)
  parser.add_argument(
      '--method',
      choices=('grad', 'ism'),
      default='grad',
      help='grad: gradient × input; ism: saturation mutagenesis',
  )
  parser.add_argument(
      '--window',
      default=None,
      help='chrom:start-end inside the input: bases to mutate (ISM; default the '
      'target bins) or to draw in the logo (grad; default 100 bp around the top '
      'score)',
  )
  parser.add_argument(
      '--reduction',
      choices=('mean', 'sum'),
      default='mean',
      help='target = mean (as the colab) or sum of the masked predictions',
  )
  parser.add_argument(
      '--batch-size',
      type=_common.positive_int,
      default=8,
      help='ISM: mutant sequences per forward pass',
  )
  _common.add_out_argument(parser, help='output folder (created)')
  _common.add_extra_track_argument(parser)
  _common.add_n_value_argument(parser)
  _common.add_quiet_argument(parser)
  _common.add_model_config_arguments(parser)
  _common.add_precision_argument(parser, extra=' (--method ism; gradients run in float32)')
  _common.add_overwrite_argument(parser)
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  # The user's inputs first: a bad file is reported before TensorFlow and the model load.
  check_files((args.fasta, '--fasta', 'fasta'), (args.targets, '--targets', 'text'))
  check_many(args.extra_track, '--extra-track', 'bigwig')
  check_model(args.model)
  _common.model_config_from_args(args)
  check_output_path(args.out, '--out', folder=True)
  _common.check_unused_output_folder(args.out, args.overwrite)
  if args.batch_size < 1:
    raise ValueError(f'--batch-size must be >= 1, got {args.batch_size}.')
  if args.method == 'grad' and args.precision != 'float32':
    raise ValueError(
        f'--precision {args.precision} applies to --method ism (forward passes only); '
        'gradient x input is computed in float32: drop --precision, or use '
        '--method ism.'
    )
  from enformer.io.bed import parse_region
  from enformer.io.fasta import FastaStringExtractor
  from enformer.io.targets import read_targets

  with FastaStringExtractor(args.fasta) as extractor:
    extractor.check_regions([parse_region(args.region)])
  targets = read_targets(args.targets) if args.targets else None

  # One run per --out: a second run stops here, naming the first, before loading the model.
  with _common.output_lock(args.out):
    return _attribute(args, targets)


def _attribute(args: argparse.Namespace, targets) -> int:
  """`run` once the inputs are checked and --out is locked."""
  from enformer.interpret.workflow import attribute_to_files

  predictor = _common.load_predictor(args)
  written = attribute_to_files(
      predictor,
      args.fasta,
      args.region,
      args.out,
      tracks=args.tracks,
      bins=args.bins,
      head=args.head,
      targets=targets,
      method=args.method,
      window=args.window,
      reduction=args.reduction,
      batch_size=args.batch_size,
      extra_tracks=args.extra_track,
      neutral_value=args.n_value,
      progress=not args.quiet,
      overwrite=args.overwrite,
  )
  print(written['summary'])
  print(
      f'wrote {args.out}/attribution.npz, {os.path.basename(written["bigwig"])}, tracks.png, '
      'logo.png'
  )
  return 0
