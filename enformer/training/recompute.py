"""Activation recomputation (gradient checkpointing) for Enformer training.

With `recompute=True` the training forward pass keeps only the inputs of each conv-tower block
and each transformer block; the backward pass recomputes a block's activations from its input
when it needs them (like `tf.recompute_grad`, one block at a time). Peak memory then holds one
block's activations instead of all of them, for about one extra forward pass of compute.

Rerunning a block's forward pass must not change what the step computes:
  * batch norm: the recomputation normalises with the same (cross-replica) batch statistics but
    does not update the moving averages a second time (`enformer.batch_norm_statistics_held`);
  * dropout: every dropout inside a recomputed block (the model's `Dropout` layers and the
    attention/positional dropout of `MultiheadAttention`, which all call `enformer.dropout`)
    draws its mask with `tf.nn.experimental.stateless_dropout` from a seed drawn once per block
    and step (`enformer.dropout.seeded_dropout`), so the recomputation reuses exactly the forward
    pass's masks;
  * the recomputation depends on the incoming gradient, so the graph cannot run it early (which
    would keep the activations alive and save nothing).

Gradients with recomputation equal those without up to float rounding (and dropout masks, which
come from a different random stream: with dropout, the two runs are equally valid but not equal).
"""

from typing import Dict, Optional, Sequence

import tensorflow as tf
from tensorflow.python.eager import record  # pylint: disable=g-direct-tensorflow-import

from enformer import dropout as dropout_lib
from enformer import enformer as enformer_lib

# Trunk stages whose blocks are recomputed (names of the Sequentials in `Enformer.trunk`).
RECOMPUTED_STAGES = ('conv_tower', 'transformer')
_MAX_SEED = 2**31 - 1


def _call_block(block, inputs: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  with dropout_lib.seeded_dropout(seed):
    return block(inputs, is_training=True)


def seeded_block_call(block, inputs: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """`block(inputs, is_training=True)` with dropout masks drawn from `seed` (int64 [2]).

  The same seed gives the same masks; this is what a recomputed block computes, forward and again.
  """
  return _call_block(block, inputs, seed)


def recompute_block(block, inputs: tf.Tensor, seed: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Training call `block(inputs, is_training=True)` whose activations are recomputed for gradients.

  Args:
    block: a module taking (inputs, is_training), e.g. a conv-tower or transformer block. Its
      variables must exist already (e.g. `Enformer.build_variables()`).
    inputs: [B, T, C] block input.
    seed: int64 [2] seed of the block's dropout masks (default: drawn from the global stream).

  Returns:
    The block output: `seeded_block_call(block, inputs, seed)`, with its gradient computed by
    recomputing that call in the backward pass.
  """
  if seed is None:
    seed = tf.random.uniform([2], maxval=_MAX_SEED, dtype=tf.int64)

  @tf.custom_gradient
  def checkpointed(x, block_seed):
    with record.stop_recording():  # Keep nothing of the forward pass for the outer tape.
      outputs = _call_block(block, x, block_seed)

    def gradient(d_outputs, variables=None):
      x_again = tf.identity(x)
      if not tf.executing_eagerly():
        # A data dependency on the incoming gradient (always 0, as in tf.recompute_grad): the
        # graph then runs the recomputation in the backward pass, not during the forward pass.
        first = tf.cast(tf.reduce_max(tf.reshape(d_outputs, [-1])[:1]), tf.bool)
        x_again += tf.cast(tf.where(first == first, 0.0, float('nan')), x.dtype)
      variables = list(variables or [])
      with tf.GradientTape() as tape:
        tape.watch(x_again)
        tape.watch(variables)
        with enformer_lib.batch_norm_statistics_held():
          recomputed = _call_block(block, x_again, block_seed)
      gradients = tape.gradient(recomputed, [x_again] + variables, output_gradients=d_outputs)
      return (gradients[0], None), gradients[1:]

    return outputs, gradient

  return checkpointed(inputs, seed)


def recomputed_forward(
    model, inputs: tf.Tensor, output_heads: Optional[Sequence[str]] = None
) -> Dict[str, tf.Tensor]:
  """`model(inputs, is_training=True, output_heads)` with every conv-tower and transformer block
  recomputed in the backward pass (see the module docstring).

  Args:
    model: an `Enformer` whose variables exist (`build_variables()`).
    inputs: one-hot [B, L, input_channels].
    output_heads: heads to compute (default all).

  Returns:
    head → [B, T', N], equal to the plain training call.
  """
  if not model.variables:
    raise ValueError('recompute needs the model variables first: call model.build_variables().')
  heads = list(output_heads) if output_heads is not None else model.head_names
  unknown = [h for h in heads if h not in model.heads]
  if unknown:
    raise ValueError(f'Unknown head(s) {unknown}; this model has heads {model.head_names}.')
  inputs = tf.convert_to_tensor(inputs)
  if not inputs.dtype.is_floating:
    inputs = tf.cast(inputs, tf.float32)
  model.check_inputs(inputs)
  outputs = inputs
  for stage in model.trunk.layers:
    if stage is None:
      continue
    if isinstance(stage, enformer_lib.TargetLengthCrop1D):
      outputs = stage(outputs)
    elif stage.name in RECOMPUTED_STAGES:
      for block in stage.layers:
        outputs = recompute_block(block, outputs)
    else:
      outputs = stage(outputs, is_training=True)
  return {head: model.heads[head](outputs, is_training=True) for head in heads}
