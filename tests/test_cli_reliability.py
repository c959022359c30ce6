"""Every subcommand against bad files: one line on stderr, no traceback, exit code ≠ 0.

Cases per subcommand input: a missing file, a folder where a file is expected (or a file where
a folder is), an unreadable file, a truncated file, an empty file; plus a full disk, output locks
held by another process, and resuming after the model was replaced. Nothing here loads TensorFlow
except `test_full_disk_while_scoring_is_one_line_and_keeps_chunks`, so the battery runs in seconds.
"""

import builtins
import errno
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from enformer.cli import main
from enformer.io.files import BGZF_EOF

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENOME = ''.join(np.random.default_rng(0).choice(list('ACGT'), 4000))
VCF_TEXT = '##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n' + ''.join(
    f'chr1\t{p}\tv{p}\t{GENOME[p - 1]}\t{"A" if GENOME[p - 1] != "A" else "C"}\t.\t.\t.\n'
    for p in range(1000, 3000, 200)
)


def _bgzip(data: bytes) -> bytes:
  """A BGZF file (gzip members with the BC extra field) holding `data`, ending with EOF block."""
  import pysam
  import tempfile

  with tempfile.TemporaryDirectory() as folder:
    plain = os.path.join(folder, 'x')
    with open(plain, 'wb') as handle:
      handle.write(data)
    pysam.tabix_compress(plain, plain + '.gz', force=True)
    with open(plain + '.gz', 'rb') as handle:
      return handle.read()


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  """Good inputs: genome, VCF, a 'model' folder that looks like a checkpoint, a data folder."""
  root = tmp_path_factory.mktemp('inputs')
  paths = {'root': root}
  paths['fasta'] = root / 'genome.fa'
  paths['fasta'].write_text(
      '>chr1\n' + '\n'.join(GENOME[i : i + 60] for i in range(0, 4000, 60)) + '\n'
  )
  paths['vcf'] = root / 'calls.vcf'
  paths['vcf'].write_text(VCF_TEXT)
  paths['model'] = root / 'model'
  paths['model'].mkdir()
  (paths['model'] / 'checkpoint').write_text('model_checkpoint_path: "ckpt-1"\n')
  paths['data'] = root / 'data'
  paths['data'].mkdir()
  (paths['data'] / 'statistics.json').write_text(
      json.dumps({'seq_length': 1024, 'target_length': 8, 'num_targets': 2, 'pool_width': 128})
  )
  paths['targets'] = root / 'targets.txt'
  paths['targets'].write_text(
      'index\tidentifier\tfile\tclip\tscale\tsum_stat\tdescription\n'
      '0\tt0\tt0.bw\t32\t1\tsum\tCAGE:a\n'
  )
  return paths


def _bad(kind: str, good, path, monkeypatch):
  """A bad version of the input file `good` at `path`: missing / folder / unreadable / truncated
  / empty."""
  if kind == 'missing':
    return path
  if kind == 'folder':
    path.mkdir()
    return path
  if kind == 'empty':
    path.write_bytes(b'')
    return path
  if kind == 'truncated':
    compressed = _bgzip(good.read_bytes() * 50)
    assert compressed.endswith(BGZF_EOF)
    path = path.with_name(path.name + '.gz')
    path.write_bytes(compressed[: len(compressed) // 2])
    return path
  assert kind == 'unreadable'
  path.write_bytes(good.read_bytes())
  if os.geteuid() != 0:
    path.chmod(0)
    return path
  # Root reads any file despite its mode bits: make reading this one fail as it would for a user.
  real_open = builtins.open

  def denying_open(file, *args, **kwargs):
    if os.fspath(file) == os.fspath(path):
      raise PermissionError(errno.EACCES, 'Permission denied', os.fspath(path))
    return real_open(file, *args, **kwargs)

  monkeypatch.setattr(builtins, 'open', denying_open)
  return path


def _commands(files, tmp_path):
  """Subcommand → (argv builder taking the file under test, the good file it replaces)."""
  out = str(tmp_path / 'out')
  fasta, vcf, model, data = (str(files[k]) for k in ('fasta', 'vcf', 'model', 'data'))
  return {
      'predict': (
          lambda f: [
              'predict',
              '--model',
              model,
              '--fasta',
              f,
              '--region',
              'chr1:1000-2000',
              '--out',
              out,
          ],
          files['fasta'],
      ),
      'attribute': (
          lambda f: [
              'attribute',
              '--model',
              model,
              '--fasta',
              f,
              '--region',
              'chr1:1000-2000',
              '--tracks',
              '0',
              '--out',
              out,
          ],
          files['fasta'],
      ),
      'score-variants (vcf)': (
          lambda f: [
              'score-variants',
              '--model',
              model,
              '--fasta',
              fasta,
              '--vcf',
              f,
              '--out',
              out + '.h5',
          ],
          files['vcf'],
      ),
      'score-variants (fasta)': (
          lambda f: [
              'score-variants',
              '--model',
              model,
              '--fasta',
              f,
              '--vcf',
              vcf,
              '--out',
              out + '.h5',
          ],
          files['fasta'],
      ),
      'score-variants (targets)': (
          lambda f: [
              'score-variants',
              '--model',
              model,
              '--fasta',
              fasta,
              '--vcf',
              vcf,
              '--targets',
              f,
              '--out',
              out + '.h5',
          ],
          files['targets'],
      ),
      'make-dataset bigwig': (
          lambda f: [
              'make-dataset',
              'bigwig',
              '--fasta',
              f,
              '--targets',
              str(files['targets']),
              '--out',
              out,
          ],
          files['fasta'],
      ),
      'convert-basenji': (
          lambda f: [
              'convert-basenji',
              '--base-path',
              data,
              '--subset',
              'test',
              '--fasta',
              f,
              '--sequence-length',
              '2048',
              '--out-tfr',
              out,
          ],
          files['fasta'],
      ),
      'train (config)': (
          lambda f: ['train', '--config', f, '--data', data, '--run-dir', out],
          files['data'] / 'statistics.json',
      ),
      # The bad file is DATA/statistics.json (missing: the whole data folder is missing).
      'evaluate (statistics.json)': (
          lambda f: ['evaluate', '--model', model, '--data', os.path.dirname(f), '--out', out]
          if os.path.basename(f) == 'statistics.json'
          else ['evaluate', '--model', model, '--data', f, '--out', out],
          files['data'] / 'statistics.json',
      ),
  }


CASES = ('missing', 'folder', 'unreadable', 'truncated', 'empty')
COMMANDS = (
    'predict',
    'attribute',
    'score-variants (vcf)',
    'score-variants (fasta)',
    'score-variants (targets)',
    'make-dataset bigwig',
    'convert-basenji',
    'train (config)',
    'evaluate (statistics.json)',
)


def _assert_one_line_error(code, captured):
  lines = [line for line in captured.err.splitlines() if line.strip()]
  assert code not in (0, None), captured.err
  assert len(lines) == 1, captured.err
  assert 'Traceback' not in captured.err and lines[0].startswith('enformer ')
  assert 'error:' in lines[0]
  return lines[0]


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('command', COMMANDS)
def test_bad_input_is_one_line_without_tensorflow(
    command, case, files, tmp_path, monkeypatch, capsys
):
  argv_for, good = _commands(files, tmp_path)[command]
  if good.name == 'statistics.json' and command.startswith('evaluate'):
    bad = tmp_path / 'data' / good.name
    if case != 'missing':
      bad.parent.mkdir()
  else:
    bad = tmp_path / f'bad_{case}{"".join(good.suffixes)}'
  if case == 'truncated' and good.suffix in ('.json', '.txt'):
    if good.suffix == '.txt':
      pytest.skip('a table cut after whole lines is a valid shorter table')
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # Cut JSON.
  else:
    bad = _bad(case, good, bad, monkeypatch)
  given = str(bad.parent) if case == 'missing' and 'evaluate' in command else str(bad)
  code = main(argv_for(given))
  monkeypatch.undo()
  line = _assert_one_line_error(code, capsys.readouterr())
  assert given in line, line  # The file is named.
  assert 'tensorflow' not in sys.modules or code == 2


def test_output_folder_given_as_file_and_file_as_folder(files, tmp_path, capsys):
  a_file = tmp_path / 'taken'
  a_file.write_text('x')
  for argv in (
      [
          'predict',
          '--model',
          str(files['model']),
          '--fasta',
          str(files['fasta']),
          '--region',
          'chr1:1000-2000',
          '--out',
          str(a_file),
      ],
      ['make-dataset', 'synthetic', '--out', str(a_file)],
      ['demo', '--out', str(a_file)],
      [
          'score-variants',
          '--model',
          str(files['model']),
          '--fasta',
          str(files['fasta']),
          '--vcf',
          str(files['vcf']),
          '--out',
          str(tmp_path),
      ],
      ['benchmark', '--json', str(tmp_path)],
  ):
    line = _assert_one_line_error(main(argv), capsys.readouterr())
    assert 'folder' in line and 'finished run' not in line, line


def test_model_problems_are_named_before_loading(files, tmp_path, capsys):
  empty_export = tmp_path / 'export'
  empty_export.mkdir()
  (empty_export / 'saved_model.pb').write_bytes(b'')
  neither = tmp_path / 'neither'
  neither.mkdir()
  for model, expected in (
      (empty_export, 'saved_model.pb is empty'),
      (neither, 'neither'),
      (tmp_path / 'nope', 'does not exist'),
  ):
    line = _assert_one_line_error(
        main(
            [
                'predict',
                '--model',
                str(model),
                '--fasta',
                str(files['fasta']),
                '--region',
                'chr1:1000-2000',
                '--out',
                str(tmp_path / 'o'),
            ]
        ),
        capsys.readouterr(),
    )
    assert expected in line and 'Offline' not in line, line
  line = _assert_one_line_error(
      main(['export', '--model', str(neither), '--out', str(tmp_path / 'e')]), capsys.readouterr()
  )
  assert 'neither' in line


def test_region_past_chromosome_end_is_refused(files, tmp_path, capsys):
  line = _assert_one_line_error(
      main(
          [
              'predict',
              '--model',
              str(files['model']),
              '--fasta',
              str(files['fasta']),
              '--region',
              'chr1:10,000-11,000',
              '--out',
              str(tmp_path / 'o'),
          ]
      ),
      capsys.readouterr(),
  )
  assert 'chr1:10,000-11,000' in line and '4,000 bp' in line


def test_used_predict_folder_needs_overwrite(files, tmp_path, capsys):
  out = tmp_path / 'o'
  out.mkdir()
  (out / 'human_0_t0.bw').write_bytes(b'old')
  line = _assert_one_line_error(
      main(
          [
              'predict',
              '--model',
              str(files['model']),
              '--fasta',
              str(files['fasta']),
              '--region',
              'chr1:1000-2000',
              '--out',
              str(out),
          ]
      ),
      capsys.readouterr(),
  )
  assert '--overwrite' in line and 'human_0_t0.bw' in line


def test_malformed_json_names_the_file(files, tmp_path, capsys):
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'statistics.json').write_text('{"seq_length": 1024,')
  line = _assert_one_line_error(
      main(
          [
              'evaluate',
              '--model',
              str(files['model']),
              '--data',
              str(data),
              '--out',
              str(tmp_path / 'o'),
          ]
      ),
      capsys.readouterr(),
  )
  assert str(data / 'statistics.json') in line and 'not valid JSON' in line
  run = tmp_path / 'run'
  run.mkdir()
  (run / 'config.json').write_text('\ufeff{"model_config": ')
  line = _assert_one_line_error(
      main(
          [
              'evaluate',
              '--model',
              str(run),
              '--data',
              str(files['data']),
              '--out',
              str(tmp_path / 'o'),
          ]
      ),
      capsys.readouterr(),
  )
  assert 'config.json' in line and 'not valid JSON' in line, line


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(
    monkeypatch, capsys, tmp_path
):
  import enformer.cli.demo as demo_cli

  def broken(args):
    raise AssertionError('internal invariant')

  monkeypatch.setattr(demo_cli, 'run', broken)
  argv = ['demo', '--out', str(tmp_path / 'd')]
  parser_default = main.__globals__['build_parser']
  monkeypatch.setattr('enformer.cli.build_parser', lambda: _with_func(parser_default(), broken))
  line = _assert_one_line_error(main(argv), capsys.readouterr())
  assert 'AssertionError: internal invariant' in line and '--debug' in line
  with pytest.raises(AssertionError):
    main(['--debug'] + argv)
  monkeypatch.setenv('ENFORMER_DEBUG', '1')
  with pytest.raises(AssertionError):
    main(argv)


def _with_func(parser, func):
  """The parser with every subcommand's func replaced by `func`."""
  for action in parser._subparsers._group_actions:  # pylint: disable=protected-access
    for sub in action.choices.values():
      sub.set_defaults(func=func)
  return parser


_HOLD = textwrap.dedent("""
    import sys, time
    from enformer.io.lock import OutputLock
    OutputLock(sys.argv[1]).acquire()
    print('locked', flush=True)
    time.sleep(600)
""")


@pytest.fixture
def holder():
  """Starts a process that holds the lock on a path (as a running job would)."""
  children = []

  def start(path):
    child = subprocess.Popen(
        [sys.executable, '-c', _HOLD, os.fspath(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert child.stdout.readline().strip() == 'locked'
    children.append(child)
    return child

  yield start
  for child in children:
    child.kill()
    child.wait()


def test_second_train_on_a_run_folder_refuses_naming_the_first(files, tmp_path, holder, capsys):
  run_dir = tmp_path / 'run'
  first = holder(run_dir)
  line = _assert_one_line_error(
      main(['train', '--data', str(files['data']), '--run-dir', str(run_dir)]), capsys.readouterr()
  )
  assert f'pid {first.pid}' in line and 'started' in line and 'host' in line
  assert not (run_dir / 'history.jsonl').exists()


def test_library_train_on_a_locked_run_folder_refuses_naming_the_first(files, tmp_path, holder):
  from enformer.io.lock import OutputLockedError
  from enformer.training import train

  run_dir = tmp_path / 'run'
  first = holder(run_dir)
  with pytest.raises(OutputLockedError, match=f'pid {first.pid}'):
    train(
        run_dir=str(run_dir),
        data={'human': str(files['data'])},
        preset='micro',
        num_steps=1,
        progress=False,
    )
  assert not (run_dir / 'history.jsonl').exists() and not (run_dir / 'config.json').exists()


def test_second_score_vcf_on_one_out_refuses_naming_the_first(files, tmp_path, holder):
  from enformer.io.lock import OutputLockedError
  from enformer.variants.pipeline import score_vcf

  out = tmp_path / 'scores.h5'
  first = holder(out)
  with pytest.raises(OutputLockedError, match=f'pid {first.pid}'):
    score_vcf(StandIn(), str(files['fasta']), str(files['vcf']), out, progress=False)
  assert not out.exists() and not (tmp_path / 'scores.h5.partial').exists()


class StandIn:
  """Deterministic predictor (no TensorFlow): per bin, G+C count and A count × `scale`."""

  sequence_length = 1024
  heads = {'human': 2}

  def __init__(self, scale: float = 1.0, fail_after: int = -1):
    self.scale, self.fail_after, self.calls = scale, fail_after, 0

  def predict_on_batch(self, x):
    if self.calls == self.fail_after:
      raise RuntimeError('simulated crash')
    self.calls += 1
    bins = np.asarray(x).reshape(len(x), -1, 128, 4)
    return {
        'human': self.scale
        * np.stack([bins[..., 1:3].sum((2, 3)), bins[..., 0].sum(2)], -1).astype(np.float32)
    }


def test_resume_refuses_a_model_replaced_at_the_same_path(files, tmp_path):
  from enformer.variants.pipeline import ScoringSettings, score_vcf

  model = tmp_path / 'model'
  model.mkdir()
  (model / 'checkpoint').write_text('model_checkpoint_path: "ckpt-1"')
  (model / 'ckpt-1.index').write_bytes(b'weights v1')
  out = tmp_path / 'scores.h5'
  common = dict(
      settings=ScoringSettings(chunk_size=2, batch_size=2, model_id=str(model)), progress=False
  )
  with pytest.raises(RuntimeError, match='simulated crash'):
    score_vcf(StandIn(fail_after=2), str(files['fasta']), str(files['vcf']), out, **common)
  assert len(os.listdir(tmp_path / 'scores.h5.partial')) > 1  # Some chunks were saved.
  (model / 'ckpt-1.index').write_bytes(b'weights v2, same path')  # The model is replaced.
  with pytest.raises(FileExistsError, match='model_content.*`overwrite` to discard'):
    score_vcf(StandIn(scale=2.0), str(files['fasta']), str(files['vcf']), out, **common)
  result = score_vcf(
      StandIn(scale=2.0), str(files['fasta']), str(files['vcf']), out, overwrite=True, **common
  )
  assert result.chunks_resumed == 0  # Started over: every row from the new model.
  fresh = score_vcf(
      StandIn(scale=2.0), str(files['fasta']), str(files['vcf']), tmp_path / 'fresh.h5', **common
  )
  np.testing.assert_array_equal(result.scores.sad, fresh.scores.sad)


def test_full_disk_while_scoring_is_one_line_and_keeps_chunks(files, tmp_path, monkeypatch, capsys):
  import enformer.inference
  from enformer.io import sad as sad_io

  monkeypatch.setattr(enformer.inference, 'load_model', lambda *a, **k: StandIn())
  real_write = sad_io.write_sad_h5

  def disk_fills(path, scores):
    real_write(path, scores)
    raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(sad_io, 'write_sad_h5', disk_fills)
  out = tmp_path / 'scores.h5'
  argv = [
      'score-variants',
      '--model',
      str(files['model']),
      '--fasta',
      str(files['fasta']),
      '--vcf',
      str(files['vcf']),
      '--out',
      str(out),
      '--chunk-size',
      '2',
      '--quiet',
  ]
  line = _assert_one_line_error(main(argv), capsys.readouterr())
  assert f'No space left on the device to write {out}' in line and 'free' in line, line
  assert not out.exists()  # No unreadable file under the final name ...
  assert len([n for n in os.listdir(tmp_path / 'scores.h5.partial') if n.startswith('chunk')]) == 5
  assert [n for n in os.listdir(tmp_path) if n.startswith('.')] == []  # ... nor temporaries.
  monkeypatch.setattr(sad_io, 'write_sad_h5', real_write)  # Space freed: the rerun resumes.
  assert main(argv) == 0
  assert 'resumed 5/5 chunks' in capsys.readouterr().err


def test_empty_batch_is_a_clear_value_error():
  from enformer import Predictor

  predictor = Predictor(
      lambda x: {'human': x[:, :8, :2]}, sequence_length=1024, heads={'human': 2}, output_length=8
  )
  with pytest.raises(ValueError, match='batch is empty'):
    predictor.predict_on_batch(np.zeros((0, 1024, 4), np.float32))


def test_distributed_failures_are_known_one_line_errors():
  import argparse
  from enformer.cli._errors import describe
  from enformer.distributed import NoWorkers, WorkerDied

  args = argparse.Namespace(command='score-variants', out='scores.h5')
  for error in (
      NoWorkers('The Dask cluster has had no worker for 300 s.\nmore'),
      WorkerDied('chunk 3 ran on 4 workers and each died running it'),
  ):
    message, known = describe(error, args)
    assert known and '\n' not in message and message.startswith(str(error).splitlines()[0])


def test_distributed_failures_go_through_the_one_error_boundary(
    files, tmp_path, capsys, monkeypatch
):
  """A Dask run that loses every worker is a known failure: one line, exit 2, as any other (the
  subcommands used to catch it themselves and exit 1)."""
  import enformer.variants
  from enformer.cli import _common
  from enformer.distributed import NoWorkers

  def no_workers(*args, **kwargs):
    raise NoWorkers(
        'no worker for 2 s (all left the cluster): start workers and rerun the same command'
    )

  monkeypatch.setattr(_common, 'load_predictor', lambda args: object())
  monkeypatch.setattr(enformer.variants, 'score_vcf', no_workers)
  code = main(
      [
          'score-variants',
          '--model',
          str(files['model']),
          '--fasta',
          str(files['fasta']),
          '--vcf',
          str(files['vcf']),
          '--out',
          str(tmp_path / 'scores.h5'),
          '--quiet',
      ]
  )
  err = capsys.readouterr().err.strip()
  assert code == 2 and err.count('\n') == 0, err
  assert err.startswith('enformer score-variants: error: no worker for 2 s'), err
