"""The `tf.distribute` strategy, chosen from the environment.

  --tpu NAME         → TPUClusterResolver + TPUStrategy (Sonnet's `TpuReplicator`)
  TF_CONFIG is set   → MultiWorkerMirroredStrategy (`MultiWorkerReplicator`)
  several GPUs / logical CPU devices → MirroredStrategy (Sonnet's `Replicator`)
  otherwise          → the default strategy (one device)

Sonnet's optimizers use replica-local variables: every replica holds its own copy of each variable
and applies the same (all-reduced) update to it, so copies stay equal without cross-replica
variable synchronisation. `snt.distribute.Replicator` and `TpuReplicator` are the Mirrored and TPU
strategies with that variable creator; `MultiWorkerReplicator` adds the same for
MultiWorkerMirroredStrategy. Batch norm (`snt.distribute.CrossReplicaBatchNorm`) all-reduces its
statistics over every replica of every worker.

Multi-worker coordination: TensorFlow's coordination service declares a worker dead when its
heartbeat is late by more than 10 s (the default), which happens to a worker starved of CPU on a
busy machine (and aborts every collective with "heartbeat timeout"). `get_strategy` therefore
configures the service itself, before the strategy does, with generous timeouts
(`COORDINATION_TIMEOUTS`, overridable per call or through $ENFORMER_HEARTBEAT_TIMEOUT seconds).

Start-up: each worker waits up to the register timeout ($ENFORMER_REGISTER_TIMEOUT, default 600 s)
for all workers to join; past it, `get_strategy` raises `WorkerStartupError` naming the cluster
instead of waiting on. gRPC sends its connections through an HTTP proxy when $http_proxy,
$https_proxy or $grpc_proxy is set, and a proxy cannot reach the workers' ports (127.0.0.1 least of
all): the workers then wait for each other until the register timeout, silently. `get_strategy`
therefore adds the cluster's hosts to $no_grpc_proxy (keeping the entries of $no_proxy, which gRPC
would otherwise read) before TensorFlow connects.
"""

import contextlib
import json
import os
from typing import Mapping, MutableMapping, Optional, Sequence

import sonnet as snt
import tensorflow as tf
from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
from tensorflow.python.distribute import multi_worker_util
from tensorflow.python.eager import context


def replica_local_creator(next_creator, **kwargs) -> tf.Variable:
  """Creates replica-local variables (as Sonnet's Replicator does): ON_READ, first replica read."""
  if kwargs['synchronization'] == tf.VariableSynchronization.AUTO:
    kwargs['synchronization'] = tf.VariableSynchronization.ON_READ
    if kwargs['aggregation'] == tf.VariableAggregation.NONE:
      kwargs['aggregation'] = tf.VariableAggregation.ONLY_FIRST_REPLICA
    if kwargs['trainable'] is None:
      kwargs['trainable'] = True
  return next_creator(**kwargs)


# Seconds: a worker is declared dead after `heartbeat` without a heartbeat; workers wait up to
# `register` for each other at start-up and `shutdown` for each other at exit.
COORDINATION_TIMEOUTS = {'heartbeat': 300.0, 'register': 600.0, 'shutdown': 300.0}


def configure_coordination(
    cluster_spec: Mapping[str, Sequence[str]],
    heartbeat_timeout: float = COORDINATION_TIMEOUTS['heartbeat'],
    register_timeout: float = COORDINATION_TIMEOUTS['register'],
    shutdown_timeout: float = COORDINATION_TIMEOUTS['shutdown'],
) -> bool:
  """Configures TensorFlow's coordination service for a multi-worker cluster (before it starts).

  Does what MultiWorkerMirroredStrategy would do (standalone service led by the chief, or worker 0,
  coordinating the 'chief' and 'worker' jobs) but with the given timeouts in seconds. Call before
  creating the strategy and before TensorFlow's context is initialised (creating any tensor does
  that); afterwards, or when the service is already configured, nothing changes.

  Args:
    cluster_spec: job name → task addresses (TF_CONFIG's 'cluster').

  Returns:
    True when this call configured the service.
  """
  ctx = context.context()
  initialised = ctx._context_handle is not None  # pylint: disable=protected-access
  if ctx.coordination_service is not None or initialised:
    return False
  spec = tf.train.ClusterSpec(dict(cluster_spec))
  jobs = [
      coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
      for job in ('chief', 'worker')
      if job in spec.jobs
  ]
  if not jobs:
    return False
  ctx.configure_coordination_service(
      service_type='standalone',
      service_leader=multi_worker_util.coordination_leader(spec),
      coordinated_jobs=jobs,
      heartbeat_timeout_in_ms=int(heartbeat_timeout * 1000),
      cluster_register_timeout_in_ms=int(register_timeout * 1000),
      shutdown_barrier_timeout_in_ms=int(shutdown_timeout * 1000),
  )
  return True


class WorkerStartupError(ConnectionError):
  """The workers of a multi-worker cluster did not all join within the register timeout."""


PROXY_VARIABLES = (
    'grpc_proxy',
    'https_proxy',
    'http_proxy',
    'GRPC_PROXY',
    'HTTPS_PROXY',
    'HTTP_PROXY',
)


def bypass_proxy_for_cluster(
    cluster_spec: Mapping[str, Sequence[str]], environ: Optional[MutableMapping[str, str]] = None
) -> Optional[str]:
  """Adds the cluster's hosts to $no_grpc_proxy when a proxy is configured (see module docstring).

  Returns the new $no_grpc_proxy value, or None when no proxy variable is set.
  """
  environ = os.environ if environ is None else environ
  if not any(environ.get(name) for name in PROXY_VARIABLES):
    return None
  existing = (
      environ.get('no_grpc_proxy') or environ.get('no_proxy') or environ.get('NO_PROXY') or ''
  )
  entries = [e.strip() for e in existing.split(',') if e.strip()]
  for addresses in cluster_spec.values():
    for address in (addresses.values() if isinstance(addresses, Mapping) else addresses):
      host = str(address).rsplit(':', 1)[0].strip('[]')
      if host and host not in entries:
        entries.append(host)
  environ['no_grpc_proxy'] = ','.join(entries)
  return environ['no_grpc_proxy']


class MultiWorkerReplicator(tf.distribute.MultiWorkerMirroredStrategy):
  """MultiWorkerMirroredStrategy whose scope creates replica-local variables (Sonnet-compatible)."""

  @contextlib.contextmanager
  def scope(self):
    with contextlib.ExitStack() as stack:
      stack.enter_context(super().scope())
      stack.enter_context(tf.variable_creator_scope(replica_local_creator))
      yield


# Strategies whose variables are replica-local (what `enformer.training.step.Adam` supports).
REPLICA_LOCAL_STRATEGIES = (
    snt.distribute.Replicator,
    snt.distribute.TpuReplicator,
    MultiWorkerReplicator,
    tf.distribute.OneDeviceStrategy,
)


def get_strategy(
    tpu: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    heartbeat_timeout: Optional[float] = None,
    register_timeout: Optional[float] = None,
) -> tf.distribute.Strategy:
  """Chooses the strategy for this process (see the module docstring).

  Args:
    tpu: TPU name/address ('local' for a TPU VM); None to look at TF_CONFIG and local devices.
    environ: environment to read TF_CONFIG (and ENFORMER_HEARTBEAT_TIMEOUT) from (default
      os.environ).
    heartbeat_timeout: multi-worker only: seconds without a heartbeat after which a worker counts
      as failed (default $ENFORMER_HEARTBEAT_TIMEOUT or COORDINATION_TIMEOUTS['heartbeat']).
    register_timeout: multi-worker only: seconds to wait for every worker to join (default
      $ENFORMER_REGISTER_TIMEOUT or COORDINATION_TIMEOUTS['register']); then WorkerStartupError.
  """
  environ = os.environ if environ is None else environ
  if tpu:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return snt.distribute.TpuReplicator(resolver)
  if environ.get('TF_CONFIG'):
    try:
      tf_config = json.loads(environ['TF_CONFIG'])
    except json.JSONDecodeError as error:
      raise ValueError(
          f'TF_CONFIG is not valid JSON ({error}); unset it for single-machine training.'
      ) from None
    if not isinstance(tf_config, dict) or not isinstance(tf_config.get('cluster'), dict):
      raise ValueError(
          'TF_CONFIG must hold {"cluster": {"worker": [host:port, ...]}, "task": '
          '{"type": "worker", "index": i}}; unset it for single-machine training.'
      )
    heartbeat_timeout = _seconds(
        heartbeat_timeout, environ, 'ENFORMER_HEARTBEAT_TIMEOUT', 'heartbeat'
    )
    register_timeout = _seconds(register_timeout, environ, 'ENFORMER_REGISTER_TIMEOUT', 'register')
    bypass_proxy_for_cluster(tf_config['cluster'])
    configure_coordination(
        tf_config['cluster'], heartbeat_timeout=heartbeat_timeout, register_timeout=register_timeout
    )
    try:
      return MultiWorkerReplicator()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as error:
      task = tf_config.get('task', {})
      raise WorkerStartupError(
          f'Worker {task.get("type")}:{task.get("index")} of the cluster {tf_config["cluster"]} '
          f'could not reach every worker within {register_timeout:.0f} s '
          f'({type(error).__name__}: {str(error).splitlines()[0][:200]}). Start every worker '
          'with the same TF_CONFIG cluster, check that the ports are free and reachable, or raise '
          '$ENFORMER_REGISTER_TIMEOUT.'
      ) from error
  gpus = tf.config.list_logical_devices('GPU')
  if len(gpus) > 1:
    return snt.distribute.Replicator([d.name for d in gpus])
  cpus = tf.config.list_logical_devices('CPU')
  if not gpus and len(cpus) > 1:
    return snt.distribute.Replicator([d.name for d in cpus])
  return tf.distribute.get_strategy()


def _seconds(value: Optional[float], environ: Mapping[str, str], variable: str, key: str) -> float:
  """A coordination timeout: `value`, else $variable, else COORDINATION_TIMEOUTS[key]; > 0."""
  if value is None:
    text = environ.get(variable)
    try:
      value = float(text) if text else COORDINATION_TIMEOUTS[key]
    except ValueError:
      raise ValueError(f'${variable}={text!r} is not a number of seconds.') from None
  if value <= 0:
    raise ValueError(f'The {key} timeout must be > 0 seconds, got {value}.')
  return float(value)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True for the process that locks the run folder and writes summaries, exports and the real
  checkpoint files.

  The one chief test of the package: every process of a single-machine strategy; under
  MultiWorkerMirroredStrategy the `chief` task, or worker 0 of a cluster without a chief (its
  convention). The other workers share the chief's run folder.
  """
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type in (None, 'chief'):
    return True
  cluster = resolver.cluster_spec().as_dict()
  return task_type == 'worker' and int(task_id or 0) == 0 and 'chief' not in cluster


def worker_id(strategy: tf.distribute.Strategy) -> int:
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 0
  return int(resolver.task_id or 0)


def describe_strategy(strategy: tf.distribute.Strategy) -> str:
  """E.g. 'Replicator, 2 replicas' or 'default strategy, 1 replica'."""
  name = type(strategy).__name__
  if name == '_DefaultDistributionStrategy':
    name = 'default strategy'
  replicas = strategy.num_replicas_in_sync
  return f'{name}, {replicas} replica{"s" if replicas != 1 else ""}'
