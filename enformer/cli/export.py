"""`enformer export`: Sonnet checkpoint → TF-Hub-compatible SavedModel."""

import argparse

from enformer.cli._inputs import check_model, check_output_path
from enformer.cli.predict import add_model_config_arguments, model_config_from_args
from enformer.io.lock import OutputLock

DESCRIPTION = """Export a Sonnet checkpoint (e.g. DeepMind's sonnet_weights, or a training checkpoint) as a
TF-Hub-compatible SavedModel: hub.load(OUT).model.predict_on_batch(x) takes x = [B, N, 4] float32
(N = --hub-length, default 393,216 like the published module) and centre-crops it to the model's
own input length (--sequence-length, default 196,608). The checkpoint is verified against the model
config first (a mismatch says which config would fit). Load the result with
`enformer predict --model OUT` or enformer.load_model(OUT).

Example:
  enformer export --checkpoint gs://dm-enformer/models/enformer/sonnet_weights/enformer \\
      --out enformer_hub/
"""


def register(subparsers) -> None:
  parser = subparsers.add_parser(
      'export', help='export a checkpoint as a TF-Hub SavedModel', description=DESCRIPTION,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--checkpoint', required=True,
                      help='checkpoint folder or prefix (local or tf.io.gfile path, e.g. gs://).')
  parser.add_argument('--out', required=True, help='SavedModel folder to create.')
  parser.add_argument('--hub-length', type=int, default=None,
                      help='input length of the exported signature (default 393,216, or the '
                      'model length when that is larger).')
  add_model_config_arguments(parser)
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  check_model(args.checkpoint, '--checkpoint')
  model_config_from_args(args)
  check_output_path(args.out, '--out', folder=True)
  with OutputLock(args.out, what=f'--out {args.out}'):
    return _export(args)


def _export(args: argparse.Namespace) -> int:
  from enformer.enformer import SEQUENCE_LENGTH
  from enformer.inference import HUB_SEQUENCE_LENGTH, export_hub_module, load_model

  model_length = args.sequence_length or SEQUENCE_LENGTH
  hub_length = args.hub_length or max(HUB_SEQUENCE_LENGTH, model_length)
  predictor = load_model(args.checkpoint, sequence_length=model_length,
                         **model_config_from_args(args))
  if predictor.model is None:
    raise ValueError(f'{args.checkpoint} is not a checkpoint; export takes Sonnet checkpoints.')
  export_hub_module(predictor.model, args.out, sequence_length=hub_length,
                    model_sequence_length=model_length)
  heads = ', '.join(f'{k} {v}' for k, v in predictor.heads.items())
  print(f'Exported {predictor.source} to {args.out}: input [B, {hub_length:,}, '
        f'{predictor.input_channels}] (centre {model_length:,} bp seen by the model) → '
        f'{predictor.output_length} bins × ({heads}).')
  return 0
