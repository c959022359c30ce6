"""Enformer: DNA sequence → genomic tracks (Avsec et al. 2021), in DeepMind's checkpoint layout.

`tf.train.Checkpoint(module=Enformer())` holds exactly the variable tree of DeepMind's published
Sonnet weights, so they restore into this module. Unlike the reference implementation, every layer
receives `is_training` explicitly (no signature inspection), which works with Sonnet 2.0.2.

Shapes: B = batch, L = input length in bp, T = L / 128 bins, C = channels, N = tracks of a head.
"""

import contextlib
import threading
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import sonnet as snt
import tensorflow as tf

from enformer import attention_module

SEQUENCE_LENGTH = 196_608
BIN_SIZE = 128
TARGET_LENGTH = 896
HEADS: Mapping[str, int] = {'human': 5313, 'mouse': 1643}
NUM_POOLINGS = 7  # Stem + 6 conv-tower blocks, each halving the resolution: 2**7 = BIN_SIZE.
POOLING_TYPES = ('attention', 'max')


class Enformer(snt.Module):
  """Main model: trunk (conv stem, conv tower, transformer, crop, pointwise) + softplus heads."""

  def __init__(self,
               channels: int = 1536,
               num_transformer_layers: int = 11,
               num_heads: int = 8,
               pooling_type: str = 'attention',
               name: str = 'enformer',
               *,
               heads: Optional[Mapping[str, int]] = None,
               target_length: Optional[int] = TARGET_LENGTH,
               input_channels: int = 4,
               final_pointwise: bool = True,
               transformer_mlp: bool = True,
               dropout_rate: float = 0.4,
               attention_dropout_rate: float = 0.05,
               positional_dropout_rate: float = 0.01):
    """Builds the model (variables are created on the first call).

    Args:
      channels: C, width of the transformer; the conv tower grows from C/2 to C. Must be even,
        divisible by `num_heads`, and C / num_heads divisible by 6 (3 positional basis functions,
        each with a sign-multiplied copy).
      num_transformer_layers: number of transformer blocks.
      num_heads: attention heads.
      pooling_type: 'attention' (softmax pooling, the published model) or 'max'.
      name: module name.
      heads: output heads, name → number of tracks. Default: human 5,313 and mouse 1,643.
      target_length: bins kept after the transformer (centre crop); None keeps all L / 128 bins.
      input_channels: depth of the input (4 for one-hot DNA; more for extra per-base tracks).
      final_pointwise: include the final pointwise conv block (2C channels). Without it the
        trunk outputs C channels.
      transformer_mlp: include the feed-forward block of each transformer layer.
      dropout_rate: dropout in the transformer (the final pointwise block uses rate / 8).
      attention_dropout_rate: dropout on attention weights.
      positional_dropout_rate: dropout on the relative positional features.
    """
    super().__init__(name=name)
    _check_config(channels, num_heads, pooling_type, target_length, input_channels)
    self._config = dict(
        channels=channels, num_transformer_layers=num_transformer_layers, num_heads=num_heads,
        pooling_type=pooling_type, heads=dict(heads if heads is not None else HEADS),
        target_length=target_length, input_channels=input_channels,
        final_pointwise=final_pointwise, transformer_mlp=transformer_mlp)

    attention_kwargs = dict(
        value_size=channels // num_heads,
        key_size=64,
        num_heads=num_heads,
        scaling=True,
        attention_dropout_rate=attention_dropout_rate,
        relative_positions=True,
        relative_position_symmetric=False,
        relative_position_functions=attention_module.DEFAULT_POSITIONAL_FEATURES,
        num_relative_position_features=channels // num_heads,
        positional_dropout_rate=positional_dropout_rate,
        zero_initialize=True)

    with tf.name_scope('trunk'):
      stem = Sequential([
          snt.Conv1D(channels // 2, 15),
          Residual(conv_block(channels // 2, 1, name='pointwise_conv_block')),
          pooling_module(pooling_type, pool_size=2),
      ], name='stem')

      conv_tower = Sequential([
          Sequential([
              conv_block(num_filters, 5),
              Residual(conv_block(num_filters, 1, name='pointwise_conv_block')),
              pooling_module(pooling_type, pool_size=2),
          ], name=f'conv_tower_block_{i}')
          for i, num_filters in enumerate(conv_tower_filters(channels))
      ], name='conv_tower')

      def transformer_block(i: int) -> 'Sequential':
        mha = Residual(Sequential([
            snt.LayerNorm(axis=-1, create_scale=True, create_offset=True,
                          scale_init=snt.initializers.Ones()),
            attention_module.MultiheadAttention(**attention_kwargs, name=f'attention_{i}'),
            snt.Dropout(dropout_rate),
        ], name='mha'))
        mlp = Residual(Sequential([
            snt.LayerNorm(axis=-1, create_scale=True, create_offset=True),
            snt.Linear(channels * 2),
            snt.Dropout(dropout_rate),
            tf.nn.relu,
            snt.Linear(channels),
            snt.Dropout(dropout_rate),
        ], name='mlp')) if transformer_mlp else None
        return Sequential([mha, mlp], name=f'transformer_block_{i}')

      transformer = Sequential([transformer_block(i) for i in range(num_transformer_layers)],
                               name='transformer')
      crop_final = TargetLengthCrop1D(target_length, name='target_input')
      final = Sequential([
          conv_block(channels * 2, 1),
          snt.Dropout(dropout_rate / 8),
          gelu,
      ], name='final_pointwise') if final_pointwise else None
      # The slot of the final block stays at index 4 either way (checkpoint paths use indices).
      self._trunk = Sequential([stem, conv_tower, transformer, crop_final, final], name='trunk',
                               keep_none=True)

    self._heads = {}
    with tf.name_scope('heads'):
      for head, num_tracks in self._config['heads'].items():
        with tf.name_scope(f'head_{head}'):  # Variable names then say which head they serve.
          linear = snt.Linear(num_tracks)
        self._heads[head] = Sequential([linear, tf.nn.softplus], name=f'head_{head}')

  @property
  def config(self) -> Dict[str, object]:
    """Constructor arguments that define the architecture (enough to rebuild the model)."""
    return dict(self._config)

  @property
  def trunk(self) -> 'Sequential':
    return self._trunk

  @property
  def heads(self) -> Dict[str, 'Sequential']:
    return self._heads

  @property
  def head_names(self) -> List[str]:
    return list(self._heads)

  @property
  def trunk_channels(self) -> int:
    """Channels of the trunk embedding: 2C with the final pointwise block, else C."""
    channels = self._config['channels']
    return 2 * channels if self._config['final_pointwise'] else channels

  def output_length(self, sequence_length: int) -> int:
    """Number of output bins for an input of `sequence_length` bp (after validation)."""
    self.check_sequence_length(sequence_length)
    target_length = self._config['target_length']
    return target_length if target_length is not None else sequence_length // BIN_SIZE

  def check_sequence_length(self, sequence_length: int) -> None:
    """Raises ValueError unless the model can run on inputs of `sequence_length` bp."""
    if sequence_length % BIN_SIZE != 0:
      raise ValueError(
          f'Input length {sequence_length} bp is not divisible by {BIN_SIZE} (the bin size: '
          f'{NUM_POOLINGS} poolings by 2). Resize or pad the sequence to a multiple of {BIN_SIZE}, '
          f'e.g. {SEQUENCE_LENGTH:,} bp.')
    target_length = self._config['target_length']
    num_bins = sequence_length // BIN_SIZE
    if target_length is not None and num_bins < target_length:
      raise ValueError(
          f'Input of {sequence_length:,} bp gives {num_bins} bins, fewer than target_length='
          f'{target_length}. Use at least {target_length * BIN_SIZE:,} bp, or build the model '
          f'with target_length <= {num_bins} (or None to keep all bins).')
    if target_length is not None and (num_bins - target_length) % 2:
      raise ValueError(
          f'{num_bins} bins cannot be centre-cropped to target_length={target_length}: the '
          'difference must be even. Change the input length by a multiple of 256 bp or use '
          f'target_length={target_length - 1}.')

  def check_inputs(self, inputs: tf.Tensor) -> None:
    """Validates the static shape of a batch [B, L, input_channels]."""
    shape = tf.TensorShape(inputs.shape)
    if shape.rank != 3:
      raise ValueError(
          f'Enformer expects inputs of rank 3 [batch, length, {self._config["input_channels"]}], '
          f'got shape {shape}. Add a batch axis, e.g. x[np.newaxis].')
    if shape[-1] is not None and shape[-1] != self._config['input_channels']:
      raise ValueError(
          f'The last input dimension must be {self._config["input_channels"]} (one-hot A,C,G,T'
          f'{" + extra tracks" if self._config["input_channels"] > 4 else ""}), got {shape[-1]}. '
          'Encode with enformer.one_hot_encode, or build the model with input_channels='
          f'{shape[-1]}.')
    if shape[1] is not None:
      self.check_sequence_length(shape[1])

  def __call__(self,
               inputs: tf.Tensor,
               is_training: bool,
               output_heads: Optional[Sequence[str]] = None) -> Dict[str, tf.Tensor]:
    """Predicts the tracks of each head.

    Args:
      inputs: one-hot sequence [B, L, input_channels], L divisible by 128.
      is_training: True for training (batch statistics, dropout), False for inference.
      output_heads: heads to compute; default all.

    Returns:
      Dict head → [B, T', N] with T' = target_length (or L / 128 if None), non-negative.
    """
    heads = self._select_heads(output_heads)
    inputs = tf.convert_to_tensor(inputs)
    if not inputs.dtype.is_floating:
      inputs = tf.cast(inputs, tf.float32)  # bool / uint8 one-hot.
    self.check_inputs(inputs)
    trunk_embedding = self.trunk(inputs, is_training=is_training)  # [B, T', trunk_channels]
    return {head: self._heads[head](trunk_embedding, is_training=is_training) for head in heads}

  def _select_heads(self, output_heads: Optional[Sequence[str]]) -> List[str]:
    if output_heads is None:
      return self.head_names
    if isinstance(output_heads, str):
      output_heads = [output_heads]
    unknown = [h for h in output_heads if h not in self._heads]
    if unknown:
      raise ValueError(f'Unknown head(s) {unknown}; this model has heads {self.head_names}. '
                       'Pass heads={...} to Enformer to add new ones.')
    return list(output_heads)

  # The depth is left open so models with extra input channels trace (and save) too.
  @tf.function(input_signature=[tf.TensorSpec([None, SEQUENCE_LENGTH, None], tf.float32)])
  def predict_on_batch(self, x: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Inference on [B, 196,608, input_channels] sequences (graph mode, `is_training=False`)."""
    x = tf.ensure_shape(x, [None, SEQUENCE_LENGTH, self._config['input_channels']])
    return self(x, is_training=False)

  def build_variables(self, sequence_length: Optional[int] = None) -> None:
    """Creates every variable with one cheap pass (a single 128 bp bin, crop skipped).

    Variables do not depend on the length, so this avoids a full-length forward pass before
    restoring a checkpoint. Moving averages are untouched.
    """
    del sequence_length  # Variable shapes are independent of the length.
    x = tf.zeros([1, BIN_SIZE, self._config['input_channels']], tf.float32)
    for stage in self._trunk.layers:
      if stage is None or isinstance(stage, TargetLengthCrop1D):
        continue
      x = stage(x, is_training=False)
    for head in self._heads.values():
      head(x, is_training=False)

  def set_batch_norm_frozen(self, frozen: bool) -> None:
    """Freezes (True) batch-norm statistics: training then normalises with moving averages."""
    for module in self.submodules:
      if isinstance(module, BatchNorm):
        module.frozen = frozen


def _check_config(channels: int, num_heads: int, pooling_type: str,
                  target_length: Optional[int], input_channels: int) -> None:
  if pooling_type not in POOLING_TYPES:
    raise ValueError(f'Unknown pooling_type {pooling_type!r}; use one of {POOLING_TYPES}.')
  if channels <= 0 or channels % 2:
    raise ValueError(f'channels must be a positive even number (the stem uses channels / 2), '
                     f'got {channels}.')
  if any(f <= 0 for f in conv_tower_filters(channels)):
    raise ValueError(
        f'channels={channels} is too small: the conv tower widths '
        f'{conv_tower_filters(channels)} are rounded to multiples of 128 from channels / 2; '
        'use channels >= 256 (e.g. 384, 768, 1536).')
  if num_heads <= 0 or channels % num_heads:
    raise ValueError(f'channels ({channels}) must be divisible by num_heads ({num_heads}): each '
                     'head gets channels / num_heads value channels.')
  value_size = channels // num_heads
  if value_size % 6:
    raise ValueError(
        f'channels / num_heads = {value_size} must be divisible by 6: the relative positional '
        'features (3 basis functions, each with a sign-multiplied copy) have channels / num_heads '
        'dimensions. E.g. channels=1536 with 8 heads, 384 with 4 or 8, 768 with 8.')
  if target_length is not None and target_length <= 0:
    raise ValueError(f'target_length must be positive or None, got {target_length}.')
  if input_channels <= 0:
    raise ValueError(f'input_channels must be positive, got {input_channels}.')


def conv_tower_filters(channels: int) -> List[int]:
  """Widths of the 6 conv-tower blocks: C/2 → C, exponentially spaced, multiples of 128."""
  return exponential_linspace_int(start=channels // 2, end=channels, num=6, divisible_by=128)


_BATCH_NORM_STATE = threading.local()


@contextlib.contextmanager
def batch_norm_statistics_held() -> Iterator[None]:
  """In this thread, training-mode `BatchNorm` leaves its moving averages unchanged.

  It still normalises with the (cross-replica) batch statistics, so the output equals a normal
  training call; only the moving-average update is skipped. Used when a block's forward pass is
  recomputed for its gradient (`enformer.training.recompute`), which must not update twice.
  """
  previous = getattr(_BATCH_NORM_STATE, 'held', False)
  _BATCH_NORM_STATE.held = True
  try:
    yield
  finally:
    _BATCH_NORM_STATE.held = previous


class BatchNorm(snt.distribute.CrossReplicaBatchNorm):
  """Cross-replica batch norm with EMA statistics (decay 0.9), as in the published model.

  Statistics are reduced over all replicas under a `tf.distribute` strategy. Setting `frozen`
  keeps normalising with the moving averages (and leaves them unchanged) even when training.
  Inside `batch_norm_statistics_held()` training uses batch statistics without updating.
  """

  def __init__(self, name: Optional[str] = None):
    super().__init__(create_scale=True, create_offset=True,
                     scale_init=snt.initializers.Ones(),
                     moving_mean=snt.ExponentialMovingAverage(0.9),
                     moving_variance=snt.ExponentialMovingAverage(0.9),
                     name=name)
    self.frozen = False

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    if inputs.dtype != tf.float32:  # Mixed precision: statistics and state stay float32.
      return tf.cast(self(tf.cast(inputs, tf.float32), is_training), inputs.dtype)
    training = bool(is_training) and not self.frozen
    if training and getattr(_BATCH_NORM_STATE, 'held', False):
      return super().__call__(inputs, is_training=False, test_local_stats=True)
    return super().__call__(inputs, is_training=training)


def conv_block(filters: int, width: int = 1, w_init: Optional[snt.initializers.Initializer] = None,
               name: str = 'conv_block') -> 'Sequential':
  """Batch norm → GELU → Conv1D(filters, width): [B, T, C] → [B, T, filters]."""
  return Sequential([
      BatchNorm(),
      gelu,
      snt.Conv1D(filters, width, w_init=w_init),
  ], name=name)


def pooling_module(kind: str, pool_size: int) -> snt.Module:
  """Halving pool: softmax-attention pooling (published model) or max pooling."""
  if kind == 'attention':
    return SoftmaxPooling1D(pool_size=pool_size, per_channel=True, w_init_scale=2.0)
  if kind == 'max':
    return MaxPooling1D(pool_size=pool_size)
  raise ValueError(f'Unknown pooling_type {kind!r}; use one of {POOLING_TYPES}.')


class Sequential(snt.Module):
  """Applies layers in order, passing `is_training` to the layers that use it.

  Layers that take `is_training`: batch norm, dropout, and this package's `Sequential`, `Residual`
  and `MultiheadAttention`; any other callable is applied to the activations alone.
  """

  def __init__(self, layers: Sequence[object], name: Optional[str] = None,
               keep_none: bool = False):
    super().__init__(name=name)
    # `keep_none` keeps empty slots so that checkpoint indices stay fixed.
    self._layers = [layer for layer in layers if keep_none or layer is not None]

  @property
  def layers(self) -> List[object]:
    return list(self._layers)

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    outputs = inputs
    for layer in self._layers:
      if layer is None:
        continue
      if isinstance(layer, _TAKES_IS_TRAINING):
        outputs = layer(outputs, is_training=is_training)
      else:
        outputs = layer(outputs)
    return outputs


class Residual(snt.Module):
  """x + module(x)."""

  def __init__(self, module: snt.Module, name: str = 'residual'):
    super().__init__(name=name)
    self._module = module

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    return inputs + self._module(inputs, is_training=is_training)


class SoftmaxPooling1D(snt.Module):
  """Pools by a softmax-weighted sum over windows: [B, T, C] → [B, T / pool_size, C]."""

  def __init__(self, pool_size: int = 2, per_channel: bool = False, w_init_scale: float = 0.0,
               name: str = 'softmax_pooling'):
    """Args:
      pool_size: window size (and stride).
      per_channel: one attention logit per channel (True) or one shared logit.
      w_init_scale: logits are initialised to w_init_scale × input (2.0: close to max pooling).
      name: module name.
    """
    super().__init__(name=name)
    self._pool_size = pool_size
    self._per_channel = per_channel
    self._w_init_scale = w_init_scale
    self._logit_linear = None

  @snt.once
  def _initialize(self, num_features: int) -> None:
    self._logit_linear = snt.Linear(
        output_size=num_features if self._per_channel else 1,
        with_bias=False,
        w_init=snt.initializers.Identity(self._w_init_scale))

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    _, length, num_features = inputs.shape
    self._initialize(num_features)
    inputs = tf.reshape(inputs, (-1, length // self._pool_size, self._pool_size, num_features))
    # The logits as one 2-D matmul: on a 4-D input the weight gradient of the broadcasting
    # matmul materialises [B · T / p, p, C, C] (slow, and out of memory at full size).
    logits = self._logit_linear(tf.reshape(inputs, (-1, num_features)))
    logits = tf.reshape(logits, (-1, length // self._pool_size, self._pool_size, logits.shape[-1]))
    weights = tf.nn.softmax(logits, axis=-2)  # [B, T / p, p, C]
    return tf.reduce_sum(inputs * weights, axis=-2)


class MaxPooling1D(snt.Module):
  """Max pooling with 'SAME' padding: [B, T, C] → [B, ceil(T / pool_size), C] (TF ops, no Keras)."""

  def __init__(self, pool_size: int = 2, name: str = 'max_pooling'):
    super().__init__(name=name)
    self._pool_size = pool_size

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    return tf.nn.max_pool1d(inputs, ksize=self._pool_size, strides=self._pool_size,
                            padding='SAME')


class TargetLengthCrop1D(snt.Module):
  """Keeps the central `target_length` positions: [B, T, C] → [B, target_length, C]."""

  def __init__(self, target_length: Optional[int], name: str = 'target_length_crop'):
    super().__init__(name=name)
    self._target_length = target_length

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    if self._target_length is None:
      return inputs
    length = inputs.shape[-2]
    trim = (length - self._target_length) // 2
    if trim < 0:
      raise ValueError(f'Cannot crop {length} positions to target_length='
                       f'{self._target_length}: the input is too short.')
    return inputs[..., trim:trim + self._target_length, :]


_TAKES_IS_TRAINING = (BatchNorm, snt.BatchNorm, snt.Dropout, Sequential, Residual,
                      attention_module.MultiheadAttention)


def gelu(x: tf.Tensor) -> tf.Tensor:
  """Sigmoid approximation of GELU used by Enformer: sigmoid(1.702 x) · x."""
  return tf.nn.sigmoid(1.702 * x) * x


def exponential_linspace_int(start: int, end: int, num: int, divisible_by: int = 1) -> List[int]:
  """`num` integers from `start` to `end`, exponentially spaced, rounded to `divisible_by`."""

  def _round(x: float) -> int:
    return int(np.round(x / divisible_by) * divisible_by)

  base = np.exp(np.log(end / start) / (num - 1))
  return [_round(start * base**i) for i in range(num)]
