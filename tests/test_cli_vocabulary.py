"""One CLI vocabulary: a flag means the same thing in every subcommand that has it."""

import argparse
import ast
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys

import pandas as pd
import pytest

from enformer.cli import _common, build_parser
from enformer.io.targets import parse_track_selectors, select_track, select_tracks

# Shared flags and the subcommands that must have them.
EXPECTED = {
    '--model': {'predict', 'attribute', 'score-variants', 'evaluate', 'export'},
    '--model-arg': {'predict', 'attribute', 'score-variants', 'evaluate', 'export', 'train'},
    '--fasta': {'predict', 'attribute', 'score-variants', 'convert-basenji', 'make-dataset bigwig'},
    '--out': {
        'predict',
        'attribute',
        'score-variants',
        'evaluate',
        'export',
        'demo',
        'make-dataset synthetic',
        'make-dataset bigwig',
    },
    '--sequence-length': {
        'predict',
        'attribute',
        'score-variants',
        'export',
        'benchmark',
        'convert-basenji',
        'make-dataset synthetic',
        'make-dataset bigwig',
    },
    '--tracks': {'predict', 'attribute'},
    '--targets': {'predict', 'attribute', 'score-variants', 'evaluate', 'make-dataset bigwig'},
    '--extra-track': {'predict', 'attribute', 'score-variants'},
    '--overwrite': {
        'score-variants',
        'convert-basenji',
        'make-dataset synthetic',
        'make-dataset bigwig',
        'demo',
    },
    '--quiet': {
        'predict',
        'attribute',
        'score-variants',
        'evaluate',
        'train',
        'demo',
        'make-dataset synthetic',
    },
}
# Flags whose help text is the same everywhere (the others add what differs, e.g. file vs folder).
SAME_HELP = {
    '--model': _common.MODEL_HELP,
    '--model-arg': _common.MODEL_ARG_HELP,
    '--tracks': _common.TRACKS_HELP,
    '--extra-track': _common.EXTRA_TRACK_HELP,
    '--quiet': _common.QUIET_HELP,
}
HELP_PREFIX = {
    '--fasta': _common.FASTA_HELP,
    '--overwrite': _common.OVERWRITE_HELP,
    '--targets': 'targets table',
}


def _subcommands():
  """{'predict': parser, ..., 'make-dataset synthetic': parser, ...}."""

  def children(parser):
    for action in parser._actions:  # pylint: disable=protected-access
      if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
        return action.choices
    return {}

  found = {}
  for name, parser in children(build_parser()).items():
    nested = children(parser)
    if nested:
      found.update({f'{name} {child}': sub for child, sub in nested.items()})
    else:
      found[name] = parser
  return found


def _options(parser, hidden: bool = False):
  """option string → action (visible ones, or only the hidden ones)."""
  return {
      option: action
      for action in parser._actions  # pylint: disable=protected-access
      for option in action.option_strings
      if (action.help == argparse.SUPPRESS) == hidden and option != '-h' and option != '--help'
  }


def _meaning(action):
  return (action.dest, action.type, type(action).__name__, action.nargs, action.metavar)


def test_shared_flags_exist_with_the_same_meaning():
  subcommands = _subcommands()
  for flag, where in EXPECTED.items():
    actions = {}
    for name, parser in subcommands.items():
      action = _options(parser).get(flag)
      if name in where:
        assert action is not None, f'enformer {name} lacks {flag}'
      if action is not None:
        actions[name] = action
    meanings = {name: _meaning(action) for name, action in actions.items()}
    assert len(set(meanings.values())) == 1, f'{flag} differs: {meanings}'
    for name, action in actions.items():
      if flag in SAME_HELP:
        assert action.help == SAME_HELP[flag], f'{flag} help differs in {name}'
      if flag in HELP_PREFIX:
        assert action.help.startswith(HELP_PREFIX[flag]), f'{flag} help in {name}'
  assert _options(subcommands['predict'])['--sequence-length'].type is _common.positive_length


def _kind(action):
  """What a flag takes: 'switch' (alone means true) or its value type; repeatability aside."""
  if isinstance(action, argparse._StoreTrueAction) or (  # pylint: disable=protected-access
      action.nargs == '?' and action.const is True
  ):
    return action.dest, 'switch'
  return action.dest, action.type


def test_no_flag_has_two_meanings():
  """Every visible flag has one dest and value type across subcommands."""
  seen = {}
  for name, parser in _subcommands().items():
    for flag, action in _options(parser).items():
      seen.setdefault(flag, {})[name] = _kind(action)
  # --data: a data folder in both; train also takes HEAD=DIR for several heads.
  differing = {
      flag: meanings
      for flag, meanings in seen.items()
      if len(set(meanings.values())) > 1 and flag != '--data'
  }
  assert not differing
  for name, parser in _subcommands().items():
    if '--config' in _options(parser):
      assert name == 'train'  # A settings file; benchmark's sizes are --size.


VALID = {
    'export': ['export', '--model', 'm', '--out', 'o'],
    'evaluate': ['evaluate', '--model', 'runs/x', '--data', 'd', '--out', 'o'],
    'convert-basenji': [
        'convert-basenji',
        '--base-path',
        'b',
        '--subset',
        'valid',
        '--fasta',
        'g.fa',
        '--sequence-length',
        '1024',
        '--out-tfr',
        't',
    ],
    'make-dataset': ['make-dataset', 'synthetic', '--out', 'o'],
    'demo': ['demo'],
    'benchmark': ['benchmark'],
    'predict': ['predict', '--model', 'm', '--fasta', 'f', '--region', 'chr1:1-2', '--out', 'o'],
    'score-variants': [
        'score-variants',
        '--model',
        'm',
        '--fasta',
        'f',
        '--vcf',
        'v',
        '--out',
        'o',
    ],
    'attribute': [
        'attribute',
        '--model',
        'm',
        '--fasta',
        'f',
        '--region',
        'chr1:1-2',
        '--tracks',
        '1',
        '--out',
        'o',
    ],
    'train': ['train', '--data', 'd', '--run-dir', 'r'],
}
REMOVED = [
    ('export', ['--checkpoint', 'ckpt']),
    ('evaluate', ['--checkpoint', 'latest']),
    ('convert-basenji', ['--genome', 'g.fa']),
    ('make-dataset', ['--seq-length', '2048']),
    ('demo', ['--force']),
    ('benchmark', ['--config', 'paper']),
]
REMOVED += [
    (name, flags)
    for name in ('predict', 'score-variants', 'attribute', 'export', 'evaluate', 'train')
    for flags in (
        ['--model-config', '{"channels": 96}'],
        ['--channels', '384'],
        ['--num-transformer-layers', '1'],
        ['--num-heads', '4'],
        ['--pooling-type', 'max'],
        ['--input-channels', '5'],
        ['--target-length', '0'],
        ['--model-heads', 'human=3'],
    )
]


def test_no_hidden_flags(capsys):
  """Every flag shows in --help: no second, hidden spelling of a flag is accepted."""
  for name, parser in _subcommands().items():
    assert not _options(parser, hidden=True), name
  parser = build_parser()
  for argv in VALID.values():
    parser.parse_args(argv)
  for name, flags in REMOVED:
    with pytest.raises(SystemExit):
      parser.parse_args(VALID[name] + flags)
    assert 'unrecognized arguments' in capsys.readouterr().err, (name, flags)


ABBREVIATED = [
    (['train', '--data', 'd', '--run-dir', 'r', '--checkpoint', '5'], '--checkpoint'),
    (
        [
            'predict',
            '--model',
            'm',
            '--fasta',
            'f',
            '--region',
            'chr1:1-2',
            '--out',
            'o',
            '--seq',
            '1024',
        ],
        '--seq',
    ),
    (['demo', '--over'], '--over'),
    (['--deb', 'demo'], '--deb'),
]


def test_abbreviated_flags_are_refused(capsys):
  """A prefix of a long flag is no hidden alias: a usage error (exit 2) naming it."""
  assert not build_parser().allow_abbrev
  for name, parser in _subcommands().items():
    assert not parser.allow_abbrev, name
  for argv, flag in ABBREVIATED:
    with pytest.raises(SystemExit) as exit_info:
      build_parser().parse_args(argv)
    assert exit_info.value.code == 2, argv
    err = capsys.readouterr().err
    assert 'unrecognized arguments' in err and flag in err, (argv, err)


def test_benchmark_sizes_are_the_library_sizes():
  """`--size` offers exactly the sizes `run_benchmark` knows, under the same names."""
  from enformer import benchmark  # pylint: disable=import-outside-toplevel

  size = _options(_subcommands()['benchmark'])['--size']
  assert sorted(size.choices) == sorted(benchmark.CONFIGS) and size.default in benchmark.CONFIGS
  assert inspect.signature(benchmark.run_benchmark).parameters['config_name'].default == 'compact'


def test_every_option_has_help_and_no_empty_default():
  for name, parser in _subcommands().items():
    for flag, action in _options(parser).items():
      assert action.help and action.help.strip(), f'enformer {name} {flag} has no help'
    text = parser.format_help()
    assert '(default: None)' not in text and '(default: [])' not in text, name


def test_shared_flags_parse():
  parser = build_parser()
  args = parser.parse_args(
      [
          'convert-basenji',
          '--base-path',
          'b',
          '--subset',
          'valid',
          '--fasta',
          'g.fa',
          '--sequence-length',
          '1024',
          '--out-tfr',
          't',
      ]
  )
  assert (args.fasta, args.sequence_length) == ('g.fa', 1024)
  args = parser.parse_args(['make-dataset', 'synthetic', '--out', 'o', '--sequence-length', '2048'])
  assert args.sequence_length == 2048
  assert parser.parse_args(['make-dataset', 'synthetic', '--out', 'o']).sequence_length == 4096
  assert parser.parse_args(['demo', '--overwrite']).overwrite
  assert parser.parse_args(['benchmark', '--size', 'paper']).size == 'paper'
  base = ['predict', '--model', 'm', '--fasta', 'f', '--region', 'chr1:1-2', '--out', 'o']
  args = parser.parse_args(
      base
      + [
          '--model-arg',
          'channels=96',
          '--model-arg',
          'channels=384',
          '--model-arg',
          'heads={"human": 3}',
          '--model-arg',
          'target_length=null',
          '--model-arg',
          'pooling_type=max',
      ]
  )
  assert _common.model_config_from_args(args) == dict(
      channels=384, heads={'human': 3}, target_length=None, pooling_type='max'
  )
  with pytest.raises(SystemExit):
    parser.parse_args(base + ['--model-arg', 'channels'])
  with pytest.raises(SystemExit):
    parser.parse_args(base + ['--sequence-length', '1000'])  # Not a multiple of 128.


def test_tracks_one_syntax():
  parser = build_parser()
  predict = parser.parse_args(
      [
          'predict',
          '--model',
          'm',
          '--fasta',
          'f',
          '--region',
          'c:1-2',
          '--out',
          'o',
          '--tracks',
          '4828',
          '10-12',
          'CAGE:K562',
      ]
  )
  attribute = parser.parse_args(
      [
          'attribute',
          '--model',
          'm',
          '--fasta',
          'f',
          '--region',
          'c:1-2',
          '--out',
          'o',
          '--tracks',
          '4828,10-12',
          'CAGE:K562',
      ]
  )
  expected = [4828, 10, 11, 12, 'CAGE:K562']
  assert parse_track_selectors(predict.tracks) == expected
  assert parse_track_selectors(attribute.tracks) == expected
  # A description may hold commas and dashes: it stays one selector.
  assert parse_track_selectors(['CHIP:H3K4me3:foreskin, male - newborn']) == [
      'CHIP:H3K4me3:foreskin, male - newborn'
  ]
  with pytest.raises(ValueError, match='ends before it starts'):
    parse_track_selectors(['12-10'])
  # The library reads the same text: select_tracks takes what users type.
  table = pd.DataFrame(
      {
          'identifier': [f'T{i}' for i in range(20)],
          'description': [f'CAGE:cell {i}, male - adult' for i in range(20)],
      }
  )
  assert select_tracks(table, ['4,10-12', 'T2', 'cell 7, male']) == [4, 10, 11, 12, 2, 7]
  assert select_track(table, '13') == 13
  with pytest.raises(ValueError, match='matches 20 tracks'):
    select_track(table, 'CAGE')


def test_help_does_not_import_tensorflow():
  code = (
      'import sys\nfrom enformer.cli import build_parser, main\n'
      'try:\n  main(["predict", "--help"])\nexcept SystemExit:\n  pass\n'
      'build_parser().format_help()\n'
      'assert "tensorflow" not in sys.modules, "TensorFlow imported"\n'
  )
  env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  result = subprocess.run(
      [sys.executable, '-c', code], env=env, capture_output=True, text=True, check=False
  )
  assert result.returncode == 0, result.stderr
  assert '--model MODEL' in result.stdout


def test_model_takes_a_training_run_folder(tmp_path):
  """--model RUN is the run's best model, RUN:latest its latest checkpoint, with the run's config
  and training length."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from enformer import Enformer  # pylint: disable=import-outside-toplevel
  from enformer.inference import loading  # pylint: disable=import-outside-toplevel
  from enformer.training import checkpointing, config as train_config  # pylint: disable=import-outside-toplevel

  load_model, parse_run_folder = loading.load_model, loading.parse_run_folder

  # The loader reads the layout that training writes.
  assert (
      loading.RUN_CONFIG,
      loading.RUN_CHECKPOINTS,
      loading.RUN_BEST_CHECKPOINT,
      loading.RUN_BEST_HUB,
  ) == (
      train_config.CONFIG_FILE,
      checkpointing.CHECKPOINT_DIR,
      checkpointing.BEST_CHECKPOINT,
      checkpointing.BEST_HUB,
  )
  length = 1_024
  config = dict(
      channels=384,
      num_heads=4,
      num_transformer_layers=0,
      target_length=None,
      heads={'human': 2},
      pooling_type='max',
  )
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'statistics.json').write_text(json.dumps({'seq_length': length}))
  run = tmp_path / 'run'
  run.mkdir()
  (run / 'config.json').write_text(
      json.dumps({'train': {'data': {'human': str(data)}}, 'model_config': config})
  )
  x = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (1, length))]
  outputs = {}
  for seed, choice in ((1, 'latest'), (2, 'best')):
    tf.random.set_seed(seed)
    model = Enformer(**config)
    outputs[choice] = model(x, is_training=False)['human'].numpy()
    if choice == 'latest':
      with pytest.raises(FileNotFoundError, match=':latest'):
        load_model(str(run))  # No validation ran yet: no best model.
      manager = tf.train.CheckpointManager(
          tf.train.Checkpoint(module=model), str(run / 'checkpoints'), 2, checkpoint_name='ckpt'
      )
      manager.save(checkpoint_number=3)
    else:
      tf.train.Checkpoint(module=model).write(str(run / 'best' / 'checkpoint' / 'model'))

  for source, choice in ((str(run), 'best'), (f'{run}:best', 'best'), (f'{run}:latest', 'latest')):
    assert parse_run_folder(source) == (str(run), choice)
    predictor = load_model(source)
    assert predictor.sequence_length == length and predictor.heads == {'human': 2}
    np.testing.assert_allclose(
        predictor.predict_on_batch(x)['human'], outputs[choice], rtol=1e-4, atol=1e-5
    )
  assert parse_run_folder(str(data)) is None
  with pytest.raises(ValueError, match='not one'):
    parse_run_folder(f'{data}:latest')


def test_demo_prints_its_key_numbers():
  from enformer.demo.report import key_numbers  # pylint: disable=import-outside-toplevel

  results = {
      'evaluate': {
          'human': dict(
              mean_pearson_r=0.61, pearson_r=[0.95, 0.94, 0.2, 0.35], mean_shuffled_pearson_r=-0.01
          )
      },
      'attribute': dict(top_in_motifs=0.9, motif_base_rate=0.05, enrichment=17.7),
      'variants': dict(
          hit_mean_abs_sad=0.16,
          miss_mean_abs_sad=0.0017,
          ratio=95.3,
          hit_median_abs_sad=0.08,
          miss_median_abs_sad=0.0002,
          median_ratio=400.0,
          auroc=0.74,
      ),
  }
  lines = key_numbers(results)
  assert lines[0] == (
      'human: mean test Pearson R 0.610 (per track 0.95, 0.94, 0.20, 0.35) vs '
      'shuffled-label baseline -0.010'
  )
  assert '17.7× enrichment' in lines[1]
  # The plot draws medians, and so do the numbers.
  assert lines[2] == (
      'variants: median max-track |SAD| 0.08 (motif-destroying) vs 0.0002 (far '
      'from motifs), 400×; AUROC 0.74'
  )


def test_library_errors_name_arguments_and_the_cli_shows_its_flags():
  """Library messages name arguments as the library spells them (`run_dir`); the error boundary
  shows the flag of the command that ran (--run-dir), and leaves names it has no flag for."""
  from enformer.cli._errors import describe

  parser = build_parser()
  train = parser.parse_args(['train', '--data', 'd', '--run-dir', 'r'])
  message, known = describe(
      ValueError(
          'Choose a new `run_dir`, or lower `learning_rate`; '
          'see `enformer train --help` and `extra_tracks`.'
      ),
      train,
  )
  assert known
  assert message == (
      'Choose a new --run-dir, or lower --learning-rate; see `enformer train '
      '--help` and `extra_tracks`.'
  )
  predict = parser.parse_args(
      ['predict', '--model', 'm', '--fasta', 'f', '--region', 'c:1-2', '--out', 'o']
  )
  assert describe(ValueError('pass no `extra_tracks`'), predict)[0] == 'pass no --extra-track'
  # No library message spells a command-line flag.
  package = pathlib.Path(__file__).resolve().parent.parent / 'enformer'
  flag = re.compile(r"""['"][^'"\n]*(?<![\w-])--[a-z][a-z-]+""")
  offending = []
  for path in package.rglob('*.py'):
    if 'cli' in path.relative_to(package).parts or path.name == '__main__.py':
      continue
    if path.relative_to(package).parts[0] == 'demo':
      continue  # The demo builds real command lines to show users what to run.
    text = path.read_text()
    documentation = _docstring_lines(text)  # Docstrings show usage; messages are code.
    for number, line in enumerate(text.splitlines(), 1):
      code = line.split('#')[0]
      if number in documentation:
        continue
      if (
          ('raise' in code or "f'" in code or "'" in code)
          and flag.search(code)
          and 'add_argument' not in code
          and 'argv' not in code
      ):
        offending.append(f'{path.relative_to(package)}:{number}: {line.strip()}')
  assert not offending, '\n'.join(offending)


def _docstring_lines(text: str) -> set:
  """Line numbers of the module's, classes' and functions' docstrings in Python source `text`."""
  lines = set()
  for node in ast.walk(ast.parse(text)):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
      body = node.body
      if (
          body
          and isinstance(body[0], ast.Expr)
          and isinstance(body[0].value, ast.Constant)
          and isinstance(body[0].value.value, str)
      ):
        lines.update(range(body[0].lineno, body[0].end_lineno + 1))
  return lines


def test_one_model_identity_and_one_names_parser(tmp_path, monkeypatch):
  """Every workflow names its model one way (`ModelSource.identity`: absolute path, precision
  unless float32) and reads --genes / --samples one way (a file, else comma-separated names)."""
  from enformer.distributed import ModelSource  # pylint: disable=import-outside-toplevel

  monkeypatch.chdir(tmp_path)
  args = argparse.Namespace(model='runs/x', precision='float32')
  assert _common.model_id(args) == str(tmp_path / 'runs/x')
  args.precision = 'bfloat16'
  assert _common.model_id(args) == f'{tmp_path / "runs/x"} precision=bfloat16'
  assert ModelSource.of('gs://b/m', precision='bfloat16').identity == 'gs://b/m precision=bfloat16'
  assert _common.model_for(args, client=object()) == ModelSource.of(
      'runs/x', None, precision='bfloat16'
  )
  assert _common.names(' a, b,,c ') == ['a', 'b', 'c']
  assert _common.names_or_file(None) is None
  (tmp_path / 'genes.txt').write_text('A\nB\n')
  assert _common.names_or_file('genes.txt') == str(tmp_path / 'genes.txt')
  assert _common.names_or_file('A,B') == ['A', 'B']


def test_train_help_gives_each_settings_default_as_train_config_has_it():
  """`train`'s settings flags default to None (a --config file's values stand), so their help must
  state TrainConfig's real default, in the form the flag takes, and nothing stale."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from enformer.training.config import TrainConfig  # pylint: disable=import-outside-toplevel

  options = _options(_subcommands()['train'])
  for field in dataclasses.fields(TrainConfig):
    action = options.get('--' + field.name.replace('_', '-'))
    if action is None or field.default is dataclasses.MISSING:
      continue
    assert action.default is None, field.name
    stated = re.findall(r'\(default:? ([^)]*)\)', action.help)
    assert len(stated) == 1, (field.name, action.help)
    if field.default is None:
      continue  # The help says what None means.
    value = stated[0]
    if isinstance(field.default, bool):
      assert value == str(field.default).lower(), field.name
    elif isinstance(field.default, (int, float)):
      assert float(value) == field.default, field.name
    else:
      assert value == field.default, field.name
