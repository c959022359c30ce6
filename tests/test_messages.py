"""Messages that name the fault and the fix: model sources, input checks before TensorFlow, full
disks, truncated checkpoints, FASTA indexes, resume after a copy, quiet Dask workers.

Every file is written here (tmp_path); TensorFlow is loaded only by the tests that need a real
checkpoint or its error types.
"""

import argparse
import errno
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from enformer.cli import main
from enformer.cli._errors import describe

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENOME = ''.join(np.random.default_rng(0).choice(list('ACGT'), 4000))
VCF_TEXT = '##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n' + ''.join(
    f'chr1\t{p}\tv{p}\t{GENOME[p - 1]}\t{"A" if GENOME[p - 1] != "A" else "C"}\t.\t.\t.\n'
    for p in range(1000, 3000, 200)
)
TARGETS = (
    'index\tidentifier\tfile\tclip\tscale\tsum_stat\tdescription\n'
    '0\tt0\tt0.bw\t32\t1\tsum\tCAGE:a\n1\tt1\tt1.bw\t32\t1\tsum\tDNASE:β-cell\n'
)


def _run_python(code: str, timeout: float = 300, **env_vars: str) -> subprocess.CompletedProcess:
  """`code` in a fresh interpreter (its own sys.modules), with the repository on the path and
  `env_vars` set."""
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)
  env.update(env_vars)
  return subprocess.run(
      [sys.executable, '-c', textwrap.dedent(code)],
      env=env,
      capture_output=True,
      text=True,
      timeout=timeout,
      check=False,
  )


def _write_fake_checkpoint(prefix) -> None:
  """The files of a checkpoint prefix (contents are not read by the input checks)."""
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  for suffix in ('.index', '.data-00000-of-00001'):
    with open(f'{prefix}{suffix}', 'wb') as handle:
      handle.write(b'weights')


@pytest.fixture
def inputs(tmp_path):
  """Good inputs (genome, VCF, targets, data folder) and every form of model source."""
  paths = {}
  paths['fasta'] = tmp_path / 'genome.fa'
  paths['fasta'].write_text(
      '>chr1\n' + '\n'.join(GENOME[i : i + 60] for i in range(0, 4000, 60)) + '\n'
  )
  paths['vcf'] = tmp_path / 'calls.vcf'
  paths['vcf'].write_text(VCF_TEXT)
  paths['targets'] = tmp_path / 'targets.txt'
  paths['targets'].write_text(TARGETS, encoding='utf-8')
  paths['data'] = tmp_path / 'data'
  paths['data'].mkdir()
  (paths['data'] / 'statistics.json').write_text(
      json.dumps({'seq_length': 1024, 'target_length': 8, 'num_targets': 2, 'pool_width': 128})
  )
  run = tmp_path / 'run'
  (run / 'checkpoints').mkdir(parents=True)
  (run / 'config.json').write_text(json.dumps({'model_config': {'channels': 48}}))
  _write_fake_checkpoint(str(run / 'checkpoints' / 'ckpt-2'))
  (run / 'checkpoints' / 'checkpoint').write_text('model_checkpoint_path: "ckpt-2"\n')
  _write_fake_checkpoint(str(run / 'best' / 'checkpoint' / 'model'))
  paths['run'] = run
  saved = tmp_path / 'hub'
  (saved / 'variables').mkdir(parents=True)
  (saved / 'saved_model.pb').write_bytes(b'graph')
  _write_fake_checkpoint(str(saved / 'variables' / 'variables'))
  paths['saved_model'] = saved
  _write_fake_checkpoint(str(tmp_path / 'ckpt' / 'model-1'))
  paths['prefix'] = tmp_path / 'ckpt' / 'model-1'
  paths['blocker'] = tmp_path / 'a_file'
  paths['blocker'].write_text('not a folder')
  return paths


def _model_forms(inputs):
  run, prefix = str(inputs['run']), str(inputs['prefix'])
  return [
      run,
      f'{run}:latest',
      f'{run}:best',
      str(inputs['saved_model']),
      prefix,
      prefix + '.index',
      os.path.dirname(prefix),
  ]


def _argv(command: str, model: str, inputs, out: str):
  """A command line of `command` whose inputs are all good."""
  fasta, vcf, data = str(inputs['fasta']), str(inputs['vcf']), str(inputs['data'])
  return {
      'predict': [
          'predict',
          '--model',
          model,
          '--fasta',
          fasta,
          '--region',
          'chr1:1000-2000',
          '--out',
          out,
      ],
      'export': ['export', '--model', model, '--out', out],
      'score-variants': [
          'score-variants',
          '--model',
          model,
          '--fasta',
          fasta,
          '--vcf',
          vcf,
          '--out',
          out + '.h5',
      ],
      'evaluate': ['evaluate', '--model', model, '--data', data, '--out', out],
      'attribute': [
          'attribute',
          '--model',
          model,
          '--fasta',
          fasta,
          '--region',
          'chr1:1000-2000',
          '--tracks',
          '0',
          '--out',
          out,
      ],
  }[command]


def _error_line(code, captured) -> str:
  lines = [line for line in captured.err.splitlines() if line.strip()]
  assert code == 2, captured.err
  assert len(lines) == 1 and 'error:' in lines[0], captured.err
  return lines[0]


# --------------------------------------------------------------------------- model sources


@pytest.mark.parametrize(
    'command', ['predict', 'export', 'score-variants', 'evaluate', 'attribute']
)
def test_every_model_source_load_model_takes_passes_the_input_check(command, inputs, capsys):
  """RUN, RUN:latest, RUN:best, a SavedModel, a prefix, its .index file and a checkpoint folder
  pass the --model check; the command then stops at the next problem (an --out below a file)."""
  out = str(inputs['blocker'] / 'out')
  for model in _model_forms(inputs):
    line = _error_line(main(_argv(command, model, inputs, out)), capsys.readouterr())
    assert '--out' in line and '--model' not in line, (model, line)


def test_model_source_mistakes_are_one_line(inputs, tmp_path, capsys):
  run = str(inputs['run'])
  empty = tmp_path / 'empty'
  empty.mkdir()
  no_data = tmp_path / 'lonely'
  no_data.mkdir()
  (no_data / 'model.index').write_bytes(b'index only')
  cases = {
      f'{run}:lastest': 'does not exist',
      str(inputs['fasta']): 'is a file',
      str(empty): 'neither a SavedModel folder',
      str(tmp_path / 'missing'): 'does not exist',
      str(no_data / 'model'): 'variables data',
  }
  shutil.rmtree(inputs['run'] / 'best')
  cases[run] = ':latest for its latest checkpoint'
  for model, expected in cases.items():
    line = _error_line(
        main(_argv('predict', model, inputs, str(tmp_path / 'out'))), capsys.readouterr()
    )
    assert expected in line and '--model' in line, line


def test_loader_and_input_check_share_one_definition():
  """load_model dispatches on the same resolver the command line checks with."""
  from enformer.cli import _inputs
  from enformer.io import model_source

  source = open(os.path.join(REPO, 'enformer', 'inference', 'loading.py')).read()
  assert 'model_source.resolve_model_source' in source
  assert _inputs.model_source is model_source


# --------------------------------------------------------------------------- checks before TF


def test_input_mistakes_are_reported_before_tensorflow_loads(inputs, tmp_path):
  """Each bad path, region, value or flag: exit 2 with TensorFlow never imported (a fresh
  interpreter runs them all; `main` returns or argparse exits with 2)."""
  fasta, vcf, data = str(inputs['fasta']), str(inputs['vcf']), str(inputs['data'])
  run, saved = str(inputs['run']), str(inputs['saved_model'])
  out, missing = str(tmp_path / 'out'), str(tmp_path / 'missing')
  predict = ['predict', '--model', run, '--fasta', fasta, '--region', 'chr1:1000-2000']
  attribute = [
      'attribute',
      '--model',
      run,
      '--fasta',
      fasta,
      '--tracks',
      '0',
      '--region',
      'chr1:1000-2000',
  ]
  score = ['score-variants', '--model', run, '--fasta', fasta, '--vcf', vcf]
  cases = [
      ['predict', '--model', run, '--fasta', missing, '--region', 'chr1:1-100', '--out', out],
      ['predict', '--model', run, '--fasta', fasta, '--region', 'chr9:1-100', '--out', out],
      ['predict', '--model', run, '--fasta', fasta, '--region', 'chr1:9000-9100', '--out', out],
      predict + ['--out', out, '--batch-size', '0'],
      predict + ['--out', out, '--model-arg', 'heads={atac:16}'],
      predict + ['--out', out, '--workers', '0'],
      predict + ['--out', out, '--observed', f'0={missing}.bw'],
      ['predict', '--model', missing, '--fasta', fasta, '--region', 'chr1:1-100', '--out', out],
      attribute + ['--out', out, '--batch-size', '0'],
      [
          'attribute',
          '--model',
          run,
          '--fasta',
          fasta,
          '--tracks',
          '0',
          '--region',
          'chr9:1-99',
          '--out',
          out,
      ],
      [
          'attribute',
          '--model',
          run,
          '--fasta',
          missing,
          '--tracks',
          '0',
          '--region',
          'chr1:1-99',
          '--out',
          out,
      ],
      score + ['--out', out + '.h5', '--shard', '3/2'],
      score + ['--out', out + '.h5', '--pcs', '3'],
      score + ['--out', out + '.h5', '--batch-size', '0'],
      ['score-variants', '--model', run, '--fasta', fasta, '--vcf', missing, '--out', out],
      ['evaluate', '--model', run, '--data', missing, '--out', out],
      ['evaluate', '--model', run, '--data', data, '--out', out, '--batch-size', '0'],
      ['evaluate', '--model', run, '--data', data, '--out', out, '--tss', missing],
      ['evaluate', '--model', f'{run}:worst', '--data', data, '--out', out],
      ['export', '--model', missing, '--out', out],
      ['export', '--model', run, '--out', str(inputs['blocker'] / 'x')],
      ['train', '--data', missing, '--run-dir', out],
      ['train', '--data', data, '--run-dir', out, '--init-from', saved],
      ['train', '--data', data, '--run-dir', str(inputs['blocker'] / 'x')],
  ]
  result = _run_python(f"""
      import contextlib, io, sys
      from enformer.cli import main
      for argv in {cases!r}:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
          try:
            code = main(argv)
          except SystemExit as exit:
            code = exit.code
        line = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ''
        print(code, 'tensorflow' in sys.modules, argv[0], line, sep='|')
        assert code == 2 and 'tensorflow' not in sys.modules, (argv, line)
      """)
  assert result.returncode == 0, result.stdout + result.stderr
  for line in result.stdout.splitlines():
    assert 'error:' in line, line


# --------------------------------------------------------------------------- merge-scores


class StandIn:
  """Deterministic predictor (no TensorFlow): per bin, G+C count and A count."""

  sequence_length = 1024
  heads = {'human': 2}
  input_channels = 4

  def __init__(self, fail_after: int = -1):
    self.fail_after, self.calls = fail_after, 0

  def predict_on_batch(self, x):
    if self.calls == self.fail_after:
      raise RuntimeError('simulated crash')
    self.calls += 1
    bins = np.asarray(x).reshape(len(x), -1, 128, 4)
    return {
        'human': np.stack([bins[..., 1:3].sum((2, 3)), bins[..., 0].sum(2)], -1).astype(np.float32)
    }


def test_merge_scores_of_shards_scored_with_targets(inputs, tmp_path, capsys):
  """A targets table whose descriptions are not ASCII ('β-cell'): the shards merge (the labels
  were decoded as ASCII and reported as 'the file is not UTF-8 text')."""
  from enformer.io.sad import read_sad_h5
  from enformer.variants.pipeline import ScoringSettings, score_vcf

  settings = ScoringSettings(targets=str(inputs['targets']), chunk_size=2, batch_size=2)
  shards = []
  for index in (1, 2):
    shards.append(str(tmp_path / f'sad.{index}.h5'))
    score_vcf(
        StandIn(),
        str(inputs['fasta']),
        str(inputs['vcf']),
        shards[-1],
        settings=settings,
        progress=False,
        shard=(index, 2),
    )
  merged = str(tmp_path / 'merged.h5')
  assert main(['merge-scores', merged, *shards, '--tsv']) == 0, capsys.readouterr().err
  scores = read_sad_h5(merged)
  assert list(scores.target_labels) == ['CAGE:a', 'DNASE:β-cell']
  whole = score_vcf(
      StandIn(),
      str(inputs['fasta']),
      str(inputs['vcf']),
      tmp_path / 'one.h5',
      settings=settings,
      progress=False,
  )
  np.testing.assert_array_equal(scores.sad, whole.scores.sad)


def _raise_in(function, *args):
  try:
    function(*args)
  except Exception as error:  # pylint: disable=broad-except
    return error
  raise AssertionError('no error')


def test_decoding_errors_blame_the_user_file_only_when_it_is_one(tmp_path):
  """'not UTF-8 text' names the user's file that failed to decode as UTF-8; a decoding of the
  package's own data (ASCII of stored labels) is a bug (exit 1), not the user's file."""
  table = tmp_path / 'latin1.txt'
  table.write_bytes('description\nCAGE:é\n'.encode('latin-1'))
  args = argparse.Namespace(command='predict', targets=str(table), head='human')

  def read_text(path):
    with open(path, encoding='utf-8') as handle:
      return handle.read()

  message, known = describe(_raise_in(read_text, str(table)), args)
  assert known and 'not UTF-8' in message and str(table) in message
  labels = np.array(['β'.encode()])
  message, known = describe(_raise_in(lambda: labels.astype(str)), args)
  assert not known and 'not UTF-8' not in message


# --------------------------------------------------------------------------- full disk


def test_full_disk_is_reported_as_a_full_disk_whatever_raised_it(tmp_path, monkeypatch):
  """TensorFlow reports ENOSPC as RESOURCE_EXHAUSTED: a full disk, not 'out of memory'; the
  checkpoint writer names the folder it could not write."""
  import tensorflow as tf
  from enformer.io.atomic import DiskFullError
  from enformer.training.checkpointing import RunCheckpoints

  args = argparse.Namespace(command='train', run_dir=str(tmp_path / 'run'), batch_size=4)
  full = tf.errors.ResourceExhaustedError(
      None,
      None,
      f'{tmp_path}/run/checkpoints/ckpt-1_temp/part-00000-of-00001.data-00000-of-00001'
      '.tempstate123; No space left on device',
  )
  for error in (full, OSError(errno.ENOSPC, 'No space left on device')):
    message, known = describe(error, args)
    assert known and 'No space left on the device' in message, message
    assert 'memory' not in message and '--batch-size' not in message, message

  variable = tf.Variable(1.0)
  checkpoints = RunCheckpoints(str(tmp_path / 'run'), keep=2, module=tf.Module(), step=variable)

  def no_space(*unused_args, **unused_kwargs):
    raise full

  monkeypatch.setattr(checkpoints.manager, 'save', no_space)
  with pytest.raises(DiskFullError, match='No space left.*checkpoints') as raised:
    checkpoints.save(1)
  message, known = describe(raised.value, args)
  assert known and 'memory' not in message and str(tmp_path / 'run') in message


# --------------------------------------------------------------------------- naming the culprit


def test_no_hint_naming_an_unrelated_argument(inputs, tmp_path, monkeypatch):
  """A value that equals a local variable (--head human, a FASTA path in the frame) is not
  named as the culprit of the package's own, complete messages."""
  from enformer.inference import regions as predict_lib
  from enformer.io.fasta import FastaStringExtractor

  monkeypatch.chdir(tmp_path)
  (tmp_path / 'human').write_text('a file that happens to be called like the head')
  args = argparse.Namespace(
      command='predict',
      head='human',
      fasta=str(inputs['fasta']),
      out=str(tmp_path / 'out'),
      batch_size=0,
  )
  with FastaStringExtractor(str(inputs['fasta'])) as extractor:
    error = _raise_in(
        lambda: next(
            predict_lib.iter_predictions(StandIn(), extractor, [], head='human', batch_size=0)
        )
    )
  message, known = describe(error, args)
  assert known and message == 'batch_size must be at least 1, got 0.', message


def test_a_bad_bigwig_is_named_itself_and_libbigwig_stays_quiet(inputs, tmp_path, capfd):
  """make-dataset reads the bigWigs its targets table lists: the bad one is named (not --out),
  in one line (libBigWig's own lines on stderr are hidden)."""
  bad = tmp_path / 'signal.bw'
  bad.write_text('track type=bedGraph\nchr1\t0\t100\t1.0\n')
  table = tmp_path / 'bigwigs.txt'
  table.write_text(
      'index\tidentifier\tfile\tclip\tscale\tsum_stat\tdescription\n'
      f'0\tt0\t{bad}\t32\t1\tsum\tCAGE:a\n'
  )
  code = main(
      [
          'make-dataset',
          'bigwig',
          '--fasta',
          str(inputs['fasta']),
          '--targets',
          str(table),
          '--out',
          str(tmp_path / 'out'),
          '--sequence-length',
          '1024',
          '--valid-chroms',
          '',
          '--test-chroms',
          '',
      ]
  )
  line = _error_line(code, capfd.readouterr())
  assert str(bad) in line and 'bigWig' in line and '--out' not in line, line


# --------------------------------------------------------------------------- checkpoints

SMALL = dict(
    channels=384,
    num_heads=4,
    num_transformer_layers=1,
    pooling_type='max',
    target_length=None,
    heads={'human': 2},
)


@pytest.fixture(scope='module')
def written_checkpoint(tmp_path_factory):
  """A small model's checkpoint folder, written once."""
  import tensorflow as tf
  from enformer import Enformer

  model = Enformer(**SMALL)
  model.build_variables()
  folder = tmp_path_factory.mktemp('checkpoint') / 'ckpt'
  tf.train.Checkpoint(module=model).write(str(folder / 'model'))
  return folder


@pytest.fixture
def checkpoint(written_checkpoint, tmp_path):
  """The prefix of this test's own copy of the checkpoint (tests damage theirs)."""
  shutil.copytree(written_checkpoint, tmp_path / 'ckpt')
  return str(tmp_path / 'ckpt' / 'model')


def _truncate(path) -> None:
  with open(path, 'rb') as handle:
    data = handle.read()
  with open(path, 'wb') as handle:
    handle.write(data[: len(data) // 2])


@pytest.mark.parametrize('part', ['index', 'data'])
def test_truncated_checkpoint_names_the_file_and_the_fix(checkpoint, part, capsys):
  from enformer.inference import load_model
  from enformer.inference.checkpoints import CheckpointReadError

  damaged = checkpoint + ('.index' if part == 'index' else '.data-00000-of-00001')
  _truncate(damaged)
  with pytest.raises(CheckpointReadError, match='truncated or corrupt') as raised:
    load_model(checkpoint, sequence_length=1024, **SMALL)
  assert damaged in str(raised.value) and 'again' in str(raised.value)
  model_args = [f'--model-arg={key}={json.dumps(value)}' for key, value in SMALL.items()]
  code = main(
      [
          'export',
          '--model',
          checkpoint,
          '--out',
          os.path.dirname(checkpoint) + '_hub',
          '--sequence-length',
          '1024',
          *model_args,
      ]
  )
  line = _error_line(code, capsys.readouterr())
  assert damaged in line and 'truncated or corrupt' in line, line


def test_checkpoint_mismatch_gives_model_arg_flags_to_paste(checkpoint, capsys):
  """The library's error carries the configuration that fits (and names no flag); the command
  line turns it into --model-arg flags."""
  from enformer.inference import load_model
  from enformer.inference.checkpoints import CheckpointMismatchError

  with pytest.raises(CheckpointMismatchError) as raised:
    load_model(
        checkpoint,
        sequence_length=1024,
        channels=768,
        num_heads=4,
        num_transformer_layers=2,
        heads={'human': 3},
    )
  assert raised.value.changes == {
      'channels': 384,
      'num_transformer_layers': 1,
      'pooling_type': 'max',
      'heads': {'human': 2},
  }
  assert '--' not in str(raised.value)
  code = main(
      [
          'export',
          '--model',
          checkpoint,
          '--out',
          os.path.dirname(checkpoint) + '_hub',
          '--sequence-length',
          '1024',
          '--model-arg',
          'channels=768',
          '--model-arg',
          'num_transformer_layers=2',
          '--model-arg',
          'heads={"human": 3}',
      ]
  )
  err = capsys.readouterr().err
  assert code == 2 and 'Change:' not in err, err
  flags = err.split('Pass: ')[1].strip()
  assert flags == (
      '--model-arg channels=384 --model-arg num_transformer_layers=1 '
      '--model-arg num_heads=4 --model-arg pooling_type=max '
      '--model-arg \'heads={"human": 2}\''
  ), flags
  from enformer.cli._common import _model_arg  # The flags, pasted, load the checkpoint.

  pasted = dict(_model_arg(token) for token in shlex.split(flags)[1::2])
  predictor = load_model(checkpoint, sequence_length=1024, target_length=None, **pasted)
  assert predictor.heads == {'human': 2}


def test_model_without_its_variables_data_is_one_line(inputs, tmp_path, capsys):
  """A SavedModel or checkpoint copied without its .data files: named before TensorFlow."""
  os.remove(inputs['saved_model'] / 'variables' / 'variables.data-00000-of-00001')
  os.remove(str(inputs['prefix']) + '.data-00000-of-00001')
  for model in (str(inputs['saved_model']), str(inputs['prefix'])):
    line = _error_line(
        main(_argv('predict', model, inputs, str(tmp_path / 'out'))), capsys.readouterr()
    )
    assert 'variables data' in line and 'copy the whole model folder' in line, line


# --------------------------------------------------------------------------- FASTA and --out


def test_plain_gzip_fasta_says_bgzip_not_biopython(inputs, tmp_path, capsys):
  import gzip
  from enformer.io.fasta import FastaStringExtractor

  packed = tmp_path / 'genome.fa.gz'
  packed.write_bytes(gzip.compress(inputs['fasta'].read_bytes()))
  with pytest.raises(ValueError, match='bgzip') as raised:
    FastaStringExtractor(str(packed))
  assert 'BioPython' not in str(raised.value)
  for command in ('predict', 'score-variants'):
    argv = _argv(command, str(inputs['run']), inputs, str(tmp_path / 'out'))
    argv[argv.index('--fasta') + 1] = str(packed)
    line = _error_line(main(argv), capsys.readouterr())
    assert str(packed) in line and 'bgzip' in line and 'BioPython' not in line, line


def _deny_writing(monkeypatch, folder) -> None:
  """`folder` is not writable for this process: chmod where that binds (not root), else the
  permission check is made to answer as it would for a user."""
  if os.geteuid() != 0:
    os.chmod(folder, 0o555)
    return
  real_access = os.access

  def access(path, mode, *args, **kwargs):
    if os.path.abspath(path) == os.path.abspath(folder) and mode & os.W_OK:
      return False
    return real_access(path, mode, *args, **kwargs)

  monkeypatch.setattr(os, 'access', access)


def test_read_only_fasta_folder_without_index(inputs, tmp_path, monkeypatch, capsys):
  from enformer.io.fasta import FastaStringExtractor

  folder = tmp_path / 'readonly'
  folder.mkdir()
  fasta = folder / 'genome.fa'
  fasta.write_bytes(inputs['fasta'].read_bytes())
  _deny_writing(monkeypatch, folder)
  with pytest.raises(PermissionError, match='genome.fa.fai.*not writable.*samtools faidx'):
    FastaStringExtractor(str(fasta))
  argv = _argv('predict', str(inputs['run']), inputs, str(tmp_path / 'out'))
  argv[argv.index('--fasta') + 1] = str(fasta)
  line = _error_line(main(argv), capsys.readouterr())
  assert str(fasta) in line and 'samtools faidx' in line, line
  os.chmod(folder, 0o755)


def test_unwritable_existing_out_is_refused_before_the_model_loads(
    inputs, tmp_path, monkeypatch, capsys
):
  out = tmp_path / 'out'
  out.mkdir()
  _deny_writing(monkeypatch, out)
  for command in ('predict', 'attribute', 'export', 'evaluate'):
    line = _error_line(
        main(_argv(command, str(inputs['prefix']), inputs, str(out))), capsys.readouterr()
    )
    assert f'--out {out}' in line and 'cannot write' in line, line
  os.chmod(out, 0o755)


# --------------------------------------------------------------------------- resume


def test_resume_after_touch_or_copy_of_the_same_model(inputs, tmp_path):
  """The resume fingerprint counts the model's and genome's content: `touch` or `cp -r` of the
  same files resumes; other content does not (see test_cli_reliability)."""
  from enformer.io.files import content_identity
  from enformer.variants.pipeline import ScoringSettings, score_vcf

  model = tmp_path / 'model'
  _write_fake_checkpoint(str(model / 'ckpt-1'))
  (model / 'checkpoint').write_text('model_checkpoint_path: "ckpt-1"\n')
  out = tmp_path / 'scores.h5'
  common = dict(chunk_size=2, batch_size=2)
  with pytest.raises(RuntimeError, match='simulated crash'):
    score_vcf(
        StandIn(fail_after=2),
        str(inputs['fasta']),
        str(inputs['vcf']),
        out,
        settings=ScoringSettings(model_id=str(model), **common),
        progress=False,
    )
  identity = content_identity(model)
  later = os.stat(model / 'ckpt-1.index').st_mtime + 3600
  for path in (model / 'ckpt-1.index', model / 'checkpoint', inputs['fasta']):
    os.utime(path, (later, later))  # touch
  assert content_identity(model) == identity
  copy = tmp_path / 'copied_model'
  shutil.copytree(model, copy)  # cp -r: new times, new path, same content
  assert content_identity(copy) == identity
  resumed = score_vcf(
      StandIn(),
      str(inputs['fasta']),
      str(inputs['vcf']),
      out,
      settings=ScoringSettings(model_id=str(copy), **common),
      progress=False,
  )
  assert resumed.chunks_resumed > 0
  fresh = score_vcf(
      StandIn(),
      str(inputs['fasta']),
      str(inputs['vcf']),
      tmp_path / 'fresh.h5',
      settings=ScoringSettings(model_id=str(model), **common),
      progress=False,
  )
  np.testing.assert_array_equal(resumed.scores.sad, fresh.scores.sad)


# --------------------------------------------------------------------------- quiet workers


@pytest.mark.slow
def test_dask_workers_import_tensorflow_quietly_and_pool_cpu_memory(monkeypatch):
  """Local clusters preload `enformer.io.quiet` into their workers, and a process with that
  preload imports TensorFlow without the start-up lines on stderr; with the workers' environment
  its CPU tensors come from TensorFlow's pool (`enformer.cpu_memory`: only a pooling allocator
  has statistics), up to the machine's memory."""
  from enformer.distributed import cluster

  seen = {}

  class FakeCluster:

    def __init__(self, **kwargs):
      seen.update(kwargs)

    def __enter__(self):
      return self

    def __exit__(self, *unused):
      return False

  for name in ('TF_CPP_MIN_LOG_LEVEL', 'TF_CPU_ALLOCATOR_USE_BFC', 'TF_CPU_BFC_MEM_LIMIT_IN_MB'):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setattr(cluster.distributed, 'LocalCluster', FakeCluster)
  monkeypatch.setattr(cluster.distributed, 'Client', lambda unused: FakeCluster())
  with cluster.local_client(1):
    pass
  assert 'enformer.io.quiet' in seen['preload']
  assert seen['env']['TF_CPP_MIN_LOG_LEVEL'] == '3'
  assert seen['env']['TF_CPU_ALLOCATOR_USE_BFC'] == 'true'
  memory_mb = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**20
  assert seen['env']['TF_CPU_BFC_MEM_LIMIT_IN_MB'] == str(memory_mb)
  pool = {
      name: seen['env'][name] for name in ('TF_CPU_ALLOCATOR_USE_BFC', 'TF_CPU_BFC_MEM_LIMIT_IN_MB')
  }
  result = _run_python(
      """
      from enformer.io import quiet
      quiet.dask_setup(None)  # What the worker runs at start.
      import tensorflow as tf
      print(int(tf.constant(1) + 1), tf.config.experimental.get_memory_info('CPU:0')['peak'] > 0)
      """,
      **pool,
  )
  assert result.returncode == 0 and result.stdout.split() == ['2', 'True'], result.stderr
  assert result.stderr.strip() == '', result.stderr


def test_run_folder_model_identity_counts_its_checkpoints(inputs, tmp_path):
  """RUN:latest is identified by the run's files, not by the text of the path: a copy of the run
  is the same model, a new checkpoint in it is not."""
  from enformer.io.model_source import model_identity

  run = str(inputs['run'])
  identity = model_identity(f'{run}:latest')
  copy = str(tmp_path / 'run_copy')
  shutil.copytree(run, copy)
  assert model_identity(f'{copy}:latest') == identity
  assert model_identity(f'{copy}:best') != identity
  _write_fake_checkpoint(os.path.join(copy, 'checkpoints', 'ckpt-3'))
  with open(os.path.join(copy, 'checkpoints', 'ckpt-3.index'), 'wb') as handle:
    handle.write(b'newer weights')
  assert model_identity(f'{copy}:latest') != identity


def test_locating_the_file_survives_objects_whose_attributes_raise(tmp_path):
  """Frame locals whose .name raises (a closed h5py file, an eager tensor) do not break the
  error boundary; the file being read is still named."""
  import h5py

  path = tmp_path / 'closed.h5'
  with h5py.File(path, 'w') as closed:
    pass
  table = tmp_path / 'latin1.txt'
  table.write_bytes('CAGE:é\n'.encode('latin-1'))

  def read(unused_closed_file, text_file):
    with open(text_file, encoding='utf-8') as handle:
      return handle.read()

  error = _raise_in(read, closed, str(table))
  message, known = describe(error, argparse.Namespace(command='predict'))
  assert known and str(table) in message, message
