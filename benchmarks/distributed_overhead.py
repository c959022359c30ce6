"""Per-variant overhead of Dask scoring (`score_vcf(client=...)`) vs one process at equal cores.

For each core count W, one process (TensorFlow limited to W intra-op / inter-op threads) alternates
  single: `score_vcf(predictor, ...)` in this process, and
  dask:   `score_vcf(ModelSource(...), ..., client=...)` on a LocalCluster of W single-threaded
          worker processes (this process only writes chunks),
`--repeats` times each on the same VCF, after warming both up (model loaded, forward traced at every
batch size). Only the `score_vcf` calls are measured (reading the VCF, scoring, writing the file);
starting workers and loading models is reported separately, and a short VCF is scored in both modes
first (every function traced in the driver and in each worker, as after a real run's first chunk).
Two measures per run:
  cpu:  core-seconds used: this process (driver, scheduler, single-process scoring) plus, for the
        dask runs, every worker process (getrusage before and after). Overhead = cpu(dask) /
        cpu(single) − 1: the extra core-seconds per variant, insensitive to other load.
  wall: seconds; overhead = wall(dask) / wall(single) − 1, only meaningful on a quiet machine with
        W + 1 cores (the driver and scheduler need a core of their own).
Per pair of neighbouring runs; the median over pairs is reported.

Usage:
  python benchmarks/distributed_overhead.py --cores 1,2 --variants 200 [--json out.json]
"""

import argparse
import dataclasses
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import dask
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL_CHECKPOINT = REPO.parent / 'shared' / 'reference' / 'small' / 'checkpoint' / 'enformer'
SMALL_CONFIG = dict(
    channels=384,
    num_heads=4,
    num_transformer_layers=2,
    pooling_type='attention',
    target_length=None,
)


def warm_up(source, batch_size: int) -> int:
  """Worker (or local) warm-up: load the model, trace the forward at batch sizes 1..batch_size."""
  from enformer.distributed import worker_predictor

  predictor = worker_predictor(source)
  for size in range(1, batch_size + 1):
    predictor.predict_on_batch(np.zeros((size, predictor.sequence_length, 4), np.float32))
  return os.getpid()


def cpu_seconds() -> float:
  """User + system CPU seconds of this process so far (all its threads)."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def measure(cores: int, args) -> Dict[str, object]:
  """Runs in a process whose TensorFlow uses `cores` threads (see main)."""
  sys.path.insert(0, str(REPO / 'benchmarks'))
  from variants import write_genome_and_vcf
  from enformer.distributed import ModelSource, local_client, worker_predictor
  from enformer.variants import ScoringSettings, score_vcf

  directory = pathlib.Path(tempfile.mkdtemp(prefix='dask_overhead_'))
  fasta, vcf = write_genome_and_vcf(directory, args.variants, args.length, seed=1)
  source = ModelSource(args.model, args.length, SMALL_CONFIG)
  settings = ScoringSettings(
      batch_size=args.batch_size, chunk_size=args.chunk_size, model_id=args.model
  )
  options = dict(settings=settings, progress=False)
  started = time.time()
  warm_up(source, args.batch_size)  # This process: the single-process predictor.
  predictor = worker_predictor(source)
  load_single = time.time() - started
  report: Dict[str, object] = dict(cores=cores, load_single_s=round(load_single, 2))
  runs: Dict[str, List[float]] = {'single': [], 'dask': []}
  cpu: Dict[str, List[float]] = {'single': [], 'dask': []}
  driver_cpu: List[float] = []  # Dask runs: the driver's share (client, scheduler, chunk store).
  # A short VCF scored once per mode before measuring: every function (full and incremental
  # forwards) is traced in the driver and in each worker, as after the first chunk of a real run.
  warm_directory = directory / 'warm_up'
  warm_directory.mkdir()
  warm_fasta, warm_vcf = write_genome_and_vcf(warm_directory, 24, args.length, seed=2)
  started = time.time()
  with local_client(cores) as client:
    client.run(warm_up, source, args.batch_size)
    report['cluster_start_and_load_s'] = round(time.time() - started, 2)
    score_vcf(predictor, str(warm_fasta), str(warm_vcf), warm_directory / 'single.h5', **options)
    for _ in range(cores):  # Chunks go to whichever worker is free: give each one some.
      score_vcf(
          source,
          str(warm_fasta),
          str(warm_vcf),
          warm_directory / 'dask.h5',
          client=client,
          overwrite=True,
          settings=dataclasses.replace(settings, chunk_size=4),
          progress=False,
      )
    report['worker_profiler'] = sorted(
        set(client.run(lambda: dask.config.get('distributed.worker.profile.enabled')).values())
    )
    for repeat in range(args.repeats):
      for mode in ('single', 'dask') if repeat % 2 == 0 else ('dask', 'single'):
        out = directory / f'{mode}_{repeat}.h5'
        workers_before = sum(client.run(cpu_seconds).values())
        cpu_before, begin = cpu_seconds(), time.time()
        if mode == 'single':
          result = score_vcf(predictor, str(fasta), str(vcf), out, **options)
        else:
          result = score_vcf(source, str(fasta), str(vcf), out, client=client, **options)
        runs[mode].append(time.time() - begin)
        used = cpu_seconds() - cpu_before
        if mode == 'dask':  # The workers' share (idle workers' event loops in single runs: no).
          workers = sum(client.run(cpu_seconds).values()) - workers_before
          driver_cpu.append(used)
          used += workers
        cpu[mode].append(used)
        report['variants'] = len(result.scores)
        report['chunks'] = result.chunks_total
  import h5py

  with h5py.File(directory / 'single_0.h5', 'r') as a, h5py.File(directory / 'dask_0.h5', 'r') as b:
    report['max_abs_sad_difference'] = float(
        np.abs(a['SAD'][:].astype(np.float32) - b['SAD'][:].astype(np.float32)).max()
    )
  pairs = [d / s - 1 for s, d in zip(runs['single'], runs['dask'])]
  cpu_pairs = [d / s - 1 for s, d in zip(cpu['single'], cpu['dask'])]
  report.update(
      single_cpu_s=[round(t, 2) for t in cpu['single']],
      dask_cpu_s=[round(t, 2) for t in cpu['dask']],
      dask_driver_cpu_s=[round(t, 2) for t in driver_cpu],
      cpu_overhead_per_pair=[round(p, 4) for p in cpu_pairs],
      cpu_overhead_median=round(float(np.median(cpu_pairs)), 4),
      single_wall_s=[round(t, 2) for t in runs['single']],
      dask_wall_s=[round(t, 2) for t in runs['dask']],
      single_variants_per_s=round(report['variants'] / float(np.median(runs['single'])), 3),
      dask_variants_per_s=round(report['variants'] / float(np.median(runs['dask'])), 3),
      wall_overhead_per_pair=[round(p, 4) for p in pairs],
      wall_overhead_median=round(float(np.median(pairs)), 4),
      load_average=os.getloadavg()[0],
  )
  return report


def main(argv: List[str] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--cores', default='1,2', help='core counts W to compare (comma-separated)')
  parser.add_argument('--variants', type=int, default=200, help='VCF records')
  parser.add_argument('--length', type=int, default=2048, help='input length in bp')
  parser.add_argument('--batch-size', type=int, default=4)
  parser.add_argument('--chunk-size', type=int, default=16, help='variants per chunk (task)')
  parser.add_argument('--repeats', type=int, default=3, help='runs per mode (alternating)')
  parser.add_argument(
      '--model',
      default=str(SMALL_CHECKPOINT),
      help="checkpoint of DeepMind's small configuration (../shared)",
  )
  parser.add_argument('--json', default=None, help='also write the reports here')
  parser.add_argument('--only', type=int, default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.only is not None:  # Child process: TensorFlow threads were set by the parent.
    print(json.dumps(measure(args.only, args)))
    return 0
  reports = []
  for cores in (int(c) for c in args.cores.split(',')):
    value = str(cores)
    env = dict(
        os.environ,
        TF_NUM_INTRAOP_THREADS=value,
        TF_NUM_INTEROP_THREADS=value,
        OMP_NUM_THREADS=value,
        PYTHONPATH=str(REPO),
    )
    command = [
        sys.executable,
        __file__,
        *(argv if argv is not None else sys.argv[1:]),
        '--only',
        value,
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    reports.append(json.loads(output.strip().splitlines()[-1]))
    print(json.dumps(reports[-1]), flush=True)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(reports, indent=1))
  return 0


if __name__ == '__main__':
  sys.exit(main())
