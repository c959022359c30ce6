"""Enformer: DNA sequence → genomic tracks (Avsec et al. 2021), in DeepMind's checkpoint layout.

`tf.train.Checkpoint(module=Enformer())` holds exactly the variable tree of DeepMind's published
Sonnet weights, so they restore into this module, and every variable has the `.name` DeepMind's
module gives it. Unlike the reference implementation, every layer receives `is_training`
explicitly (no signature inspection at call time), which works with Sonnet 2.0.2.

Each block is a named module that owns two definitions side by side:
- `__call__(x, is_training)`: the reference op sequence (training and inference);
- `fused(x, ...)`: inference only (`is_training=False`), mathematically identical but with fewer
  passes over memory (batch norm folded into an affine fused with GELU, width-1 convolutions and
  linear layers as matmuls, pair softmax pooling as a sigmoid, attention one head at a time).
`enformer.inference.fast` compiles the fused path (chunking the high-resolution stages, optionally
XLA).
The fused methods compute in the dtype of their input (float32, or bfloat16 with batch-norm
folding, layer-norm statistics and softmax in float32).

Shapes: B = batch, L = input length in bp, T = bins at a given resolution, C = channels,
N = tracks of a head.
"""

import contextlib
import inspect
import threading
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import sonnet as snt
import tensorflow as tf

from enformer import attention_module
from enformer.dropout import Dropout
from enformer.sequence import one_hot_encode  # noqa: F401  (DeepMind's API: enformer.one_hot_encode)

SEQUENCE_LENGTH = 196_608
BIN_SIZE = 128
TARGET_LENGTH = 896
HEADS: Mapping[str, int] = {'human': 5313, 'mouse': 1643}
NUM_POOLINGS = 7  # Stem + 6 conv-tower blocks, each halving the resolution: 2**7 = BIN_SIZE.
POOLING_TYPES = ('attention', 'max')

Mask = Optional[tf.Tensor]  # [1, T, 1] 1 inside the sequence, 0 in a chunk's halo beyond its ends.


def _as(value: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """`value` in the compute dtype of the fused path (weights stay float32 variables)."""
  return value if value.dtype == dtype else tf.cast(value, dtype)


def statistics_dtype(dtype: tf.DType) -> tf.DType:
  """Dtype of normalisation statistics and softmax for a compute dtype: float32 for 16-bit
  compute, else the compute dtype itself (float64 gives a high-precision reference)."""
  return tf.float32 if dtype.size < 4 else dtype


def _matmul(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
  """[..., C] @ [C, D] → [..., D] in the dtype of `x`, as one 2-D matmul: the gradient of `w`
  is then x^T · dy, where an einsum over `...` materialises a [C, D] outer product per position
  (gigabytes at 16 kb, the cost of fine-tuning or an eager tape through an export)."""
  return tf.tensordot(x, _as(w, x.dtype), axes=1)


class Enformer(snt.Module):
  """Main model: trunk (conv stem, conv tower, transformer, crop, pointwise) + softplus heads."""

  def __init__(
      self,
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
      positional_dropout_rate: float = 0.01,
      conv_tower_divisible_by: int = 128,
  ):
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
      conv_tower_divisible_by: the conv tower's widths are rounded to multiples of this (128 in
        the published model, whose checkpoints need it; smaller values allow narrow test models,
        e.g. channels=48 with 16).
    """
    super().__init__(name=name)
    _check_config(
        channels, num_heads, pooling_type, target_length, input_channels, conv_tower_divisible_by
    )
    self._config = dict(
        channels=channels,
        num_transformer_layers=num_transformer_layers,
        num_heads=num_heads,
        pooling_type=pooling_type,
        heads=dict(heads if heads is not None else HEADS),
        target_length=target_length,
        input_channels=input_channels,
        final_pointwise=final_pointwise,
        transformer_mlp=transformer_mlp,
    )
    if conv_tower_divisible_by != 128:  # Recorded only where it differs: older configs stay valid.
      self._config['conv_tower_divisible_by'] = conv_tower_divisible_by
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
        zero_initialize=True,
    )
    with tf.name_scope('trunk'):
      self._trunk = Trunk(
          stem=Stem(channels // 2, pooling_type),
          conv_tower=ConvTower(conv_tower_filters(channels, conv_tower_divisible_by), pooling_type),
          transformer=Transformer(
              num_transformer_layers, channels, dropout_rate, attention_kwargs, mlp=transformer_mlp
          ),
          crop=TargetLengthCrop1D(target_length, name='target_input'),
          final_pointwise=(
              FinalPointwise(channels * 2, dropout_rate / 8) if final_pointwise else None
          ),
      )
    with tf.name_scope('heads'):
      self._heads = {
          head: Head(num_tracks, name=f'head_{head}')
          for head, num_tracks in self._config['heads'].items()
      }

  @property
  def config(self) -> Dict[str, object]:
    """Constructor arguments that define the architecture (enough to rebuild the model)."""
    return dict(self._config)

  @property
  def trunk(self) -> 'Trunk':
    return self._trunk

  @property
  def heads(self) -> Dict[str, 'Head']:
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
          f'e.g. {SEQUENCE_LENGTH:,} bp.'
      )
    target_length = self._config['target_length']
    num_bins = sequence_length // BIN_SIZE
    if target_length is not None and num_bins < target_length:
      raise ValueError(
          f'Input of {sequence_length:,} bp gives {num_bins} bins, fewer than target_length='
          f'{target_length}. Use at least {target_length * BIN_SIZE:,} bp, or build the model '
          f'with target_length <= {num_bins} (or None to keep all bins).'
      )
    if target_length is not None and (num_bins - target_length) % 2:
      raise ValueError(
          f'{num_bins} bins cannot be centre-cropped to target_length={target_length}: the '
          'difference must be even. Change the input length by a multiple of 256 bp or use '
          f'target_length={target_length - 1}.'
      )

  def check_inputs(self, inputs: tf.Tensor) -> None:
    """Validates the static shape of a batch [B, L, input_channels]."""
    shape = tf.TensorShape(inputs.shape)
    if shape.rank != 3:
      raise ValueError(
          f'Enformer expects inputs of rank 3 [batch, length, {self._config["input_channels"]}], '
          f'got shape {shape}. Add a batch axis, e.g. x[np.newaxis].'
      )
    if shape[-1] is not None and shape[-1] != self._config['input_channels']:
      raise ValueError(
          f'The last input dimension must be {self._config["input_channels"]} (one-hot A,C,G,T'
          f'{" + extra tracks" if self._config["input_channels"] > 4 else ""}), got {shape[-1]}. '
          'Encode with enformer.one_hot_encode, or build the model with input_channels='
          f'{shape[-1]}.'
      )
    if shape[1] is not None:
      self.check_sequence_length(shape[1])

  def __call__(
      self, inputs: tf.Tensor, is_training: bool, output_heads: Optional[Sequence[str]] = None
  ) -> Dict[str, tf.Tensor]:
    """Predicts the tracks of each head.

    Args:
      inputs: one-hot sequence [B, L, input_channels], L divisible by 128.
      is_training: True for training (batch statistics, dropout), False for inference.
      output_heads: heads to compute; default all.

    Returns:
      Dict head → [B, T', N] with T' = target_length (or L / 128 if None), non-negative.
    """
    heads = self.select_heads(output_heads)
    inputs = tf.convert_to_tensor(inputs)
    if not inputs.dtype.is_floating:
      inputs = tf.cast(inputs, tf.float32)  # bool / uint8 one-hot.
    self.check_inputs(inputs)
    trunk_embedding = self.trunk(inputs, is_training=is_training)  # [B, T', trunk_channels]
    return {head: self._heads[head](trunk_embedding, is_training=is_training) for head in heads}

  def select_heads(self, output_heads: Optional[Sequence[str]]) -> List[str]:
    """Validated list of head names (all heads for None)."""
    if output_heads is None:
      return self.head_names
    if isinstance(output_heads, str):
      output_heads = [output_heads]
    unknown = [h for h in output_heads if h not in self._heads]
    if unknown:
      raise ValueError(
          f'Unknown head(s) {unknown}; this model has heads {self.head_names}. '
          'Pass heads={...} to Enformer to add new ones.'
      )
    return list(output_heads)

  # The depth is left open so models with extra input channels trace (and save) too.
  @tf.function(
      input_signature=[tf.TensorSpec([None, SEQUENCE_LENGTH, None], tf.float32)], autograph=False
  )
  def predict_on_batch(self, x: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Inference on [B, 196,608, input_channels] sequences (graph mode, `is_training=False`)."""
    x = tf.ensure_shape(x, [None, SEQUENCE_LENGTH, self._config['input_channels']])
    return self(x, is_training=False)

  def build_variables(self) -> None:
    """Creates every variable with one cheap pass (a single 128 bp bin, crop skipped).

    Variables do not depend on the input length, so this avoids a full-length forward pass
    before restoring a checkpoint. Moving averages are untouched.
    """
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


def _check_config(
    channels: int,
    num_heads: int,
    pooling_type: str,
    target_length: Optional[int],
    input_channels: int,
    conv_tower_divisible_by: int = 128,
) -> None:
  if pooling_type not in POOLING_TYPES:
    raise ValueError(f'Unknown pooling_type {pooling_type!r}; use one of {POOLING_TYPES}.')
  if channels <= 0 or channels % 2:
    raise ValueError(
        f'channels must be a positive even number (the stem uses channels / 2), got {channels}.'
    )
  if conv_tower_divisible_by <= 0:
    raise ValueError(f'conv_tower_divisible_by must be positive, got {conv_tower_divisible_by}.')
  filters = conv_tower_filters(channels, conv_tower_divisible_by)
  if any(f <= 0 for f in filters):
    raise ValueError(
        f'channels={channels} is too small: the conv tower widths {filters} are rounded to '
        f'multiples of {conv_tower_divisible_by} from channels / 2; use channels >= '
        f'{2 * conv_tower_divisible_by} or a smaller conv_tower_divisible_by.'
    )
  if num_heads <= 0 or channels % num_heads:
    raise ValueError(
        f'channels ({channels}) must be divisible by num_heads ({num_heads}): each '
        'head gets channels / num_heads value channels.'
    )
  value_size = channels // num_heads
  if value_size % 6:
    raise ValueError(
        f'channels / num_heads = {value_size} must be divisible by 6: the relative positional '
        'features (3 basis functions, each with a sign-multiplied copy) have channels / num_heads '
        'dimensions. E.g. channels=1536 with 8 heads, 384 with 4 or 8, 768 with 8.'
    )
  if target_length is not None and target_length <= 0:
    raise ValueError(f'target_length must be positive or None, got {target_length}.')
  if input_channels <= 0:
    raise ValueError(f'input_channels must be positive, got {input_channels}.')


def conv_tower_filters(channels: int, divisible_by: int = 128) -> List[int]:
  """Widths of the 6 conv-tower blocks: C/2 → C, exponentially spaced, multiples of
  `divisible_by`."""
  return exponential_linspace_int(
      start=channels // 2, end=channels, num=6, divisible_by=divisible_by
  )


def _layer(index: int) -> property:
  """A read-only property naming `self._layers[index]`: a block's parts keep DeepMind's order in
  `_layers` (and so DeepMind's checkpoint keys) and are read by name."""
  return property(lambda self: self._layers[index])


# ---------------------------------------------------------------------------------------------
# Generic containers (DeepMind's API).


def accepts_is_training(module: object) -> bool:
  """Whether `module(x, is_training=...)` is the way to call `module` (DeepMind's helper): its
  `__call__` has a parameter named `is_training`.

  The modules of this package that take `is_training` are recognised by type; anything else (a
  user's `snt.Module`, a function) by the signature of its `__call__` as written, seen through
  Sonnet's name-scope wrapper (`_unwrapped_call`).
  """
  if isinstance(module, _TAKES_IS_TRAINING):
    return True
  try:
    return 'is_training' in inspect.signature(_unwrapped_call(module)).parameters
  except (TypeError, ValueError):
    return False


def _unwrapped_call(module: object) -> Callable[..., object]:
  """What `module(...)` calls, as written. Sonnet 2.0.2 replaces each method of an `snt.Module`
  class by a name-scope wrapper whose signature reads `(self, *args, **kwargs)` and which holds
  the original function only in its closure (no `__wrapped__`); that function is found there."""
  if not isinstance(module, snt.Module):
    return module  # A function, a partial, a callable object: inspect.signature reads it.
  call = inspect.unwrap(type(module).__call__)
  for cell in getattr(call, '__closure__', None) or ():
    try:
      contents = cell.cell_contents
    except ValueError:  # An empty cell.
      continue
    if inspect.isfunction(contents) and contents.__name__ == '__call__':
      return inspect.unwrap(contents)
  return call


LayerList = Union[Sequence[object], Callable[[], Sequence[object]]]


class Sequential(snt.Module):
  """Applies layers in order, passing `is_training` to the layers that take it.

  `layers` is a list, or (as in DeepMind's code) a callable returning the list, called inside
  this module's name scope so that the layers' variables are named under it.
  """

  def __init__(
      self, layers: Optional[LayerList] = None, name: Optional[str] = None, keep_none: bool = False
  ):
    super().__init__(name=name)
    if layers is None:
      layers = []
    elif callable(layers):
      layers = layers()  # Sonnet runs __init__ in this module's name scope.
    # `keep_none` keeps empty slots so that checkpoint indices stay fixed.
    self._layers = [layer for layer in layers if keep_none or layer is not None]

  @property
  def layers(self) -> List[object]:
    return list(self._layers)

  def __call__(self, inputs: tf.Tensor, is_training: bool, **kwargs) -> tf.Tensor:
    """Calls each layer on the previous output, as DeepMind's `Sequential` does.

    Args:
      inputs: input of the first layer.
      is_training: passed to the layers that take it (`accepts_is_training`).
      **kwargs: passed to every layer (with or without `is_training`).

    Returns:
      The output of the last layer (`inputs` if there are none).
    """
    outputs = inputs
    for layer in self._layers:
      if layer is None:
        continue
      if accepts_is_training(layer):
        outputs = layer(outputs, is_training=is_training, **kwargs)
      else:
        outputs = layer(outputs, **kwargs)
    return outputs


class Residual(snt.Module):
  """x + module(x)."""

  def __init__(self, module: snt.Module, name: str = 'residual'):
    super().__init__(name=name)
    self._module = module

  @property
  def module(self) -> snt.Module:
    return self._module

  def __call__(self, inputs: tf.Tensor, is_training: bool, *args, **kwargs) -> tf.Tensor:
    return inputs + self._module(inputs, is_training, *args, **kwargs)

  def fused(self, inputs: tf.Tensor, *args) -> tf.Tensor:
    """Inference: x + module.fused(x) (the module may fuse the addition itself)."""
    if isinstance(self._module, ConvBlock):
      return self._module.fused_residual(inputs)
    return inputs + self._module.fused(inputs, *args)


# ---------------------------------------------------------------------------------------------
# Normalisation and activation.


def gelu(x: tf.Tensor) -> tf.Tensor:
  """Sigmoid approximation of GELU used by Enformer: sigmoid(1.702 x) · x."""
  return tf.nn.sigmoid(1.702 * x) * x


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


# Sonnet's batch norm __call__ without its `smart_autograph` wrapper, which converts it with
# autograph each time a graph is traced (~0.1 s per call site, a second or more per model trace).
# `BatchNorm` always passes Python bools, for which the unconverted method computes the same ops;
# it runs inside the module's name scope (Sonnet scopes `BatchNorm.__call__` itself).
_BATCH_NORM_CALL = inspect.unwrap(snt.BaseBatchNorm.__call__)


class BatchNorm(snt.distribute.CrossReplicaBatchNorm):
  """Cross-replica batch norm with EMA statistics (decay 0.9), as in the published model.

  Statistics are reduced over all replicas under a `tf.distribute` strategy. Setting `frozen`
  keeps normalising with the moving averages (and leaves them unchanged) even when training.
  Inside `batch_norm_statistics_held()` training uses batch statistics without updating.
  """

  def __init__(self, name: str = 'cross_replica_batch_norm'):
    # The moving averages are built in the enclosing scope (DeepMind's variable names).
    super().__init__(
        create_scale=True,
        create_offset=True,
        scale_init=snt.initializers.Ones(),
        moving_mean=snt.ExponentialMovingAverage(0.9),
        moving_variance=snt.ExponentialMovingAverage(0.9),
        name=name,
    )
    self.frozen = False

  @property
  def eps(self) -> float:
    """The variance epsilon (1e-5)."""
    return self._eps

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    if inputs.dtype != tf.float32:  # Mixed precision: statistics and state stay float32.
      return tf.cast(self(tf.cast(inputs, tf.float32), is_training), inputs.dtype)
    training = bool(is_training) and not self.frozen
    if training and getattr(_BATCH_NORM_STATE, 'held', False):
      return _BATCH_NORM_CALL(self, inputs, is_training=False, test_local_stats=True)
    return _BATCH_NORM_CALL(self, inputs, is_training=training)

  def inference_affine(self, dtype: tf.DType = tf.float32) -> Tuple[tf.Tensor, tf.Tensor]:
    """Inference batch norm as x · a + b; a, b: [C] (tf.nn.batch_normalization's formula with
    the moving statistics), folded in float32 (or float64 for a float64 `dtype`)."""
    dtype = statistics_dtype(dtype)
    mean = _as(tf.reshape(self.moving_mean.value, [-1]), dtype)
    variance = _as(tf.reshape(self.moving_variance.value, [-1]), dtype)
    a = tf.math.rsqrt(variance + self.eps) * _as(tf.reshape(self.scale, [-1]), dtype)
    return a, _as(tf.reshape(self.offset, [-1]), dtype) - mean * a

  def fused_gelu(self, inputs: tf.Tensor) -> tf.Tensor:
    """gelu(batch_norm(x)) at inference in one pass: [B, T, C] → [B, T, C]."""
    a, b = self.inference_affine(inputs.dtype)
    return gelu(inputs * _as(a, inputs.dtype) + _as(b, inputs.dtype))


class LayerNorm(snt.LayerNorm):
  """`snt.LayerNorm` over the last axis with a fused inference method."""

  def __init__(
      self, scale_init: Optional[snt.initializers.Initializer] = None, name: Optional[str] = None
  ):
    super().__init__(
        axis=-1, create_scale=True, create_offset=True, scale_init=scale_init, name=name
    )

  @property
  def eps(self) -> float:
    return self._eps

  def fused(self, inputs: tf.Tensor) -> tf.Tensor:
    """[..., C] → [..., C]; statistics in float32 for 16-bit inputs, output in their dtype."""
    dtype = statistics_dtype(inputs.dtype)
    x = _as(inputs, dtype)
    mean, variance = tf.nn.moments(x, [-1], keepdims=True)
    inv = tf.math.rsqrt(variance + self.eps)
    if self.scale is not None:
      inv *= _as(self.scale, dtype)
    offset = -mean * inv
    if self.offset is not None:
      offset += _as(self.offset, dtype)
    return _as(x * inv + offset, inputs.dtype)


# ---------------------------------------------------------------------------------------------
# Convolutional blocks and pooling.


def _conv_no_bias(conv: snt.Conv1D, x: tf.Tensor) -> tf.Tensor:
  """snt.Conv1D ('SAME', stride 1) without its bias: [B, T, C_in] → [B, T, C_out]."""
  w = _as(conv.w, x.dtype)  # [width, C_in, C_out]
  if w.shape[0] == 1:
    return tf.einsum('btc,cd->btd', x, w[0])
  return tf.nn.conv1d(x, w, stride=1, padding='SAME')


def fused_conv(conv: snt.Conv1D, x: tf.Tensor) -> tf.Tensor:
  """`conv(x)` at inference (width-1 convolutions as matmuls): [B, T, C_in] → [B, T, C_out]."""
  y = _conv_no_bias(conv, x)
  return y + _as(conv.b, y.dtype) if conv.with_bias else y


class ConvBlock(Sequential):
  """Batch norm → GELU → Conv1D(filters, width): [B, T, C] → [B, T, filters]."""

  def __init__(
      self,
      filters: int,
      width: int = 1,
      w_init: Optional[snt.initializers.Initializer] = None,
      name: str = 'conv_block',
  ):
    super().__init__(
        lambda: [BatchNorm(), gelu, snt.Conv1D(filters, width, w_init=w_init)], name=name
    )

  batch_norm: BatchNorm = _layer(0)
  conv: snt.Conv1D = _layer(2)

  @property
  def width(self) -> int:
    return self.conv.kernel_shape

  def fused(self, inputs: tf.Tensor, mask: Mask = None) -> tf.Tensor:
    """Inference. `mask` [1, T, 1] zeroes the convolution's input outside the sequence (what
    'SAME' padding sees) when `inputs` is a chunk with halo."""
    h = self.batch_norm.fused_gelu(inputs)
    if mask is not None:
      h *= _as(mask, h.dtype)
    return fused_conv(self.conv, h)

  def fused_residual(self, inputs: tf.Tensor) -> tf.Tensor:
    """x + block(x) at inference, bias and residual added in one pass (width-1 blocks)."""
    y = _conv_no_bias(self.conv, self.batch_norm.fused_gelu(inputs))
    return inputs + (y + _as(self.conv.b, y.dtype)) if self.conv.with_bias else inputs + y


def conv_block(
    filters: int,
    width: int = 1,
    w_init: Optional[snt.initializers.Initializer] = None,
    name: str = 'conv_block',
) -> ConvBlock:
  """Batch norm → GELU → Conv1D(filters, width) (DeepMind's helper)."""
  return ConvBlock(filters, width, w_init=w_init, name=name)


class SoftmaxPooling1D(snt.Module):
  """Pools by a softmax-weighted sum over windows: [B, T, C] → [B, T / pool_size, C]."""

  def __init__(
      self,
      pool_size: int = 2,
      per_channel: bool = False,
      w_init_scale: float = 0.0,
      name: str = 'softmax_pooling',
  ):
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

  @property
  def pool_size(self) -> int:
    return self._pool_size

  @property
  def per_channel(self) -> bool:
    return self._per_channel

  @property
  def logit_linear(self) -> Optional[snt.Linear]:
    """The logit projection (None until the first call)."""
    return self._logit_linear

  @snt.once
  def _initialize(self, num_features: int) -> None:
    self._logit_linear = snt.Linear(
        output_size=num_features if self._per_channel else 1,
        with_bias=False,
        w_init=snt.initializers.Identity(self._w_init_scale),
    )

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

  def fused(self, inputs: tf.Tensor) -> tf.Tensor:
    """Inference. Pairs: softmax([l0, l1])[0] = sigmoid(l0 − l1), and l0 − l1 = (x0 − x1) W (no
    bias), so w0 x0 + (1 − w0) x1 = x1 + sigmoid(d W) · d with d = x0 − x1: half the logit
    FLOPs, no reshape or softmax pass."""
    _, length, channels = inputs.shape
    if self._pool_size != 2 or length % 2:
      return self(inputs)
    pairs = tf.reshape(inputs, [-1, length // 2, 2 * channels])  # [B, T/2, 2C]
    x0, x1 = pairs[..., :channels], pairs[..., channels:]
    d = x0 - x1
    return x1 + tf.nn.sigmoid(_matmul(d, self._logit_linear.w)) * d


class MaxPooling1D(snt.Module):
  """Max pooling with 'SAME' padding: [B, T, C] → [B, ceil(T / pool_size), C] (TF ops, no Keras)."""

  def __init__(self, pool_size: int = 2, name: str = 'max_pooling'):
    super().__init__(name=name)
    self._pool_size = pool_size

  @property
  def pool_size(self) -> int:
    return self._pool_size

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    return tf.nn.max_pool1d(inputs, ksize=self._pool_size, strides=self._pool_size, padding='SAME')

  def fused(self, inputs: tf.Tensor) -> tf.Tensor:
    """Inference: the maximum of each pair as one elementwise pass."""
    _, length, channels = inputs.shape
    if self._pool_size != 2 or length % 2:
      return self(inputs)
    pairs = tf.reshape(inputs, [-1, length // 2, 2 * channels])
    return tf.maximum(pairs[..., :channels], pairs[..., channels:])


def pooling_module(kind: str, pool_size: int) -> snt.Module:
  """Halving pool: softmax-attention pooling (published model) or max pooling."""
  if kind == 'attention':
    return SoftmaxPooling1D(pool_size=pool_size, per_channel=True, w_init_scale=2.0)
  if kind == 'max':
    return MaxPooling1D(pool_size=pool_size)
  raise ValueError(f'Unknown pooling_type {kind!r}; use one of {POOLING_TYPES}.')


class Stem(Sequential):
  """Conv1D(C/2, 15) → Residual(pointwise ConvBlock) → pool: [B, L, C_in] → [B, L/2, C/2]."""

  def __init__(self, filters: int, pooling_type: str, name: str = 'stem'):
    super().__init__(
        lambda: [
            snt.Conv1D(filters, 15),
            Residual(ConvBlock(filters, 1, name='pointwise_conv_block')),
            pooling_module(pooling_type, pool_size=2),
        ],
        name=name,
    )

  conv: snt.Conv1D = _layer(0)
  residual: Residual = _layer(1)
  pool: snt.Module = _layer(2)

  def receptive_radius(self) -> int:
    """Input positions each side that one output position depends on (at 1 bp)."""
    return self.conv.kernel_shape // 2 + 1  # Conv half-width + the pooled pair.

  def fused(self, inputs: tf.Tensor, mask: Mask = None) -> tf.Tensor:
    """Inference. The width-15 convolution sees zero padding beyond the ends, which a chunk's
    zero-padded halo reproduces, so it needs no mask."""
    del mask
    return self.pool.fused(self.residual.fused(fused_conv(self.conv, inputs)))


class ConvTowerBlock(Sequential):
  """ConvBlock(width 5) → Residual(pointwise ConvBlock) → pool: [B, T, C] → [B, T/2, filters]."""

  def __init__(self, filters: int, pooling_type: str, name: str):
    super().__init__(
        lambda: [
            ConvBlock(filters, 5),
            Residual(ConvBlock(filters, 1, name='pointwise_conv_block')),
            pooling_module(pooling_type, pool_size=2),
        ],
        name=name,
    )

  conv_block: ConvBlock = _layer(0)
  residual: Residual = _layer(1)
  pool: snt.Module = _layer(2)

  @property
  def filters(self) -> int:
    return self.conv_block.conv.output_channels

  def receptive_radius(self) -> int:
    """Input positions each side that one output position depends on (at the input's
    resolution)."""
    return self.conv_block.width // 2 + 1

  def fused(self, inputs: tf.Tensor, mask: Mask = None) -> tf.Tensor:
    return self.pool.fused(self.residual.fused(self.conv_block.fused(inputs, mask)))


class ConvTower(Sequential):
  """Six ConvTowerBlocks, C/2 → C channels, each halving the resolution."""

  def __init__(self, filters: Sequence[int], pooling_type: str, name: str = 'conv_tower'):
    super().__init__(
        lambda: [
            ConvTowerBlock(num_filters, pooling_type, name=f'conv_tower_block_{i}')
            for i, num_filters in enumerate(filters)
        ],
        name=name,
    )

  @property
  def blocks(self) -> List[ConvTowerBlock]:
    return list(self._layers)


# ---------------------------------------------------------------------------------------------
# Transformer.


class AttentionBlock(Sequential):
  """LayerNorm → MultiheadAttention → Dropout (the residual branch named 'mha')."""

  def __init__(
      self,
      attention_kwargs: Mapping[str, object],
      dropout_rate: float,
      index: int,
      name: str = 'mha',
  ):
    super().__init__(
        lambda: [
            LayerNorm(scale_init=snt.initializers.Ones()),
            attention_module.MultiheadAttention(**attention_kwargs, name=f'attention_{index}'),
            Dropout(dropout_rate),
        ],
        name=name,
    )

  layer_norm: LayerNorm = _layer(0)
  attention: attention_module.MultiheadAttention = _layer(1)

  def fused(self, inputs: tf.Tensor, positional_features: Optional[np.ndarray]) -> tf.Tensor:
    return self.attention.fused(self.layer_norm.fused(inputs), positional_features)


class MLPBlock(Sequential):
  """LayerNorm → Linear(2C) → Dropout → ReLU → Linear(C) → Dropout (named 'mlp')."""

  def __init__(self, channels: int, dropout_rate: float, name: str = 'mlp'):
    super().__init__(
        lambda: [
            LayerNorm(),
            snt.Linear(channels * 2),
            Dropout(dropout_rate),
            tf.nn.relu,
            snt.Linear(channels),
            Dropout(dropout_rate),
        ],
        name=name,
    )

  layer_norm: LayerNorm = _layer(0)
  linear_in: snt.Linear = _layer(1)
  linear_out: snt.Linear = _layer(4)

  def fused(self, inputs: tf.Tensor, positional_features: Optional[np.ndarray] = None) -> tf.Tensor:
    del positional_features
    h = tf.nn.relu(fused_linear(self.linear_in, self.layer_norm.fused(inputs)))
    return fused_linear(self.linear_out, h)


def fused_linear(linear: snt.Linear, x: tf.Tensor) -> tf.Tensor:
  """`linear(x)` on [..., C] without reshapes, in the dtype of `x`."""
  y = _matmul(x, linear.w)
  return y + _as(linear.b, y.dtype) if linear.with_bias else y


class TransformerBlock(Sequential):
  """Residual(attention) → Residual(MLP): [B, T, C] → [B, T, C]."""

  def __init__(
      self,
      index: int,
      channels: int,
      dropout_rate: float,
      attention_kwargs: Mapping[str, object],
      mlp: bool = True,
      name: Optional[str] = None,
  ):
    super().__init__(
        lambda: [
            Residual(AttentionBlock(attention_kwargs, dropout_rate, index)),
            Residual(MLPBlock(channels, dropout_rate)) if mlp else None,
        ],
        name=name or f'transformer_block_{index}',
    )

  @property
  def attention_block(self) -> AttentionBlock:
    return self._layers[0].module

  @property
  def mlp(self) -> Optional[MLPBlock]:
    return self._layers[1].module if len(self._layers) > 1 else None

  def fused(self, inputs: tf.Tensor, positional_features: Optional[np.ndarray]) -> tf.Tensor:
    x = inputs
    for residual in self._layers:
      x = residual.fused(x, positional_features)
    return x


class Transformer(Sequential):
  """`num_layers` TransformerBlocks."""

  def __init__(
      self,
      num_layers: int,
      channels: int,
      dropout_rate: float,
      attention_kwargs: Mapping[str, object],
      mlp: bool = True,
      name: str = 'transformer',
  ):
    super().__init__(
        lambda: [
            TransformerBlock(i, channels, dropout_rate, attention_kwargs, mlp=mlp)
            for i in range(num_layers)
        ],
        name=name,
    )

  @property
  def blocks(self) -> List[TransformerBlock]:
    return list(self._layers)

  def fused(self, inputs: tf.Tensor) -> tf.Tensor:
    """Inference: [B, T, C] → [B, T, C]; the positional basis is computed once per length."""
    if not self._layers:
      return inputs
    attention = self._layers[0].attention_block.attention
    features = attention.positional_basis(inputs.shape[1])
    x = inputs
    for block in self._layers:
      x = block.fused(x, features)
    return x


# ---------------------------------------------------------------------------------------------
# Crop, final block, heads, trunk.


class TargetLengthCrop1D(snt.Module):
  """Keeps the central `target_length` positions: [B, T, C] → [B, target_length, C]."""

  def __init__(self, target_length: Optional[int], name: str = 'target_length_crop'):
    super().__init__(name=name)
    self._target_length = target_length

  @property
  def target_length(self) -> Optional[int]:
    return self._target_length

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    if self._target_length is None:
      return inputs
    length = inputs.shape[-2]
    trim = (length - self._target_length) // 2
    if trim < 0:
      raise ValueError(
          f'Cannot crop {length} positions to target_length='
          f'{self._target_length}: the input is too short.'
      )
    return inputs[..., trim : trim + self._target_length, :]

  fused = __call__


class FinalPointwise(Sequential):
  """ConvBlock(2C, 1) → Dropout(rate) → GELU: [B, T, C] → [B, T, 2C]."""

  def __init__(self, filters: int, dropout_rate: float, name: str = 'final_pointwise'):
    super().__init__(lambda: [ConvBlock(filters, 1), Dropout(dropout_rate), gelu], name=name)

  conv_block: ConvBlock = _layer(0)

  def fused(self, inputs: tf.Tensor) -> tf.Tensor:
    return gelu(self.conv_block.fused(inputs))


class Head(Sequential):
  """Linear(N) → softplus: [B, T, 2C] → [B, T, N]."""

  def __init__(self, num_tracks: int, name: str):
    super().__init__(lambda: [snt.Linear(num_tracks), tf.nn.softplus], name=name)

  linear: snt.Linear = _layer(0)

  def fused(self, inputs: tf.Tensor) -> tf.Tensor:
    """Inference; the output is float32 for 16-bit compute, else the compute dtype."""
    return tf.nn.softplus(_as(fused_linear(self.linear, inputs), statistics_dtype(inputs.dtype)))


class Trunk(Sequential):
  """stem → conv tower → transformer → crop → final pointwise (slot 4 may be empty)."""

  def __init__(
      self,
      stem: Stem,
      conv_tower: ConvTower,
      transformer: Transformer,
      crop: TargetLengthCrop1D,
      final_pointwise: Optional[FinalPointwise],
      name: str = 'trunk',
  ):
    # The slot of the final block stays at index 4 either way (checkpoint paths use indices).
    super().__init__(
        [stem, conv_tower, transformer, crop, final_pointwise], name=name, keep_none=True
    )

  stem: Stem = _layer(0)
  conv_tower: ConvTower = _layer(1)
  transformer: Transformer = _layer(2)
  crop: TargetLengthCrop1D = _layer(3)
  final_pointwise: Optional[FinalPointwise] = _layer(4)

  def fused_after_tower(self, tower_output: tf.Tensor) -> tf.Tensor:
    """Inference from the conv-tower output [B, T, C] to the embedding [B, T', trunk_channels]."""
    x = self.crop.fused(self.transformer.fused(tower_output))
    return self.final_pointwise.fused(x) if self.final_pointwise is not None else x


_TAKES_IS_TRAINING = (
    BatchNorm,
    snt.BatchNorm,
    snt.Dropout,
    Sequential,
    Residual,
    attention_module.MultiheadAttention,
)


def exponential_linspace_int(start: int, end: int, num: int, divisible_by: int = 1) -> List[int]:
  """`num` integers from `start` to `end`, exponentially spaced, rounded to `divisible_by`."""

  def _round(x: float) -> int:
    return int(np.round(x / divisible_by) * divisible_by)

  base = np.exp(np.log(end / start) / (num - 1))
  return [_round(start * base**i) for i in range(num)]
