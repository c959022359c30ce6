"""Dask execution (enformer.distributed): scoring and prediction on a LocalCluster of 2 worker
processes on 127.0.0.1 equal single-process runs; killed workers and drivers; shards + merge."""

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import dask
import distributed
import h5py
import numpy as np
import pyBigWig
import pytest

from conftest import SMALL_REFERENCE_CONFIG, shared_path
from enformer.cli import main
from enformer.distributed import (
    ModelLoadError,
    ModelSource,
    NoWorkers,
    WorkerDied,
    executor,
    local_client,
)
from enformer.inference import load_model
from enformer.io import sad as sad_io
from enformer.inference.regions import PredictionOutputs, predict_to_files
from enformer.variants import ScoreTransform, ScoringSettings, score_vcf
from test_vcf import write_vcf

pytestmark = pytest.mark.slow  # The demo, notebooks, Dask clusters or several processes.

LENGTH = 1024
CONFIG = dict(SMALL_REFERENCE_CONFIG, target_length=None)  # DeepMind's small weights: 8 bins.
FLAGS = [
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
    '--sequence-length',
    str(LENGTH),
]
CHUNK = dict(chunk_size=1, batch_size=4)  # The ScoringSettings of every run here.
NUM_CHUNKS = 15  # 23 variants at 15 sites, a chunk per site.
SLOW_BATCH_SECONDS = 0.3
REPO = pathlib.Path(__file__).resolve().parents[1]


class SlowPredictor:
  """A predictor that sleeps before each batch, so that a test can interrupt a run mid-way."""

  def __init__(self, predictor):
    self._predictor = predictor

  def __getattr__(self, name):
    return getattr(self._predictor, name)

  def predict_on_batch(self, x):
    time.sleep(SLOW_BATCH_SECONDS)
    return self._predictor.predict_on_batch(x)


def load_slowly(handle, sequence_length=None, **config):
  """ModelSource loader ('test_distributed:load_slowly'): load_model wrapped in SlowPredictor."""
  return SlowPredictor(load_model(handle, sequence_length=sequence_length, **config))


def cached_models() -> int:
  """Models in this worker's cache."""
  return sum(key[0] == 'model' for key in executor._cache)


def die_loading(handle, sequence_length=None, **config):
  """ModelSource loader whose worker process dies (like one killed for memory)."""
  os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  """Random genome, a VCF of 23 variants at 15 sites (tri-allelic sites, an indel), a checkpoint."""
  directory = tmp_path_factory.mktemp('distributed')
  rng = np.random.default_rng(3)
  chroms = {
      'chr1': ''.join(rng.choice(list('ACGT'), 12_000)),
      'chr2': ''.join(rng.choice(list('ACGT'), 4_000)),
  }
  fasta = directory / 'genome.fa'
  fasta.write_text(
      ''.join(
          f'>{name}\n' + '\n'.join(seq[i : i + 80] for i in range(0, len(seq), 80)) + '\n'
          for name, seq in chroms.items()
      )
  )
  rows = []
  for i, pos in enumerate(range(600, 11_400, 800)):
    ref = chroms['chr1'][pos - 1]
    alts = [b for b in 'ACGT' if b != ref][: 3 if i % 4 == 0 else 1]
    rows.append(f'chr1\t{pos}\trs{i}\t{ref}\t{",".join(alts)}\t.\t.\t.')
  rows.append(f'chr2\t2001\tindel\t{chroms["chr2"][2000]}\t{chroms["chr2"][2000]}TT\t.\t.\t.')
  vcf = write_vcf(directory / 'variants.vcf', rows)

  checkpoint = str(shared_path('reference', 'small', 'checkpoint') / 'enformer')
  bed = directory / 'regions.bed'
  bed.write_text(
      'chr1\t1000\t1500\ta\nchr1\t5000\t5200\tb\nchr2\t100\t900\tc\n'
      'chr1\t11500\t11900\td\nchr2\t3000\t3100\te\n'
  )
  return dict(
      directory=directory, fasta=str(fasta), vcf=str(vcf), checkpoint=checkpoint, bed=str(bed)
  )


@pytest.fixture(scope='module')
def predictor(files):
  return load_model(files['checkpoint'], sequence_length=LENGTH, **CONFIG)


@pytest.fixture(scope='module')
def source(files):
  return ModelSource(files['checkpoint'], LENGTH, CONFIG)


@pytest.fixture(scope='module')
def cluster():
  """One LocalCluster for the module: 2 single-threaded worker processes on 127.0.0.1."""
  with local_client(2) as client:
    yield client


@pytest.fixture(scope='module')
def reference(files, predictor):
  """Single-process outputs, computed once per set of options."""
  done = {}

  def run(name, ensemble=None, **options):
    if name not in done:
      out = files['directory'] / f'single_{name}.h5'
      settings = ScoringSettings(model_id=files['checkpoint'], **CHUNK, **(ensemble or {}))
      score_vcf(
          predictor, files['fasta'], files['vcf'], out, settings=settings, progress=False, **options
      )
      done[name] = out
    return done[name]

  return run


@pytest.fixture(scope='module')
def transform(files, reference):
  path = files['directory'] / 't.npz'
  sad = sad_io.read_sad_h5(reference('plain')).sad.astype(np.float64)
  ScoreTransform.fit(sad, 2).save(path)
  return ScoreTransform.load(path)


def assert_same_file(path, expected):
  """Same datasets and variants; scores equal within float16 storage (1 ulp)."""
  with h5py.File(path, 'r') as ours, h5py.File(expected, 'r') as theirs:
    assert set(ours) == set(theirs)
    for name in theirs:
      a, b = ours[name][:], theirs[name][:]
      if b.dtype.kind == 'f':
        np.testing.assert_allclose(
            a.astype(np.float32),
            b.astype(np.float32),
            rtol=2**-10,
            atol=1e-4 * float(np.abs(b).max()),
            err_msg=name,
        )
      else:
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_cluster_scores_equal_single_process(
    files, source, cluster, reference, transform, tmp_path
):
  for name, ensemble, options in (
      ('plain', {}, {}),
      (
          'ensemble',
          dict(reverse_complement=True, shifts=(0, 1)),
          dict(transform=transform, num_pcs=2),
      ),
  ):
    out = tmp_path / f'{name}.h5'
    settings = ScoringSettings(model_id=files['checkpoint'], **CHUNK, **ensemble)
    result = score_vcf(
        source,
        files['fasta'],
        files['vcf'],
        out,
        settings=settings,
        client=cluster,
        progress=False,
        **options,
    )
    assert result.chunks_total == NUM_CHUNKS and len(result.scores) == 23
    assert_same_file(out, reference(name, ensemble, **options))
    assert not pathlib.Path(str(out) + '.partial').exists()
  with h5py.File(out, 'r') as h5:
    assert {'SAD_z', 'PC'} <= set(h5) and h5['SAD'].shape == (23, 5313)
  assert len(list(tmp_path.glob('ensemble.PCs.*.tsv.gz'))) == 2
  # Each worker loaded the model once (the same model for every run).
  assert sorted(cluster.run(cached_models).values()) == [1, 1]


def test_worker_killed_mid_task_run_completes(files, cluster, reference, tmp_path, monkeypatch):
  saved = []
  store_save = sad_io.ChunkStore.save
  monkeypatch.setattr(
      sad_io.ChunkStore,
      'save',
      lambda self, index, **arrays: (saved.append(index), store_save(self, index, **arrays)),
  )
  out = tmp_path / 'scores.h5'
  killed = []

  def kill_a_busy_worker():
    deadline = time.time() + 300
    while not saved and time.time() < deadline:
      time.sleep(0.02)
    pids = cluster.run(os.getpid)
    while time.time() < deadline:
      busy = [address for address, keys in cluster.processing().items() if keys]
      if busy:
        os.kill(pids[busy[0]], signal.SIGKILL)
        killed.append((pids[busy[0]], len(saved)))
        return
      time.sleep(0.02)

  killer = threading.Thread(target=kill_a_busy_worker)
  killer.start()
  slow = ModelSource(files['checkpoint'], LENGTH, CONFIG, loader='test_distributed:load_slowly')
  score_vcf(
      slow,
      files['fasta'],
      files['vcf'],
      out,
      settings=ScoringSettings(model_id=files['checkpoint'], **CHUNK),
      client=cluster,
      progress=False,
  )
  killer.join()
  assert killed and killed[0][1] < NUM_CHUNKS, 'no worker was killed during the run'
  assert killed[0][0] not in cluster.run(os.getpid).values()
  assert sorted(saved) == list(range(NUM_CHUNKS))  # Every chunk written once.
  assert_same_file(out, reference('plain'))


def test_driver_killed_rerun_resumes(files, cluster, reference, tmp_path, capsys):
  out = tmp_path / 'scores.h5'
  address = cluster.scheduler.address
  driver = (
      'import sys, distributed\n'
      'from enformer.distributed import ModelSource\n'
      'from enformer.variants import ScoringSettings, score_vcf\n'
      f'client = distributed.Client({address!r})\n'
      f'source = ModelSource({files["checkpoint"]!r}, {LENGTH}, {CONFIG!r}, '
      'loader="test_distributed:load_slowly")\n'
      f'score_vcf(source, {files["fasta"]!r}, {files["vcf"]!r}, {str(out)!r}, client=client, '
      f'settings=ScoringSettings(model_id={os.path.abspath(files["checkpoint"])!r}, '
      f'**{CHUNK!r}), progress=False)\n'
  )
  env = dict(os.environ, PYTHONPATH=str(REPO))
  process = subprocess.Popen(
      [sys.executable, '-c', driver], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
  )
  second_chunk = pathlib.Path(str(out) + '.partial') / 'chunk_000001.npz'
  deadline = time.time() + 300
  while not second_chunk.exists() and process.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  os.kill(process.pid, signal.SIGKILL)
  _, stderr = process.communicate()
  assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
  assert not out.exists()
  partial = len(list(pathlib.Path(str(out) + '.partial').glob('chunk_*.npz')))
  assert 1 <= partial < NUM_CHUNKS

  # The CLI on the same cluster continues with the missing chunks only.
  with pytest.warns(RuntimeWarning, match='Taking over the lock'):  # The dead driver's lock.
    code = main(
        [
            'score-variants',
            '--model',
            files['checkpoint'],
            *FLAGS,
            '--fasta',
            files['fasta'],
            '--vcf',
            files['vcf'],
            '--out',
            str(out),
            '--chunk-size',
            '1',
            '--batch-size',
            '4',
            '--quiet',
            '--scheduler',
            address,
        ]
    )
  assert code == 0
  assert f'resumed {partial}/{NUM_CHUNKS} chunks' in capsys.readouterr().err
  assert_same_file(out, reference('plain'))


def test_shards_merge_equals_single_run_and_mismatches_are_refused(
    files, predictor, reference, transform, tmp_path, capsys
):
  shards = []
  for k in (1, 2, 3):
    shards.append(str(tmp_path / f'shard{k}.h5'))
    result = score_vcf(
        predictor,
        files['fasta'],
        files['vcf'],
        shards[-1],
        settings=ScoringSettings(model_id=files['checkpoint'], **CHUNK),
        shard=(k, 3),
        progress=False,
    )
    assert result.chunks_total == len(range(k - 1, NUM_CHUNKS, 3))
  out = tmp_path / 'merged.h5'
  transform_path = files['directory'] / 't.npz'
  assert (
      main(
          [
              'merge-scores',
              str(out),
              shards[2],
              shards[0],
              shards[1],
              '--transform',
              str(transform_path),
              '--pcs',
              '2',
          ]
      )
      == 0
  )
  assert_same_file(out, reference('transformed', transform=transform, num_pcs=2))

  def refused(*paths):
    assert main(['merge-scores', str(tmp_path / 'refused.h5'), *paths]) == 2
    assert not (tmp_path / 'refused.h5').exists()
    return capsys.readouterr().err

  assert 'Shard(s) 3/3 missing' in refused(shards[0], shards[1])
  assert 'overlap' in refused(*shards, shards[0])
  other = str(tmp_path / 'other_model.h5')
  score_vcf(
      predictor,
      files['fasta'],
      files['vcf'],
      other,
      settings=ScoringSettings(model_id='other/model', **CHUNK),
      shard=(3, 3),
      progress=False,
  )
  message = refused(shards[0], shards[1], other)
  assert 'model differs' in message and 'other/model' in message
  assert 'not a shard file' in refused(shards[0], shards[1], str(reference('plain')))


def test_model_load_failure_is_a_clear_error(files, cluster, tmp_path):
  missing = str(tmp_path / 'no_such_model')
  with pytest.raises(ModelLoadError, match='could not load the model.*no_such_model'):
    score_vcf(
        ModelSource(missing),
        files['fasta'],
        files['vcf'],
        tmp_path / 'x.h5',
        settings=ScoringSettings(**CHUNK),
        client=cluster,
        progress=False,
    )


def test_predict_on_cluster_equals_single_process(files, predictor, cluster, tmp_path):
  from enformer.io.bed import read_bed

  regions = read_bed(files['bed'])
  single = predict_to_files(
      predictor,
      files['fasta'],
      regions,
      str(tmp_path / 'single'),
      batch_size=1,
      outputs=PredictionOutputs(max_plots=0),
      progress=False,
  )
  # Batches of 1 region, 4 regions per task: 2 tasks.
  assert (
      main(
          [
              'predict',
              '--model',
              files['checkpoint'],
              *FLAGS,
              '--fasta',
              files['fasta'],
              '--bed',
              files['bed'],
              '--max-plots',
              '0',
              '--out',
              str(tmp_path / 'dask'),
              '--scheduler',
              cluster.scheduler.address,
          ]
      )
      == 0
  )
  with (
      h5py.File(single['predictions'], 'r') as a,
      h5py.File(tmp_path / 'dask' / 'predictions.h5', 'r') as b,
  ):
    assert set(a) == set(b) and a.attrs['complete'] == b.attrs['complete'] == 1
    for name in a:
      if a[name].dtype.kind == 'f':
        np.testing.assert_allclose(b[name][:], a[name][:], rtol=1e-5, atol=1e-6, err_msg=name)
      else:
        np.testing.assert_array_equal(b[name][:], a[name][:], err_msg=name)
  assert len(single['bigwig']) == 4
  for path in single['bigwig']:
    ours = pyBigWig.open(str(tmp_path / 'dask' / os.path.basename(path)))
    theirs = pyBigWig.open(path)
    assert ours.chroms() == theirs.chroms()
    for chrom in theirs.chroms():
      np.testing.assert_allclose(
          ours.values(chrom, 0, theirs.chroms(chrom), numpy=True),
          theirs.values(chrom, 0, theirs.chroms(chrom), numpy=True),
          rtol=1e-5,
          atol=1e-6,
      )


def test_worker_dying_repeatedly_stops_the_run(files, cluster, tmp_path):
  """A worker that dies loading the model (e.g. out of memory): an error, not a hang."""
  scheduler = cluster.cluster.scheduler
  allowed = scheduler.allowed_failures
  scheduler.allowed_failures = 0  # One death is enough here (default 3: restarts are slow).
  try:
    with pytest.raises(WorkerDied, match='died'):
      score_vcf(
          ModelSource(files['checkpoint'], loader='test_distributed:die_loading'),
          files['fasta'],
          files['vcf'],
          tmp_path / 'x.h5',
          settings=ScoringSettings(**CHUNK),
          client=cluster,
          progress=False,
      )
  finally:
    scheduler.allowed_failures = allowed


def test_cluster_without_workers_stops_the_run_and_keeps_what_finished():
  """All workers leave mid-run: after the no-worker timeout, NoWorkers (not a hang); workers
  that come back within it finish the run."""
  with (
      distributed.LocalCluster(
          n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
      ) as local,
      distributed.Client(local) as client,
  ):
    tasks = [(i, (0.2,)) for i in range(12)]
    with dask.config.set({executor.NO_WORKER_TIMEOUT_KEY: 60}):
      finished = []
      for key, _ in executor.iter_tasks(client, time.sleep, tasks, name='nap', window=4):
        finished.append(key)
        if len(finished) == 2:  # Every worker leaves, then one joins again.
          local.scale(0)
          client.sync(local._correct_state)
          local.scale(1)
      assert sorted(finished) == list(range(12))

    finished = []
    with dask.config.set({executor.NO_WORKER_TIMEOUT_KEY: 2}):
      with pytest.raises(NoWorkers, match='no worker for 2 s.*rerun the same command'):
        for key, _ in executor.iter_tasks(client, time.sleep, tasks, name='nap', window=4):
          finished.append(key)
          if len(finished) == 2:
            local.scale(0)
    assert len(finished) >= 2
