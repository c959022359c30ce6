"""Fast inference over the variables of an `Enformer` module (same numbers, less time and memory).

`compile_forward(model, sequence_length)` returns a callable `x → {head: [B, T', N]}` that reads
the SAME `tf.Variable`s as `model` (restored checkpoints, fine-tuned weights and later updates are
all seen) and evaluates each block's own `fused` method (see `enformer.enformer`: folded batch
norm fused with GELU, matmul convolutions, pair-sigmoid pooling, attention one head at a time),
which is mathematically identical to `model(x, is_training=False)`. This module only drives them:

- the stem and first conv-tower blocks (the 2–16 bp resolution stages, whose activations are
  600 MB each at full size) run over 16 kb chunks of the input with a halo, one after another;
- optionally (`mode='xla'`) the whole predictor is compiled with XLA (`jit_compile=True`); the
  default plain graph needs less memory and no compilation per batch size;
- optionally (`precision='bfloat16'`) matmuls and convolutions run in bfloat16 (batch-norm
  folding, layer-norm statistics and softmax in float32; outputs float32).

The plain path (`plain_forward`) runs `model(x, is_training=False)` under `tf.function`, following
the reference op sequence.

Shapes: B = batch, L = input length (bp), T = bins at a given resolution, C = channels,
N = tracks of a head.
"""

import functools
import re
import warnings
from typing import Callable, Dict, Optional, Sequence

import tensorflow as tf

from enformer import enformer as enformer_lib

Outputs = Dict[str, tf.Tensor]
MODES = ('graph', 'xla')
PRECISIONS = ('float32', 'bfloat16')

# The stem and the first conv-tower blocks work at 2–16 bp resolution on the largest activations
# ([B, 196,608, 768] float32 = 600 MB each at full size). They only see a few bp around each
# position, so they run on chunks of the input with a halo, one chunk at a time (a loop, not a
# batch), and peak memory holds one chunk's activations instead of the whole sequence's.
CHUNKED_BLOCKS = 3
CHUNK_LENGTH = 16_384


@functools.lru_cache(maxsize=None)
def cpu_has_bfloat16() -> Optional[bool]:
  """Whether this machine's CPU has bfloat16 matrix instructions (AVX-512 BF16 or AMX-BF16), as
  /proc/cpuinfo lists them; None where that cannot be read (not Linux)."""
  try:
    with open('/proc/cpuinfo') as f:
      flags = f.read()
  except OSError:
    return None
  return bool(re.search(r'\b(avx512_bf16|amx_bf16)\b', flags))


def bfloat16_is_emulated() -> bool:
  """Whether bfloat16 would run on a CPU without bfloat16 instructions (and no GPU/TPU), where
  TensorFlow emulates it: slower than float32 and less accurate than bfloat16 hardware."""
  return (
      cpu_has_bfloat16() is False
      and not tf.config.list_logical_devices('GPU')
      and not tf.config.list_logical_devices('TPU')
  )


def warn_if_bfloat16_is_emulated() -> None:
  """Warns when bfloat16 is emulated (`bfloat16_is_emulated`): TensorFlow then converts every
  operand, which makes bfloat16 slower than float32."""
  if bfloat16_is_emulated():
    warnings.warn(
        'precision bfloat16 on a CPU without bfloat16 instructions (AVX-512 BF16 / '
        'AMX): TensorFlow emulates them, which is slower than float32 here and less '
        'accurate than bfloat16 hardware (its batched matmuls accumulate with less '
        'precision). Use float32 on this machine; bfloat16 pays on GPUs, TPUs and CPUs '
        'with AVX-512 BF16.',
        RuntimeWarning,
        stacklevel=3,
    )


def halo_length(model: enformer_lib.Enformer, num_blocks: int) -> int:
  """Context in bp each side of a chunk that the outputs of the stem and the first `num_blocks`
  conv-tower blocks depend on, rounded up to whole output positions (2^(k+1) bp) plus one."""
  radius = model.trunk.stem.receptive_radius() - 1  # The stem's pooled pair stays in its output.
  resolution = 2
  for block in model.trunk.conv_tower.blocks[:num_blocks]:
    radius += block.receptive_radius() * resolution
    resolution *= 2
  return (-(-radius // resolution) + 1) * resolution


def _high_resolution(
    model: enformer_lib.Enformer,
    x: tf.Tensor,
    num_blocks: int,
    valid: Optional[Callable[[int, int], tf.Tensor]] = None,
) -> tf.Tensor:
  """Stem and the first `num_blocks` conv-tower blocks: [B, L, C_in] → [B, L / 2^(k+1), C_k].

  `valid(resolution, length)` gives the [1, length, 1] mask of positions inside the sequence
  when `x` is a chunk with halo (None: `x` is the whole sequence).
  """
  x = model.trunk.stem.fused(x)  # Its width-15 conv sees a chunk's zero-padded halo: no mask.
  resolution = 2
  for block in model.trunk.conv_tower.blocks[:num_blocks]:
    x = block.fused(x, valid(resolution, x.shape[1]) if valid is not None else None)
    resolution *= 2
  return x


def chunk_length_for(sequence_length: int, target: int = CHUNK_LENGTH) -> int:
  """Largest multiple of 128 bp that divides `sequence_length` and is ≤ `target` (≥ 128)."""
  bins = sequence_length // enformer_lib.BIN_SIZE
  per_chunk = max(1, target // enformer_lib.BIN_SIZE)
  while bins % per_chunk:
    per_chunk -= 1
  return per_chunk * enformer_lib.BIN_SIZE


def tower_window(
    model: enformer_lib.Enformer,
    window: tf.Tensor,
    start: tf.Tensor,
    length: int,
    num_blocks: int,
    halo: int,
) -> tf.Tensor:
  """Stem + first `num_blocks` conv-tower blocks on `window` [1, W, C_in], the input positions
  [start − halo, start − halo + W) of a sequence of `length` bp (zeros outside it); returns the
  outputs for [start, start + W − 2·halo) at 2^(k+1) bp resolution:
  [1, (W − 2·halo) / 2^(k+1), C_k].
  `start` may be a tensor; it and `halo` are multiples of 2^(k+1). A batch of B windows
  [B, W, C_in] takes B starts (a [B] tensor), one per window."""

  def valid(resolution: int, size: int) -> tf.Tensor:
    positions = (tf.reshape(start, [-1, 1]) - halo) // resolution + tf.range(size)  # [1|B, size]
    inside = (positions >= 0) & (positions < length // resolution)
    return tf.cast(inside, window.dtype)[..., tf.newaxis]

  y = _high_resolution(model, window, num_blocks, valid)
  out_resolution = 2 ** (num_blocks + 1)
  trim = halo // out_resolution
  return y[:, trim : trim + (window.shape[1] - 2 * halo) // out_resolution]


def _chunked_high_resolution(
    model: enformer_lib.Enformer, x: tf.Tensor, num_blocks: int, chunk_length: int
) -> tf.Tensor:
  """`_high_resolution` over chunks of `chunk_length` bp (+ halo), sequentially; same result.

  The loop runs over (sequence, chunk) pairs, so a batch of B sequences makes B × more
  iterations of the same size rather than larger ones (the working set stays in cache).
  """
  length = x.shape[1]
  num_chunks = length // chunk_length
  halo = halo_length(model, num_blocks)
  out_resolution = 2 ** (num_blocks + 1)
  padded = tf.pad(x, [[0, 0], [halo, halo], [0, 0]])  # Zeros, as 'SAME' padding of the stem conv.

  def one_chunk(index: tf.Tensor) -> tf.Tensor:
    sequence = index // num_chunks
    start = (index % num_chunks) * chunk_length
    chunk = tf.slice(padded, [sequence, start, 0], [1, chunk_length + 2 * halo, -1])
    return tower_window(model, chunk, start, length, num_blocks, halo)[0]

  channels = model.trunk.conv_tower.blocks[num_blocks - 1].filters
  signature = tf.TensorSpec([chunk_length // out_resolution, channels], x.dtype)
  chunks = tf.map_fn(
      one_chunk,
      tf.range(tf.shape(x)[0] * num_chunks),
      fn_output_signature=signature,
      parallel_iterations=1,
  )  # [B · n, chunk / 2^(k+1), C_k]
  return tf.reshape(chunks, [-1, length // out_resolution, channels])


def fast_tower(
    model: enformer_lib.Enformer, x: tf.Tensor, chunk_length: Optional[int] = None
) -> tf.Tensor:
  """Inference stem + conv tower: [B, L, input_channels] → [B, L / 128, C].

  Args:
    chunk_length: bp per chunk of the high-resolution stages (a multiple of 128 that divides L);
      None or ≥ L: the whole sequence at once.
  """
  blocks = model.trunk.conv_tower.blocks
  num_blocks = min(CHUNKED_BLOCKS, len(blocks))
  length = x.shape[1]
  if chunk_length and num_blocks and chunk_length < length:
    if length % chunk_length or chunk_length % enformer_lib.BIN_SIZE:
      raise ValueError(
          f'chunk_length ({chunk_length:,}) must be a multiple of '
          f'{enformer_lib.BIN_SIZE} that divides the input length ({length:,}); '
          f'e.g. {chunk_length_for(length, chunk_length):,}.'
      )
    x = _chunked_high_resolution(model, x, num_blocks, chunk_length)
  else:
    x = _high_resolution(model, x, num_blocks)
  for block in blocks[num_blocks:]:
    x = block.fused(x)
  return x


def fast_trunk(
    model: enformer_lib.Enformer, x: tf.Tensor, chunk_length: Optional[int] = None
) -> tf.Tensor:
  """Inference trunk, [B, L, input_channels] → [B, T', trunk_channels] (`is_training=False`)."""
  return model.trunk.fused_after_tower(fast_tower(model, x, chunk_length))


def fast_heads(model: enformer_lib.Enformer, embedding: tf.Tensor, heads: Sequence[str]) -> Outputs:
  """Softplus heads on the trunk embedding: {head: [B, T', N] float32}."""
  return {head: model.heads[head].fused(embedding) for head in heads}


class FastForward:
  """Compiled inference forward of an `Enformer` for one input length: x → {head: [B, T', N]}.

  Reads the model's variables at every call (no copies). The batch size may vary (XLA compiles
  once per batch size).
  """

  def __init__(
      self,
      model: enformer_lib.Enformer,
      sequence_length: int,
      heads: Optional[Sequence[str]] = None,
      *,
      mode: str = 'graph',
      chunk_length: Optional[int] = -1,
      precision: str = 'float32',
  ):
    if mode not in MODES:
      raise ValueError(f'Unknown mode {mode!r}; use one of {MODES}.')
    if precision not in PRECISIONS:
      raise ValueError(f'Unknown precision {precision!r}; use one of {PRECISIONS}.')
    model.check_sequence_length(sequence_length)
    if precision == 'bfloat16':
      warn_if_bfloat16_is_emulated()
    model.build_variables()  # The fused ops read the variables; a fresh model has none yet.
    if chunk_length == -1:
      chunk_length = chunk_length_for(sequence_length)
    self.model = model
    self.sequence_length = sequence_length
    self.chunk_length = chunk_length
    self.heads = model.select_heads(heads)
    self.mode = mode
    self.precision = precision
    self._dtype = tf.bfloat16 if precision == 'bfloat16' else tf.float32
    input_channels = model.config['input_channels']
    signature = [tf.TensorSpec([None, sequence_length, input_channels], tf.float32)]
    self._function = tf.function(
        self._forward, jit_compile=mode == 'xla', autograph=False, input_signature=signature
    )
    self._trunk_function = tf.function(
        self._trunk, jit_compile=mode == 'xla', autograph=False, input_signature=signature
    )
    self._tower_function = tf.function(
        self._tower, jit_compile=mode == 'xla', autograph=False, input_signature=signature
    )
    tower_signature = [
        tf.TensorSpec(
            [
                None,
                sequence_length // enformer_lib.BIN_SIZE,
                model.trunk.conv_tower.blocks[-1].filters,
            ],
            self._dtype,
        )
    ]
    self._after_tower_function = tf.function(
        self._after_tower,
        jit_compile=mode == 'xla',
        autograph=False,
        input_signature=tower_signature,
    )

  @property
  def dtype(self) -> tf.DType:
    """The compute dtype (float32 or bfloat16)."""
    return self._dtype

  def _tower(self, x: tf.Tensor) -> tf.Tensor:
    return fast_tower(self.model, tf.cast(x, self._dtype), self.chunk_length)

  def _after_tower(self, tower: tf.Tensor) -> Outputs:
    return fast_heads(self.model, self.model.trunk.fused_after_tower(tower), self.heads)

  def _trunk(self, x: tf.Tensor) -> tf.Tensor:
    embedding = fast_trunk(self.model, tf.cast(x, self._dtype), self.chunk_length)
    return tf.cast(embedding, tf.float32)

  def _forward(self, x: tf.Tensor) -> Outputs:
    embedding = fast_trunk(self.model, tf.cast(x, self._dtype), self.chunk_length)
    return fast_heads(self.model, embedding, self.heads)

  def _check(self, x) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if x.dtype != tf.float32:
      x = tf.cast(x, tf.float32)  # bool / uint8 / float64 one-hot.
    self.model.check_inputs(x)
    if x.shape[1] != self.sequence_length:
      raise ValueError(
          f'This fast forward was compiled for {self.sequence_length:,} bp inputs, got '
          f'{x.shape[1]:,} bp. Call enformer.inference.fast.compile_forward(model, {x.shape[1]}).'
      )
    if x.shape[0] == 0:
      raise ValueError('Empty batch: pass at least one sequence [B >= 1, L, C].')
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
    """Trunk embedding only: [B, L, input_channels] → [B, T', trunk_channels] float32."""
    return self._trunk_function(self._check(x))

  def tower(self, x) -> tf.Tensor:
    """Conv-tower output: [B, L, input_channels] → [B, L / 128, C] in the compute dtype."""
    return self._tower_function(self._check(x))

  def after_tower(self, tower: tf.Tensor) -> Outputs:
    """Transformer, crop, final block and heads on a conv-tower output [B, L / 128, C]."""
    return self._after_tower_function(tower)


def compile_forward(
    model: enformer_lib.Enformer,
    sequence_length: int = enformer_lib.SEQUENCE_LENGTH,
    heads: Optional[Sequence[str]] = None,
    *,
    mode: str = 'graph',
    chunk_length: Optional[int] = -1,
    precision: str = 'float32',
) -> FastForward:
  """Fast inference forward of `model` for inputs of `sequence_length` bp.

  Args:
    model: a built (or restored) Enformer; its variables are used directly.
    sequence_length: L, input length in bp (validated like the model does).
    heads: heads to return (default: all).
    mode: 'graph' (the fused op sequence in a plain graph: least memory, no compile) or 'xla'
      (whole forward compiled with XLA, once per batch size).
    chunk_length: bp per sequential chunk of the high-resolution stages (stem and first
      CHUNKED_BLOCKS conv-tower blocks); -1: `chunk_length_for(sequence_length)` (≤ 16,384 bp);
      None: no chunking (more memory, same numbers).
    precision: 'float32', or 'bfloat16' (matmuls and convolutions in bfloat16; batch-norm
      folding, layer-norm statistics and softmax in float32; outputs float32).

  Returns:
    `FastForward`: callable x [B, L, input_channels] → {head: [B, T', N]} equal to
    `model(x, is_training=False)` within float32 rounding (≤ 1e-5 relative) in float32.
  """
  return FastForward(
      model, sequence_length, heads, mode=mode, chunk_length=chunk_length, precision=precision
  )


def plain_forward(
    model: enformer_lib.Enformer, heads: Optional[Sequence[str]] = None
) -> Callable[[tf.Tensor], Outputs]:
  """The baseline: `model(x, is_training=False)` under `tf.function` (reference op sequence)."""
  heads = model.select_heads(heads)

  @tf.function(autograph=False)
  def forward(x: tf.Tensor) -> Outputs:
    return model(x, is_training=False, output_heads=heads)

  return forward
