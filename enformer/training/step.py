"""The training step of the paper: Poisson loss per head, Adam, warm-up, global-norm clipping.

`TrainStep` builds the distributed step for one head. Each replica computes the Poisson loss of
its share of the global batch, scaled by 1 / global_batch_size so that the sum over replicas is the
mean over the global batch; gradients are all-reduced (summed) across replicas, clipped by their
global norm and applied by Adam to every replica's copy of the variables.
"""

from typing import Dict, Optional, Sequence, Tuple

import sonnet as snt
import tensorflow as tf

from enformer import enformer as enformer_lib
from enformer.training import strategy as strategy_lib
from enformer.training import metrics
from enformer.training import recompute

POISSON_EPSILON = 1e-7  # As tf.keras.losses.poisson.


def poisson_loss(targets: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
  """Poisson negative log-likelihood (without the log(y!) constant), per example.

  Args:
    targets: observed coverage [B, T, N].
    predictions: predicted rates [B, T, N] (non-negative, e.g. softplus outputs).

  Returns:
    [B] mean over bins and tracks of predictions − targets · log(predictions + 1e-7), equal to
    `tf.reduce_mean(tf.keras.losses.poisson(targets, predictions), axis=-1)`.
  """
  targets = tf.cast(targets, predictions.dtype)
  loss = predictions - targets * tf.math.log(predictions + POISSON_EPSILON)
  return tf.reduce_mean(loss, axis=[1, 2])


def learning_rate_at(step: int, peak: float, warmup_steps: int) -> float:
  """Linear warm-up from 0 to `peak` over `warmup_steps`, then constant (the paper's schedule).

  Step s (0-based) uses peak · min(1, (s + 1) / warmup_steps).
  """
  if warmup_steps <= 0:
    return float(peak)
  return float(peak) * min(1.0, (step + 1) / warmup_steps)


class Adam(snt.optimizers.Adam):
  """Sonnet's Adam, also under `MultiWorkerReplicator`.

  Sonnet's optimizers refuse strategies they do not list, although any strategy with
  replica-local variables works for them: each replica applies the same all-reduced update to its
  own copy. This subclass accepts every strategy of `strategy.REPLICA_LOCAL_STRATEGIES` and
  otherwise is `snt.optimizers.Adam` (same update rule, same state: `step`, `m`, `v`, so
  checkpoints are interchangeable). Dense updates only (Enformer has no embeddings).
  """

  def apply(
      self, updates: Sequence[Optional[tf.Tensor]], parameters: Sequence[tf.Variable]
  ) -> None:
    """Applies one Adam update; `None` updates leave their parameter (and its moments) as is."""
    if tf.distribute.has_strategy():
      strategy = tf.distribute.get_strategy()
      if not isinstance(strategy, strategy_lib.REPLICA_LOCAL_STRATEGIES):
        raise ValueError(
            f'{type(strategy).__name__} is not supported: use enformer.training.get_strategy() '
            '(Sonnet-compatible strategies with replica-local variables).'
        )
    if len(updates) != len(parameters) or not parameters:
      raise ValueError('updates and parameters must be non-empty lists of the same length.')
    self.initialize(parameters)
    self.step.assign_add(1)
    step = tf.cast(self.step, tf.float32)
    scalars = {}  # Per dtype, the step's scalars: computed once, not once per variable.
    for update, param, m_var, v_var in zip(updates, parameters, self.m, self.v):
      if update is None:
        continue
      if isinstance(update, tf.IndexedSlices):
        update = tf.convert_to_tensor(update)
      dtype = update.dtype
      if dtype not in scalars:
        beta_1 = tf.cast(self.beta1, dtype)
        beta_2 = tf.cast(self.beta2, dtype)
        scalars[dtype] = (
            beta_1,
            beta_2,
            1.0 - beta_1,
            1.0 - beta_2,
            1.0 - tf.pow(beta_1, tf.cast(step, dtype)),
            1.0 - tf.pow(beta_2, tf.cast(step, dtype)),
            tf.cast(self.learning_rate, dtype),
            tf.cast(self.epsilon, dtype),
        )
      beta_1, beta_2, rest_1, rest_2, correction_1, correction_2, rate, epsilon = scalars[dtype]
      # Sonnet's update, operation for operation.
      m = beta_1 * m_var + rest_1 * update
      v = beta_2 * v_var + rest_2 * update * update
      m_hat = m / correction_1
      v_hat = v / correction_2
      delta = rate * m_hat / (tf.sqrt(v_hat) + epsilon)
      param.assign_sub(delta)
      m_var.assign(m)
      v_var.assign(v)

  def initialize(self, parameters: Sequence[tf.Variable]) -> None:
    """Creates the moment variables (once). Call in the strategy scope before restoring."""
    self._initialize(parameters)  # Sonnet's @snt.once initializer.


class TrainStep:
  """Distributed training and evaluation steps for an Enformer-like model.

  Args:
    model: called as model(x, is_training, output_heads=[head]) → {head: [B, T, N]}.
    optimizer: `Adam` (or any Sonnet optimizer accepting None updates).
    variables: variables to train (the rest stay frozen), in a fixed order.
    strategy: the strategy the model and optimizer were built under.
    global_batch_size: examples per step over all replicas (scales the per-replica loss).
    clip_norm: global-norm clipping threshold.
    precision: 'float32' or 'bfloat16' (compute in bf16; variables and loss stay float32).
    recompute: recompute conv-tower and transformer block activations in the backward pass
      instead of keeping them (`enformer.training.recompute`; less memory, ~1 more forward).
  """

  def __init__(
      self,
      model: snt.Module,
      optimizer: Adam,
      variables: Sequence[tf.Variable],
      strategy: tf.distribute.Strategy,
      global_batch_size: int,
      clip_norm: float,
      precision: str = 'float32',
      recompute: bool = False,
  ):
    if not variables:
      raise ValueError('No variables to train: the selection of trainable variables is empty.')
    self.model = model
    self.optimizer = optimizer
    self.variables = list(variables)
    self.strategy = strategy
    self.global_batch_size = int(global_batch_size)
    self.clip_norm = float(clip_norm)
    self.precision = precision
    self.recompute = bool(recompute)
    self._train_functions: Dict[str, tf.types.experimental.GenericFunction] = {}
    self._eval_functions: Dict[str, tf.types.experimental.GenericFunction] = {}

  def reset_functions(self) -> None:
    """Forgets traced functions (the next call retraces, taking the current global seed)."""
    self._train_functions.clear()

  def _call_model(self, sequence: tf.Tensor, head: str, is_training: bool) -> tf.Tensor:
    if self.recompute and is_training:
      return recompute.recomputed_forward(self.model, sequence, [head])[head]
    return self.model(sequence, is_training=is_training, output_heads=[head])[head]

  def _forward(self, sequence: tf.Tensor, head: str, is_training: bool) -> tf.Tensor:
    if self.precision == 'bfloat16':
      # Trainable weights are read as bf16, except batch norm's: it normalises in float32
      # (its statistics and moving averages are float32 state).
      cast = lambda v: tf.cast(v, tf.bfloat16) if v.dtype.is_floating and v.trainable else v
      modules = [m for m in self.model.submodules if not isinstance(m, enformer_lib.BatchNorm)]
      with snt.custom_variable_getter(cast, instances=modules):
        outputs = self._call_model(tf.cast(sequence, tf.bfloat16), head, is_training)
      return tf.cast(outputs, tf.float32)
    return self._call_model(sequence, head, is_training)

  def _replica_train(self, batch: Dict[str, tf.Tensor], head: str) -> Tuple[tf.Tensor, tf.Tensor]:
    with tf.GradientTape() as tape:
      predictions = self._forward(batch['sequence'], head, is_training=True)
      per_example = poisson_loss(batch['target'], predictions)  # [B_replica]
      loss = tf.reduce_sum(per_example) / self.global_batch_size
    gradients = tape.gradient(loss, self.variables)
    used = [i for i, g in enumerate(gradients) if g is not None]
    if not used:
      raise ValueError(f'No trainable variable receives a gradient from head {head!r}.')
    context = tf.distribute.get_replica_context()
    reduced = context.all_reduce(tf.distribute.ReduceOp.SUM, [gradients[i] for i in used])
    clipped, norm = tf.clip_by_global_norm(reduced, self.clip_norm)
    updates = [None] * len(self.variables)
    for i, gradient in zip(used, clipped):
      updates[i] = gradient
    self.optimizer.apply(updates, self.variables)
    return loss, norm

  def train(self, batch, head: str) -> Tuple[tf.Tensor, tf.Tensor]:
    """One step on a distributed global batch for `head` → (mean loss, gradient global norm)."""
    if head not in self._train_functions:

      def step(batch):
        loss, norm = self.strategy.run(self._replica_train, args=(batch, head))
        loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        norm = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)
        return loss, norm

      self._train_functions[head] = tf.function(step, autograph=False)
    return self._train_functions[head](batch)

  def _replica_evaluate(self, batch: Dict[str, tf.Tensor], head: str) -> tf.Tensor:
    predictions = self._forward(batch['sequence'], head, is_training=False)
    return metrics.sufficient_statistics(batch['target'], predictions)

  def evaluate(self, batch, head: str) -> tf.Tensor:
    """Summed per-track sufficient statistics [7, N] of a distributed batch (see metrics)."""
    if head not in self._eval_functions:

      def step(batch):
        stats = self.strategy.run(self._replica_evaluate, args=(batch, head))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, stats, axis=None)

      self._eval_functions[head] = tf.function(step, autograph=False)
    return self._eval_functions[head](batch)
