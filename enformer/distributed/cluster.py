"""Dask clients for the CLI and the library: a local cluster of worker processes, or a running one.

`--workers N` starts a `LocalCluster` of N single-threaded worker processes on 127.0.0.1 (TensorFlow
in each worker uses one intra-op and one inter-op thread, so N workers use N cores; give a GPU
machine one worker per GPU). `--scheduler tcp://HOST:PORT` connects to a running cluster (e.g.
`dask-jobqueue`'s `SLURMCluster`, see docs/distributed.md).
"""

import contextlib
import logging
import os
from typing import Dict, Iterator, Optional

import dask
import distributed

from enformer import cpu_memory
from enformer.io import quiet

# Settings of clusters started here. Scores are small and handled by the driver as soon as they
# arrive, so workers never need to spill to disk; TensorFlow's allocator keeps memory it has
# freed, which the nanny would take for a leak, so memory is not policed by Dask (a worker the
# kernel kills for memory is restarted by its nanny, and its task is rerun elsewhere). Tasks last
# seconds, so the statistical profiler (a stack sample every 10 ms) and frequent event-loop and
# system monitoring only cost cores; they are switched off or slowed down.
DASK_CONFIG = {
    'distributed.worker.memory.target': False,
    'distributed.worker.memory.spill': False,
    'distributed.worker.memory.pause': False,
    'distributed.worker.memory.terminate': False,
    'distributed.worker.profile.enabled': False,
    'distributed.admin.tick.interval': '500ms',
    'distributed.admin.tick.limit': '60s',
    'distributed.admin.system-monitor.interval': '5s',
    'distributed.admin.system-monitor.gil.enabled': False,
}


def worker_environment(threads: int = 1) -> Dict[str, str]:
  """Environment variables of a worker process: TensorFlow/OpenMP use `threads` threads.

  TensorFlow's log level is this process's (default 3: no start-up lines; `enformer.io.quiet`);
  CPU tensors come from TensorFlow's pool (`enformer.cpu_memory`).
  """
  value = str(int(threads))
  return {
      'TF_NUM_INTRAOP_THREADS': value,
      'TF_NUM_INTEROP_THREADS': value,
      'OMP_NUM_THREADS': value,
      quiet.LOG_LEVEL_VARIABLE: os.environ.get(quiet.LOG_LEVEL_VARIABLE, quiet.QUIET_LEVEL),
      **cpu_memory.environment(),
  }


@contextlib.contextmanager
def local_client(
    workers: int, threads_per_worker: int = 1, memory_limit: str = '0'
) -> Iterator[distributed.Client]:
  """A `Client` of a new LocalCluster: `workers` processes on 127.0.0.1, no dashboard.

  Args:
    workers: worker processes.
    threads_per_worker: Dask threads and TensorFlow threads of each worker.
    memory_limit: per-worker memory limit (Dask syntax, '0' = none, see DASK_CONFIG).
  """
  if workers < 1:
    raise ValueError(f'`workers` must be at least 1, got {workers}.')
  with dask.config.set(DASK_CONFIG):
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        host='127.0.0.1',
        dashboard_address=None,
        memory_limit=memory_limit,
        silence_logs=logging.ERROR,
        env=worker_environment(threads_per_worker),
        preload=[quiet.__name__],
    )  # Workers import TensorFlow without its start-up lines.
    with cluster, distributed.Client(cluster) as client:
      yield client


def connect(address: str, timeout: float = 60.0) -> distributed.Client:
  """A `Client` of the running scheduler at `address` that has at least one worker."""
  try:
    client = distributed.Client(address, timeout=timeout)
  except (OSError, TimeoutError) as error:
    raise ValueError(
        f'Cannot reach the Dask scheduler at {address} ({error}); check `scheduler` '
        '(tcp://HOST:PORT, as printed by the scheduler).'
    ) from None
  try:
    client.wait_for_workers(1, timeout=timeout)
  except TimeoutError:
    client.close()
    raise ValueError(
        f'The Dask scheduler at {address} has no workers after {timeout:.0f} s; start '
        f'some (e.g. `dask worker {address}` with one thread each, or '
        'cluster.scale(...)).'
    ) from None
  return client


@contextlib.contextmanager
def client_for(
    workers: Optional[int] = None, scheduler: Optional[str] = None
) -> Iterator[Optional[distributed.Client]]:
  """The client of `--workers N` or `--scheduler ADDRESS`, or None for a single-process run."""
  if workers and scheduler:
    raise ValueError(
        'Pass either `workers` (a local cluster) or `scheduler` (a running cluster), not both.'
    )
  if scheduler:
    client = connect(scheduler)
    with client:
      yield client
  elif workers:
    with local_client(workers) as client:
      yield client
  else:
    yield None
