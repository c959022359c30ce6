"""`enformer score-variants` end to end: DeepMind-layout small weights, shared VCFs, kill -9 and
resume."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import SMALL_REFERENCE_CONFIG, model_arg_flags, shared_path
from enformer import testing
from enformer.io import sad as sad_io
from test_vcf import genome_for_vcf

pytestmark = pytest.mark.slow  # The demo, notebooks, Dask clusters or several processes.

LENGTH = 4096
CONFIG = dict(SMALL_REFERENCE_CONFIG, target_length=None)
CONFIG_FLAGS = [
    '--model-arg',
    'channels=384',
    '--model-arg',
    'num_heads=4',
    '--model-arg',
    'num_transformer_layers=2',
    '--model-arg',
    'pooling_type=attention',
    '--model-arg',
    'target_length=null',
]


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
  vcf = shared_path('data', 'vcf', 'regulatory_validated.vcf')
  directory = tmp_path_factory.mktemp('score_variants')
  return dict(
      vcf=vcf,
      directory=directory,
      fasta=genome_for_vcf(directory / 'hg38_sparse.fa', vcf, flank=LENGTH),
      model=shared_path('reference', 'small', 'checkpoint') / 'enformer',
      targets=shared_path('data', 'basenji_targets', 'targets_human.txt'),
  )


def command(inputs, out, *extra):
  return [
      'score-variants',
      '--model',
      str(inputs['model']),
      *inputs.get('flags', CONFIG_FLAGS),
      '--sequence-length',
      str(LENGTH),
      '--fasta',
      str(inputs['fasta']),
      '--vcf',
      str(inputs['vcf']),
      '--targets',
      str(inputs['targets']),
      '--out',
      str(out),
      '--chunk-size',
      '2',
      '--batch-size',
      '4',
      '--quiet',
      *extra,
  ]


def test_kill_resume_equals_uninterrupted_run(inputs):
  from enformer.inference import load_model
  from enformer.variants import ScoreTransform, ScoringSettings, score_vcf

  # An uninterrupted run (library call); a transform fitted on its scores.
  predictor = load_model(str(inputs['model']), sequence_length=LENGTH, **CONFIG)
  reference = inputs['directory'] / 'uninterrupted.h5'
  settings = ScoringSettings(targets=inputs['targets'], chunk_size=2, batch_size=4)
  uninterrupted = score_vcf(
      predictor, inputs['fasta'], inputs['vcf'], reference, settings=settings, progress=False
  )
  transform_path = inputs['directory'] / 't.npz'
  ScoreTransform.fit(uninterrupted.scores.sad.astype(np.float64), 3).save(transform_path)

  # The CLI, killed with SIGKILL once two chunks are saved, then rerun.
  out = inputs['directory'] / 'scores.h5'
  cli = [sys.executable, '-m', 'enformer']
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  extra = (
      '--transform',
      str(transform_path),
      '--pcs',
      '3',
      '--fit-transform',
      str(inputs['directory'] / 'refit.npz'),
      '--fit-pcs',
      '2',
      '--plot',
  )
  process = subprocess.Popen(
      cli + command(inputs, out, *extra), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
  )
  second_chunk = pathlib.Path(str(out) + '.partial') / 'chunk_000001.npz'
  deadline = time.time() + 900
  while not second_chunk.exists() and process.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  os.kill(process.pid, signal.SIGKILL)
  process.communicate()
  assert process.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
  assert not out.exists()
  rerun = subprocess.run(
      cli + command(inputs, out, *extra), env=env, capture_output=True, text=True
  )
  assert rerun.returncode == 0, rerun.stderr
  assert 'resumed' in rerun.stderr and '16 scored, 0 skipped' in rerun.stderr
  assert not pathlib.Path(str(out) + '.partial').exists()

  # Same file as the uninterrupted run, plus the z-scores and PCs asked for.
  with h5py.File(out, 'r') as ours, h5py.File(reference, 'r') as theirs:
    assert set(theirs) == set(sad_io.VARIANT_FIELDS) | {'target_ids', 'target_labels', 'SAD', 'SAR'}
    assert set(ours) == set(theirs) | {'SAD_z', 'PC'}
    for name in theirs:
      np.testing.assert_array_equal(ours[name][:], theirs[name][:], err_msg=name)
    assert ours['SAD'].shape == (16, 5313) and np.isfinite(ours['SAD'][:]).all()
    assert np.abs(ours['SAD'][:]).max() > 0
  assert testing.compare_layout(out, shared_path('data', 'basenji_sad', 'sad.h5')) == []
  scores = sad_io.read_sad_h5(out)
  basenji = sad_io.read_sad_h5(shared_path('data', 'basenji_sad', 'sad.h5'))
  for name in ('snp', 'chr', 'pos', 'ref'):
    np.testing.assert_array_equal(getattr(scores, name), getattr(basenji, name))
  assert scores.target_ids[0] == 'ENCFF833POA' and scores.target_labels[0].startswith('DNASE:')

  transform = ScoreTransform.load(transform_path)
  np.testing.assert_allclose(
      scores.scores['PC'].astype(np.float32),
      transform.pcs(scores.sad.astype(np.float32)),
      rtol=2e-2,
      atol=2e-2,
  )
  import pysam

  pc_file = inputs['directory'] / 'scores.PCs.chr16.tsv.gz'
  rows = list(pysam.TabixFile(str(pc_file)).fetch('chr16', 52599000, 53801000))
  assert [r.split('\t')[2] for r in rows] == ['rs4784227', 'rs1421085']
  assert len(rows[0].split('\t')) == 5 + 3
  assert ScoreTransform.load(inputs['directory'] / 'refit.npz').num_components == 2
  assert (inputs['directory'] / 'scores.png').stat().st_size > 10_000

  # A finished output is never replaced without --overwrite.
  again = subprocess.run(cli + command(inputs, out), env=env, capture_output=True, text=True)
  assert (
      again.returncode == 2 and 'already exists' in again.stderr and '--overwrite' in again.stderr
  )


def test_cli_errors(inputs, tmp_path, capsys):
  from enformer.cli import main

  args = command(inputs, tmp_path / 'x.h5')
  missing = list(args)
  missing[missing.index('--vcf') + 1] = str(tmp_path / 'none.vcf')
  assert main(missing) == 2
  assert 'none.vcf does not exist' in capsys.readouterr().err
  assert main(args + ['--pcs', '3']) == 2
  assert '--pcs needs a fitted transform' in capsys.readouterr().err
  pickled = tmp_path / 'transform.pkl'
  pickled.write_bytes(b'\x80\x04K\x01.')  # A pickle (of the integer 1).
  assert main(args + ['--transform', str(pickled)]) == 2
  assert '--allow-pickle' in capsys.readouterr().err
  assert not (tmp_path / 'x.h5').exists()


@pytest.fixture(scope='module')
def micro_inputs(inputs, tmp_path_factory):
  """`inputs` with a micro-width random model (5,313 human tracks) in place of the reference."""
  import tensorflow as tf
  from enformer.testing import MICRO, random_model

  folder = tmp_path_factory.mktemp('micro')
  tf.train.Checkpoint(module=random_model(0, **MICRO)).write(str(folder / 'enformer'))
  return dict(inputs, model=folder / 'enformer', flags=model_arg_flags(MICRO))


def test_bfloat16_scores_say_they_are_a_screen_and_never_mix_with_float32(
    micro_inputs, tmp_path, capsys, monkeypatch
):
  """--precision bfloat16: a note on stderr, the precision in the file, scores close to float32's,
  and a float32 run's unfinished chunks are not resumed in bfloat16."""
  inputs = micro_inputs
  from enformer.cli import main

  out32, out16 = tmp_path / 'f32.h5', tmp_path / 'bf16.h5'
  assert main(command(inputs, out32)) == 0
  assert 'screen' not in capsys.readouterr().err
  assert main(command(inputs, out16, '--precision', 'bfloat16')) == 0
  assert 'rescore the variants you report with --precision float32' in capsys.readouterr().err
  with h5py.File(out32, 'r') as f32, h5py.File(out16, 'r') as bf16:
    assert 'precision=bfloat16' in bf16.attrs['model'] and 'precision' not in f32.attrs['model']
    sad32, sad16 = f32['SAD'][:].astype(np.float32), bf16['SAD'][:].astype(np.float32)
  assert sad16.shape == sad32.shape and not np.array_equal(sad16, sad32)
  assert np.corrcoef(sad16.ravel(), sad32.ravel())[0, 1] > 0.9
  # A float32 run that stopped before writing its file keeps its chunks; a bfloat16 run on the
  # same --out refuses to combine them with its own (and nothing is lost).
  from enformer.variants import pipeline

  def stop(*args, **kwargs):
    raise KeyboardInterrupt

  mixed = tmp_path / 'mixed.h5'
  monkeypatch.setattr(pipeline, 'write_score_files', stop)
  assert main(command(inputs, mixed)) == 130  # Interrupted (Ctrl-C) after the last chunk.
  monkeypatch.undo()
  chunks = sorted(pathlib.Path(str(mixed) + '.partial').glob('chunk_*'))
  assert chunks
  assert main(command(inputs, mixed, '--precision', 'bfloat16')) == 2
  assert 'cannot be combined' in capsys.readouterr().err
  assert sorted(pathlib.Path(str(mixed) + '.partial').glob('chunk_*')) == chunks
  assert main(command(inputs, mixed)) == 0  # float32 again: resumes and finishes.
  with h5py.File(mixed, 'r') as f:
    np.testing.assert_array_equal(f['SAD'][:].astype(np.float32), sad32)


def test_shift_list_parses():
  from enformer.cli import build_parser

  parser = build_parser()
  base = ['score-variants', '--model', 'm', '--fasta', 'f', '--vcf', 'v', '--out', 'o.h5']
  assert parser.parse_args(base + ['--shifts', '-1,0,1', '--rc']).shifts == [-1, 0, 1]
  assert parser.parse_args(base).shifts == [0]
  with pytest.raises(SystemExit):
    parser.parse_args(base + ['--shifts', '1,x'])
