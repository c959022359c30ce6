"""Training: loss, schedule, metrics, config; distributed equivalence (Mirrored over 2 logical CPUs,
MultiWorkerMirrored with 2 processes); kill -9 and resume equals an uninterrupted run.

Strategy tests run in fresh subprocesses: the logical device configuration and the multi-worker
cluster are fixed when TensorFlow initialises.
"""

import json
import os
import re
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

# Micro model without dropout: replicas then compute exactly what one device computes.
MICRO_NO_DROPOUT = dict(
    channels=48,
    num_transformer_layers=1,
    num_heads=2,
    target_length=None,
    conv_tower_divisible_by=16,
    heads={'human': 3},
    dropout_rate=0.0,
    attention_dropout_rate=0.0,
    positional_dropout_rate=0.0,
)
ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'CUDA_VISIBLE_DEVICES': ''}
# Multi-process tests (two TensorFlow processes at once) are bounded: every wait has a timeout,
# and a worker that has not finished by WORKER_TIMEOUT seconds prints the Python stack of each of
# its threads and exits, so a hang fails the test with the place it hung. Workers stop waiting for
# each other after REGISTER_TIMEOUT seconds ($ENFORMER_REGISTER_TIMEOUT, WorkerStartupError).
# Once, workers hung at start-up for 600+ s: an HTTP proxy in the environment ($http_proxy) takes
# gRPC's connections between the workers, so they never reach each other; get_strategy now sends
# the cluster's hosts around the proxy, and the multi-worker test runs with such a proxy set.
WORKER_TIMEOUT = 900
REGISTER_TIMEOUT = 300
# Shared by the subprocesses: an in-memory data set and a helper that trains and saves weights.
_COMMON = textwrap.dedent("""
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
      result = train(run_dir=run_dir, preset='micro', model_args=MODEL, batch_size=4,
                     num_steps=steps, warmup_steps=2, learning_rate=1e-3, checkpoint_every=steps,
                     train_data={'human': dataset()}, progress=False, export_hub=False,
                     strategy=strategy, seed=7)
      return {v.name + str(i): v.numpy() for i, v in enumerate(result.model.variables)}
""")


def _python(script: str, tmp_path, name: str) -> str:
  path = tmp_path / name
  path.write_text(_COMMON + f'MODEL = {MICRO_NO_DROPOUT!r}\n' + textwrap.dedent(script))
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
    correlation.update(metrics.sufficient_statistics(y[start : start + 2], p[start : start + 2]))
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
  per_batch = [
      np.corrcoef(y[s : s + 2, :, 0].ravel(), p[s : s + 2, :, 0].ravel())[0, 1]
      for s in range(0, 6, 2)
  ]
  assert abs(np.mean(per_batch) - r[0]) > 1e-4


def test_config_file_then_flags(tmp_path):
  from enformer.cli import build_parser

  yaml_file = tmp_path / 'train.yaml'
  yaml_file.write_text('batch_size: 16\nlearning_rate: 0.001\nmodel_args: {channels: 384}\n')
  args = build_parser().parse_args(
      [
          'train',
          '--config',
          str(yaml_file),
          '--batch-size',
          '4',
          '--data',
          str(tmp_path),
          '--model-arg',
          'target_length=null',
          '--deterministic',
          'true',
          '--run-dir',
          'r',
      ]
  )
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


@pytest.mark.slow
def test_resume_refuses_changed_settings_and_nan_stops(tmp_path):
  from enformer.training import TrainingDivergedError, train

  rng = np.random.default_rng(0)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(8, 2048))]
  y = rng.gamma(1.0, 1.0, size=(8, 16, 2)).astype(np.float32)
  y[5:] = np.nan  # Batches 0 and 1 are fine; batch 2 (step 3) has NaN targets.
  data = tf.data.Dataset.from_tensor_slices({'sequence': x, 'target': y})
  kwargs = dict(
      run_dir=str(tmp_path / 'run'),
      preset='micro',
      model_args={'heads': {'human': 2}},
      batch_size=2,
      num_steps=4,
      warmup_steps=1,
      checkpoint_every=2,
      train_data={'human': data},
      progress=False,
      shuffle_buffer=0,
  )
  with pytest.raises(TrainingDivergedError, match=r'step 2 .*ckpt-2'):
    train(**kwargs)
  assert tf.train.latest_checkpoint(str(tmp_path / 'run' / 'checkpoints')).endswith('ckpt-2')
  with pytest.raises(ValueError, match='different settings.*batch_size'):
    train(**{**kwargs, 'batch_size': 4})


@pytest.mark.parametrize('damage', ['truncated data', 'empty index'])
def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, damage):
  from enformer.training import checkpointing

  value, step = tf.Variable(np.zeros(50_000, np.float32)), tf.Variable(0, dtype=tf.int64)
  run_dir = str(tmp_path / 'run')
  saver = checkpointing.RunCheckpoints(run_dir, 3, value=value, step=step)
  for number in (2, 4, 6):
    value.assign(np.full(50_000, number, np.float32))
    step.assign(number)
    saver.save(number)
  folder = tmp_path / 'run' / 'checkpoints'
  damaged = folder / (
      'ckpt-6.index'
      if damage == 'empty index'
      else next(p.name for p in folder.iterdir() if p.name.startswith('ckpt-6.data'))
  )
  damaged.write_bytes(
      damaged.read_bytes()[: len(damaged.read_bytes()) // 2 if 'data' in damage else 0]
  )
  value.assign(np.zeros(50_000, np.float32))
  resumer = checkpointing.RunCheckpoints(run_dir, 3, value=value, step=step)
  with pytest.warns(
      UserWarning, match=r'ckpt-6 cannot be read .*previous intact checkpoint .*ckpt-4'
  ):
    assert resumer.restore_latest().endswith('ckpt-4')
  assert int(step.numpy()) == 4 and float(value.numpy().min()) == 4.0
  # Every checkpoint damaged: one error naming them and what to do.
  for prefix in ('ckpt-2', 'ckpt-4'):
    (folder / f'{prefix}.index').write_bytes(b'')
  with pytest.raises(
      ValueError,
      match=r'No checkpoint of .* can be read: .*ckpt-6.*ckpt-4.*'
      r'ckpt-2.*Delete .*checkpoints to start this run over',
  ):
    checkpointing.RunCheckpoints(run_dir, 3, value=value, step=step).restore_latest()


# ------------------------------------------------------------------------- distributed tests


@pytest.mark.slow
def test_mirrored_two_cpus_equals_default_strategy(tmp_path):
  script = _python(
      """
      tf.config.set_logical_device_configuration(
          tf.config.list_physical_devices('CPU')[0],
          [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
      from enformer.training import get_strategy
      mirrored = get_strategy()
      assert mirrored.num_replicas_in_sync == 2, mirrored
      from enformer.models import build_model
      tf.random.set_seed(7)  # The initial weights train() builds with seed=7.
      initial = build_model('micro', **MODEL)
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
  """,
      tmp_path,
      'mirrored.py',
  )
  out = subprocess.run(
      [sys.executable, script, str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=900
  )
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

  Returns [(returncode, output)] (returncode None: killed at the timeout).
  """
  processes, logs = [], []
  try:
    for command, env in zip(commands, envs):
      out = tempfile.TemporaryFile('w+')
      logs.append(out)
      processes.append(
          subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
      )
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


# Ports below Linux's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by
# default), which outgoing connections of every process on the machine draw from.
_PORT_RANGE = (20_000, 32_000)


def _free_ports(count: int):
  """`count` distinct ports that are free now on every address (TensorFlow binds 0.0.0.0)."""
  rng = np.random.default_rng()
  ports = []
  while len(ports) < count:
    port = int(rng.integers(*_PORT_RANGE))
    with socket.socket() as s:
      try:
        s.bind(('0.0.0.0', port))
      except OSError:
        continue
    if port not in ports:
      ports.append(port)
  return ports


def _run_cluster(script: str, args_of, num_workers: int, env: dict):
  """Runs `num_workers` MultiWorkerMirroredStrategy workers on 127.0.0.1 (TF_CONFIG per worker).

  A port can be taken by another process between choosing it and the worker binding it (a worker
  then exits with "Could not start gRPC server"); the cluster is then restarted on other ports, up
  to 3 times. Returns [(returncode, output)] per worker.
  """
  for _ in range(3):
    cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(num_workers)]}
    envs = [
        {
            **env,
            'TF_CONFIG': json.dumps(
                {'cluster': cluster, 'task': {'type': 'worker', 'index': index}}
            ),
        }
        for index in range(num_workers)
    ]
    results = _run_workers(
        [[sys.executable, script, *args_of(i)] for i in range(num_workers)],
        envs,
        timeout=WORKER_TIMEOUT + 60,
    )
    if not any('Could not start gRPC server' in output for _, output in results):
      return results
  return results


@pytest.mark.slow
def test_multi_worker_two_processes_identical_weights(tmp_path):
  """MultiWorkerMirroredStrategy: 2 worker processes on 127.0.0.1, 2 steps, identical weights.

  The workers run with an HTTP proxy set that cannot carry their traffic (what made them wait
  for each other until killed): get_strategy must route the cluster around it.
  """
  script = _python(
      f"""
      import faulthandler, time
      faulthandler.dump_traceback_later({WORKER_TIMEOUT}, exit=True)  # A hang prints its stacks.
      began = time.time()
      from enformer.training import get_strategy
      strategy = get_strategy()  # From TF_CONFIG; configures generous coordination timeouts.
      weights = run(sys.argv[1], strategy, 2)
      np.savez(sys.argv[2], **{{k.replace('/', '|'): v for k, v in weights.items()}})
      print(type(strategy).__name__, strategy.num_replicas_in_sync,
            f'{{time.time() - began:.1f}} s')
  """,
      tmp_path,
      'worker.py',
  )
  env = {
      **ENV,
      'ENFORMER_REGISTER_TIMEOUT': str(REGISTER_TIMEOUT),
      'http_proxy': 'http://127.0.0.1:9',
      'https_proxy': 'http://127.0.0.1:9',
  }
  began = time.time()
  results = _run_cluster(
      script, lambda i: [str(tmp_path / 'run'), str(tmp_path / f'w{i}.npz')], 2, env
  )
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
  monkeypatch.setattr(
      strategy_lib,
      'configure_coordination',
      lambda cluster, heartbeat_timeout, **_: calls.append((cluster, heartbeat_timeout)),
  )
  monkeypatch.setattr(strategy_lib, 'MultiWorkerReplicator', lambda: 'multi-worker')
  tf_config = json.dumps(
      {
          'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']},
          'task': {'type': 'worker', 'index': 0},
      }
  )
  assert (
      strategy_lib.get_strategy(
          environ={'TF_CONFIG': tf_config, 'ENFORMER_HEARTBEAT_TIMEOUT': '42'}
      )
      == 'multi-worker'
  )
  assert calls == [({'worker': ['127.0.0.1:1', '127.0.0.1:2']}, 42.0)]
  with pytest.raises(ValueError, match='TF_CONFIG must hold'):
    strategy_lib.get_strategy(environ={'TF_CONFIG': '[1, 2]'})
  with pytest.raises(ValueError, match='not valid JSON'):
    strategy_lib.get_strategy(environ={'TF_CONFIG': '{'})


def test_workers_bypass_proxies_and_startup_timeout_is_one_clear_error(monkeypatch):
  from enformer.training import strategy as strategy_lib

  cluster = {'worker': ['127.0.0.1:20001', 'node-b:20002']}
  environ = {'no_proxy': 'example.org'}
  assert strategy_lib.bypass_proxy_for_cluster(cluster, environ) is None  # No proxy: unchanged.
  assert environ == {'no_proxy': 'example.org'}
  environ['https_proxy'] = 'http://proxy:3128'
  assert strategy_lib.bypass_proxy_for_cluster(cluster, environ) == 'example.org,127.0.0.1,node-b'
  assert environ['no_grpc_proxy'] == 'example.org,127.0.0.1,node-b'

  def never_joins():
    raise tf.errors.DeadlineExceededError(None, None, 'Deadline Exceeded\nRPC: RegisterTask')

  monkeypatch.setattr(strategy_lib, 'configure_coordination', lambda *a, **k: None)
  monkeypatch.setattr(strategy_lib, 'MultiWorkerReplicator', never_joins)
  for name in strategy_lib.PROXY_VARIABLES:
    monkeypatch.delenv(name, raising=False)
  tf_config = json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': 1}})
  with pytest.raises(
      strategy_lib.WorkerStartupError,
      match=r'Worker worker:1 .*node-b:20002.* within 12 s .*Deadline Exceeded\)',
  ):
    strategy_lib.get_strategy(environ={'TF_CONFIG': tf_config, 'ENFORMER_REGISTER_TIMEOUT': '12'})
  with pytest.raises(ValueError, match='ENFORMER_REGISTER_TIMEOUT'):
    strategy_lib.get_strategy(environ={'TF_CONFIG': tf_config, 'ENFORMER_REGISTER_TIMEOUT': 'x'})


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
  from enformer.data.synthetic import make_synthetic_dataset

  data = make_synthetic_dataset(
      tmp_path / 'data',
      sequence_length=2048,
      num_tracks=3,
      train_size=32,
      valid_size=8,
      test_size=4,
      seed=3,
  )

  def command(run_dir):
    # Dropout, augmentation and shuffling stay on: deterministic mode must replay them. Killed
    # after ckpt-4, the rerun starts at a checkpoint interval that the uninterrupted run crossed.
    return [
        sys.executable,
        '-m',
        'enformer',
        'train',
        '--preset',
        'micro',
        '--data',
        str(data),
        '--run-dir',
        str(run_dir),
        '--batch-size',
        '2',
        '--num-steps',
        '8',
        '--warmup-steps',
        '2',
        '--checkpoint-every',
        '4',
        '--eval-every',
        '8',
        '--deterministic',
        'true',
        '--export-hub',
        'false',
        '--progress',
        'false',
        '--shuffle-buffer',
        '16',
    ]

  reference = subprocess.Popen(
      command(tmp_path / 'uninterrupted'),
      env=ENV,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
  )
  killed = subprocess.Popen(
      command(tmp_path / 'resumed'), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )
  try:
    checkpoints = tmp_path / 'resumed' / 'checkpoints'
    deadline = time.time() + WORKER_TIMEOUT
    while time.time() < deadline and killed.poll() is None:
      if (checkpoints / 'ckpt-4.index').exists():
        break
      time.sleep(0.05)
    assert killed.poll() is None, 'the run ended before it could be killed'
    assert (checkpoints / 'ckpt-4.index').exists(), f'no ckpt-4 after {WORKER_TIMEOUT} s'
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (checkpoints / 'ckpt-8.index').exists()
    resumed = subprocess.run(
        command(tmp_path / 'resumed'),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
    )
    stdout, stderr = reference.communicate(timeout=WORKER_TIMEOUT)
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


def _poisoned_dataset(root, subset: str, record: int):
  """A synthetic data set whose `subset` record `record` has a NaN target (written by hand)."""
  from enformer.data import basenji, write
  from enformer.data.synthetic import make_synthetic_dataset

  data = make_synthetic_dataset(
      root / 'data',
      sequence_length=1024,
      num_tracks=2,
      train_size=8,
      valid_size=4,
      test_size=4,
      seed=1,
  )
  records = list(
      basenji.get_dataset(str(data), subset, settings=basenji.DatasetSettings(deterministic=True))
  )
  path = data / 'tfrecords' / f'{subset}-0.tfr'
  with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions('ZLIB')) as writer:
    for index, example in enumerate(records):
      target = example['target'].numpy().copy()
      if index == record:
        target[3, 1] = np.nan
      writer.write(write.encode_example(example['sequence'].numpy(), target))
  return data, path


@pytest.mark.slow
def test_nan_data_in_train_is_one_data_error(tmp_path):
  """NaN targets reached train/evaluate as a TensorFlow traceback; now a ValueError naming them."""
  from enformer.data.errors import DataError
  from enformer.training import train

  data, path = _poisoned_dataset(tmp_path, 'train', 0)  # In the first batch: no step runs.
  with pytest.raises(
      DataError,
      match=rf'Bad record in {path}: record 0 has a target with NaN.*'
      r'reading the training data of head human\)',
  ) as caught:
    train(
        run_dir=str(tmp_path / 'run'),
        preset='micro',
        data={'human': str(data)},
        batch_size=4,
        num_steps=2,
        warmup_steps=1,
        progress=False,
        export_hub=False,
        deterministic=True,
        shuffle_buffer=0,
    )
  assert '\n' not in str(caught.value) and caught.value.__cause__ is None
  # Without get_dataset's checks (in-memory data), a diverged step looks for non-finite features
  # of its batch, to name the data as the cause.
  from enformer.training import loop

  batch = {
      'sequence': tf.zeros([2, 8, 4]),
      'target': tf.constant([[[1.0]], [[np.inf]]]),
      'count': tf.constant([1, 2]),
  }
  assert loop._non_finite_features(tf.distribute.get_strategy(), batch) == ['target']


def test_nan_data_in_evaluate_is_one_data_error(tmp_path):
  from enformer.data import basenji
  from enformer.data.errors import DataError
  from enformer.evaluation import tracks as evaluate_lib

  data, path = _poisoned_dataset(tmp_path, 'test', 3)
  predict = lambda x: {'human': np.ones((len(x), 8, 2), np.float32)}
  with pytest.raises(DataError, match=rf'Bad record in {path}: record 3 has a target with NaN'):
    evaluate_lib.evaluate(
        predict,
        basenji.get_dataset(
            str(data), 'test', settings=basenji.DatasetSettings(deterministic=True)
        ),
        'human',
        batch_size=2,
        progress=False,
        source=str(data),
    )
  unchecked = basenji.get_dataset(
      str(data), 'test', settings=basenji.DatasetSettings(deterministic=True, check_values=False)
  )
  with pytest.raises(
      DataError, match=rf"evaluation data \({data}\) holds NaN .* 'target' of record\(s\) \[3\]"
  ):
    evaluate_lib.evaluate(
        predict, unchecked, 'human', batch_size=2, progress=False, source=str(data)
    )


@pytest.mark.slow
def test_progress_rate_leaves_out_the_traced_first_steps(tmp_path, capsys):
  """The bar's rate (and so its ETA) counts the steps after each head's first, traced step: the
  demo's first bar showed an ETA of hours."""
  from enformer.training import train

  rng = np.random.default_rng(0)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(8, 1024))]
  y = rng.gamma(1.0, 1.0, size=(8, 8, 2)).astype(np.float32)
  data = {
      head: tf.data.Dataset.from_tensor_slices({'sequence': x, 'target': y})
      for head in ('human', 'mouse')
  }
  result = train(
      run_dir=str(tmp_path / 'run'),
      preset='micro',
      batch_size=4,
      num_steps=24,
      warmup_steps=1,
      train_data=data,
      model_args={'heads': {'human': 2, 'mouse': 2}},
      checkpoint_every=24,
      export_hub=False,
      progress=True,
      seed=0,
  )
  bar = [
      line
      for line in capsys.readouterr().err.replace('\r', '\n').splitlines()
      if line.startswith('train') and '24/24' in line
  ][-1]
  value, unit = re.search(r'([\d.]+)(step/s|s/step)', bar).groups()
  rate = float(value) if unit == 'step/s' else 1 / float(value)
  # Tracing two heads takes seconds, a micro step milliseconds: counted in, the rate would be a
  # small fraction of the timed steps/s.
  assert rate > 0.3 * result.steps_per_second, (bar, result.steps_per_second)


@pytest.mark.parametrize(
    'task_type, task_id, cluster, chief',
    [
        (None, None, {}, True),
        ('worker', 0, {'worker': ['a:1', 'b:2']}, True),
        ('worker', 1, {'worker': ['a:1', 'b:2']}, False),
        ('worker', 0, {'chief': ['c:0'], 'worker': ['a:1']}, False),
        ('chief', 0, {'chief': ['c:0'], 'worker': ['a:1']}, True),
    ],
)
def test_chief_of_a_multi_worker_strategy(task_type, task_id, cluster, chief):
  """The process that locks the run folder and writes the real files: the chief, or worker 0 of
  a cluster without one (MultiWorkerMirroredStrategy's convention); the one chief test."""
  from enformer.training.strategy import is_chief

  class StandIn(tf.distribute.MultiWorkerMirroredStrategy):  # pylint: disable=abstract-method

    def __init__(self):  # pylint: disable=super-init-not-called
      pass

    @property
    def cluster_resolver(self):
      return tf.distribute.cluster_resolver.SimpleClusterResolver(
          tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
      )

  assert is_chief(StandIn()) is chief
  assert is_chief(tf.distribute.get_strategy())
