"""Exact predictions for many haplotypes of one reference window, computed once per distinct part.

A haplotype here is a set of single-base substitutions inside a reference window (a person's
phased SNVs). Across a population, two things repeat, and each is computed once:

- whole haplotypes: haplotypes identical within the window (after dropping substitutions that
  equal the reference base) are predicted once (`HaplotypeStats.reused` counts the others);
- local haplotypes: everything before the transformer is local. An output position of a stem or
  conv-tower stage depends only on the input within its `Stage.extent` (a conv-tower bin: 259 bp
  each side at the published size), so it differs from the reference only where a variant lies
  there, and it is the same for every haplotype that carries the same variants there. The stages
  run one after another over the reference window once; then, stage by stage, each distinct
  (output position, variants in its input) is computed once from the previous stage's outputs
  (the haplotype's own where its variants reach, else the reference's), at exactly the
  multiply-adds of that position (`Stage.macs`; nothing is recomputed for context). Each
  haplotype's tower output is the reference tower with its reached bins replaced, and the
  transformer, final block and heads run once per distinct haplotype (in batches).

A window whose haplotypes carry a single SNV computes that SNV's cone of positions through the
stages; a population's common variants are computed once for all their carriers. The results
equal full passes of the haplotype sequences within float32 rounding.

Shapes: L = input length (bp), C_in = input channels, T = L / 128 tower bins, C = tower channels,
n_s, C_s = output positions and channels of stage s, U = stage outputs computed, K = haplotypes,
D = distinct haplotypes, T' = output bins, N = tracks.
"""

import dataclasses
import functools
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import sonnet as snt
import tensorflow as tf

from enformer import enformer as enformer_lib
from enformer.benchmark.flops import analytic_gflop
from enformer.inference import fast

Outputs = Dict[str, np.ndarray]
# One haplotype of a window: (position in the window (0-based bp), base index in 'ACGT') pairs.
Haplotype = Sequence[Tuple[int, int]]
BASES = 'ACGT'
BIN = enformer_lib.BIN_SIZE


@dataclasses.dataclass
class HaplotypeStats:
  """Work done for haplotypes, in counts and in full forward passes (sums over calls).

  Attributes:
    haplotypes: haplotypes predicted.
    distinct: distinct haplotypes among them (per window), the reference included when asked for.
    reference_like: distinct haplotypes equal to the reference (predicted by the reference pass).
    windows: reference windows (one full pass each).
    tower_positions: stem and conv-tower outputs computed (all stages; one per distinct output
      position and variants in its input).
    tower_work: their multiply-adds in units of one full stem + conv tower (`Stage.macs` ÷
      `tower_macs`).
    transformer_passes: transformer + heads runs on spliced towers (one per distinct haplotype
      that differs from the reference).
    full_passes: haplotypes that took a full forward pass (e.g. indels, in the workflow).
    tower_share: the stem and conv tower's share of a full pass's multiply-adds.
    sequence_length: L.
  """

  haplotypes: int = 0
  distinct: int = 0
  reference_like: int = 0
  windows: int = 0
  tower_positions: int = 0
  tower_work: float = 0.0
  transformer_passes: int = 0
  full_passes: int = 0
  tower_share: float = 0.0
  sequence_length: int = 0

  @property
  def reused(self) -> int:
    """Haplotypes predicted by the computation of an identical haplotype."""
    return self.haplotypes - self.distinct

  @property
  def full_pass_equivalents(self) -> float:
    """All this work in units of one full forward pass: reference passes and full passes count 1,
    computed stage outputs count tower_share × `tower_work` (their multiply-adds ÷ a full
    tower's),
    transformer + heads runs count 1 − tower_share."""
    return (
        self.windows
        + self.full_passes
        + self.tower_share * self.tower_work
        + (1 - self.tower_share) * self.transformer_passes
    )

  @property
  def speedup(self) -> float:
    """One full pass per haplotype ÷ `full_pass_equivalents`."""
    return self.haplotypes / max(self.full_pass_equivalents, 1e-12)

  def add(self, other: 'HaplotypeStats') -> None:
    """Adds the counts of `other` (same model and length) to these."""
    for field in (
        'haplotypes',
        'distinct',
        'reference_like',
        'windows',
        'tower_positions',
        'tower_work',
        'transformer_passes',
        'full_passes',
    ):
      setattr(self, field, getattr(self, field) + getattr(other, field))
    self.tower_share = other.tower_share or self.tower_share
    self.sequence_length = other.sequence_length or self.sequence_length

  def format(self) -> str:
    """One line for logs and reports."""
    return (
        f'{self.haplotypes:,} haplotypes in {self.windows:,} windows: {self.distinct:,} '
        f'distinct ({self.reused:,} reused, {self.reference_like:,} equal to the reference), '
        f'{self.tower_positions:,} tower positions ({self.tower_work:,.2f} full towers), '
        f'{self.transformer_passes:,} transformer passes, '
        f'{self.full_passes:,} full passes = {self.full_pass_equivalents:,.1f} full-pass '
        f'equivalents ({self.speedup:.2f}× fewer than one full pass per haplotype)'
    )


def tower_share(
    model: enformer_lib.Enformer, sequence_length: int, heads: Optional[Sequence[str]] = None
) -> float:
  """Share of the multiply-adds of one forward pass spent in the stem and conv tower.

  The stem and tower are counted as the fused forward computes them (`tower_macs` of the whole
  sequence: attention pooling's logits on pair differences, at half the positions), the same
  counting as `Stage.macs`; the transformer, final block and heads are `analytic_gflop`'s.
  """
  tower = tower_macs(model, sequence_length)
  config = model.config
  selected = model.select_heads(heads)
  rest = analytic_gflop(
      config['channels'],
      config['num_heads'],
      config['num_transformer_layers'],
      sequence_length,
      config['target_length'],
      heads={head: config['heads'][head] for head in selected},
      pooling_type=config['pooling_type'],
  )
  after = (rest['transformer'] + rest['final_pointwise'] + rest['heads']) * 1e9
  return 2.0 * tower / (2.0 * tower + after)


def _weights(module) -> int:
  """Multiply-adds per position of a convolution (width × C_in × C_out) or a pooling's logits."""
  if isinstance(module, snt.Conv1D):
    return int(np.prod(module.w.shape))
  linear = getattr(module, 'logit_linear', None)  # Attention pooling; max pooling has none.
  return int(np.prod(linear.w.shape)) if linear is not None else 0


def tower_macs(model: enformer_lib.Enformer, length: int) -> int:
  """Multiply-adds of the stem and conv tower over a whole sequence of `length` bp.

  Each convolution counts its weights × the positions it computes ('SAME': its input's), a
  pointwise block and an attention pooling's logits (on pair differences) at their positions.
  """
  blocks = model.trunk.conv_tower.blocks
  stem = model.trunk.stem
  macs = _weights(stem.conv) * length
  macs += _weights(stem.residual.module.conv) * length + _weights(stem.pool) * (length // 2)
  for i, block in enumerate(blocks):
    width = length // 2 ** (i + 1)
    macs += _weights(block.conv_block.conv) * width
    macs += _weights(block.residual.module.conv) * width + _weights(block.pool) * (width // 2)
  return macs


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of the stem + conv tower as the sparse computation sees it.

  Output position j of a stage pools the convolution outputs at input positions 2j and 2j + 1;
  each reads `width` input positions centred on it. In bp, j depends on the input
  [j · resolution − extent, j · resolution + resolution − 1 + extent]: each convolution adds its
  half-width at its input's resolution; the pooled pair lies inside j's own span and adds nothing
  (`fast.halo_length` counts one position per pair, an upper bound, for its chunk halos).

  Attributes:
    index: 0 the stem, i + 1 conv-tower block i.
    resolution: bp per output position (2, 4, ..., 128).
    extent: bp beyond its own span each side that an output position depends on.
    width: the convolution's width (at the input's resolution).
    length: output positions of a whole sequence.
    channels: output channels.
    macs: multiply-adds of one output position (two convolution outputs, two pointwise outputs,
      one pooling logit on the pair's difference), as `tower_macs` counts them.
  """

  index: int
  resolution: int
  extent: int
  width: int
  length: int
  channels: int
  macs: int


def tower_stages(model: enformer_lib.Enformer, length: int) -> Tuple[Stage, ...]:
  """The stem and conv-tower blocks of `model` for a sequence of `length` bp (see `Stage`)."""
  stem = model.trunk.stem
  width = stem.conv.kernel_shape
  stages = [
      Stage(
          0,
          2,
          width // 2,
          width,
          length // 2,
          stem.conv.output_channels,
          2 * _weights(stem.conv) + 2 * _weights(stem.residual.module.conv) + _weights(stem.pool),
      )
  ]
  for i, block in enumerate(model.trunk.conv_tower.blocks):
    previous = stages[-1]
    width = block.conv_block.width
    stages.append(
        Stage(
            i + 1,
            2 * previous.resolution,
            previous.extent + (width // 2) * previous.resolution,
            width,
            length // (2 * previous.resolution),
            block.filters,
            2 * _weights(block.conv_block.conv)
            + 2 * _weights(block.residual.module.conv)
            + _weights(block.pool),
        )
    )
  return tuple(stages)


def stage_positions(
    model: enformer_lib.Enformer, stage: int, table: tf.Tensor, rows: tf.Tensor, inside: tf.Tensor
) -> tf.Tensor:
  """Output positions of one stage, each from the input positions its convolutions read.

  Args:
    model: the Enformer whose fused blocks run.
    stage: `Stage.index` (0 the stem, i + 1 conv-tower block i).
    table: [R, C_in] input positions to gather from (the stem's: one-hot rows).
    rows: [U, 2, w] int32, for each output position, the rows of `table` that its two
      convolution outputs read (input positions 2j + k − w // 2 + t, k < 2, t < w).
    inside: [U, 2, w] 1 where that input position lies inside the sequence, else 0 (what 'SAME'
      padding sees: zeros after the block's batch norm and GELU; the stem's input rows outside
      the sequence must be zero rows).

  Returns:
    [U, C] the stage's outputs at those positions, equal to the whole sequence's (float
    rounding aside).
  """
  x = tf.gather(table, rows)  # [U, 2, w, C_in]
  if stage == 0:
    module = model.trunk.stem
    conv = module.conv
  else:
    module = model.trunk.conv_tower.blocks[stage - 1]
    conv = module.conv_block.conv
    x = module.conv_block.batch_norm.fused_gelu(x) * tf.cast(inside, x.dtype)[..., tf.newaxis]
  w = tf.cast(tf.reshape(conv.w, [-1, conv.output_channels]), x.dtype)  # [w · C_in, C]
  y = tf.matmul(tf.reshape(x, [-1, w.shape[0]]), w)  # One matmul: [2U, w · C_in] @ [w · C_in, C].
  if conv.with_bias:
    y += tf.cast(conv.b, y.dtype)
  y = tf.reshape(y, [-1, 2, conv.output_channels])  # [U, 2, C]
  return module.pool.fused(module.residual.fused(y))[:, 0]  # [U, C]


def _mix64(values: np.ndarray) -> np.ndarray:
  """splitmix64 of uint64 values: pseudo-random 64-bit codes."""
  with np.errstate(over='ignore'):
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclasses.dataclass
class _Reached:
  """The output positions of one stage that some haplotype's variants reach, and which of them
  are computed.

  Attributes:
    haplotypes, positions: [Q] the (haplotype, output position) pairs reached, sorted.
    rows: [Q] each pair's computed output (an index into `representative`).
    representative: [U] for each computed output, the index of one pair it stands for.
  """

  haplotypes: np.ndarray
  positions: np.ndarray
  rows: np.ndarray
  representative: np.ndarray


class HaplotypeForward:
  """Reference window [L, C_in] + K haplotypes (SNV sets) → {head: [K, T', N]}, exactly.

  Example:
    >>> forward = enformer.inference.fast.compile_forward(model, 196_608)
    >>> haplotypes = HaplotypeForward(forward)
    >>> outputs, stats = haplotypes(x_ref, [[(1000, 2), (5000, 0)], [(1000, 2)], []])
    >>> outputs['human'].shape   # [3, T', N]; stats.format() tells the reuse.
  """

  def __init__(
      self, forward: fast.FastForward, *, batch_size: int = 4, positions_per_call: int = 4096
  ):
    """Args:
    forward: the compiled fast forward of the model (its length, heads and precision).
    batch_size: spliced towers per transformer pass.
    positions_per_call: stage outputs computed per call (bounds the gathered inputs' memory:
      at the published size, 4,096 positions of the last block gather 200 MB).
    """
    model = forward.model
    self.forward = forward
    self.sequence_length = forward.sequence_length
    self.num_bins = forward.sequence_length // BIN
    self.stages = tower_stages(model, self.sequence_length)
    self.batch_size = int(batch_size)
    self.positions_per_call = int(positions_per_call)
    self.tower_share = tower_share(model, self.sequence_length, forward.heads)
    self.full_tower_macs = tower_macs(model, self.sequence_length)
    self.channels = model.config['input_channels']
    dtype = forward.dtype
    self._stage_functions = []
    inputs = [self.channels] + [stage.channels for stage in self.stages[:-1]]
    for stage, channels in zip(self.stages, inputs):
      self._stage_functions.append(
          tf.function(
              functools.partial(stage_positions, model, stage.index),
              autograph=False,
              input_signature=[
                  tf.TensorSpec([None, channels], dtype),
                  tf.TensorSpec([None, 2, stage.width], tf.int32),
                  tf.TensorSpec([None, 2, stage.width], dtype),
              ],
          )
      )
    self._reference_stages = tf.function(
        self._reference_graph,
        autograph=False,
        input_signature=[tf.TensorSpec([1, self.sequence_length, self.channels], tf.float32)],
    )
    self._splice = tf.function(
        self._splice_graph,
        autograph=False,
        jit_compile=forward.mode == 'xla',
        input_signature=[
            tf.TensorSpec([None, self.stages[-1].channels], dtype),
            tf.TensorSpec([None, self.num_bins], tf.int32),
        ],
    )

  # ------------------------------------------------------------------ compiled parts

  def _reference_graph(self, x: tf.Tensor) -> List[tf.Tensor]:
    """[1, L, C_in] → each stage's outputs over the whole sequence, [n_s, C_s] each."""
    model = self.forward.model
    x = model.trunk.stem.fused(tf.cast(x, self.forward.dtype))
    outputs = [x[0]]
    for block in model.trunk.conv_tower.blocks:
      x = block.fused(x)
      outputs.append(x[0])
    return outputs

  def _splice_graph(self, table: tf.Tensor, rows: tf.Tensor) -> Dict[str, tf.Tensor]:
    """table [R, C] of tower bins (the reference's first), rows [B, T] → {head: [B, T', N]}."""
    return self.forward.after_tower(tf.gather(table, rows))  # Towers [B, T, C].

  # ------------------------------------------------------------------ planning (numpy)

  def _crop(self, x: np.ndarray) -> np.ndarray:
    trim = (x.shape[-2] - self.sequence_length) // 2
    if trim < 0 or x.shape[-2] - self.sequence_length != 2 * trim:
      raise ValueError(
          f'The reference must be {self.sequence_length:,} bp (or longer by an even '
          f'number of bp, centre-cropped to it), got {x.shape[-2]:,} bp.'
      )
    return x[trim : trim + self.sequence_length] if trim else x

  def _canonical(
      self, reference: np.ndarray, haplotype: Haplotype, offset: int
  ) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(positions, bases), sorted, without substitutions that equal the reference base."""
    pairs = sorted((int(p) - offset, int(b)) for p, b in haplotype)
    positions, bases = [], []
    for (position, base), (previous, _) in zip(pairs, [(None, None)] + pairs[:-1]):
      if not 0 <= position < self.sequence_length:
        raise ValueError(
            f'A substitution at window position {position + offset:,} lies outside '
            f'the {self.sequence_length:,} bp window.'
        )
      if not 0 <= base < 4:
        raise ValueError(
            f'Base index {base} at position {position + offset:,} is not one of 0-3 ({BASES}).'
        )
      if previous == position:
        raise ValueError(
            f'Two substitutions at window position {position + offset:,} in one '
            'haplotype; a haplotype carries one allele per position.'
        )
      row = reference[position, :4]
      if row[base] == 1 and np.count_nonzero(row) == 1:
        continue  # The reference base.
      positions.append(position)
      bases.append(base)
    return tuple(positions), tuple(bases)

  def reached(self, stage: Stage, positions: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """[V] variant positions (bp) → ([V] first, [V] last + 1) output positions of `stage` whose
    input holds each (clipped to the sequence)."""
    positions = np.asarray(positions, np.int64)
    first = -((stage.extent + stage.resolution - 1 - positions) // stage.resolution)
    last = (positions + stage.extent) // stage.resolution + 1
    return np.maximum(first, 0), np.minimum(last, stage.length)

  def _reach(self, haplotypes: List[Tuple[np.ndarray, np.ndarray]]) -> List[_Reached]:
    """Per stage, the outputs the haplotypes' variants reach and which are computed: one per
    distinct (output position, variants of the haplotype in its input) — a population's common
    local haplotypes are computed once.

    The variant sets are compared by two independent 64-bit sums of pseudo-random codes of their
    (position, base) pairs (a 128-bit key: equal sets give equal keys; two different sets of one
    position collide with probability ~2^-128).
    """
    sizes = np.array([len(p) for p, _ in haplotypes])
    owner = np.repeat(np.arange(len(haplotypes)), sizes)  # [V] sorted by (haplotype, position)
    positions = np.concatenate([p for p, _ in haplotypes]).astype(np.int64)
    bases = np.concatenate([b for _, b in haplotypes]).astype(np.int64)
    span = np.int64(self.sequence_length + 1)
    keys = owner * span + positions  # [V], sorted.
    first_code = _mix64(positions * 4 + bases)
    codes = [first_code, _mix64(first_code ^ np.uint64(0xD1B54A32D192ED03))]
    with np.errstate(over='ignore'):
      sums = [
          np.concatenate([np.zeros(1, np.uint64), np.cumsum(c, dtype=np.uint64)]) for c in codes
      ]
    reached = []
    for stage in self.stages:
      first, last = self.reached(stage, positions)
      counts = last - first
      pair_owner = np.repeat(owner, counts)
      pair_position = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(
          counts.sum()
      )
      pairs = np.unique(pair_owner * stage.length + pair_position)
      pair_owner, pair_position = pairs // stage.length, pairs % stage.length
      base = pair_owner * span
      low = np.clip(pair_position * stage.resolution - stage.extent, 0, span - 1)
      high = np.clip((pair_position + 1) * stage.resolution + stage.extent, 0, span - 1)
      i, j = np.searchsorted(keys, base + low), np.searchsorted(keys, base + high)
      with np.errstate(over='ignore'):
        key = np.stack([pair_position.astype(np.uint64)] + [s[j] - s[i] for s in sums], axis=1)
      _, representative, rows = np.unique(key, axis=0, return_index=True, return_inverse=True)
      reached.append(_Reached(pair_owner, pair_position, rows.reshape(-1), representative))
    return reached

  def _count(self, reached: List[_Reached], stats: HaplotypeStats) -> None:
    """Adds the computed stage outputs to `stats` (the same sums for a run and for `work`)."""
    for stage, r in zip(self.stages, reached):
      stats.tower_positions += len(r.representative)
      stats.tower_work += len(r.representative) * stage.macs / self.full_tower_macs

  # ------------------------------------------------------------------ prediction

  def reference(self, reference: np.ndarray) -> Tuple[np.ndarray, List[tf.Tensor], Outputs]:
    """(reference inputs [L, C_in], each stage's outputs [n_s, C_s], its outputs
    {head: [T', N]})."""
    reference = self._crop(np.asarray(reference, np.float32))
    if reference.ndim != 2 or reference.shape[1] != self.channels:
      raise ValueError(f'The reference must be [L, {self.channels}], got {reference.shape}.')
    stages = self._reference_stages(reference[np.newaxis])
    outputs = {
        head: value.numpy()[0]
        for head, value in self.forward.after_tower(stages[-1][tf.newaxis]).items()
    }
    return reference, stages, outputs

  def __call__(
      self,
      reference: np.ndarray,
      haplotypes: Iterable[Haplotype],
      *,
      offset: int = 0,
      reduce: Optional[Callable[[Outputs], Outputs]] = None,
  ) -> Tuple[Outputs, HaplotypeStats]:
    """Predictions of each haplotype of one window.

    Args:
      reference: [L, C_in] model input of the reference window (or longer by an even number of
        bp: centre-cropped; positions count in the cropped window).
      haplotypes: K haplotypes, each a sequence of (position, base index in 'ACGT') substitutions;
        positions are window positions + `offset` (e.g. genome coordinates with
        `offset` = the window's start). Substitutions equal to the reference base are ignored.
      offset: subtracted from every position.
      reduce: applied to each distinct haplotype's outputs {head: [T', N]} as soon as they are
        computed, returning the arrays to keep (e.g. a few tracks at a TSS: the whole outputs of
        200 haplotypes take 3.8 GB at the published size); default: the outputs themselves.

    Returns:
      ({head: [K, T', N]} float32, or `reduce`'s arrays stacked over the K haplotypes; the
      `HaplotypeStats` of this window).
    """
    reduce = reduce or (lambda outputs: outputs)
    haplotypes = list(haplotypes)
    reference, stages, ref_outputs = self.reference(reference)
    stats = HaplotypeStats(
        haplotypes=len(haplotypes),
        windows=1,
        tower_share=self.tower_share,
        sequence_length=self.sequence_length,
    )
    index: Dict[Tuple[Tuple[int, ...], Tuple[int, ...]], int] = {}
    inverse = []
    for haplotype in haplotypes:
      inverse.append(index.setdefault(self._canonical(reference, haplotype, offset), len(index)))
    stats.distinct = len(index)
    distinct = [(np.asarray(p, np.int64), np.asarray(b, np.int8)) for p, b in index]
    changed = [d for d, (p, _) in enumerate(distinct) if p.size]
    stats.reference_like = stats.distinct - len(changed)
    ref_outputs = reduce(ref_outputs)
    results: List[Optional[Outputs]] = [ref_outputs if not p.size else None for p, _ in distinct]
    if changed:
      for d, outputs in zip(
          changed, self._predict(reference, stages, [distinct[d] for d in changed], stats, reduce)
      ):
        results[d] = outputs
    if not haplotypes:
      return (
          {
              key: np.zeros((0,) + np.shape(value), np.asarray(value).dtype)
              for key, value in ref_outputs.items()
          },
          stats,
      )
    return {key: np.stack([results[d][key] for d in inverse]) for key in ref_outputs}, stats

  def _distinct(self, reference: np.ndarray, haplotypes: List[Haplotype], offset: int):
    """(the distinct canonical haplotypes, those that differ from the reference as arrays)."""
    distinct = {self._canonical(reference, haplotype, offset) for haplotype in haplotypes}
    return distinct, [(np.asarray(p, np.int64), np.asarray(b, np.int8)) for p, b in distinct if p]

  def work(
      self, reference: np.ndarray, haplotypes: Iterable[Haplotype], *, offset: int = 0
  ) -> HaplotypeStats:
    """The `HaplotypeStats` that `__call__` would report for these inputs, without running the
    model (distinct haplotypes, stage outputs computed, transformer passes)."""
    haplotypes = list(haplotypes)
    reference = self._crop(np.asarray(reference, np.float32))
    stats = HaplotypeStats(
        haplotypes=len(haplotypes),
        windows=1,
        tower_share=self.tower_share,
        sequence_length=self.sequence_length,
    )
    distinct, changed = self._distinct(reference, haplotypes, offset)
    stats.distinct, stats.reference_like = len(distinct), len(distinct) - len(changed)
    if changed:
      self._count(self._reach(changed), stats)
      stats.transformer_passes = len(changed)
    return stats

  def _stage_inputs(
      self,
      stage: Stage,
      previous: _Reached,
      previous_length: int,
      owners: np.ndarray,
      positions: np.ndarray,
  ) -> Tuple[np.ndarray, np.ndarray]:
    """Rows and inside-mask [U, 2, w] of the inputs read by outputs `positions` [U] of haplotypes
    `owners` [U]: a haplotype's own computed input where its variants reach, else the reference's
    (rows of the previous stage's table: its `previous_length` reference rows, then the
    computed ones)."""
    taps = np.arange(2)[:, np.newaxis] + np.arange(stage.width) - stage.width // 2  # [2, w]
    inputs = 2 * positions[:, np.newaxis, np.newaxis] + taps  # [U, 2, w]
    inside = (inputs >= 0) & (inputs < previous_length)
    clipped = np.clip(inputs, 0, previous_length - 1)
    keys = owners[:, np.newaxis, np.newaxis] * previous_length + clipped
    known = previous.haplotypes * previous_length + previous.positions  # Sorted.
    found = np.minimum(np.searchsorted(known, keys), len(known) - 1)
    hit = (known[found] == keys) & inside
    rows = np.where(hit, previous_length + previous.rows[found], clipped)
    if stage.index == 0:
      rows = np.where(inside, rows, previous_length + len(previous.representative))  # Zero row.
    return rows.astype(np.int32), inside

  def _predict(
      self,
      reference: np.ndarray,
      stages: List[tf.Tensor],
      haplotypes: List[Tuple[np.ndarray, np.ndarray]],
      stats: HaplotypeStats,
      reduce: Callable[[Outputs], Outputs],
  ) -> List[Outputs]:
    """`reduce`d outputs of distinct haplotypes that differ from the reference."""
    reached = self._reach(haplotypes)
    self._count(reached, stats)
    # The stem's input table: the reference rows, each variant's edited row, a zero row.
    sizes = np.array([len(p) for p, _ in haplotypes])
    positions = np.concatenate([p for p, _ in haplotypes])
    edited = reference[positions].copy()
    edited[:, :4] = np.eye(4, dtype=np.float32)[np.concatenate([b for _, b in haplotypes])]
    variants = _Reached(
        np.repeat(np.arange(len(haplotypes)), sizes),
        positions,
        np.arange(len(positions)),
        np.arange(len(positions)),
    )
    dtype = self.forward.dtype
    table = tf.cast(
        np.concatenate([reference, edited, np.zeros((1, self.channels), np.float32)]), dtype
    )
    previous, previous_length = variants, self.sequence_length
    for stage, function, r, stage_reference in zip(
        self.stages, self._stage_functions, reached, stages
    ):
      rows, inside = self._stage_inputs(
          stage,
          previous,
          previous_length,
          r.haplotypes[r.representative],
          r.positions[r.representative],
      )
      computed = [stage_reference]
      for i in range(0, len(rows), self.positions_per_call):
        computed.append(
            function(
                table,
                rows[i : i + self.positions_per_call],
                tf.cast(inside[i : i + self.positions_per_call], dtype),
            )
        )
      table = tf.concat(computed, axis=0)  # [n_s + U, C_s]
      previous, previous_length = r, stage.length
    rows = np.tile(np.arange(self.num_bins, dtype=np.int32), (len(haplotypes), 1))  # [D, T]
    rows[previous.haplotypes, previous.positions] = self.num_bins + previous.rows
    results = []
    for i in range(0, len(haplotypes), self.batch_size):
      outputs = {
          head: value.numpy()
          for head, value in self._splice(table, rows[i : i + self.batch_size]).items()
      }
      results.extend(
          reduce({head: value[j] for head, value in outputs.items()})
          for j in range(len(rows[i : i + self.batch_size]))
      )
    stats.transformer_passes += len(haplotypes)
    return results
