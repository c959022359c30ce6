"""Exact predictions for many haplotypes of one reference window, computed once per distinct part.

A haplotype here is a set of single-base substitutions inside a reference window (a person's
phased SNVs). Across a population, two things repeat, and each is computed once:

- whole haplotypes: haplotypes identical within the window (after dropping substitutions that
  equal the reference base) are predicted once (`HaplotypeStats.reused` counts the others);
- local haplotypes: everything before the transformer is local (`enformer.inference.incremental`:
  a conv-tower bin depends only on the input within `receptive_radius` bp of it), so each patch of
  tower bins is computed once per distinct set of variants inside its receptive field (its local
  haplotype) and once for the reference. Each haplotype's tower output is spliced from these
  patches and the reference tower, then the transformer, final block and heads run once per
  distinct haplotype (in batches).

Patches cover only the bins that some variant reaches. A window's tower bins are split into
segments by a dynamic programme; each segment's bins are computed by the smallest candidate patch
size that holds them, once per distinct local haplotype of the segment (the variants in the
receptive field of the segment's own bins: the patch's other bins are discarded), at the exact
multiply-adds that costs. A patch is cropped after every convolution to the context the remaining
stages still need (`stage_halos`, `trimmed_tower`), so its cost is counted exactly
(`patch_macs`). A window whose haplotypes carry a single SNV recomputes the bins the incremental
SNV path does; a dense window mixes short and long patches. The results equal full passes of the
haplotype sequences within float32 rounding.

Shapes: L = input length (bp), C_in = input channels, T = L / 128 tower bins, C = tower channels,
P = bins per patch, W = P · 128 + 2 · radius patch input length, K = haplotypes, D = distinct
haplotypes, T' = output bins, N = tracks.
"""

import dataclasses
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

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
    patches: tower patches computed (one per distinct non-reference local haplotype and segment).
    tower_bp: input bp that the computed patches cover (their context included).
    tower_work: the computed patches' multiply-adds in units of one full stem + conv tower
      (`patch_macs` ÷ `tower_macs`).
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
  patches: int = 0
  tower_bp: int = 0
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
    patches count tower_share × `tower_work` (their exact multiply-adds ÷ a full tower's),
    transformer + heads runs count 1 − tower_share."""
    return (self.windows + self.full_passes + self.tower_share * self.tower_work +
            (1 - self.tower_share) * self.transformer_passes)

  @property
  def speedup(self) -> float:
    """One full pass per haplotype ÷ `full_pass_equivalents`."""
    return self.haplotypes / max(self.full_pass_equivalents, 1e-12)

  def add(self, other: 'HaplotypeStats') -> None:
    """Adds the counts of `other` (same model and length) to these."""
    for field in ('haplotypes', 'distinct', 'reference_like', 'windows', 'patches', 'tower_bp',
                  'tower_work', 'transformer_passes', 'full_passes'):
      setattr(self, field, getattr(self, field) + getattr(other, field))
    self.tower_share = other.tower_share or self.tower_share
    self.sequence_length = other.sequence_length or self.sequence_length

  def format(self) -> str:
    """One line for logs and reports."""
    return (f'{self.haplotypes:,} haplotypes in {self.windows:,} windows: {self.distinct:,} '
            f'distinct ({self.reused:,} reused, {self.reference_like:,} equal to the reference), '
            f'{self.patches:,} tower patches ({self.tower_work:,.2f} full towers), '
            f'{self.transformer_passes:,} transformer passes, '
            f'{self.full_passes:,} full passes = {self.full_pass_equivalents:,.1f} full-pass '
            f'equivalents ({self.speedup:.2f}× fewer than one full pass per haplotype)')


def tower_share(model: enformer_lib.Enformer, sequence_length: int,
                heads: Optional[Sequence[str]] = None) -> float:
  """Share of the multiply-adds of one forward pass spent in the stem and conv tower.

  The stem and tower are counted as the fused forward computes them (`tower_macs` of the whole
  sequence: attention pooling's logits on pair differences, at half the positions), the same
  counting as a patch's cost; the transformer, final block and heads are `analytic_gflop`'s.
  """
  tower = tower_macs(model, sequence_length)
  config = model.config
  selected = model.select_heads(heads)
  rest = analytic_gflop(config['channels'], config['num_heads'], config['num_transformer_layers'],
                        sequence_length, config['target_length'],
                        heads={head: config['heads'][head] for head in selected},
                        pooling_type=config['pooling_type'])
  after = (rest['transformer'] + rest['final_pointwise'] + rest['heads']) * 1e9
  return 2.0 * tower / (2.0 * tower + after)


def receptive_radius(model: enformer_lib.Enformer) -> int:
  """bp each side of a conv-tower output bin that the bin depends on: bin t reads input
  [128·t − r, 128·t + 127 + r].

  Each stage's convolution reads its half-width at its input resolution (the stem's at 1 bp,
  conv-tower block i's at 2^(i+1) bp); the pooling that follows merges a pair of positions that
  already lies inside the output position's span, so it adds nothing (`fast.halo_length` counts
  one position per pair, an upper bound, for its chunk halos).
  """
  radius = model.trunk.stem.conv.kernel_shape // 2
  for i, block in enumerate(model.trunk.conv_tower.blocks):
    radius += (block.conv_block.width // 2) * 2**(i + 1)
  return radius


def stage_halos(model: enformer_lib.Enformer) -> Tuple[int, ...]:
  """bp of context each side of a patch that the remaining stages need after each convolution:
  after the stem's (index 0) and after conv-tower block i's (index i + 1; the last is 0).

  Block i's width-w convolution reads (w // 2) positions each side at its input resolution
  2^(i+1) bp, so the context before it is the context after it plus (w // 2) · 2^(i+1) bp, rounded
  up to a multiple of 2^(i+1) (the resolution after the pooling that precedes it, so that pooled
  pairs stay on the sequence's grid). Published model: (252, 248, 240, 224, 192, 128, 0); the
  patch input needs the stem convolution's half-width more (`receptive_radius`).
  """
  blocks = model.trunk.conv_tower.blocks
  halos = [0]
  for i in reversed(range(len(blocks))):
    resolution = 2**(i + 1)
    need = halos[0] + (blocks[i].conv_block.width // 2) * resolution
    halos.insert(0, -(-need // resolution) * resolution)
  return tuple(halos)


def input_halo(model: enformer_lib.Enformer, halos: Sequence[int]) -> int:
  """bp of input each side of a patch: `halos[0]` plus the stem convolution's half-width."""
  return halos[0] + model.trunk.stem.conv.kernel_shape // 2


def trimmed_tower(model: enformer_lib.Enformer, windows: tf.Tensor, starts: tf.Tensor,
                  length: int, halos: Sequence[int]) -> tf.Tensor:
  """Stem + conv tower of patches, each cropped after every convolution to `halos`.

  Args:
    model: the Enformer whose fused blocks run.
    windows: [B, S + 2 · input_halo, C_in] the input positions [start − input_halo, start + S +
      input_halo) of a sequence of `length` bp (zeros outside it); S a multiple of 128.
    starts: [B] int32, each patch's first output position in bp (a multiple of 128).
    length: L, the sequence's length (positions outside [0, L) are masked as 'SAME' padding
      would see them, as `fast.tower_window` does).
    halos: `stage_halos(model)` (fewer bp at some stage gives wrong bins near the patch's ends).

  Returns:
    [B, S / 128, C] tower bins of [start, start + S), equal to `fast.tower_window`'s.
  """
  stem = model.trunk.stem
  edge = stem.conv.kernel_shape // 2
  x = enformer_lib.fused_conv(stem.conv, windows)  # [B, S + 2 · (halos[0] + edge), C0]
  x = x[:, edge:x.shape[1] - edge]  # [B, S + 2 · halos[0], C0]
  x = stem.pool.fused(stem.residual.fused(x))  # [B, (S + 2 · halos[0]) / 2, C0]
  for i, block in enumerate(model.trunk.conv_tower.blocks):
    resolution = 2**(i + 1)
    positions = (tf.reshape(starts, [-1, 1]) - halos[i]) // resolution + tf.range(x.shape[1])
    inside = (positions >= 0) & (positions < length // resolution)  # [B, (S + 2 · h_i) / res]
    y = block.conv_block.fused(x, tf.cast(inside, x.dtype)[..., tf.newaxis])
    trim = (halos[i] - halos[i + 1]) // resolution
    y = y[:, trim:y.shape[1] - trim]  # [B, (S + 2 · h_(i+1)) / res, C_i]
    x = block.pool.fused(block.residual.fused(y))  # [B, (S + 2 · h_(i+1)) / (2 · res), C_i]
  return x


def _weights(module) -> int:
  """Multiply-adds per position of a convolution (width × C_in × C_out) or a pooling's logits."""
  if isinstance(module, snt.Conv1D):
    return int(np.prod(module.w.shape))
  linear = getattr(module, 'logit_linear', None)  # Attention pooling; max pooling has none.
  return int(np.prod(linear.w.shape)) if linear is not None else 0


def tower_macs(model: enformer_lib.Enformer, span: int,
               halos: Optional[Sequence[int]] = None) -> int:
  """Multiply-adds of the stem and conv tower for `span` bp of output positions.

  Each convolution counts its weights × the positions it computes ('SAME': its input's), a
  pointwise block and an attention pooling's logits (on pair differences) at their positions.
  halos None: the whole sequence (`span` = L, no context); `stage_halos`: one trimmed patch
  (`trimmed_tower`), context included.
  """
  blocks = model.trunk.conv_tower.blocks
  stem = model.trunk.stem
  if halos is None:
    halos, edge = (0,) * (len(blocks) + 1), 0
  else:
    edge = stem.conv.kernel_shape // 2
  width = span + 2 * halos[0]
  macs = _weights(stem.conv) * (width + 2 * edge)
  macs += _weights(stem.residual.module.conv) * width + _weights(stem.pool) * (width // 2)
  for i, block in enumerate(blocks):
    resolution = 2**(i + 1)
    width = (span + 2 * halos[i + 1]) // resolution
    macs += _weights(block.conv_block.conv) * ((span + 2 * halos[i]) // resolution)
    macs += _weights(block.residual.module.conv) * width + _weights(block.pool) * (width // 2)
  return macs


@dataclasses.dataclass(frozen=True)
class Segment:
  """Tower bins [first, last) taken from a patch of `bins` bins computed over [start, start + P)."""
  first: int
  last: int
  bins: int
  start: int


def _mix64(values: np.ndarray) -> np.ndarray:
  """splitmix64 of uint64 values: pseudo-random 64-bit codes (for the plan's key counts)."""
  with np.errstate(over='ignore'):
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# Candidate patch sizes in tower bins (chosen by the plans of `benchmarks/haplotypes.py`).
PATCH_BINS = (2, 3, 4, 5, 6, 8, 11, 14, 18, 24, 32, 48)


class HaplotypeForward:
  """Reference window [L, C_in] + K haplotypes (SNV sets) → {head: [K, T', N]}, exactly.

  Example:
    >>> forward = enformer.inference.fast.compile_forward(model, 196_608)
    >>> haplotypes = HaplotypeForward(forward)
    >>> outputs, stats = haplotypes(x_ref, [[(1000, 2), (5000, 0)], [(1000, 2)], []])
    >>> outputs['human'].shape   # [3, T', N]; stats.format() tells the reuse.
  """

  def __init__(self, forward: fast.FastForward, *, patch_bins: Optional[Sequence[int]] = None,
               batch_size: int = 4, patch_batch_size: int = 16):
    """Args:
      forward: the compiled fast forward of the model (its length, heads and precision).
      patch_bins: candidate patch sizes in tower bins (each is traced once when first used;
        sizes above T are clipped to T); default `PATCH_BINS`.
      batch_size: spliced towers per transformer pass.
      patch_batch_size: patches per conv-tower call.
    """
    model = forward.model
    self.forward = forward
    self.sequence_length = forward.sequence_length
    self.num_bins = forward.sequence_length // BIN
    # The tower bins a variant changes: those whose receptive field (`radius` bp each side,
    # `_fields`) holds it. A patch keeps `halos` bp of context after each convolution and reads
    # `input_halo` bp of input each side (= the radius unless a stage rounds up).
    self.radius = receptive_radius(model)
    self.halos = stage_halos(model)
    self.input_halo = input_halo(model, self.halos)
    if patch_bins is None:
      patch_bins = PATCH_BINS
    self.patch_bins = sorted({min(int(p), self.num_bins) for p in patch_bins if int(p) > 0})
    if not self.patch_bins:
      raise ValueError(f'patch_bins must hold positive sizes, got {patch_bins!r}.')
    self.batch_size = int(batch_size)
    self.patch_batch_size = int(patch_batch_size)
    self.tower_share = tower_share(model, self.sequence_length, forward.heads)
    full = tower_macs(model, self.sequence_length)
    # Each candidate size's exact cost in full stem + conv towers.
    self.patch_work = {bins: tower_macs(model, bins * BIN, self.halos) / full
                       for bins in self.patch_bins}
    self.channels = model.config['input_channels']
    self._patch_functions: Dict[int, tf.types.experimental.GenericFunction] = {}
    self._splice = tf.function(
        self._splice_graph, autograph=False, jit_compile=forward.mode == 'xla',
        input_signature=[tf.TensorSpec([None, model.trunk.conv_tower.blocks[-1].filters],
                                       forward.dtype),
                         tf.TensorSpec([None, self.num_bins], tf.int32)])

  # ------------------------------------------------------------------ compiled parts

  def _patch_function(self, bins: int):
    """tf.function: windows [B, W, C_in], starts [B] (first bin) → tower bins [B, P, C]."""
    if bins not in self._patch_functions:
      model = self.forward.model
      dtype = self.forward.dtype
      halos = self.halos

      def patches(windows: tf.Tensor, starts: tf.Tensor) -> tf.Tensor:
        return trimmed_tower(model, tf.cast(windows, dtype), starts * BIN, self.sequence_length,
                             halos)

      self._patch_functions[bins] = tf.function(
          patches, autograph=False, jit_compile=self.forward.mode == 'xla',
          input_signature=[tf.TensorSpec([None, bins * BIN + 2 * self.input_halo, self.channels],
                                         tf.float32),
                           tf.TensorSpec([None], tf.int32)])
    return self._patch_functions[bins]

  def warm_up(self) -> None:
    """Traces the patch function of every candidate size now (a run traces each size when it
    first uses it: about a second each at the published size on a CPU), e.g. before timing."""
    for bins in self.patch_bins:
      self._patch_function(bins)(
          np.zeros((1, bins * BIN + 2 * self.input_halo, self.channels), np.float32),
          np.zeros(1, np.int32))

  def _splice_graph(self, table: tf.Tensor, rows: tf.Tensor) -> Dict[str, tf.Tensor]:
    """table [R, C] of tower bins (the reference's first), rows [B, T] → {head: [B, T', N]}."""
    return self.forward.after_tower(tf.gather(table, rows))  # Towers [B, T, C].

  # ------------------------------------------------------------------ planning (numpy)

  def _crop(self, x: np.ndarray) -> np.ndarray:
    trim = (x.shape[-2] - self.sequence_length) // 2
    if trim < 0 or x.shape[-2] - self.sequence_length != 2 * trim:
      raise ValueError(f'The reference must be {self.sequence_length:,} bp (or longer by an even '
                       f'number of bp, centre-cropped to it), got {x.shape[-2]:,} bp.')
    return x[trim:trim + self.sequence_length] if trim else x

  def _canonical(self, reference: np.ndarray, haplotype: Haplotype, offset: int
                 ) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(positions, bases), sorted, without substitutions that equal the reference base."""
    pairs = sorted((int(p) - offset, int(b)) for p, b in haplotype)
    positions, bases = [], []
    for (position, base), (previous, _) in zip(pairs, [(None, None)] + pairs[:-1]):
      if not 0 <= position < self.sequence_length:
        raise ValueError(f'A substitution at window position {position + offset:,} lies outside '
                         f'the {self.sequence_length:,} bp window.')
      if not 0 <= base < 4:
        raise ValueError(f'Base index {base} at position {position + offset:,} is not one of '
                         f'0-3 ({BASES}).')
      if previous == position:
        raise ValueError(f'Two substitutions at window position {position + offset:,} in one '
                         'haplotype; a haplotype carries one allele per position.')
      row = reference[position, :4]
      if row[base] == 1 and np.count_nonzero(row) == 1:
        continue  # The reference base.
      positions.append(position)
      bases.append(base)
    return tuple(positions), tuple(bases)

  def _fields(self, positions: np.ndarray, segments: Sequence[Tuple[int, int]]
              ) -> Tuple[np.ndarray, np.ndarray]:
    """[S] first and [S] last index into sorted `positions` of the variants in the receptive
    field of each segment's own bins [first, last)."""
    bounds = np.asarray(segments, np.int64).reshape(-1, 2) * BIN
    return (np.searchsorted(positions, bounds[:, 0] - self.radius),
            np.searchsorted(positions, bounds[:, 1] + self.radius))

  def _plan(self, haplotypes: List[Tuple[np.ndarray, np.ndarray]]) -> List[Segment]:
    """Segments (own bins, patch size, patch start) covering every bin that a variant reaches,
    at the least estimated cost: Σ (distinct local haplotypes of the segment) × `patch_work`.

    A dynamic programme over segment ends; the distinct local haplotypes of every segment
    [a, a + l) are counted at once per length l from prefix sums of pseudo-random 64-bit codes of
    the (position, base) pairs (equal variant sets give equal sums; execution groups by the exact
    variants, so a collision could only make the plan a little worse).
    """
    num_bins, longest = self.num_bins, self.patch_bins[-1]
    bins = np.arange(num_bins + 1)
    begins = np.empty((len(haplotypes), num_bins + 1), np.uint64)  # [D, T + 1] prefix sums.
    ends = np.empty_like(begins)
    for d, (positions, bases) in enumerate(haplotypes):
      codes = _mix64(positions.astype(np.uint64) * np.uint64(4) + bases.astype(np.uint64))
      sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(codes, dtype=np.uint64)])
      first, last = self._fields(positions, np.stack([bins, bins], axis=1))
      begins[d], ends[d] = sums[first], sums[last]
    counts = np.full((longest, num_bins), np.inf)  # [l − 1, a]: distinct keys of [a, a + l).
    for length in range(1, longest + 1):
      with np.errstate(over='ignore'):
        keys = (ends[:, length:] - begins[:, :num_bins + 1 - length]).T  # [T + 1 − l, D]
      keys = np.sort(keys[:num_bins + 1 - length], axis=1)
      counts[length - 1, :num_bins + 1 - length] = (
          (np.diff(keys, axis=1) != 0).sum(axis=1) + (keys[:, 0] != 0))
    sizes = np.asarray(self.patch_bins)
    size_of = sizes[np.searchsorted(sizes, np.arange(1, longest + 1))]  # [l − 1] → P.
    costs = counts * np.array([self.patch_work[p] for p in size_of])[:, np.newaxis]
    best = np.zeros(num_bins + 1)
    choice = np.zeros(num_bins + 1, np.int64)
    lengths = np.arange(1, longest + 1)
    for end in range(1, num_bins + 1):
      usable = lengths[:end]
      candidates = best[end - usable] + costs[usable - 1, end - usable]
      k = int(np.argmin(candidates))
      best[end], choice[end] = candidates[k], usable[k]
    segments, end = [], num_bins
    while end > 0:
      length = int(choice[end])
      if counts[length - 1, end - length] > 0:
        size = int(size_of[length - 1])
        segments.append(Segment(end - length, end, size, min(end - length, num_bins - size)))
      end -= length
    return segments[::-1]

  def _groups(self, haplotypes: List[Tuple[np.ndarray, np.ndarray]],
              segments: List[Segment]) -> List[Dict[bytes, List[int]]]:
    """Per segment: its distinct non-reference local haplotypes (the exact variants in its own
    bins' receptive field, as bytes) → the haplotypes that carry each."""
    groups: List[Dict[bytes, List[int]]] = [{} for _ in segments]
    spans = [(segment.first, segment.last) for segment in segments]
    for d, (positions, bases) in enumerate(haplotypes):
      for group, i, j in zip(groups, *self._fields(positions, spans)):
        if i < j:
          group.setdefault(positions[i:j].tobytes() + bases[i:j].tobytes(), []).append(d)
    return groups

  def _count(self, segments: List[Segment], groups: List[Dict[bytes, List[int]]],
             stats: HaplotypeStats) -> None:
    """Adds the patches of a plan to `stats` (the same sums for a run and for `work`)."""
    for segment, group in zip(segments, groups):
      stats.patches += len(group)
      stats.tower_bp += len(group) * (segment.bins * BIN + 2 * self.input_halo)
      stats.tower_work += len(group) * self.patch_work[segment.bins]

  # ------------------------------------------------------------------ prediction

  def reference(self, reference: np.ndarray) -> Tuple[np.ndarray, tf.Tensor, Outputs]:
    """(reference inputs [L, C_in], its tower [1, T, C], its outputs {head: [T', N]})."""
    reference = self._crop(np.asarray(reference, np.float32))
    if reference.ndim != 2 or reference.shape[1] != self.channels:
      raise ValueError(f'The reference must be [L, {self.channels}], got {reference.shape}.')
    tower = self.forward.tower(reference[np.newaxis])
    outputs = {head: value.numpy()[0] for head, value in self.forward.after_tower(tower).items()}
    return reference, tower, outputs

  def __call__(self, reference: np.ndarray, haplotypes: Iterable[Haplotype], *,
               offset: int = 0) -> Tuple[Outputs, HaplotypeStats]:
    """Predictions of each haplotype of one window.

    Args:
      reference: [L, C_in] model input of the reference window (or longer by an even number of
        bp: centre-cropped; positions count in the cropped window).
      haplotypes: K haplotypes, each a sequence of (position, base index in 'ACGT') substitutions;
        positions are window positions + `offset` (e.g. genome coordinates with
        `offset` = the window's start). Substitutions equal to the reference base are ignored.
      offset: subtracted from every position.

    Returns:
      ({head: [K, T', N]} float32, the `HaplotypeStats` of this window).
    """
    haplotypes = list(haplotypes)
    reference, tower, ref_outputs = self.reference(reference)
    stats = HaplotypeStats(haplotypes=len(haplotypes), windows=1, tower_share=self.tower_share,
                           sequence_length=self.sequence_length)
    index: Dict[Tuple[Tuple[int, ...], Tuple[int, ...]], int] = {}
    inverse = []
    for haplotype in haplotypes:
      inverse.append(index.setdefault(self._canonical(reference, haplotype, offset), len(index)))
    stats.distinct = len(index)
    distinct = [(np.asarray(p, np.int64), np.asarray(b, np.int8)) for p, b in index]
    changed = [d for d, (p, _) in enumerate(distinct) if p.size]
    stats.reference_like = stats.distinct - len(changed)
    results: List[Optional[Outputs]] = [ref_outputs if not p.size else None for p, _ in distinct]
    if changed:
      for d, outputs in zip(changed, self._predict(reference, tower,
                                                   [distinct[d] for d in changed], stats)):
        results[d] = outputs
    if not haplotypes:
      return ({head: np.zeros((0,) + value.shape, np.float32)
               for head, value in ref_outputs.items()}, stats)
    return {head: np.stack([results[d][head] for d in inverse]) for head in ref_outputs}, stats

  def _distinct(self, reference: np.ndarray, haplotypes: List[Haplotype], offset: int):
    """(the distinct canonical haplotypes, those that differ from the reference as arrays)."""
    distinct = {self._canonical(reference, haplotype, offset) for haplotype in haplotypes}
    return distinct, [(np.asarray(p, np.int64), np.asarray(b, np.int8)) for p, b in distinct if p]

  def plan(self, reference: np.ndarray, haplotypes: Iterable[Haplotype], *,
           offset: int = 0) -> List[Segment]:
    """The segments of tower bins that `__call__` computes for these inputs, in order (each
    once per distinct local haplotype; `patch_work[segment.bins]` full towers each)."""
    reference = self._crop(np.asarray(reference, np.float32))
    _, changed = self._distinct(reference, list(haplotypes), offset)
    return self._plan(changed) if changed else []

  def work(self, reference: np.ndarray, haplotypes: Iterable[Haplotype], *,
           offset: int = 0) -> HaplotypeStats:
    """The `HaplotypeStats` that `__call__` would report for these inputs, without running the
    model (the plan only: distinct haplotypes, patches, transformer passes)."""
    haplotypes = list(haplotypes)
    reference = self._crop(np.asarray(reference, np.float32))
    stats = HaplotypeStats(haplotypes=len(haplotypes), windows=1, tower_share=self.tower_share,
                           sequence_length=self.sequence_length)
    distinct, changed = self._distinct(reference, haplotypes, offset)
    stats.distinct, stats.reference_like = len(distinct), len(distinct) - len(changed)
    if changed:
      segments = self._plan(changed)
      self._count(segments, self._groups(changed, segments), stats)
      stats.transformer_passes = len(changed)
    return stats

  def _predict(self, reference: np.ndarray, tower: tf.Tensor,
               haplotypes: List[Tuple[np.ndarray, np.ndarray]],
               stats: HaplotypeStats) -> List[Outputs]:
    """Outputs of distinct haplotypes that differ from the reference."""
    segments = self._plan(haplotypes)
    groups = self._groups(haplotypes, segments)
    self._count(segments, groups, stats)
    padded = np.pad(reference, [(self.input_halo, self.input_halo), (0, 0)])
    one_hot = np.eye(4, dtype=np.float32)
    windows: Dict[int, List[np.ndarray]] = {bins: [] for bins in self.patch_bins}
    starts: Dict[int, List[int]] = {bins: [] for bins in self.patch_bins}
    placed = []  # (segment, the local haplotype's index among its size's, its haplotypes).
    for segment, group in zip(segments, groups):
      width = segment.bins * BIN + 2 * self.input_halo
      begin = segment.start * BIN  # In `padded`: the window's first position.
      for members in group.values():
        positions, bases = haplotypes[members[0]]
        i, j = self._fields(positions, [(segment.first, segment.last)])
        window = padded[begin:begin + width].copy()
        # Only the variants that reach the segment's own bins (the others' bins are discarded).
        window[positions[i[0]:j[0]] + self.input_halo - begin, :4] = one_hot[bases[i[0]:j[0]]]
        placed.append((segment, len(windows[segment.bins]), members))
        windows[segment.bins].append(window)
        starts[segment.bins].append(segment.start)
    parts, offsets = [tower[0]], {}  # [T, C], then [n · P, C] per size.
    row = self.num_bins
    for bins in self.patch_bins:
      offsets[bins] = row
      function = self._patch_function(bins) if windows[bins] else None
      for i in range(0, len(windows[bins]), self.patch_batch_size):
        computed_bins = function(np.stack(windows[bins][i:i + self.patch_batch_size]),
                                 np.asarray(starts[bins][i:i + self.patch_batch_size], np.int32))
        parts.append(tf.reshape(computed_bins, [-1, tower.shape[-1]]))
      row += len(windows[bins]) * bins
    rows = np.tile(np.arange(self.num_bins, dtype=np.int32), (len(haplotypes), 1))  # [D, T]
    for segment, index, members in placed:
      owned = np.arange(segment.first, segment.last)
      rows[np.asarray(members)[:, np.newaxis], owned] = (
          offsets[segment.bins] + index * segment.bins + owned - segment.start)
    table = tf.concat(parts, axis=0)  # [T + patches · P, C]
    results = []
    for i in range(0, len(haplotypes), self.batch_size):
      outputs = self._splice(table, rows[i:i + self.batch_size])
      results.extend({head: value.numpy()[j] for head, value in outputs.items()}
                     for j in range(len(rows[i:i + self.batch_size])))
    stats.transformer_passes += len(haplotypes)
    return results
