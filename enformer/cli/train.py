"""`enformer train`: train or resume an Enformer (thin over `enformer.training.train`)."""

import argparse
import dataclasses
import typing

from enformer.cli import _common
from enformer.cli._inputs import (
    check_data_folder,
    check_input_file,
    check_model,
    check_output_path,
)

_DESCRIPTION = """\
Train Enformer on Basenji2 data (Poisson loss per head, heads alternating step by step, Adam with
linear warm-up, global-norm clipping). Settings come from defaults < --config FILE (JSON/YAML with
TrainConfig fields) < flags. Rerunning the same command resumes from the latest checkpoint in
--run-dir. The strategy follows the environment: --tpu NAME → TPUStrategy; TF_CONFIG →
MultiWorkerMirroredStrategy; several local GPUs → MirroredStrategy; else one device.

The run folder holds config.json (resolved settings), checkpoints/ (last K), best/ (best model by
validation mean Pearson R, plus a TF-Hub SavedModel at the end), train/ and valid/ (TensorBoard),
history.jsonl (validation curve).

Example:
  enformer train --data human=data/human --data mouse=data/mouse --run-dir runs/paper
  enformer train --preset tiny --data human=data/synthetic --batch-size 8 --num-steps 2000 \\
      --warmup-steps 200 --run-dir runs/tiny
"""

# Flags that are not plain scalar TrainConfig fields.
_SPECIAL = ('model_args', 'data', 'run_dir')
# Integer settings checked while parsing (before TensorFlow loads): counts are at least 1.
_INT_TYPES = {
    name: _common.positive_int
    for name in (
        'batch_size',
        'num_steps',
        'eval_every',
        'eval_batches',
        'eval_batch_size',
        'checkpoint_every',
        'keep_checkpoints',
        'log_every',
        'shuffle_buffer',
    )
}
_INT_TYPES.update(warmup_steps=_common.non_negative_int, max_shift=_common.non_negative_int)

# One help sentence per TrainConfig flag (TrainConfig's docstring describes the fields; these say
# what each flag sets). The flags default to None (a --config file's values stand unless a flag is
# given), so `_help` appends TrainConfig's own default; the fields whose default is None say here
# what None means.
_HELP = {
    'preset': 'model preset (see Presets above)',
    'data_layout': 'layout of the --data folders: basenji2 or legacy (default: detected from '
    'the folder)',
    'train_subset': 'subset of the data folders to train on',
    'valid_subset': 'subset of the data folders to validate on',
    'batch_size': 'global batch size, split across replicas',
    'num_steps': 'total optimizer steps',
    'learning_rate': 'peak learning rate, reached at the end of the linear warm-up',
    'warmup_steps': 'steps of linear learning-rate warm-up (the paper: 5000)',
    'clip_norm': 'global-norm gradient clipping threshold (the paper: 0.2)',
    'adam_beta1': "Adam's decay rate of the gradient mean",
    'adam_beta2': "Adam's decay rate of the squared-gradient mean",
    'adam_epsilon': "Adam's term added to the denominator for stability",
    'precision': 'float32, or bfloat16 (bfloat16 compute with float32 variables; for TPU/GPU)',
    'recompute': "recompute each conv-tower and transformer block's activations in the backward "
    'pass instead of storing them: less memory, about one extra forward pass per step',
    'augment': 'shift training examples by up to ±--max-shift bp and reverse-complement them at '
    'random',
    'max_shift': 'largest augmentation shift in bp',
    'shuffle_buffer': 'examples in the shuffle buffer; 0 turns shuffling off',
    'seed': 'seed of shuffling, augmentation, initialisation and dropout',
    'deterministic': 'op determinism, ordered input, dropout reseeded at every checkpoint, so that '
    'a killed and resumed run equals an uninterrupted one (bit for bit for narrow models; wider '
    'ones can differ between runs on several threads, see the README)',
    'eval_every': 'validate every this many steps, and at the end',
    'eval_batches': 'validation batches per evaluation (default: the whole validation subset)',
    'eval_batch_size': 'global batch size of validation (default: --batch-size)',
    'checkpoint_every': 'save a checkpoint every this many steps, and at the end',
    'keep_checkpoints': 'how many recent checkpoints to keep',
    'log_every': 'write training summaries every this many steps',
    'export_hub': 'export the best model as a TF-Hub-compatible SavedModel at the end',
    'tpu': 'TPU name or address (TPUClusterResolver) (default: TF_CONFIG or the local devices)',
    'progress': 'show a progress bar',
}


def _help(field: dataclasses.Field) -> str:
  """The flag's help sentence with TrainConfig's default, written as the flag takes it."""
  if field.default is None:
    return _HELP[field.name]
  value = field.default
  shown = str(value).lower() if isinstance(value, bool) else value
  return f'{_HELP[field.name]} (default {shown})'


def _field_type(field: dataclasses.Field):
  kind = field.type if not isinstance(field.type, str) else eval(field.type, vars(typing))  # pylint: disable=eval-used
  args = [a for a in typing.get_args(kind) if a is not type(None)]
  return args[0] if args else kind


def _parse_bool(text: str) -> bool:
  lowered = text.lower()
  if lowered in ('1', 'true', 'yes', 'on'):
    return True
  if lowered in ('0', 'false', 'no', 'off'):
    return False
  raise argparse.ArgumentTypeError(f'expected true/false, got {text!r}')


def _head_path(text: str):
  """HEAD=DIR, or a bare DIR for the 'human' head."""
  head, sep, path = text.partition('=')
  if sep and head.isidentifier():
    return head, path
  return 'human', text


def register(subparsers) -> None:
  from enformer import presets  # Light: no TensorFlow.
  from enformer.training.config import TrainConfig  # pylint: disable=import-outside-toplevel

  parser = _common.add_parser(
      subparsers,
      'train',
      help='train or resume an Enformer (single device, multi-device, multi-worker, TPU)',
      description=_DESCRIPTION + '\nPresets (--preset):\n' + presets.describe_presets(),
  )
  parser.add_argument('--config', help='JSON or YAML file with TrainConfig settings')
  parser.add_argument('--run-dir', help='run folder (default runs/enformer); rerun to resume')
  parser.add_argument(
      '--data',
      action='append',
      type=_head_path,
      metavar='HEAD=DIR',
      help='Basenji2 data folder of a head (repeat for human and mouse); a bare '
      "DIR means the 'human' head. 'human'/'mouse' alone read $ENFORMER_DATA_DIR",
  )
  _common.add_model_config_arguments(parser, sequence_length=False)
  _common.add_quiet_argument(parser)
  finetuning = parser.add_argument_group(
      'fine-tuning (enformer.training.finetune)',
      'Start from a full Enformer checkpoint. Architecture: its variable shapes < --preset (if\n'
      'given) < --model-arg. Heads follow --data: new names start fresh, names the checkpoint\n'
      'has are restored (another track count is an error: rename the head or pass\n'
      '--no-restore-heads). Missing, extra or differently shaped trunk variables are refused.\n'
      '--freeze:\n' + '\n'.join(f'  {k}: {v}' for k, v in presets.FREEZE_HELP.items()),
  )
  finetuning.add_argument(
      '--init-from', metavar='CKPT', help='checkpoint prefix or folder to initialise the trunk from'
  )
  finetuning.add_argument(
      '--freeze',
      choices=presets.FREEZE_CHOICES,
      default='trunk',
      help='what stays frozen with --init-from (default trunk)',
  )
  finetuning.add_argument(
      '--batch-norm-frozen',
      type=_parse_bool,
      metavar='BOOL',
      help='normalise with moving statistics while training (default: true '
      'unless --freeze none)',
  )
  finetuning.add_argument(
      '--no-restore-heads',
      action='store_true',
      help='start every head fresh, even those the checkpoint has',
  )
  finetuning.add_argument(
      '--allow-unused-trunk',
      action='store_true',
      help='accept checkpoint trunk variables the model lacks (e.g. a '
      '5-layer model from the 11-layer one)',
  )
  for field in dataclasses.fields(TrainConfig):
    if field.name in _SPECIAL:
      continue
    kind = _field_type(field)
    flag = '--' + field.name.replace('_', '-')
    kwargs = dict(help=_help(field), default=None, dest=field.name)
    if kind is bool:  # --flag alone means true; --flag false/true also works.
      kwargs.update(type=_parse_bool, metavar='BOOL', nargs='?', const=True)
    elif kind in (int, float, str):
      kwargs.update(type=_INT_TYPES.get(field.name, kind))
    parser.add_argument(flag, **kwargs)
  parser.set_defaults(func=run)


def build_config(args: argparse.Namespace):
  """TrainConfig from --config and flags (flags win)."""
  from enformer.training.config import TrainConfig, resolve_config  # pylint: disable=import-outside-toplevel

  overrides = {
      f.name: getattr(args, f.name, None)
      for f in dataclasses.fields(TrainConfig)
      if f.name not in _SPECIAL
  }
  overrides['run_dir'] = args.run_dir
  if args.data:
    data = {}
    for head, path in args.data:
      data[head] = path
    overrides['data'] = data
  model_args = _common.model_config_from_args(args)
  if model_args:
    overrides['model_args'] = model_args
  if args.quiet:
    overrides['progress'] = False
  return resolve_config(args.config, **overrides)


def _check_inputs(args: argparse.Namespace, config) -> None:
  """The data folders, --config and --init-from exist, and --run-dir can be a folder."""
  from enformer.data.sets import is_named_set  # pylint: disable=import-outside-toplevel

  for head, path in (config.data or {}).items():
    if isinstance(path, str) and not is_named_set(path):  # Named: under $ENFORMER_DATA_DIR.
      check_data_folder(path, f'--data (head {head})')
  if args.init_from:
    check_model(args.init_from, '--init-from', kinds=('url', 'checkpoint'))
  check_output_path(config.run_dir, '--run-dir', folder=True)


def run(args: argparse.Namespace) -> int:
  if args.config:
    check_input_file(args.config, '--config', kind='text')
  config = build_config(args)
  _check_inputs(args, config)
  # One live run per folder: `train` (and `fine_tune` through it) locks the run folder on the
  # chief, so a second `train` on it stops before reading data, naming the first.
  from enformer.training import train  # pylint: disable=import-outside-toplevel

  if args.init_from:
    from enformer.training.finetune import fine_tune  # pylint: disable=import-outside-toplevel

    result = fine_tune(
        config,
        init_from=args.init_from,
        freeze=args.freeze,
        batch_norm_frozen=args.batch_norm_frozen,
        restore_heads=not args.no_restore_heads,
        allow_unused_trunk=args.allow_unused_trunk,
        preset=args.preset,
    )
  else:
    result = train(config)
  print(f'Trained {result.step} steps ({result.strategy}) → {result.run_dir}')
  for record in result.validation[-len(config.data or [1]) :]:
    nan = f', {record["nan_tracks"]} NaN tracks skipped' if record['nan_tracks'] else ''
    print(
        f'  step {record["step"]} {record["head"]}: validation Pearson R '
        f'{record["pearson_r"]:.4f}, R² {record["r2"]:.4f}{nan}'
    )
  if result.best:
    print(f'  best: step {result.best["step"]}, mean Pearson R {result.best["score"]:.4f}')
  return 0
