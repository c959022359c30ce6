"""Independent tasks (chunks of variants, batches of regions) on a Dask cluster.

The driver submits one task per chunk, at most `window` at a time, and handles each result as it
arrives (e.g. writes it into a resumable chunk store); what a task computes is the caller's
function. Workers keep loaded models in a per-process cache keyed by the model source, so a worker
loads each model once however many chunks it runs.

Faults:
  - a worker that dies during a task (killed, out of memory): the scheduler reruns the task on
    another worker; its result reaches the driver once. A task that kills
    `distributed.scheduler.allowed-failures` + 1 workers stops the run with `WorkerDied`.
  - a worker that cannot load the model: `ModelLoadError` naming the worker and the model; the
    run stops (remaining tasks are cancelled).
  - every worker leaves the cluster (all jobs pre-empted or past their time limit) while tasks
    wait: after `enformer.no-worker-timeout` seconds of Dask config (default 300; environment
    DASK_ENFORMER__NO_WORKER_TIMEOUT) without a worker, `NoWorkers`; results already handled are
    kept, so rerunning continues. Workers that join within that time pick the tasks up.
  - any other exception of a task stops the run with that exception.
"""

import dataclasses
import importlib
import json
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, Hashable, Iterable, Iterator, Optional, Tuple, TypeVar

import dask
import distributed

from enformer.io.model_source import join_model_id

T = TypeVar('T')

DEFAULT_LOADER = 'enformer.inference:load_model'


class DistributedError(RuntimeError):
  """A distributed run could not finish (the message says why and what to do)."""


class ModelLoadError(DistributedError):
  """A worker could not load the model."""


class WorkerDied(DistributedError):
  """Workers died repeatedly while running the same task."""


class NoWorkers(DistributedError):
  """The cluster has had no worker for longer than `enformer.no-worker-timeout` seconds."""


NO_WORKER_TIMEOUT_KEY = 'enformer.no-worker-timeout'
NO_WORKER_TIMEOUT_S = 300.0
_POLL_S = 2.0  # How often the driver checks for workers while it waits for results.


@dataclasses.dataclass(frozen=True)
class ModelSource:
  """How a worker builds a predictor: `loader(handle, sequence_length=..., **config)`.

  Sent to workers instead of a loaded model (which cannot be pickled). The loader is named as
  'module:function' and imported by the worker, so the driver need not import TensorFlow.

  Attributes:
    handle: model path or URL, the loader's first argument.
    sequence_length: the loader's `sequence_length` (None: the model's own).
    config: further keyword arguments of the loader (JSON-serialisable values).
    loader: 'module:function' returning a predictor (`predict_on_batch`, `sequence_length`,
      `heads`, ...); default `enformer.inference.load_model`.
  """

  handle: str
  sequence_length: Optional[int] = None
  config: Dict[str, Any] = dataclasses.field(default_factory=dict)
  loader: str = DEFAULT_LOADER

  @classmethod
  def of(
      cls,
      handle: str,
      sequence_length: Optional[int] = None,
      *,
      precision: str = 'float32',
      **config: Any,
  ) -> 'ModelSource':
    """The source of `load_model(handle, sequence_length, precision=..., **config)` on workers.

    A local path is made absolute (workers may run in another folder); URLs stay as given.
    """
    handle = os.fspath(handle)
    if '://' not in handle:
      handle = os.path.abspath(handle)
    return cls(handle, sequence_length, dict(config, precision=precision))

  @property
  def identity(self) -> str:
    """The model in a run's resume fingerprint and metadata: its handle, with ' precision=P'
    unless float32 (a bfloat16 run never resumes a float32 run's results)."""
    return join_model_id(self.handle, self.config.get('precision', 'float32'))

  @property
  def key(self) -> str:
    """Identifies the model in the worker cache."""
    return json.dumps(
        [self.loader, self.handle, self.sequence_length, self.config], sort_keys=True, default=str
    )

  def load(self):
    """Imports the loader and calls it (on a worker)."""
    module, _, function = self.loader.partition(':')
    loader = getattr(importlib.import_module(module), function)
    return loader(self.handle, sequence_length=self.sequence_length, **self.config)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """The shape of a model loaded on a worker, for the driver (which loads no weights).

  Has the attributes of a `Predictor` that callers read before predicting.
  """

  source: str
  sequence_length: int
  heads: Dict[str, int]
  output_length: int
  input_channels: int


# ----------------------------------------------------------------------------- worker side

_cache: Dict[Hashable, Any] = {}
_cache_lock = threading.RLock()  # Re-entrant: a factory may use other cached values.


def worker_cached(key: Hashable, factory: Callable[[], T]) -> T:
  """`factory()` once per process for each `key` (the value is kept for later tasks)."""
  with _cache_lock:
    if key not in _cache:
      _cache[key] = factory()
    return _cache[key]


def _worker_name() -> str:
  try:
    return f'worker {distributed.get_worker().address}'
  except ValueError:  # Not inside a worker (tests calling task functions directly).
    return 'this process'


def worker_predictor(source: ModelSource):
  """The predictor of `source`, loaded once per worker process (ModelLoadError if it fails)."""

  def load():
    try:
      return source.load()
    except Exception as error:  # Any failure to load: report it as such, with its cause.
      raise ModelLoadError(
          f'{_worker_name()} could not load the model {source.handle!r}: '
          f'{type(error).__name__}: {error}'
      ) from error

  return worker_cached(('model', source.key), load)


def model_info(source: ModelSource) -> ModelInfo:
  """Task: loads (or reuses) the model on a worker and describes it."""
  predictor = worker_predictor(source)
  return ModelInfo(
      source=str(getattr(predictor, 'source', '') or source.handle),
      sequence_length=int(predictor.sequence_length),
      heads=dict(predictor.heads),
      output_length=int(getattr(predictor, 'output_length', 0)),
      input_channels=int(getattr(predictor, 'input_channels', 4)),
  )


# ----------------------------------------------------------------------------- driver side


def _result(future: distributed.Future, description: str) -> Any:
  """The future's result; a worker death limit is reported as WorkerDied."""
  try:
    return future.result()
  except distributed.KilledWorker as error:
    raise WorkerDied(
        f'{description} ran on {error.allowed_failures + 1} workers and each died running it '
        '(the worker process was killed, e.g. out of memory: see the worker logs); stopped. Give '
        'the workers more memory or use a smaller `batch_size`.'
    ) from error


def fetch_model_info(client: distributed.Client, source: ModelSource) -> ModelInfo:
  """Loads the model on one worker and returns its ModelInfo (ModelLoadError if it fails)."""
  future = client.submit(model_info, source, pure=False, key=f'model-info-{uuid.uuid4().hex}')
  try:
    return _result(future, f'loading the model {source.handle!r}')
  finally:
    future.release()


def worker_model(
    predictor, client: Optional[distributed.Client], model_id: Optional[str] = None
) -> Tuple[Optional[ModelSource], Any, Optional[str]]:
  """(source, predictor, model_id) of a workflow run in this process or on a cluster.

  Without `client`: (None, predictor, model_id). With it: the ModelSource the workers load, the
  model's info fetched from a worker (the driver loads no weights), and `model_id` defaulting to
  the source's key.
  """
  if client is None:
    return None, predictor, model_id
  if not isinstance(predictor, ModelSource):
    raise TypeError(
        'With client=, pass the model as enformer.distributed.ModelSource (the '
        'workers load it); a loaded predictor cannot be sent to workers.'
    )
  return predictor, fetch_model_info(client, predictor), model_id or predictor.key


class _Window:
  """Tasks in flight: fixed, or 4 per worker thread (at least 8), re-read every 5 s."""

  def __init__(self, client: distributed.Client, fixed: Optional[int] = None):
    self._client = client
    self._fixed = fixed
    self._value, self._read_at = 0, -1.0

  def __call__(self) -> int:
    if self._fixed is not None:
      return self._fixed
    if time.monotonic() - self._read_at > 5.0:
      self._value = max(8, 4 * sum(self._client.nthreads().values()))
      self._read_at = time.monotonic()
    return self._value


def _wait_for_some(client: distributed.Client, futures, description: str) -> list:
  """Blocks until at least one of `futures` is done; returns the done ones.

  Raises NoWorkers when the cluster stays without any worker for the no-worker timeout.
  """
  timeout = float(dask.config.get(NO_WORKER_TIMEOUT_KEY, NO_WORKER_TIMEOUT_S))
  empty_since: Optional[float] = None
  while True:
    try:
      done, _ = distributed.wait(futures, timeout=_POLL_S, return_when='FIRST_COMPLETED')
      return list(done)
    except TimeoutError:
      pass
    if client.nthreads():
      empty_since = None
    elif empty_since is None:
      empty_since = time.monotonic()
    elif time.monotonic() - empty_since > timeout:
      raise NoWorkers(
          f'The Dask cluster has had no worker for {timeout:.0f} s while {len(futures)} '
          f'{description}(s) waited: its workers were lost (killed, pre-empted or past their '
          'time limit). What finished is kept; start workers and rerun the same command to '
          f'continue (wait longer with the Dask config {NO_WORKER_TIMEOUT_KEY}, e.g. '
          'DASK_ENFORMER__NO_WORKER_TIMEOUT=3600).'
      )


def iter_tasks(
    client: distributed.Client,
    function: Callable[..., Any],
    tasks: Iterable[Tuple[Hashable, tuple]],
    *,
    name: str = 'task',
    window: Optional[int] = None,
    ordered: bool = False,
) -> Iterator[Tuple[Hashable, Any]]:
  """Runs `function(*args)` on the cluster for every `(key, args)` of `tasks`; yields (key, result).

  Each task's result is yielded exactly once, also when the task had to be rerun because its
  worker died.

  Args:
    client: a connected `distributed.Client`.
    function: importable function run by the workers.
    tasks: (key, arguments) pairs; keys identify tasks in the results and in errors.
    name: task kind, used in task keys (the dashboard) and in error messages.
    window: tasks submitted and results held at a time (default: 4 × the cluster's threads, at
      least 8, followed as workers join or leave); bounds the driver's memory.
    ordered: yield in the order of `tasks` (results that finish early wait, within `window`);
      else in order of completion.

  Raises:
    ModelLoadError, WorkerDied, NoWorkers, or the exception a task raised; outstanding tasks are
    cancelled (also when the caller stops iterating).
  """
  limit = _Window(client, window)
  token = uuid.uuid4().hex[:8]
  iterator = iter(tasks)
  outstanding: Dict[str, Tuple[int, Hashable, distributed.Future]] = {}
  finished: Dict[int, Tuple[Hashable, Any]] = {}  # ordered: results waiting for earlier ones.
  submitted, next_out = 0, 0

  def fill() -> None:
    nonlocal submitted
    while len(outstanding) + len(finished) < limit():
      item = next(iterator, None)
      if item is None:
        return
      key, args = item
      future = client.submit(function, *args, key=f'{name}-{key}-{token}', pure=False)
      outstanding[future.key] = (submitted, key, future)
      submitted += 1

  try:
    fill()
    while outstanding:
      done = _wait_for_some(client, [future for _, _, future in outstanding.values()], name)
      for future in sorted(done, key=lambda f: outstanding[f.key][0]):
        position, key, _ = outstanding.pop(future.key)
        result = _result(future, f'{name} {key}')
        future.release()
        if not ordered:
          yield key, result
        else:
          finished[position] = (key, result)
          while next_out in finished:
            yield finished.pop(next_out)
            next_out += 1
      fill()
  finally:
    if outstanding:
      client.cancel([future for _, _, future in outstanding.values()])


def run_tasks(
    client: distributed.Client,
    function: Callable[..., Any],
    tasks: Iterable[Tuple[Hashable, tuple]],
    on_result: Callable[[Hashable, Any], None],
    *,
    name: str = 'task',
    window: Optional[int] = None,
) -> int:
  """`iter_tasks` calling `on_result(key, result)` for each task as it finishes.

  Returns:
    The number of tasks run.
  """
  count = 0
  for key, result in iter_tasks(client, function, tasks, name=name, window=window):
    on_result(key, result)
    count += 1
  return count
