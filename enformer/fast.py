"""Fast inference over the variables of an `Enformer` module (same numbers, less time and memory).

`compile_forward(model, sequence_length)` returns a callable `x → {head: [B, T', N]}` that reads
the SAME `tf.Variable`s as `model` (restored checkpoints, fine-tuned weights and later updates are
all seen) but evaluates an inference-only op sequence that is mathematically identical to
`model(x, is_training=False)`:

- batch norm with moving statistics is one per-channel affine `x · a + b` (a = γ / √(σ² + ε),
  b = β − μ·a), computed once per call from the variables and fused with the following GELU;
- width-1 convolutions and all linear layers are plain matmuls (einsum), no reshapes;
- softmax pooling over pairs is `x1 + d · sigmoid(d W)` with `d = x0 − x1` — the softmax of two
  logits is the sigmoid of their difference, and the logit difference of a linear map is the map of
  the difference, so the pooling logits cost half the matmul and no reshape/softmax passes;
- attention uses einsum, one head at a time (only one head's [T, T] logits in memory);
- the relative positional basis is a constant computed once per length and cached;
- the stem and first conv-tower blocks (the 2–16 bp resolution stages, whose activations are
  600 MB each at full size) run over 16 kb chunks of the input with a halo, one after another;
- optionally (`mode='xla'`) the whole predictor is compiled with XLA (`jit_compile=True`), which
  fuses elementwise work; the default plain graph is as fast on CPU here and needs less memory
  and no compilation per batch size.

The plain path (`plain_forward`) runs `model(x, is_training=False)` under `tf.function`, following
the reference op sequence; `benchmarks/benchmark.py` times both in the same run.

Shapes: B = batch, L = input length (bp), T = bins at a given resolution, C = channels,
H = heads, K = key size, V = value size, N = tracks of a head.
"""

import functools
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import sonnet as snt
import tensorflow as tf

from enformer import attention_module
from enformer import enformer as enformer_lib

Outputs = Dict[str, tf.Tensor]


@functools.lru_cache(maxsize=16)
def positional_features(seq_len: int, feature_size: int, feature_functions: Tuple[str, ...],
                        symmetric: bool) -> np.ndarray:
  """Relative positional basis for distances -(T-1)..(T-1), cached per length: [2T - 1, R].

  Computed with the same function as `MultiheadAttention.relative_position_encodings`, so the
  values are identical to those of the plain path.
  """
  with tf.init_scope():  # Eager even when first called while tracing a tf.function.
    distances = tf.range(-seq_len + 1, seq_len, dtype=tf.float32)[tf.newaxis]
    features = attention_module.positional_features_all(
        positions=distances, feature_size=feature_size, seq_length=seq_len,
        feature_functions=feature_functions, symmetric=symmetric)
    features = features.numpy()[0]
  features.setflags(write=False)
  return features


def _gelu(x: tf.Tensor) -> tf.Tensor:
  return tf.nn.sigmoid(1.702 * x) * x


# Elementwise kernels. In 'hybrid' mode they are small XLA-compiled functions (one fused pass over
# the activations each) called from a regular graph whose matmuls and convolutions run in
# TensorFlow's oneDNN kernels; otherwise they are inlined.
def _bn_gelu(x: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  return _gelu(x * a + b)


def _add_bias_residual(x: tf.Tensor, y: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
  return x + (y + bias)


def _pool_split(pairs: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """[B, T/2, 2C] → (x1, d = x0 - x1), each [B, T/2, C]."""
  channels = pairs.shape[-1] // 2
  x0, x1 = pairs[..., :channels], pairs[..., channels:]
  return x1, x0 - x1


def _pool_combine(x1: tf.Tensor, d: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  return x1 + tf.nn.sigmoid(logits) * d


_XLA_KERNELS = {name: tf.function(function, jit_compile=True, autograph=False) for name, function in [
    ('bn_gelu', _bn_gelu), ('add_bias_residual', _add_bias_residual),
    ('pool_split', _pool_split), ('pool_combine', _pool_combine)]}
_INLINE_KERNELS = {'bn_gelu': _bn_gelu, 'add_bias_residual': _add_bias_residual,
                   'pool_split': _pool_split, 'pool_combine': _pool_combine}
_kernels = dict(_INLINE_KERNELS)  # Switched while tracing a 'hybrid' forward.


def _batch_norm_affine(bn: enformer_lib.BatchNorm) -> Tuple[tf.Tensor, tf.Tensor]:
  """Inference batch norm as x · a + b; a, b: [C]. Same formula as tf.nn.batch_normalization."""
  mean = tf.reshape(bn.moving_mean.value, [-1])
  variance = tf.reshape(bn.moving_variance.value, [-1])
  a = tf.math.rsqrt(variance + bn._eps) * tf.reshape(bn.scale, [-1])  # pylint: disable=protected-access
  b = tf.reshape(bn.offset, [-1]) - mean * a
  return a, b


def _conv_no_bias(conv: snt.Conv1D, x: tf.Tensor) -> tf.Tensor:
  """snt.Conv1D ('SAME' padding, stride 1) without its bias: [B, T, C_in] → [B, T, C_out]."""
  w = conv.w  # [width, C_in, C_out]
  if w.shape[0] == 1:
    return tf.einsum('btc,cd->btd', x, w[0])
  return tf.nn.conv1d(x, w, stride=1, padding='SAME')


def _conv(conv: snt.Conv1D, x: tf.Tensor) -> tf.Tensor:
  y = _conv_no_bias(conv, x)
  return y + conv.b if conv.with_bias else y


def _conv_block(block: enformer_lib.Sequential, x: tf.Tensor,
                mask: Optional[tf.Tensor] = None) -> tf.Tensor:
  """BatchNorm (moving stats) → GELU → Conv1D. `mask` [1, T, 1] zeroes the convolution's input
  outside the sequence (what 'SAME' padding sees) when `x` is a chunk with halo."""
  bn, _, conv = block.layers
  a, b = _batch_norm_affine(bn)
  h = _kernels['bn_gelu'](x, a, b)
  if mask is not None:
    h *= mask
  return _conv(conv, h)


def _residual_conv_block(block: enformer_lib.Sequential, x: tf.Tensor) -> tf.Tensor:
  """x + conv_block(x), with bias and residual added in one pass."""
  bn, _, conv = block.layers
  a, b = _batch_norm_affine(bn)
  y = _conv_no_bias(conv, _kernels['bn_gelu'](x, a, b))
  if not conv.with_bias:
    return x + y
  return _kernels['add_bias_residual'](x, y, conv.b)


def _pool(pool: snt.Module, x: tf.Tensor) -> tf.Tensor:
  """Halving pool over pairs: [B, T, C] → [B, T / 2, C] (T is even for valid inputs)."""
  _, length, channels = x.shape
  if isinstance(pool, enformer_lib.MaxPooling1D):
    if pool._pool_size != 2 or length % 2:  # pylint: disable=protected-access
      return pool(x)
    pairs = tf.reshape(x, [-1, length // 2, 2 * channels])
    return tf.maximum(pairs[..., :channels], pairs[..., channels:])
  if not isinstance(pool, enformer_lib.SoftmaxPooling1D) or pool._pool_size != 2 or length % 2:  # pylint: disable=protected-access
    return pool(x)
  # softmax([l0, l1])[0] = sigmoid(l0 - l1) and l0 - l1 = (x0 - x1) W (no bias):
  # w0 x0 + (1 - w0) x1 = x1 + sigmoid(d W) · d, with d = x0 - x1.
  x1, d = _kernels['pool_split'](tf.reshape(x, [-1, length // 2, 2 * channels]))
  logits = tf.einsum('btc,cd->btd', d, pool._logit_linear.w)  # pylint: disable=protected-access
  return _kernels['pool_combine'](x1, d, logits)


def _layer_norm(ln: snt.LayerNorm, x: tf.Tensor) -> tf.Tensor:
  """snt.LayerNorm over the last axis (eps 1e-5), same formula as tf.nn.batch_normalization."""
  mean, variance = tf.nn.moments(x, [-1], keepdims=True)
  inv = tf.math.rsqrt(variance + ln._eps)  # pylint: disable=protected-access
  if ln.scale is not None:
    inv *= ln.scale
  offset = -mean * inv
  if ln.offset is not None:
    offset += ln.offset
  return x * inv + offset


def _relative_shift(x: tf.Tensor) -> tf.Tensor:
  """[B, H, T, 2T - 1] indexed by distance → [B, H, T, T] indexed by key (as the reference)."""
  return attention_module.relative_shift(x)


def _attention(mha: attention_module.MultiheadAttention, x: tf.Tensor,
               pos_features: Optional[np.ndarray]) -> tf.Tensor:
  """Multi-head attention with relative positions: [B, T, C] → [B, T, D].

  Heads are evaluated one after another (a loop, not a batch) so that only one head's [T, T]
  and [T, 2T - 1] logits are alive at a time.
  """
  num_heads, key_size = mha._num_heads, mha._key_size  # pylint: disable=protected-access
  value_size = mha._value_size  # pylint: disable=protected-access
  channels = x.shape[-1]
  wq = tf.reshape(mha._q_layer.w, [channels, num_heads, key_size])  # pylint: disable=protected-access
  wk = tf.reshape(mha._k_layer.w, [channels, num_heads, key_size])  # pylint: disable=protected-access
  wv = tf.reshape(mha._v_layer.w, [channels, num_heads, value_size])  # pylint: disable=protected-access
  q = tf.einsum('btc,chk->hbtk', x, wq)  # Head-major: [H, B, T, K].
  k = tf.einsum('btc,chk->hbtk', x, wk)
  v = tf.einsum('btc,chv->hbtv', x, wv)
  if mha._scaling:  # pylint: disable=protected-access
    q *= key_size**-0.5
  if pos_features is not None:
    r_w_bias = tf.reshape(mha._r_w_bias, [num_heads, 1, 1, key_size])  # pylint: disable=protected-access
    r_r_bias = tf.reshape(mha._r_r_bias, [num_heads, 1, 1, key_size])  # pylint: disable=protected-access
    w_rk = tf.reshape(mha._r_k_layer.w, [-1, num_heads, key_size])  # pylint: disable=protected-access
    r_k = tf.einsum('pr,rhk->hpk', tf.constant(pos_features), w_rk)  # [H, 2T - 1, K]
    elems = (q + r_w_bias, q + r_r_bias, k, v, r_k)
  else:
    elems = (q, q, k, v, tf.zeros([num_heads, 0, key_size]))

  def one_head(head: Tuple[tf.Tensor, ...]) -> tf.Tensor:
    q_content, q_relative, k_h, v_h, r_k_h = head
    logits = tf.einsum('btk,bsk->bts', q_content, k_h)  # [B, T, T]
    if pos_features is not None:
      relative = tf.einsum('btk,pk->btp', q_relative, r_k_h)[:, tf.newaxis]  # [B, 1, T, 2T - 1]
      logits += _relative_shift(relative)[:, 0]
    return tf.einsum('bts,bsv->btv', tf.nn.softmax(logits), v_h)  # [B, T, V]

  signature = tf.TensorSpec([x.shape[0], x.shape[1], value_size], x.dtype)
  output = tf.map_fn(one_head, elems, fn_output_signature=signature,
                     parallel_iterations=1)  # [H, B, T, V]
  w_out = tf.reshape(mha._embedding_layer.w, [num_heads, value_size, -1])  # pylint: disable=protected-access
  return tf.einsum('hbtv,hvd->btd', output, w_out) + mha._embedding_layer.b  # pylint: disable=protected-access


def _linear(linear: snt.Linear, x: tf.Tensor) -> tf.Tensor:
  y = tf.einsum('btc,cd->btd', x, linear.w)
  return y + linear.b if linear.with_bias else y


def _transformer_block(block: enformer_lib.Sequential, x: tf.Tensor,
                       pos_features: Optional[np.ndarray]) -> tf.Tensor:
  """Residual(LayerNorm → attention) then Residual(LayerNorm → Linear → ReLU → Linear)."""
  for residual in block.layers:
    layers = [layer for layer in residual._module.layers  # pylint: disable=protected-access
              if not isinstance(layer, snt.Dropout)]
    if isinstance(layers[1], attention_module.MultiheadAttention):
      ln, mha = layers
      x = x + _attention(mha, _layer_norm(ln, x), pos_features)
    else:
      ln, linear1, relu, linear2 = layers
      x = x + _linear(linear2, relu(_linear(linear1, _layer_norm(ln, x))))
  return x


# The stem and the first conv-tower blocks work at 2–16 bp resolution on the largest activations
# ([B, 196,608, 768] float32 = 600 MB each at full size). They only see a few bp around each
# position, so they run on chunks of the input with a halo, one chunk at a time (a loop, not a
# batch), and peak memory holds one chunk's activations instead of the whole sequence's.
CHUNKED_BLOCKS = 3
CHUNK_LENGTH = 16_384


def _high_resolution(model: enformer_lib.Enformer, x: tf.Tensor, num_blocks: int,
                     valid: Optional[Callable[[int, int], tf.Tensor]] = None) -> tf.Tensor:
  """Stem and the first `num_blocks` conv-tower blocks: [B, L, C_in] → [B, L / 2^(k+1), C_k].

  `valid(resolution, length)` gives the [1, length, 1] mask of positions inside the sequence
  when `x` is a chunk with halo (None: `x` is the whole sequence).
  """
  stem, conv_tower = model.trunk.layers[:2]
  stem_conv, stem_residual, stem_pool = stem.layers
  x = _conv(stem_conv, x)  # Width 15 on the zero-padded input: the halo needs no mask.
  x = _residual_conv_block(stem_residual._module, x)  # pylint: disable=protected-access
  x = _pool(stem_pool, x)
  resolution = 2
  for block in conv_tower.layers[:num_blocks]:
    conv, residual, pool = block.layers
    x = _conv_block(conv, x, valid(resolution, x.shape[1]) if valid is not None else None)
    x = _residual_conv_block(residual._module, x)  # pylint: disable=protected-access
    x = _pool(pool, x)
    resolution *= 2
  return x


def _halo(model: enformer_lib.Enformer, num_blocks: int) -> int:
  """Context in bp each side of a chunk that its outputs depend on, rounded up to whole
  output positions (2^(k+1) bp) plus one."""
  stem, conv_tower = model.trunk.layers[:2]
  radius = stem.layers[0].w.shape[0] // 2
  resolution = 2
  for block in conv_tower.layers[:num_blocks]:
    radius += (block.layers[0].layers[2].w.shape[0] // 2) * resolution + resolution
    resolution *= 2
  return (-(-radius // resolution) + 1) * resolution


def chunk_length_for(sequence_length: int, target: int = CHUNK_LENGTH) -> int:
  """Largest multiple of 128 bp that divides `sequence_length` and is ≤ `target` (≥ 128)."""
  bins = sequence_length // enformer_lib.BIN_SIZE
  per_chunk = max(1, target // enformer_lib.BIN_SIZE)
  while bins % per_chunk:
    per_chunk -= 1
  return per_chunk * enformer_lib.BIN_SIZE


def _chunked_high_resolution(model: enformer_lib.Enformer, x: tf.Tensor, num_blocks: int,
                             chunk_length: int) -> tf.Tensor:
  """`_high_resolution` over chunks of `chunk_length` bp (+ halo), sequentially; same result.

  The loop runs over (sequence, chunk) pairs, so a batch of B sequences makes B × more
  iterations of the same size rather than larger ones (the working set stays in cache).
  """
  length = x.shape[1]
  num_chunks = length // chunk_length
  halo = _halo(model, num_blocks)
  out_resolution = 2**(num_blocks + 1)
  padded = tf.pad(x, [[0, 0], [halo, halo], [0, 0]])  # Zeros, as 'SAME' padding of the stem conv.
  window = chunk_length + 2 * halo

  def one_chunk(index: tf.Tensor) -> tf.Tensor:
    sequence = index // num_chunks
    start = (index % num_chunks) * chunk_length  # In `padded`; at start - halo in the sequence.

    def valid(resolution: int, size: int) -> tf.Tensor:
      positions = (start - halo) // resolution + tf.range(size)
      inside = (positions >= 0) & (positions < length // resolution)
      return tf.cast(inside, x.dtype)[tf.newaxis, :, tf.newaxis]

    chunk = tf.slice(padded, [sequence, start, 0], [1, window, -1])  # Static: [1, W, C_in].
    y = _high_resolution(model, chunk, num_blocks, valid)
    trim = halo // out_resolution
    return y[0, trim:trim + chunk_length // out_resolution]

  channels = model.trunk.layers[1].layers[num_blocks - 1].layers[0].layers[2].output_channels
  signature = tf.TensorSpec([chunk_length // out_resolution, channels], x.dtype)
  chunks = tf.map_fn(one_chunk, tf.range(tf.shape(x)[0] * num_chunks),
                     fn_output_signature=signature,
                     parallel_iterations=1)  # [B · n, chunk / 2^(k+1), C_k]
  return tf.reshape(chunks, [-1, length // out_resolution, channels])


def fast_trunk(model: enformer_lib.Enformer, x: tf.Tensor,
               chunk_length: Optional[int] = None) -> tf.Tensor:
  """Inference trunk, [B, L, input_channels] → [B, T', trunk_channels] (`is_training=False`).

  Args:
    chunk_length: bp per chunk of the high-resolution stages (a multiple of 128 that divides L);
      None or ≥ L: the whole sequence at once.
  """
  _, conv_tower, transformer, crop, final = model.trunk.layers
  num_blocks = min(CHUNKED_BLOCKS, len(conv_tower.layers))
  length = x.shape[1]
  if chunk_length and num_blocks and chunk_length < length:
    if length % chunk_length or chunk_length % enformer_lib.BIN_SIZE:
      raise ValueError(f'chunk_length ({chunk_length:,}) must be a multiple of '
                       f'{enformer_lib.BIN_SIZE} that divides the input length ({length:,}); '
                       f'e.g. {chunk_length_for(length, chunk_length):,}.')
    x = _chunked_high_resolution(model, x, num_blocks, chunk_length)
  else:
    x = _high_resolution(model, x, num_blocks)
  for block in conv_tower.layers[num_blocks:]:
    conv, residual, pool = block.layers
    x = _conv_block(conv, x)
    x = _residual_conv_block(residual._module, x)  # pylint: disable=protected-access
    x = _pool(pool, x)
  pos = None
  if transformer.layers:
    mha = transformer.layers[0].layers[0]._module.layers[1]  # pylint: disable=protected-access
    if mha._relative_positions:  # pylint: disable=protected-access
      pos = positional_features(
          x.shape[1], mha._num_relative_position_features,  # pylint: disable=protected-access
          mha._relative_position_functions, mha._relative_position_symmetric)  # pylint: disable=protected-access
  for block in transformer.layers:
    x = _transformer_block(block, x, pos)
  x = crop(x)
  if final is not None:
    x = _gelu(_conv_block(final.layers[0], x))
  return x


def fast_heads(model: enformer_lib.Enformer, embedding: tf.Tensor,
               heads: Sequence[str]) -> Outputs:
  """Softplus heads on the trunk embedding: {head: [B, T', N]}."""
  outputs = {}
  for head in heads:
    linear, activation = model.heads[head].layers
    outputs[head] = activation(_linear(linear, embedding))
  return outputs


MODES = ('xla', 'hybrid', 'graph')


class FastForward:
  """Compiled inference forward of an `Enformer` for one input length: x → {head: [B, T', N]}.

  Reads the model's variables at every call (no copies). The batch size may vary (XLA compiles
  once per batch size).
  """

  def __init__(self, model: enformer_lib.Enformer, sequence_length: int,
               heads: Optional[Sequence[str]] = None, *, mode: str = 'graph',
               chunk_length: Optional[int] = -1):
    if mode not in MODES:
      raise ValueError(f'Unknown mode {mode!r}; use one of {MODES}.')
    model.check_sequence_length(sequence_length)
    model.build_variables()  # The fused ops read the variables; a fresh model has none yet.
    if chunk_length == -1:
      chunk_length = chunk_length_for(sequence_length)
    self.model = model
    self.sequence_length = sequence_length
    self.chunk_length = chunk_length
    self.heads = model._select_heads(heads)  # pylint: disable=protected-access
    self.mode = mode
    input_channels = model.config['input_channels']
    signature = [tf.TensorSpec([None, sequence_length, input_channels], tf.float32)]
    self._function = tf.function(self._forward, jit_compile=mode == 'xla', autograph=False,
                                 input_signature=signature)
    self._trunk_function = tf.function(self._trunk, jit_compile=mode == 'xla', autograph=False,
                                       input_signature=signature)

  def _with_kernels(self, function: Callable[[], object]) -> object:
    """Traces `function` with the XLA elementwise kernels in 'hybrid' mode."""
    global _kernels  # pylint: disable=global-statement
    previous = _kernels
    _kernels = _XLA_KERNELS if self.mode == 'hybrid' else _INLINE_KERNELS
    try:
      return function()
    finally:
      _kernels = previous

  def _forward(self, x: tf.Tensor) -> Outputs:
    return self._with_kernels(
        lambda: fast_heads(self.model, fast_trunk(self.model, x, self.chunk_length), self.heads))

  def _trunk(self, x: tf.Tensor) -> tf.Tensor:
    return self._with_kernels(lambda: fast_trunk(self.model, x, self.chunk_length))

  def _check(self, x) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if x.dtype != tf.float32:
      x = tf.cast(x, tf.float32)  # bool / uint8 / float64 one-hot.
    self.model.check_inputs(x)
    if x.shape[1] != self.sequence_length:
      raise ValueError(
          f'This fast forward was compiled for {self.sequence_length:,} bp inputs, got '
          f'{x.shape[1]:,} bp. Call enformer.fast.compile_forward(model, {x.shape[1]}).')
    return x

  @property
  def function(self) -> Callable[[tf.Tensor], Outputs]:
    """The compiled tf.function (float32 [B, L, input_channels] tensor → dict), without input
    checks: call it from inside another tf.function (e.g. a predictor that crops its inputs)."""
    return self._function

  def __call__(self, x) -> Outputs:
    """x: one-hot [B, L, input_channels] (float, bool or uint8) → {head: [B, T', N] float32}."""
    return self._function(self._check(x))

  def trunk(self, x) -> tf.Tensor:
    """Trunk embedding only: [B, L, input_channels] → [B, T', trunk_channels]."""
    return self._trunk_function(self._check(x))


def compile_forward(model: enformer_lib.Enformer,
                    sequence_length: int = enformer_lib.SEQUENCE_LENGTH,
                    heads: Optional[Sequence[str]] = None, *, mode: str = 'graph',
                    chunk_length: Optional[int] = -1) -> FastForward:
  """Fast inference forward of `model` for inputs of `sequence_length` bp.

  Args:
    model: a built (or restored) Enformer; its variables are used directly.
    sequence_length: L, input length in bp (validated like the model does).
    heads: heads to return (default: all).
    mode: 'graph' (the fused op sequence in a plain graph, no XLA: least memory, no compile),
      'xla' (whole forward compiled with XLA, once per batch size) or 'hybrid' (TensorFlow/
      oneDNN matmuls and convolutions, XLA-fused elementwise kernels).
    chunk_length: bp per sequential chunk of the high-resolution stages (stem and first
      CHUNKED_BLOCKS conv-tower blocks); -1: `chunk_length_for(sequence_length)` (≤ 16,384 bp);
      None: no chunking (more memory, same numbers).

  Returns:
    `FastForward`: callable x [B, L, input_channels] → {head: [B, T', N]} equal to
    `model(x, is_training=False)` within float32 rounding (≤ 1e-5 relative).
  """
  return FastForward(model, sequence_length, heads, mode=mode, chunk_length=chunk_length)


def plain_forward(model: enformer_lib.Enformer,
                  heads: Optional[Sequence[str]] = None) -> Callable[[tf.Tensor], Outputs]:
  """The baseline: `model(x, is_training=False)` under `tf.function` (reference op sequence)."""
  heads = model._select_heads(heads)  # pylint: disable=protected-access

  @tf.function
  def forward(x: tf.Tensor) -> Outputs:
    return model(x, is_training=False, output_heads=heads)

  return forward
