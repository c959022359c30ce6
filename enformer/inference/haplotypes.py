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

Patches cover only the bins that some variant reaches; their size is chosen per window from a few
candidates by the exact work it would cost (distinct local haplotypes × patch input length), so a
window whose haplotypes carry a single SNV recomputes the same bins as the incremental SNV path,
and a dense window uses longer patches only where that is cheaper. The results equal full passes
of the haplotype sequences within float32 rounding.

Shapes: L = input length (bp), C_in = input channels, T = L / 128 tower bins, C = tower channels,
P = bins per patch, W = P · 128 + 2 · halo patch input length, K = haplotypes, D = distinct
haplotypes, T' = output bins, N = tracks.
"""

import dataclasses
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
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
    patches: tower patches computed (one per distinct non-reference local haplotype and patch).
    tower_bp: input bp that the computed patches cover (their halos included).
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
    patches count tower_share × their input length / L, transformer + heads runs count
    1 − tower_share."""
    if not self.sequence_length:
      return float(self.windows + self.full_passes)
    return (self.windows + self.full_passes +
            self.tower_share * self.tower_bp / self.sequence_length +
            (1 - self.tower_share) * self.transformer_passes)

  @property
  def speedup(self) -> float:
    """One full pass per haplotype ÷ `full_pass_equivalents`."""
    return self.haplotypes / max(self.full_pass_equivalents, 1e-12)

  def add(self, other: 'HaplotypeStats') -> None:
    """Adds the counts of `other` (same model and length) to these."""
    for field in ('haplotypes', 'distinct', 'reference_like', 'windows', 'patches', 'tower_bp',
                  'transformer_passes', 'full_passes'):
      setattr(self, field, getattr(self, field) + getattr(other, field))
    self.tower_share = other.tower_share or self.tower_share
    self.sequence_length = other.sequence_length or self.sequence_length

  def format(self) -> str:
    """One line for logs and reports."""
    return (f'{self.haplotypes:,} haplotypes in {self.windows:,} windows: {self.distinct:,} '
            f'distinct ({self.reused:,} reused, {self.reference_like:,} equal to the reference), '
            f'{self.patches:,} tower patches, {self.transformer_passes:,} transformer passes, '
            f'{self.full_passes:,} full passes = {self.full_pass_equivalents:,.1f} full-pass '
            f'equivalents ({self.speedup:.2f}× fewer than one full pass per haplotype)')


def tower_share(model: enformer_lib.Enformer, sequence_length: int,
                heads: Optional[Sequence[str]] = None) -> float:
  """Share of the multiply-adds of one forward pass spent in the stem and conv tower.

  The stem and tower count every weight matrix at the resolution of its block's input (they
  scale with L); the transformer, final block and heads are `analytic_gflop`'s.
  """
  tower = sum(int(np.prod(v.shape)) for v in model.trunk.stem.trainable_variables
              if v.name.endswith('/w:0')) * sequence_length
  for i, block in enumerate(model.trunk.conv_tower.blocks):
    weights = sum(int(np.prod(v.shape)) for v in block.trainable_variables
                  if v.name.endswith('/w:0'))
    tower += weights * sequence_length // 2**(i + 1)
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


@dataclasses.dataclass(frozen=True)
class _Patch:
  """Tower bins [first, last) taken from a patch computed over bins [start, start + P)."""
  start: int
  first: int
  last: int


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
      patch_bins: candidate patch sizes in tower bins (each is traced once when first used);
        default: the bins one SNV reaches (`reach`) and 2, 4 and 8 times that, up to T.
      batch_size: spliced towers per transformer pass.
      patch_batch_size: patches per conv-tower call.
    """
    model = forward.model
    self.forward = forward
    self.sequence_length = forward.sequence_length
    self.num_bins = forward.sequence_length // BIN
    # The context each side of a patch: the receptive radius in whole bins (`tower_window` needs
    # a multiple of 128 bp). The tower bins a variant at x changes: `_reached_bins`.
    self.radius = receptive_radius(model)
    self.halo = -(-self.radius // BIN) * BIN
    self.reach = int(np.ptp(self._reached_bins(self.halo + np.arange(BIN)), axis=0).max() + 1)
    if patch_bins is None:
      patch_bins = [self.reach * factor for factor in (1, 2, 4, 8)]
    self.patch_bins = sorted({min(int(p), self.num_bins) for p in patch_bins if int(p) > 0})
    if not self.patch_bins:
      raise ValueError(f'patch_bins must hold positive sizes, got {patch_bins!r}.')
    self.batch_size = int(batch_size)
    self.patch_batch_size = int(patch_batch_size)
    self.tower_share = tower_share(model, self.sequence_length, forward.heads)
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
      num_blocks = len(model.trunk.conv_tower.blocks)
      dtype = self.forward.dtype

      def patches(windows: tf.Tensor, starts: tf.Tensor) -> tf.Tensor:
        return fast.tower_window(model, tf.cast(windows, dtype), starts * BIN,
                                 self.sequence_length, num_blocks, self.halo)

      self._patch_functions[bins] = tf.function(
          patches, autograph=False, jit_compile=self.forward.mode == 'xla',
          input_signature=[tf.TensorSpec([None, bins * BIN + 2 * self.halo, self.channels],
                                         tf.float32),
                           tf.TensorSpec([None], tf.int32)])
    return self._patch_functions[bins]

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

  def _reached_bins(self, positions: np.ndarray) -> np.ndarray:
    """[2, V]: first and last tower bin whose receptive field holds each position (unclipped)."""
    return np.stack([-((self.radius + BIN - 1 - positions) // BIN),
                     (positions + self.radius) // BIN])

  def _patches_for(self, positions: np.ndarray, bins: int) -> List[_Patch]:
    """Patches of `bins` bins covering every tower bin that a variant at `positions` reaches."""
    low, high = np.clip(self._reached_bins(positions), 0, self.num_bins - 1)
    high = high + 1
    patches, first, last = [], int(low[0]), int(high[0])
    for a, b in list(zip(low[1:].tolist(), high[1:].tolist())) + [(None, None)]:
      if a is not None and a <= last:
        last = max(last, b)
        continue
      for begin in range(first, last, bins):  # Cluster [first, last) in pieces of `bins`.
        start = min(begin, self.num_bins - bins)
        patches.append(_Patch(start, begin, min(begin + bins, last)))
      if a is not None:
        first, last = a, b
    return patches

  def _local_keys(self, haplotypes: List[Tuple[np.ndarray, np.ndarray]], patch: _Patch,
                  bins: int) -> List[Optional[bytes]]:
    """Each haplotype's variants in the receptive field of `patch`, as a key (None: none)."""
    begin = patch.start * BIN - self.radius
    end = (patch.start + bins) * BIN + self.radius
    keys = []
    for positions, bases in haplotypes:
      i, j = np.searchsorted(positions, [begin, end])
      keys.append(None if i == j else positions[i:j].tobytes() + bases[i:j].tobytes())
    return keys

  def _plan(self, haplotypes: List[Tuple[np.ndarray, np.ndarray]]):
    """The cheapest patch size for these (distinct, non-reference) haplotypes:
    (bins, patches, per patch the local key of each haplotype)."""
    positions = np.unique(np.concatenate([p for p, _ in haplotypes]))
    best = None
    for bins in self.patch_bins:
      patches = self._patches_for(positions, bins)
      keys = [self._local_keys(haplotypes, patch, bins) for patch in patches]
      work = sum(len(set(k) - {None}) for k in keys) * (bins * BIN + 2 * self.halo)
      if best is None or work < best[0]:
        best = (work, bins, patches, keys)
    return best[1:]

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

  def work(self, reference: np.ndarray, haplotypes: Iterable[Haplotype], *,
           offset: int = 0) -> HaplotypeStats:
    """The `HaplotypeStats` that `__call__` would report for these inputs, without running the
    model (the plan only: distinct haplotypes, patches, transformer passes)."""
    haplotypes = list(haplotypes)
    reference = self._crop(np.asarray(reference, np.float32))
    stats = HaplotypeStats(haplotypes=len(haplotypes), windows=1, tower_share=self.tower_share,
                           sequence_length=self.sequence_length)
    distinct = {self._canonical(reference, haplotype, offset) for haplotype in haplotypes}
    changed = [(np.asarray(p, np.int64), np.asarray(b, np.int8)) for p, b in distinct if p]
    stats.distinct, stats.reference_like = len(distinct), len(distinct) - len(changed)
    if changed:
      bins, _, keys = self._plan(changed)
      stats.patches = sum(len(set(k) - {None}) for k in keys)
      stats.tower_bp = stats.patches * (bins * BIN + 2 * self.halo)
      stats.transformer_passes = len(changed)
    return stats

  def _predict(self, reference: np.ndarray, tower: tf.Tensor,
               haplotypes: List[Tuple[np.ndarray, np.ndarray]],
               stats: HaplotypeStats) -> List[Outputs]:
    """Outputs of distinct haplotypes that differ from the reference."""
    bins, patches, keys = self._plan(haplotypes)
    padded = np.pad(reference, [(self.halo, self.halo), (0, 0)])
    width = bins * BIN + 2 * self.halo
    rows = np.tile(np.arange(self.num_bins, dtype=np.int32), (len(haplotypes), 1))  # [D, T]
    windows, starts = [], []
    for patch, patch_keys in zip(patches, keys):
      computed: Dict[bytes, int] = {}
      begin = patch.start * BIN  # In `padded`: the window's first position.
      owned = np.arange(patch.first, patch.last)
      for d, key in enumerate(patch_keys):
        if key is None:
          continue  # The reference tower's bins.
        if key not in computed:
          computed[key] = len(windows)
          window = padded[begin:begin + width].copy()
          positions, bases = haplotypes[d]
          inside = ((positions >= begin - self.radius) &  # The patch's receptive field.
                    (positions < begin + bins * BIN + self.radius))
          window[positions[inside] + self.halo - begin, :4] = np.eye(4, dtype=np.float32)[
              bases[inside]]
          windows.append(window)
          starts.append(patch.start)
        rows[d, patch.first:patch.last] = (self.num_bins + computed[key] * bins +
                                           owned - patch.start)
    stats.patches += len(windows)
    stats.tower_bp += len(windows) * width
    function = self._patch_function(bins)
    parts = [tower[0]]  # [T, C]
    for i in range(0, len(windows), self.patch_batch_size):
      computed_bins = function(np.stack(windows[i:i + self.patch_batch_size]),
                               np.asarray(starts[i:i + self.patch_batch_size], np.int32))
      parts.append(tf.reshape(computed_bins, [-1, tower.shape[-1]]))
    table = tf.concat(parts, axis=0)  # [T + patches · P, C]
    results = []
    for i in range(0, len(haplotypes), self.batch_size):
      outputs = self._splice(table, rows[i:i + self.batch_size])
      results.extend({head: value.numpy()[j] for head, value in outputs.items()}
                     for j in range(len(rows[i:i + self.batch_size])))
    stats.transformer_passes += len(haplotypes)
    return results
