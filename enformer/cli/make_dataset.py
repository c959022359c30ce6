"""`enformer make-dataset`: write a Basenji2-layout data set (synthetic, or from bigWig tracks)."""

import argparse
import os
from typing import Dict, List, Optional

from enformer.cli import _common
from enformer.cli._inputs import check_files, check_input_file, check_output_path

# The data set's own files; other files in --out are never touched.
_OVERWRITE_HELP = (
    _common.OVERWRITE_HELP + ': the data set that --out holds (statistics.json, '
    'sequences.bed, targets.txt, tfrecords/, and genome/ for synthetic); other '
    'files in --out are kept'
)


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'make-dataset',
      help='write a Basenji2-layout data set: synthetic (planted motifs) or from bigWig tracks',
      description='Write a Basenji2-layout data set (statistics.json, sequences.bed, targets.txt, '
      'tfrecords/{train,valid,test}-N.tfr) readable by enformer.get_dataset. "synthetic" makes a '
      'small genome with planted motifs and tracks that are a known function of them; "bigwig" '
      'bins bigWig signal tracks listed in a Basenji targets table over a FASTA.',
  )
  sources = parser.add_subparsers(dest='source', metavar='SOURCE', required=True)
  # The nested subcommands share the shared help formatter.

  synthetic = _common.add_parser(
      sources,
      'synthetic',
      help='Synthetic genome + tracks with planted motifs.',
      description='Synthetic genome (chr1..chr4, planted CTCF/SP1/AP1/CREB motifs), per-track '
      'bigWigs, and a Basenji2 data set from it (train chr1-2, valid chr3, test chr4).',
  )
  _common.add_out_argument(synthetic, help='output folder (the genome goes to OUT/genome)')
  _common.add_sequence_length_argument(synthetic, help='record length in bp', default=4096)
  synthetic.add_argument('--num-tracks', type=int, default=4, help='signal tracks')
  synthetic.add_argument('--train-size', type=int, default=512, help='training records')
  synthetic.add_argument('--valid-size', type=int, default=64, help='validation records')
  synthetic.add_argument('--test-size', type=int, default=64, help='test records')
  synthetic.add_argument(
      '--conservation',
      action='store_true',
      help='add a per-base conservation input track (feature input_tracks) and '
      'a track that depends on it',
  )
  synthetic.add_argument('--seed', type=int, default=0, help='random seed')
  _common.add_overwrite_argument(synthetic, help=_OVERWRITE_HELP)
  _common.add_quiet_argument(synthetic)
  synthetic.set_defaults(func=run)

  bigwig = _common.add_parser(
      sources,
      'bigwig',
      help='Bin bigWig tracks over a FASTA (tiling or BED regions).',
      description='Bin each bigWig of the targets table to --pool-width bp with its sum_stat '
      '(mean/sum/median/max/min), clip and scale, skip blacklisted and N-rich windows, split by '
      'chromosome and write the Basenji2 layout.',
  )
  _common.add_fasta_argument(bigwig)
  _common.add_targets_argument(
      bigwig,
      required=True,
      help='targets table (tab-separated: index, identifier, file, clip, '
      'scale, sum_stat, description); file = bigWig path',
  )
  _common.add_out_argument(bigwig, help='output folder')
  _common.add_sequence_length_argument(bigwig, help='record length in bp', default=131_072)
  bigwig.add_argument('--crop-bp', type=int, default=0, help='bp on each side without targets')
  bigwig.add_argument('--pool-width', type=int, default=128, help='bin width in bp')
  bigwig.add_argument('--regions', help='BED of regions (default: tile the genome)')
  bigwig.add_argument('--stride', type=int, help='tiling step in bp (default: --sequence-length)')
  bigwig.add_argument('--chroms', help='comma-separated chromosomes to use (default: all)')
  bigwig.add_argument(
      '--valid-chroms', default='chr8', help='comma-separated validation chromosomes'
  )
  bigwig.add_argument('--test-chroms', default='chr9', help='comma-separated test chromosomes')
  bigwig.add_argument('--blacklist', help='BED of regions to avoid')
  bigwig.add_argument(
      '--max-n-fraction', type=float, default=0.1, help='skip windows with a larger fraction of N'
  )
  bigwig.add_argument(
      '--input-track',
      action='append',
      default=[],
      metavar='NAME=BIGWIG',
      help='extra per-base input track (repeatable), stored as feature '
      'input_tracks; e.g. conservation=phyloP.bw',
  )
  _common.add_overwrite_argument(bigwig, help=_OVERWRITE_HELP)
  bigwig.set_defaults(func=run)


def _split(text: Optional[str]) -> Optional[List[str]]:
  return [t.strip() for t in text.split(',') if t.strip()] if text else None


def _input_tracks(specs: List[str]) -> Dict[str, str]:
  tracks = {}
  for spec in specs:
    name, sep, path = spec.partition('=')
    if not sep or not name or not path:
      raise ValueError(f'--input-track {spec!r}: use NAME=BIGWIG, e.g. conservation=phyloP.bw.')
    tracks[name] = path
  return tracks


def _check_no_dataset(out: str, overwrite: bool) -> None:
  """Refuses an --out that holds a complete data set (its statistics.json) unless --overwrite."""
  statistics = os.path.join(out, 'statistics.json')
  if not overwrite and '://' not in out and os.path.exists(statistics):
    raise FileExistsError(
        f'--out {out} already holds a data set ({statistics}). Pass '
        '--overwrite to replace it, or choose another --out.'
    )


def _check_inputs(args: argparse.Namespace) -> None:
  """The user's files exist and are of the right kind, before TensorFlow loads."""
  check_output_path(args.out, '--out', folder=True)
  _check_no_dataset(args.out, args.overwrite)
  if args.source != 'bigwig':
    return
  check_files(
      (args.fasta, '--fasta', 'fasta'),
      (args.targets, '--targets', 'text'),
      (args.regions, '--regions', 'text'),
      (args.blacklist, '--blacklist', 'text'),
  )
  for path in _input_tracks(args.input_track).values():
    check_input_file(path, '--input-track', kind='bigwig')


def run(args: argparse.Namespace) -> int:
  _check_inputs(args)
  # One live job per output folder: --overwrite never deletes files another run is writing.
  with _common.output_lock(args.out):
    _check_no_dataset(args.out, args.overwrite)  # Again: another run may have finished one.
    return _make_dataset(args)


def _make_dataset(args: argparse.Namespace) -> int:
  if args.source == 'synthetic':
    from enformer.data.synthetic import make_synthetic_dataset  # pylint: disable=import-outside-toplevel

    out = make_synthetic_dataset(
        args.out,
        sequence_length=args.sequence_length,
        num_tracks=args.num_tracks,
        train_size=args.train_size,
        valid_size=args.valid_size,
        test_size=args.test_size,
        conservation=args.conservation,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(
        f'Wrote a synthetic Basenji2 data set to {out} (genome, motif sites and bigWigs in '
        f'{out}/genome).'
    )
    return 0
  from enformer.data.generate import generate_dataset  # pylint: disable=import-outside-toplevel

  counts = generate_dataset(
      args.out,
      args.fasta,
      args.targets,
      sequence_length=args.sequence_length,
      crop_bp=args.crop_bp,
      pool_width=args.pool_width,
      regions=args.regions,
      stride=args.stride,
      chroms=_split(args.chroms),
      valid_chroms=_split(args.valid_chroms) or (),
      test_chroms=_split(args.test_chroms) or (),
      blacklist=args.blacklist,
      max_n_fraction=args.max_n_fraction,
      input_tracks=_input_tracks(args.input_track),
      overwrite=args.overwrite,
  )
  print(f'Wrote {args.out}: ' + ', '.join(f'{k} {v}' for k, v in counts.items()))
  return 0
