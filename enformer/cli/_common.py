"""Flags that several subcommands share: one name, one meaning, one help text.

Every subcommand adds its shared flags with the `add_*` functions below, so `--model`, `--fasta`,
`--out`, `--sequence-length`, `--tracks`, `--targets`, `--extra-track`, `--model-arg`,
`--overwrite` and `--quiet` are spelled, typed and explained the same way everywhere.

Nothing here imports TensorFlow at module level, so `enformer --help` stays fast.
"""

import argparse
import contextlib
import json
import math
import os
from typing import Any, Dict, List, Optional, Tuple, Union

from enformer.io import quiet
from enformer.io.lock import OutputLock
from enformer.io.outputs import visible_entries

MODEL_HELP = (
    'the model: a TF-Hub handle or URL, a SavedModel folder, a Sonnet checkpoint (folder or '
    'prefix, local or gs://) or a training run folder (its best model; RUN:latest for its '
    'latest checkpoint)'
)
MODEL_ARG_HELP = (
    'an Enformer constructor argument with a JSON value (repeat the flag for several), e.g. '
    '--model-arg channels=384 --model-arg \'heads={"atac": 16}\' --model-arg target_length=null; '
    'it overrides the architecture that the model source or preset gives (bare checkpoints: the '
    'published model, input_channels read from the checkpoint; run folders and exports of this '
    'package: their own)'
)
FASTA_HELP = 'genome FASTA (plain or bgzip; a .fai index is created if missing)'
SEQUENCE_LENGTH_MODEL_HELP = (
    "the model's input length in bp for checkpoints (default: a run folder's training length, "
    'else 196,608); SavedModels define their own'
)
TRACKS_HELP = (
    'tracks: indices (4828), ranges (10-12), identifiers (CNhs11250) or, with --targets, '
    "description substrings ('CAGE:K562'), separated by spaces; 4828,5111 also works"
)
TARGETS_HELP = (
    'targets table (targets_human.txt: index, identifier, file, clip, scale, '
    'sum_stat, description) for track names and selection by name'
)
EXTRA_TRACK_HELP = (
    'per-base bigWig of an extra input channel (e.g. conservation), repeatable in channel order, '
    'for models with input_channels = 4 + the number given; missing values count as 0'
)
QUIET_HELP = 'no progress bars'
PRECISION_HELP = (
    'inference precision. bfloat16 runs matmuls and convolutions in bfloat16 (faster on CPUs '
    'with AVX-512 BF16, and on GPUs/TPUs; SLOWER on CPUs without bfloat16 instructions, e.g. '
    'AVX2 only, where it warns; timings in docs/performance.md) with float32 normalisation and '
    'outputs; needs '
    'the Sonnet module (checkpoint, run folder or an export of this package); '
    'benchmarks/bf16_accuracy.py measures its accuracy on your model'
)
OVERWRITE_HELP = "replace this command's earlier outputs, never other files"

_VALUE_OPTIONAL = (argparse.OPTIONAL, argparse.ZERO_OR_MORE)


class HelpFormatter(argparse.HelpFormatter):
  """Keeps descriptions that hold line breaks as written, and shows real defaults only.

  An option's default is appended as "(default: X)" unless the option is required, the default is
  empty (None, False, []), or the help text already says it.
  """

  def _fill_text(self, text: str, width: int, indent: str) -> str:
    if '\n' in text.strip():
      return ''.join(indent + line for line in text.splitlines(keepends=True))
    return super()._fill_text(text, width, indent)

  def _get_help_string(self, action: argparse.Action) -> str:
    text = action.help or ''
    if (
        action.required
        or not action.option_strings
        or action.default in (None, False, [])
        or action.default is argparse.SUPPRESS
        or 'default' in text
    ):
      return text
    return text + ' (default: %(default)s)'


def add_parser(subparsers, name: str, **kwargs: Any) -> argparse.ArgumentParser:
  """A subcommand parser with the shared help formatter; abbreviated long flags are refused.

  (argparse would otherwise read `--checkpoint 5` as `--checkpoint-every 5`: hidden aliases.)
  """
  kwargs.setdefault('formatter_class', HelpFormatter)
  kwargs.setdefault('allow_abbrev', False)
  return subparsers.add_parser(name, **kwargs)


# --------------------------------------------------------------------------- model


def add_model_argument(parser) -> argparse.Action:
  """--model: any model source (required)."""
  return parser.add_argument('--model', required=True, metavar='MODEL', help=MODEL_HELP)


def _model_arg(text: str) -> Tuple[str, Any]:
  """'KEY=VALUE' → (key, JSON-decoded value; the text itself when it is not JSON)."""
  key, sep, value = text.partition('=')
  if not sep or not key.strip().isidentifier():
    raise argparse.ArgumentTypeError(f'expected KEY=VALUE (e.g. channels=384), got {text!r}')
  try:
    return key.strip(), json.loads(value)
  except json.JSONDecodeError as error:
    if value.lstrip()[:1] in ('{', '[', '"'):  # Meant as JSON (a dict, list or string).
      raise argparse.ArgumentTypeError(
          f'{text!r}: the value is not valid JSON ({error.msg} at column {error.colno}); '
          'JSON needs double-quoted keys and the shell needs the whole argument quoted, e.g. '
          '--model-arg \'heads={"human": 5313}\''
      ) from None
    return key.strip(), value


def add_model_config_arguments(parser, sequence_length: bool = True) -> None:
  """--model-arg KEY=VALUE (repeatable) and --sequence-length.

  Args:
    parser: the subcommand's parser.
    sequence_length: also add --sequence-length (the model's input length for checkpoints).
  """
  group = parser.add_argument_group('model configuration')
  group.add_argument(
      '--model-arg',
      action='append',
      type=_model_arg,
      metavar='KEY=VALUE',
      dest='model_args',
      default=None,
      help=MODEL_ARG_HELP,
  )
  if sequence_length:
    add_sequence_length_argument(group, help=SEQUENCE_LENGTH_MODEL_HELP)


def model_config_from_args(args: argparse.Namespace) -> Dict[str, Any]:
  """Enformer constructor arguments given on the command line (only those set).

  A key given twice takes its last value.
  """
  return dict(getattr(args, 'model_args', None) or [])


def predictor_config(args: argparse.Namespace) -> Dict[str, Any]:
  """Model config of --model from --model-arg, checked against --extra-track.

  The loader reads a checkpoint's input_channels from its stem convolution unless given, so a
  model with extra input channels needs no configuration for them; a wrong number of
  --extra-track is reported here, before the model is built. Dask workers load the model from this
  config too.
  """
  from enformer.inference.loading import checkpoint_input_channels  # pylint: disable=import-outside-toplevel
  from enformer.inference.regions import check_extra_tracks  # pylint: disable=import-outside-toplevel

  config = model_config_from_args(args)
  channels = config.get('input_channels') or checkpoint_input_channels(args.model)
  if channels is not None:
    check_extra_tracks(channels, list(getattr(args, 'extra_track', None) or []))
  return config


def model_source(args: argparse.Namespace):
  """What Dask workers load for --model: `ModelSource.of` with the command's model settings."""
  from enformer.distributed import ModelSource  # pylint: disable=import-outside-toplevel

  return ModelSource.of(
      args.model,
      getattr(args, 'sequence_length', None),
      precision=getattr(args, 'precision', 'float32'),
      **predictor_config(args),
  )


def model_for(args: argparse.Namespace, client):
  """The model of a workflow: loaded in this process (`client` None), or with a Dask `client` the
  `ModelSource` its workers load (this process then loads no weights and needs no TensorFlow)."""
  return load_predictor(args) if client is None else model_source(args)


def model_id(args: argparse.Namespace) -> str:
  """--model (absolute unless a URL) and --precision: the model in a run's resume fingerprint
  (`ModelSource.identity`)."""
  from enformer.distributed import ModelSource  # pylint: disable=import-outside-toplevel

  return ModelSource.of(args.model, precision=getattr(args, 'precision', 'float32')).identity


def load_predictor(args: argparse.Namespace):
  """The Predictor of --model (any source) with --model-arg, --sequence-length, --precision."""
  from enformer import inference  # pylint: disable=import-outside-toplevel
  from enformer.inference.regions import check_extra_tracks  # pylint: disable=import-outside-toplevel

  predictor = inference.load_model(
      args.model,
      sequence_length=getattr(args, 'sequence_length', None),
      precision=getattr(args, 'precision', 'float32'),
      **predictor_config(args),
  )
  check_extra_tracks(
      getattr(predictor, 'input_channels', 4), list(getattr(args, 'extra_track', None) or [])
  )
  return predictor


def n_value(text: str) -> float:
  """--n-value: a finite number in [0, 1] (NaN or infinity would make every output NaN)."""
  try:
    value = float(text)
  except ValueError:
    value = None
  if value is None or not math.isfinite(value) or not 0 <= value <= 1:
    raise argparse.ArgumentTypeError(
        f'must be a finite number in [0, 1] (0, or 0.25 as '
        f"DeepMind's usage notebook), got {text!r}"
    )
  return value


def add_n_value_argument(parser: argparse.ArgumentParser) -> argparse.Action:
  """--n-value V: the one-hot value of N (library keyword `neutral_value`), in [0, 1]."""
  return parser.add_argument(
      '--n-value',
      type=n_value,
      default=0.0,
      metavar='V',
      help='one-hot value of N (and of the padding past chromosome ends) in each of the 4 '
      "channels: 0 as DeepMind's enformer.py and the Basenji2 training data; 0.25 as DeepMind's "
      "usage notebook (kipoiseq's default), to reproduce its numbers",
  )


def add_cluster_arguments(parser: argparse.ArgumentParser, unit: str) -> None:
  """--workers N / --scheduler ADDRESS: run the work on a Dask cluster (docs/distributed.md)."""
  group = parser.add_argument_group('Dask cluster (same output as a single process)')
  where = group.add_mutually_exclusive_group()
  where.add_argument(
      '--workers',
      type=positive_int,
      default=None,
      metavar='N',
      help=f'start N single-threaded worker processes on this machine (e.g. one per '
      f'GPU or core) and run {unit} as tasks on them',
  )
  where.add_argument(
      '--scheduler',
      default=None,
      metavar='tcp://HOST:PORT',
      help=f'run {unit} on the workers of a running Dask scheduler (e.g. a '
      'dask-jobqueue SLURMCluster); they must see the same paths',
  )


# --------------------------------------------------------------------------- inputs and outputs


def add_fasta_argument(
    parser, required: bool = True, help: str = FASTA_HELP
) -> argparse.Action:  # pylint: disable=redefined-builtin
  """--fasta: the genome FASTA."""
  return parser.add_argument('--fasta', required=required, metavar='FASTA', help=help)


def _whole_number(text: str, what: str = 'a whole number') -> int:
  """`text` as an int (thousands separators ',' and '_' allowed), else an argparse error."""
  try:
    return int(text.replace(',', '').replace('_', ''))
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}') from None


def positive_int(text: str) -> int:
  """A count that must be at least 1 (checked while parsing, long before TensorFlow loads)."""
  value = _whole_number(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
  return value


def non_negative_int(text: str) -> int:
  """A count that may be 0."""
  value = _whole_number(text)
  if value < 0:
    raise argparse.ArgumentTypeError(f'must be 0 or more, got {value}')
  return value


def positive_length(text: str) -> int:
  """An input length in bp: a positive multiple of 128 (the bin size)."""
  value = _whole_number(text, 'a length in bp')
  if value <= 0 or value % 128:
    raise argparse.ArgumentTypeError(f'must be a positive multiple of 128, got {value}')
  return value


def add_sequence_length_argument(
    parser,
    help: str,
    required: bool = False,  # pylint: disable=redefined-builtin
    default: Optional[int] = None,
) -> argparse.Action:
  """--sequence-length: a length in bp, positive multiple of 128."""
  return parser.add_argument(
      '--sequence-length',
      type=positive_length,
      metavar='BP',
      required=required,
      default=default,
      help=help,
  )


def add_out_argument(
    parser,
    help: str,
    required: bool = True,  # pylint: disable=redefined-builtin
    default: Optional[str] = None,
) -> argparse.Action:
  """--out: where the results go (a folder, or a file where the help says so)."""
  return parser.add_argument('--out', required=required, default=default, metavar='OUT', help=help)


def add_targets_argument(
    parser, required: bool = False, help: str = TARGETS_HELP
) -> argparse.Action:  # pylint: disable=redefined-builtin
  """--targets: a Basenji targets table."""
  return parser.add_argument('--targets', required=required, metavar='TABLE', help=help)


def add_tracks_argument(parser, required: bool = False) -> argparse.Action:
  """--tracks TRACK [TRACK ...]: which tracks (`enformer.io.targets.select_tracks` reads them)."""
  return parser.add_argument(
      '--tracks', nargs='+', required=required, metavar='TRACK', help=TRACKS_HELP
  )


def add_precision_argument(parser, extra: str = '') -> argparse.Action:
  """--precision float32|bfloat16: inference precision (`extra`: appended to the help)."""
  return parser.add_argument(
      '--precision',
      type=str,
      choices=('float32', 'bfloat16'),
      default='float32',
      help=PRECISION_HELP + extra,
  )


def add_extra_track_argument(parser) -> argparse.Action:
  """--extra-track FILE.bw (repeatable): per-base inputs of a model's extra input channels."""
  return parser.add_argument(
      '--extra-track', action='append', default=[], metavar='BIGWIG', help=EXTRA_TRACK_HELP
  )


# --------------------------------------------------------------------------- behaviour


def import_tensorflow_quietly() -> None:
  """TensorFlow, whenever a subcommand first imports it, loads without its start-up messages.

  Nothing is imported here: the subcommand checks its inputs first, without TensorFlow
  (`enformer.io.quiet`; a TF_CPP_MIN_LOG_LEVEL set by the user applies as set).
  """
  quiet.quiet_tensorflow_import()


def add_overwrite_argument(
    parser, help: str = OVERWRITE_HELP  # pylint: disable=redefined-builtin
) -> argparse.Action:
  """--overwrite: replace existing outputs (otherwise the subcommand stops or resumes)."""
  return parser.add_argument('--overwrite', action='store_true', help=help)


def add_quiet_argument(parser) -> argparse.Action:
  """--quiet: no progress bars (TensorFlow's start-up messages are always hidden)."""
  return parser.add_argument('--quiet', action='store_true', help=QUIET_HELP)


def output_lock(path: str, flag: str = '--out') -> contextlib.AbstractContextManager:
  """The lock a subcommand holds on its output from its input checks to its end.

  Taken before the model loads, so a second run on the same output stops at once, naming the first
  (`enformer.io.lock`); the library function the command calls locks the same output again
  (re-entrant). Remote outputs (gs://) have no lock.
  """
  if '://' in path:
    return contextlib.nullcontext()
  return OutputLock(path, what=f'{flag} {path}')


def check_unused_output_folder(out: str, overwrite: bool) -> None:
  """Refuses an --out folder that holds files unless --overwrite (no stale outputs beside new).

  With --overwrite the command later removes only the files it wrote there before
  (`enformer.io.outputs.OutputFolder`); other files stay.
  """
  if overwrite or not os.path.isdir(out):
    return
  entries = visible_entries(out)
  if entries:
    shown = ', '.join(entries[:3]) + (', ...' if len(entries) > 3 else '')
    raise FileExistsError(
        f'--out {out} already holds files ({shown}). Pass --overwrite to '
        'replace the outputs an earlier run of this command wrote there (other '
        'files are kept), or choose another --out.'
    )


def names(text: str) -> List[str]:
  """'a,b' → ['a', 'b']: the comma-separated lists of --gene-types, --genes and --samples."""
  return [value.strip() for value in text.split(',') if value.strip()]


def names_or_file(text: Optional[str]) -> Union[None, str, List[str]]:
  """--genes / --samples: an existing file's absolute path (one name a line, read by the
  library), else a comma-separated list of names; None stays None."""
  if not text:
    return None
  return os.path.abspath(text) if os.path.isfile(text) else names(text)
