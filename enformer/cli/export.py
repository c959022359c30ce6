"""`enformer export`: Sonnet checkpoint → TF-Hub-compatible SavedModel."""

import argparse

from enformer.cli import _common
from enformer.cli._inputs import check_model, check_output_path
from enformer.io.outputs import check_export_folder

DESCRIPTION = """Export a Sonnet checkpoint (e.g. DeepMind's sonnet_weights, or a training run's) as
a TF-Hub-compatible SavedModel: hub.load(OUT).model.predict_on_batch(x) takes x = [B, N, 4] float32
(N = --hub-length, default 393,216 like the published module) and centre-crops it to the model's own
input length (--sequence-length; default 196,608, or a run folder's training length). The checkpoint
is verified against the model config first (a mismatch says which config would fit). Load the result
with `enformer predict --model OUT` or enformer.load_model(OUT). An --out that holds files is
refused unless --overwrite, which replaces an earlier export there (and only a folder holding
nothing else).

Example:
  enformer export --model gs://dm-enformer/models/enformer/sonnet_weights/enformer \\
      --out enformer_hub/
  enformer export --model runs/tiny:latest --out tiny_hub/
"""


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'export',
      help='export a checkpoint as a TF-Hub SavedModel',
      description=DESCRIPTION,
  )
  _common.add_model_argument(parser)
  _common.add_out_argument(parser, help='SavedModel folder to create')
  parser.add_argument(
      '--hub-length',
      type=_common.positive_length,
      default=None,
      metavar='BP',
      help='input length of the exported signature (default 393,216, or the '
      'model length when that is larger)',
  )
  _common.add_model_config_arguments(parser)
  _common.add_overwrite_argument(
      parser,
      help=_common.OVERWRITE_HELP + ' (an earlier export in '
      '--out; a folder holding other files is refused)',
  )
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  check_model(args.model, '--model')
  _common.model_config_from_args(args)
  check_output_path(args.out, '--out', folder=True)
  if '://' not in args.out:
    check_export_folder(args.out, args.overwrite, hint='--overwrite')
  with _common.output_lock(args.out):
    return _export(args)


def _export(args: argparse.Namespace) -> int:
  from enformer.inference import HUB_SEQUENCE_LENGTH, export_hub_module, load_model

  predictor = load_model(
      args.model, sequence_length=args.sequence_length, **_common.model_config_from_args(args)
  )
  if predictor.model is None:
    raise ValueError(
        f"--model {args.model} is DeepMind's TF-Hub module, already a SavedModel; "
        'export takes checkpoints, run folders and SavedModels of this package.'
    )
  model_length = predictor.model_sequence_length
  hub_length = args.hub_length or max(HUB_SEQUENCE_LENGTH, model_length)
  export_hub_module(
      predictor.model,
      args.out,
      sequence_length=hub_length,
      model_sequence_length=model_length,
      overwrite=args.overwrite,
  )
  heads = ', '.join(f'{k} {v}' for k, v in predictor.heads.items())
  print(
      f'Exported {predictor.source} to {args.out}: input [B, {hub_length:,}, '
      f'{predictor.input_channels}] (centre {model_length:,} bp seen by the model) → '
      f'{predictor.output_length} bins × ({heads}).'
  )
  return 0
