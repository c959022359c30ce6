"""Multi-head attention with relative positional encodings (Enformer / Transformer-XL style).

The variable names and shapes follow DeepMind's published Enformer checkpoints:
`_q_layer`, `_k_layer`, `_v_layer`, `_embedding_layer`, `_r_k_layer`, `_r_w_bias`, `_r_r_bias`.

Shapes use B = batch, T = sequence length (bins), H = heads, K = key size, V = value size,
C = input channels, R = number of relative positional features.
"""

import functools
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import sonnet as snt
import tensorflow as tf

from enformer.dropout import Dropout, dropout

DEFAULT_POSITIONAL_FEATURES = (
    'positional_features_exponential',
    'positional_features_central_mask',
    'positional_features_gamma',
)


class MultiheadAttention(snt.Module):
  """Multi-head self-attention with relative positions (content + position logits)."""

  def __init__(
      self,
      value_size: int,
      key_size: int,
      num_heads: int,
      *,
      scaling: bool = True,
      attention_dropout_rate: float = 0.1,
      relative_positions: bool = False,
      relative_position_symmetric: bool = False,
      relative_position_functions: Optional[Sequence[str]] = None,
      num_relative_position_features: Optional[int] = None,
      positional_dropout_rate: float = 0.1,
      zero_initialize: bool = True,
      initializer: Optional[snt.initializers.Initializer] = None,
      name: Optional[str] = None,
  ):
    """Creates the module.

    Args:
      value_size: V, the size of each value embedding per head.
      key_size: K, the size of each key and query embedding per head.
      num_heads: H, the number of independent attention heads.
      scaling: whether to scale queries by 1/sqrt(K).
      attention_dropout_rate: dropout rate on the attention weights (training only).
      relative_positions: whether to add relative-position logits.
      relative_position_symmetric: if True, features depend on |distance| only; otherwise the
        features are doubled with a sign-multiplied copy.
      relative_position_functions: names of the basis functions (see
        `POSITIONAL_FEATURE_FUNCTIONS`).
      num_relative_position_features: R; must be divisible by the number of basis functions
        (times 2 unless symmetric). Default: the largest such number ≤ V.
      positional_dropout_rate: dropout rate on the positional features (training only).
      zero_initialize: initialise the output projection to zero (the block starts as identity).
      initializer: initialiser for the projections; default VarianceScaling(2.0).
      name: module name.
    """
    super().__init__(name=name)
    self._value_size = value_size
    self._key_size = key_size
    self._num_heads = num_heads
    self._attention_dropout_rate = attention_dropout_rate
    self._scaling = scaling
    self._relative_positions = relative_positions
    self._relative_position_symmetric = relative_position_symmetric
    self._relative_position_functions = tuple(
        relative_position_functions or DEFAULT_POSITIONAL_FEATURES
    )
    for function_name in self._relative_position_functions:
      get_positional_feature_function(function_name)  # Fails early on unknown names.
    if num_relative_position_features is None:
      divisible_by = len(self._relative_position_functions) * (
          1 if relative_position_symmetric else 2
      )
      num_relative_position_features = (value_size // divisible_by) * divisible_by
    self._num_relative_position_features = num_relative_position_features
    self._positional_dropout_rate = positional_dropout_rate

    self._initializer = initializer or snt.initializers.VarianceScaling(scale=2.0)
    key_proj_size = key_size * num_heads
    embedding_size = value_size * num_heads
    self._q_layer = snt.Linear(
        key_proj_size, with_bias=False, w_init=self._initializer, name='q_layer'
    )
    self._k_layer = snt.Linear(
        key_proj_size, with_bias=False, w_init=self._initializer, name='k_layer'
    )
    self._v_layer = snt.Linear(
        embedding_size, with_bias=False, w_init=self._initializer, name='v_layer'
    )
    w_init = snt.initializers.Zeros() if zero_initialize else self._initializer
    self._embedding_layer = snt.Linear(embedding_size, w_init=w_init, name='embedding_layer')

    if relative_positions:
      self._r_k_layer = snt.Linear(
          key_proj_size, with_bias=False, w_init=self._initializer, name='r_k_layer'
      )
      bias_shape = [1, num_heads, 1, key_size]
      self._r_w_bias = tf.Variable(self._initializer(bias_shape, tf.float32), name='r_w_bias')
      self._r_r_bias = tf.Variable(self._initializer(bias_shape, tf.float32), name='r_r_bias')

  def _multihead_output(self, linear: snt.Linear, inputs: tf.Tensor) -> tf.Tensor:
    """Projects [B, T, C] to [B, H, T, C'] with C' = output size / H."""
    output = snt.BatchApply(linear)(inputs)  # [B, T, H * C']
    num_kv_channels = output.shape[-1] // self._num_heads
    output = snt.reshape(output, output_shape=[-1, self._num_heads, num_kv_channels])
    return tf.transpose(output, [0, 2, 1, 3])  # [B, H, T, C']

  def relative_position_encodings(self, seq_len: int) -> tf.Tensor:
    """Returns the positional basis for distances -(T-1)..(T-1): [1, 2T - 1, R]."""
    distances = tf.range(-seq_len + 1, seq_len, dtype=tf.float32)[tf.newaxis]
    return positional_features_all(
        positions=distances,
        feature_size=self._num_relative_position_features,
        seq_length=seq_len,
        feature_functions=self._relative_position_functions,
        symmetric=self._relative_position_symmetric,
    )

  @property
  def num_heads(self) -> int:
    return self._num_heads

  @property
  def key_size(self) -> int:
    return self._key_size

  @property
  def value_size(self) -> int:
    return self._value_size

  @property
  def scaling(self) -> bool:
    return self._scaling

  @property
  def relative_positions(self) -> bool:
    return self._relative_positions

  @property
  def relative_position_symmetric(self) -> bool:
    return self._relative_position_symmetric

  @property
  def relative_position_functions(self) -> Tuple[str, ...]:
    return self._relative_position_functions

  @property
  def num_relative_position_features(self) -> int:
    return self._num_relative_position_features

  @property
  def q_layer(self) -> snt.Linear:
    return self._q_layer

  @property
  def k_layer(self) -> snt.Linear:
    return self._k_layer

  @property
  def v_layer(self) -> snt.Linear:
    return self._v_layer

  @property
  def embedding_layer(self) -> snt.Linear:
    return self._embedding_layer

  def positional_basis(self, seq_len: int) -> Optional[np.ndarray]:
    """The positional features of `relative_position_encodings` as a cached constant
    [2T - 1, R] (None without relative positions)."""
    if not self._relative_positions:
      return None
    return positional_features_cached(
        seq_len,
        self._num_relative_position_features,
        self._relative_position_functions,
        self._relative_position_symmetric,
    )

  def __call__(self, inputs: tf.Tensor, is_training: bool = False) -> tf.Tensor:
    """Attends over the sequence.

    Args:
      inputs: [B, T, C].
      is_training: enables attention and positional dropout.

    Returns:
      [B, T, H * V].
    """
    embedding_size = self._value_size * self._num_heads
    seq_len = inputs.shape[1]

    q = self._multihead_output(self._q_layer, inputs)  # [B, H, T, K]
    k = self._multihead_output(self._k_layer, inputs)  # [B, H, T, K]
    v = self._multihead_output(self._v_layer, inputs)  # [B, H, T, V]
    if self._scaling:
      q *= self._key_size**-0.5

    if self._relative_positions:
      positional_encodings = tf.cast(
          self.relative_position_encodings(seq_len), inputs.dtype
      )  # [1, 2T-1, R]; bf16 under mixed precision.
      if is_training:
        positional_encodings = dropout(positional_encodings, self._positional_dropout_rate)
      r_k = self._multihead_output(self._r_k_layer, positional_encodings)  # [1, H, 2T-1, K]
      content_logits = tf.matmul(q + self._r_w_bias, k, transpose_b=True)  # [B, H, T, T]
      relative_logits = tf.matmul(q + self._r_r_bias, r_k, transpose_b=True)  # [B, H, T, 2T-1]
      logits = content_logits + relative_shift(relative_logits)  # [B, H, T, T]
    else:
      logits = tf.matmul(q, k, transpose_b=True)  # [B, H, T, T]

    weights = tf.nn.softmax(logits)
    if is_training:
      weights = dropout(weights, self._attention_dropout_rate)

    output = tf.matmul(weights, v)  # [B, H, T, V]
    output = tf.transpose(output, [0, 2, 1, 3])  # [B, T, H, V]
    output = snt.reshape(output, output_shape=[embedding_size], preserve_dims=2)  # [B, T, H * V]
    return self._embedding_layer(output)

  def fused(self, inputs: tf.Tensor, positional_features: Optional[np.ndarray]) -> tf.Tensor:
    """Inference (`is_training=False`) with the heads evaluated one after another, so only one
    head's [T, T] and [T, 2T - 1] logits are alive at a time: [B, T, C] → [B, T, H * V].

    Args:
      inputs: [B, T, C] (float32, float64, or bfloat16: logits and softmax then in float32).
      positional_features: `positional_basis(T)` [2T - 1, R], or None without relative positions.
    """
    dtype = inputs.dtype
    softmax_dtype = tf.float32 if dtype.size < 4 else dtype
    num_heads, key_size, value_size = self._num_heads, self._key_size, self._value_size

    def heads_of(w: tf.Variable, size: int) -> tf.Tensor:
      return tf.cast(tf.reshape(w, [-1, num_heads, size]), dtype)

    q = tf.einsum('btc,chk->hbtk', inputs, heads_of(self._q_layer.w, key_size))  # [H, B, T, K]
    k = tf.einsum('btc,chk->hbtk', inputs, heads_of(self._k_layer.w, key_size))
    v = tf.einsum('btc,chv->hbtv', inputs, heads_of(self._v_layer.w, value_size))
    if self._scaling:
      q *= key_size**-0.5
    relative = self._relative_positions and positional_features is not None
    if relative:
      r_w_bias = tf.cast(tf.reshape(self._r_w_bias, [num_heads, 1, 1, key_size]), dtype)
      r_r_bias = tf.cast(tf.reshape(self._r_r_bias, [num_heads, 1, 1, key_size]), dtype)
      r_k = tf.einsum(
          'pr,rhk->hpk',
          tf.constant(positional_features, dtype),
          heads_of(self._r_k_layer.w, key_size),
      )  # [H, 2T - 1, K]
      elems = (q + r_w_bias, q + r_r_bias, k, v, r_k)
    else:
      elems = (q, q, k, v, tf.zeros([num_heads, 0, key_size], dtype))

    def one_head(head: Tuple[tf.Tensor, ...]) -> tf.Tensor:
      q_content, q_relative, k_h, v_h, r_k_h = head
      logits = tf.cast(tf.einsum('btk,bsk->bts', q_content, k_h), softmax_dtype)  # [B, T, T]
      if relative:
        rel = tf.einsum('btk,pk->btp', q_relative, r_k_h)[:, tf.newaxis]  # [B, 1, T, 2T - 1]
        logits += tf.cast(relative_shift(rel)[:, 0], softmax_dtype)
      weights = tf.cast(tf.nn.softmax(logits), dtype)
      return tf.einsum('bts,bsv->btv', weights, v_h)  # [B, T, V]

    signature = tf.TensorSpec([inputs.shape[0], inputs.shape[1], value_size], dtype)
    output = tf.map_fn(
        one_head, elems, fn_output_signature=signature, parallel_iterations=1
    )  # [H, B, T, V]
    w_out = tf.cast(tf.reshape(self._embedding_layer.w, [num_heads, value_size, -1]), dtype)
    return tf.einsum('hbtv,hvd->btd', output, w_out) + tf.cast(
        self._embedding_layer.b, dtype
    )  # [B, T, H * V]


class TransformerBlock(snt.Module):
  """DeepMind's stand-alone transformer layer: x + attention branch, then + feed-forward branch.

  The model itself is built from `enformer.enformer.TransformerBlock` (the published checkpoint
  layout); this one has the attribute names of DeepMind's attention module (`mha_ln`, `mha`,
  `mlp_linear1`, ...) for code written against it.
  """

  def __init__(
      self,
      channels: int,
      dropout_rate: float,
      attention_kwargs: Dict[str, object],
      name: str = 'transformer_block',
  ):
    """Args:
    channels: C, width of the input and output (the attention's H · V must equal it).
    dropout_rate: dropout after the attention and in the feed-forward branch (training only).
    attention_kwargs: arguments of `MultiheadAttention`.
    name: module name.
    """
    super().__init__(name=name)
    self.mha_ln = snt.LayerNorm(axis=-1, create_scale=True, create_offset=True)
    self.mha = MultiheadAttention(**attention_kwargs)
    self.mha_dropout = Dropout(dropout_rate)
    self.mlp_ln = snt.LayerNorm(axis=-1, create_scale=True, create_offset=True)
    self.mlp_linear1 = snt.Linear(channels * 2)
    self.mlp_dropout1 = Dropout(dropout_rate)
    self.mlp_linear2 = snt.Linear(channels)
    self.mlp_dropout2 = Dropout(dropout_rate)

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """[B, T, C] → [B, T, C]."""
    attended = self.mha(self.mha_ln(inputs), is_training=is_training)  # [B, T, H * V]
    x = inputs + self.mha_dropout(attended, is_training=is_training)  # [B, T, C]
    h = self.mlp_dropout1(self.mlp_linear1(self.mlp_ln(x)), is_training=is_training)  # [B, T, 2C]
    h = self.mlp_dropout2(self.mlp_linear2(tf.nn.relu(h)), is_training=is_training)  # [B, T, C]
    return x + h


def relative_shift(x: tf.Tensor) -> tf.Tensor:
  """Turns logits indexed by relative distance into logits indexed by key position.

  Args:
    x: [B, H, T, 2T - 1], column j of row i holds distance j - (T - 1).

  Returns:
    [B, H, T, T], column j of row i holds distance j - i.
  """
  to_pad = tf.zeros_like(x[..., :1])
  x = tf.concat([to_pad, x], -1)  # [B, H, T, 2T]
  _, num_heads, t1, t2 = x.shape
  x = tf.reshape(x, [-1, num_heads, t2, t1])
  x = tf.slice(x, [0, 0, 1, 0], [-1, -1, -1, -1])
  x = tf.reshape(x, [-1, num_heads, t1, t2 - 1])
  return tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, (t2 + 1) // 2])


# Positional basis functions. Each maps |positions| [..., P] to [..., P, feature_size].


def _prepend_dims(x: tf.Tensor, num_dims: int) -> tf.Tensor:
  return tf.reshape(x, shape=[1] * num_dims + x.shape)


def positional_features_exponential(
    positions: tf.Tensor,
    feature_size: int,
    seq_length: Optional[int] = None,
    bin_size: Optional[int] = None,
    min_half_life: float = 3.0,
) -> tf.Tensor:
  """Exponential decays with half-lives spaced log-uniformly from 2**min_half_life to T."""
  del bin_size  # Unused, as in DeepMind's signature.
  if seq_length is None:
    seq_length = tf.reduce_max(tf.abs(positions)) + 1
  seq_length = tf.cast(seq_length, dtype=tf.float32)
  max_range = tf.math.log(seq_length) / tf.math.log(2.0)
  half_life = tf.pow(2.0, tf.linspace(min_half_life, max_range, feature_size))
  half_life = _prepend_dims(half_life, positions.shape.rank)
  positions = tf.abs(positions)
  return tf.exp(-tf.math.log(2.0) / half_life * positions[..., tf.newaxis])


def positional_features_central_mask(
    positions: tf.Tensor,
    feature_size: int,
    seq_length: Optional[int] = None,
    bin_size: Optional[int] = None,
) -> tf.Tensor:
  """Indicators |position| < 2**i - 1 for i = 1..feature_size."""
  del seq_length, bin_size
  center_widths = tf.pow(2.0, tf.range(1, feature_size + 1, dtype=tf.float32)) - 1
  center_widths = _prepend_dims(center_widths, positions.shape.rank)
  return tf.cast(center_widths > tf.abs(positions)[..., tf.newaxis], tf.float32)


def gamma_pdf(x: tf.Tensor, concentration: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
  """Gamma probability density, computed in log space."""
  log_unnormalized_prob = tf.math.xlogy(concentration - 1.0, x) - rate * x
  log_normalization = tf.math.lgamma(concentration) - concentration * tf.math.log(rate)
  return tf.exp(log_unnormalized_prob - log_normalization)


def positional_features_gamma(
    positions: tf.Tensor,
    feature_size: int,
    seq_length: Optional[int] = None,
    bin_size: Optional[int] = None,
    stddev: Optional[float] = None,
    start_mean: Optional[float] = None,
) -> tf.Tensor:
  """Gamma densities with means spaced linearly up to T, each scaled to a maximum of 1."""
  del bin_size
  if seq_length is None:
    seq_length = tf.reduce_max(tf.abs(positions)) + 1
  if stddev is None:
    stddev = seq_length / (2 * feature_size)
  if start_mean is None:
    start_mean = seq_length / feature_size
  mean = tf.linspace(start_mean, seq_length, num=feature_size)
  mean = _prepend_dims(mean, positions.shape.rank)
  concentration = (mean / stddev) ** 2
  rate = mean / stddev**2
  probabilities = gamma_pdf(
      tf.abs(tf.cast(positions, dtype=tf.float32))[..., tf.newaxis], concentration, rate
  )
  probabilities += 1e-8  # Numerical stability.
  return probabilities / tf.reduce_max(probabilities, axis=1, keepdims=True)


# The three bases below are not used by the published model; DeepMind's module offers them (its
# docstring's example attends with 'positional_features_sin_cos').


def positional_features_cosine(
    positions: tf.Tensor,
    feature_size: int,
    seq_length: Optional[int] = None,
    bin_size: Optional[int] = None,
) -> tf.Tensor:
  """cos(2π · position / period_i), periods 1.25 · 2**i for i = 0..feature_size − 1.

  Args:
    positions: [..., P] distances.
    feature_size: F, number of periods.
    seq_length: unused (DeepMind's signature).
    bin_size: unused (DeepMind's signature).

  Returns:
    [..., P, F].
  """
  del seq_length, bin_size
  periods = 1.25 * tf.pow(2.0, tf.range(feature_size, dtype=tf.float32))  # [F]
  periods = _prepend_dims(periods, positions.shape.rank)  # [1, ..., 1, F]
  phase = tf.cast(positions, tf.float32)[..., tf.newaxis] / periods  # [..., P, F]
  return tf.math.cos(2 * np.pi * phase)


def positional_features_linear_masks(
    positions: tf.Tensor,
    feature_size: int,
    seq_length: Optional[int] = None,
    bin_size: Optional[int] = None,
) -> tf.Tensor:
  """Indicators |position| == i for i = 0..feature_size − 1 (one feature per distance).

  Args:
    positions: [..., P] distances.
    feature_size: F, number of distances 0..F − 1.
    seq_length: unused (DeepMind's signature).
    bin_size: unused (DeepMind's signature).

  Returns:
    [..., P, F] float32 of 0 and 1.
  """
  del seq_length, bin_size
  distances = _prepend_dims(
      tf.range(feature_size, dtype=tf.float32), positions.shape.rank
  )  # [1, ..., 1, F]
  magnitude = tf.abs(tf.cast(positions, tf.float32))[..., tf.newaxis]  # [..., P, 1]
  return tf.cast(tf.equal(distances, magnitude), tf.float32)


def positional_features_sin_cos(
    positions: tf.Tensor,
    feature_size: int,
    seq_length: Optional[int] = None,
    bin_size: Optional[int] = None,
    max_time: float = 10_000.0,
) -> tf.Tensor:
  """The Transformer's sinusoids: F / 2 sines, then F / 2 cosines, of position / max_time**(i / F)
  for even i = 0, 2, .., F − 2.

  Args:
    positions: [..., P] distances.
    feature_size: F, even.
    seq_length: unused (DeepMind's signature).
    bin_size: unused (DeepMind's signature).
    max_time: the timescales grow geometrically from 1 towards max_time.

  Returns:
    [..., P, F].
  """
  del seq_length, bin_size
  if feature_size % 2:
    raise ValueError(
        f'positional_features_sin_cos needs an even feature_size (sines and '
        f'cosines in pairs), got {feature_size}.'
    )
  exponents = tf.range(0, feature_size, 2, dtype=tf.float32) / feature_size  # [F / 2]
  timescales = _prepend_dims(max_time**exponents, positions.shape.rank)  # [1, ..., 1, F / 2]
  angles = tf.cast(positions, tf.float32)[..., tf.newaxis] / timescales  # [..., P, F / 2]
  return tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)


POSITIONAL_FEATURE_FUNCTIONS: Dict[str, Callable[..., tf.Tensor]] = {
    'positional_features_exponential': positional_features_exponential,
    'positional_features_central_mask': positional_features_central_mask,
    'positional_features_gamma': positional_features_gamma,
    'positional_features_cosine': positional_features_cosine,
    'positional_features_linear_masks': positional_features_linear_masks,
    'positional_features_sin_cos': positional_features_sin_cos,
}


def get_positional_feature_function(name: str) -> Callable[..., tf.Tensor]:
  if name not in POSITIONAL_FEATURE_FUNCTIONS:
    raise ValueError(
        f'Unknown positional feature function {name!r}; '
        f'choose from {sorted(POSITIONAL_FEATURE_FUNCTIONS)}.'
    )
  return POSITIONAL_FEATURE_FUNCTIONS[name]


def positional_features_all(
    positions: tf.Tensor,
    feature_size: int,
    seq_length: Optional[int] = None,
    bin_size: Optional[int] = None,
    feature_functions: Optional[Sequence[str]] = None,
    symmetric: bool = False,
) -> tf.Tensor:
  """Concatenates the basis functions evaluated at `positions` (DeepMind's argument order).

  Args:
    positions: [..., P] signed distances.
    feature_size: R, total number of features.
    seq_length: T, the longest distance the features should cover.
    bin_size: unused (kept for DeepMind's signature).
    feature_functions: basis function names; default `DEFAULT_POSITIONAL_FEATURES`.
    symmetric: if False, the second half of the features is multiplied by sign(position).

  Returns:
    [..., P, R].
  """
  feature_functions = list(feature_functions or DEFAULT_POSITIONAL_FEATURES)
  num_components = len(feature_functions) * (1 if symmetric else 2)
  if feature_size % num_components != 0:
    raise ValueError(
        f'feature_size ({feature_size}) must be divisible by {num_components}: '
        f'{len(feature_functions)} basis functions'
        f'{"" if symmetric else " × 2 for the sign-multiplied copy"}.'
    )
  num_basis_per_class = feature_size // num_components
  abs_positions = tf.abs(positions)
  embeddings = tf.concat(
      [
          get_positional_feature_function(f)(
              abs_positions, num_basis_per_class, seq_length, bin_size
          )
          for f in feature_functions
      ],
      axis=-1,
  )
  if not symmetric:
    embeddings = tf.concat([embeddings, tf.sign(positions)[..., tf.newaxis] * embeddings], axis=-1)
  return embeddings


@functools.lru_cache(maxsize=16)
def positional_features_cached(
    seq_len: int, feature_size: int, feature_functions: Tuple[str, ...], symmetric: bool
) -> np.ndarray:
  """Relative positional basis for distances -(T-1)..(T-1) as a read-only array [2T - 1, R],
  computed once per argument set with the same function as
  `MultiheadAttention.relative_position_encodings` (identical values)."""
  with tf.init_scope():  # Eager even when first called while tracing a tf.function.
    distances = tf.range(-seq_len + 1, seq_len, dtype=tf.float32)[tf.newaxis]
    features = positional_features_all(
        positions=distances,
        feature_size=feature_size,
        seq_length=seq_len,
        feature_functions=feature_functions,
        symmetric=symmetric,
    ).numpy()[0]
  features.setflags(write=False)
  return features
