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
"""

import contextlib
import json
import os
from typing import Mapping, Optional

import sonnet as snt
import tensorflow as tf


def replica_local_creator(next_creator, **kwargs) -> tf.Variable:
  """Creates replica-local variables (as Sonnet's Replicator does): ON_READ, first replica read."""
  if kwargs['synchronization'] == tf.VariableSynchronization.AUTO:
    kwargs['synchronization'] = tf.VariableSynchronization.ON_READ
    if kwargs['aggregation'] == tf.VariableAggregation.NONE:
      kwargs['aggregation'] = tf.VariableAggregation.ONLY_FIRST_REPLICA
    if kwargs['trainable'] is None:
      kwargs['trainable'] = True
  return next_creator(**kwargs)


class MultiWorkerReplicator(tf.distribute.MultiWorkerMirroredStrategy):
  """MultiWorkerMirroredStrategy whose scope creates replica-local variables (Sonnet-compatible)."""

  @contextlib.contextmanager
  def scope(self):
    with contextlib.ExitStack() as stack:
      stack.enter_context(super().scope())
      stack.enter_context(tf.variable_creator_scope(replica_local_creator))
      yield


# Strategies whose variables are replica-local (what `enformer.training.step.Adam` supports).
REPLICA_LOCAL_STRATEGIES = (snt.distribute.Replicator, snt.distribute.TpuReplicator,
                            MultiWorkerReplicator, tf.distribute.OneDeviceStrategy)


def get_strategy(tpu: Optional[str] = None,
                 environ: Optional[Mapping[str, str]] = None) -> tf.distribute.Strategy:
  """Chooses the strategy for this process (see the module docstring).

  Args:
    tpu: TPU name/address ('local' for a TPU VM); None to look at TF_CONFIG and local devices.
    environ: environment to read TF_CONFIG from (default os.environ).
  """
  environ = os.environ if environ is None else environ
  if tpu:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return snt.distribute.TpuReplicator(resolver)
  if environ.get('TF_CONFIG'):
    try:
      json.loads(environ['TF_CONFIG'])
    except json.JSONDecodeError as error:
      raise ValueError(f'TF_CONFIG is not valid JSON ({error}); unset it for single-machine '
                       'training.') from None
    return MultiWorkerReplicator()
  gpus = tf.config.list_logical_devices('GPU')
  if len(gpus) > 1:
    return snt.distribute.Replicator([d.name for d in gpus])
  cpus = tf.config.list_logical_devices('CPU')
  if not gpus and len(cpus) > 1:
    return snt.distribute.Replicator([d.name for d in cpus])
  return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True for the process that writes summaries, exports and the real checkpoint files."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type in (None, 'chief'):
    return True
  cluster = resolver.cluster_spec().as_dict()
  return task_type == 'worker' and task_id == 0 and 'chief' not in cluster


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
