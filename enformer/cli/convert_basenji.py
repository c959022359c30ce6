"""`enformer convert-basenji`: extend Basenji2 records to a longer context (GENA-LM workflow)."""

import argparse
import os

from enformer.cli._inputs import (
    check_files,
    check_input_file,
    check_input_folder,
    check_output_path,
)

from enformer.cli import _common


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'convert-basenji',
      help='extend Basenji2 records to a longer input with the genome FASTA (HDF5 or TFRecords)',
      description=(
          "Recover each record's coordinates from sequences.bed "
          '(rows N*256..N*256+255 of a subset '
          'belong to {subset}-N.tfr), extend them around the centre to --sequence-length with the '
          'genome FASTA (N-padded past chromosome ends), verify that the centre equals the '
          "record's one-hot (stops when the mismatch rate says the assembly is wrong, e.g. mm39 "
          'vs mm10), and write HDF5 (sequence string, target, coordinates per record) or a '
          'Basenji2-layout TFRecord folder readable by '
          'get_dataset(out, subset, sequence_length=L).'
      ),
  )
  parser.add_argument(
      '--base-path',
      required=True,
      help='Basenji2 data folder (statistics.json, sequences.bed, tfrecords/)',
  )
  parser.add_argument('--subset', required=True, help='train, valid or test')
  _common.add_fasta_argument(parser, help=_common.FASTA_HELP + " of the data's assembly")
  parser.add_argument(
      '--tfr',
      action='append',
      default=None,
      metavar='FILE',
      help='convert only this TFRecord file (repeatable; name or path; default: '
      'the whole subset, in parallel processes)',
  )
  _common.add_sequence_length_argument(
      parser, required=True, help='output sequence length in bp (e.g. 196608 or 393216)'
  )
  output = parser.add_mutually_exclusive_group(required=True)
  output.add_argument('--out-hdf5', help='HDF5 file (with one --tfr) or folder of {subset}-N.h5')
  output.add_argument('--out-tfr', help='output folder in Basenji2 layout')
  parser.add_argument('--processes', type=int, default=2, help='parallel worker processes')
  parser.add_argument(
      '--max-mismatch-rate',
      type=float,
      default=0.01,
      help='stop when more than this fraction of compared bases differ',
  )
  _common.add_overwrite_argument(
      parser, help=_common.OVERWRITE_HELP + ' (default: skip converted files, i.e. resume)'
  )
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  # The user's files first (local paths; gs:// paths are checked when read).
  if '://' not in args.base_path:
    check_input_folder(args.base_path, '--base-path')
  check_files((args.fasta, '--fasta', 'fasta'))
  for path in args.tfr or ():  # A path, or a name in BASE_PATH/tfrecords/.
    in_data = os.path.join(args.base_path, 'tfrecords', path)
    if '://' not in path + args.base_path and not os.path.exists(path):
      check_input_file(in_data, '--tfr')
  for path, flag in ((args.out_hdf5, '--out-hdf5'), (args.out_tfr, '--out-tfr')):
    if path and '://' not in path:
      check_output_path(path, flag, folder=flag == '--out-tfr' or not path.endswith('.h5'))
  from enformer.data.convert import convert_basenji  # pylint: disable=import-outside-toplevel

  out = args.out_hdf5 or args.out_tfr
  flag = '--out-hdf5' if args.out_hdf5 else '--out-tfr'
  with _common.output_lock(out, flag):  # --overwrite never deletes under another conversion.
    results = convert_basenji(
        args.base_path,
        args.subset,
        args.fasta,
        args.sequence_length,
        tfr_files=args.tfr,
        out_hdf5=args.out_hdf5,
        out_tfr=args.out_tfr,
        processes=args.processes,
        max_mismatch_rate=args.max_mismatch_rate,
        overwrite=args.overwrite,
    )

  records = sum(r.records for r in results)
  compared = sum(r.compared_bases for r in results)
  mismatched = sum(r.mismatched_bases for r in results)
  print(
      f'Converted {records} records in {len(results)} files to {args.sequence_length} bp '
      f'→ {args.out_hdf5 or args.out_tfr}; base mismatch rate '
      f'{mismatched / max(compared, 1):.4%} '
      f'({mismatched} of {compared}), records with mismatches: '
      f'{sum(r.mismatched_records for r in results)}.'
  )
  return 0
