"""Exact incremental inference for sequences that differ from a reference in a few bases.

Everything before the transformer is local: the stem (width-15 convolution), the six conv-tower
blocks (width-5 convolutions, pointwise residual blocks, pair pooling) and inference batch norm
give each 128 bp conv-tower output a receptive field of a few hundred bp. So the tower output of
a sequence that differs from the reference only in [a, b] equals the reference's except in the
bins whose receptive field reaches [a, b]. `IncrementalForward` computes and keeps the reference
tower output once, recomputes for each alternative only a window of tower bins around its
changes (the halo is derived from the architecture: `enformer.inference.fast.halo_length`),
splices it in
and runs the transformer, final block and heads — about a quarter of a full forward pass at full
size. Alternatives whose changes span more than `max_span` bp (e.g. indels, which shift the
sequence downstream) take the full path. The results equal a full recompute within float32
rounding.

Shapes: L = input length (bp), C_in = input channels, T = L / 128 tower bins, C = tower
channels, K = alternatives, n = recomputed bins, T' = output bins, N = tracks.
"""

import weakref
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from enformer import enformer as enformer_lib
from enformer.inference import fast

Outputs = Dict[str, np.ndarray]


class IncrementalForward:
  """Reference + alternatives of one window: ref [L, C_in], alts [K, L, C_in] → outputs.

  Example:
    >>> forward = enformer.inference.fast.compile_forward(model, 196_608)
    >>> incremental = IncrementalForward(forward)
    >>> ref, alts = incremental(x_ref, x_alts)   # {head: [T', N]}, {head: [K, T', N]}
  """

  def __init__(self, forward: fast.FastForward, max_span: int = 128):
    """Args:
    forward: the compiled fast forward of the model (its length, heads and precision).
    max_span: alternatives whose differing positions span more bp take the full path.
    """
    model = forward.model
    self.forward = forward
    self.sequence_length = forward.sequence_length
    self.num_bins = forward.sequence_length // enformer_lib.BIN_SIZE
    self.halo = fast.halo_length(model, len(model.trunk.conv_tower.blocks))
    self.max_span = int(max_span)
    radius_bins = -(-self.halo // enformer_lib.BIN_SIZE)
    self.patch_bins = 2 * radius_bins + -(-self.max_span // enformer_lib.BIN_SIZE) + 1
    self.window_length = self.patch_bins * enformer_lib.BIN_SIZE + 2 * self.halo
    # Alternatives that took each path since this object was built (tests and benchmarks).
    self.full_passes = 0
    self.incremental_passes = 0
    channels = model.config['input_channels']
    self._alternatives = tf.function(
        self._alternatives_graph,
        autograph=False,
        jit_compile=forward.mode == 'xla',
        input_signature=[
            tf.TensorSpec(
                [1, self.num_bins, model.trunk.conv_tower.blocks[-1].filters], forward.dtype
            ),
            tf.TensorSpec([None, self.window_length, channels], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ],
    )

  def _alternatives_graph(
      self, tower: tf.Tensor, windows: tf.Tensor, starts: tf.Tensor
  ) -> Dict[str, tf.Tensor]:
    """tower [1, T, C] of the reference; windows [K, W, C_in] (input positions
    [128·s − halo, 128·(s + n) + halo) of each alternative); starts [K] = s → {head: [K, T', N]}."""
    model = self.forward.model
    num_blocks = len(model.trunk.conv_tower.blocks)
    dtype = self.forward.dtype

    def patch(args: Tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
      window, start = args
      return fast.tower_window(
          model,
          tf.cast(window[tf.newaxis], dtype),
          start * enformer_lib.BIN_SIZE,
          self.sequence_length,
          num_blocks,
          self.halo,
      )[
          0
      ]  # [n, C]

    patches = tf.map_fn(
        patch,
        (windows, starts),
        parallel_iterations=1,
        fn_output_signature=tf.TensorSpec([self.patch_bins, tower.shape[-1]], dtype),
    )  # [K, n, C]
    offsets = tf.range(self.num_bins)[tf.newaxis] - starts[:, tf.newaxis]  # [K, T]
    inside = (offsets >= 0) & (offsets < self.patch_bins)
    spliced = tf.where(
        inside[..., tf.newaxis],
        tf.gather(patches, tf.clip_by_value(offsets, 0, self.patch_bins - 1), batch_dims=1),
        tower,
    )  # [K, T, C]
    return self.forward.after_tower(spliced)

  def _window_start(self, changed: np.ndarray) -> Optional[int]:
    """First recomputed bin for changes at positions `changed`, or None: full path."""
    first, last = int(changed[0]), int(changed[-1])
    if last - first + 1 > self.max_span or self.num_bins < self.patch_bins:
      return None
    low = (first - self.halo) // enformer_lib.BIN_SIZE
    return int(np.clip(low, 0, self.num_bins - self.patch_bins))

  def _crop(self, x: np.ndarray) -> np.ndarray:
    """Centre-crops [..., L', C_in] inputs longer than the model's L (by an even number of bp)."""
    trim = (x.shape[-2] - self.sequence_length) // 2
    if trim < 0 or x.shape[-2] - self.sequence_length != 2 * trim:
      raise ValueError(
          f'Inputs must be {self.sequence_length:,} bp (or longer by an even number '
          f'of bp, centre-cropped to it), got {x.shape[-2]:,} bp.'
      )
    return x[..., trim : trim + self.sequence_length, :] if trim else x

  def reference(self, reference: np.ndarray) -> 'Reference':
    """Computes and keeps the conv-tower output of `reference` [L, C_in]."""
    reference = self._crop(np.asarray(reference, np.float32))
    tower = self.forward.tower(reference[np.newaxis])
    outputs = {head: value.numpy()[0] for head, value in self.forward.after_tower(tower).items()}
    return Reference(reference, tower, outputs)

  def alternatives(
      self, reference: 'Reference', alternatives: np.ndarray, batch_size: int = 4
  ) -> Outputs:
    """{head: [K, T', N]} for alternatives [K, L, C_in] of `reference` (see `__call__`)."""
    alternatives = self._crop(np.asarray(alternatives, np.float32))
    if alternatives.ndim != 3 or alternatives.shape[1:] != reference.inputs.shape:
      raise ValueError(
          f'Alternatives must be [K, {reference.inputs.shape[0]}, '
          f'{reference.inputs.shape[1]}] like the reference, got '
          f'{alternatives.shape}.'
      )
    results: List[Optional[Outputs]] = [None] * len(alternatives)
    padded = np.pad(alternatives, [(0, 0), (self.halo, self.halo), (0, 0)])
    windows, starts, rows, full = [], [], [], []
    for k, alternative in enumerate(alternatives):
      changed = np.flatnonzero(np.any(alternative != reference.inputs, axis=-1))
      if changed.size == 0:
        results[k] = reference.outputs
        continue
      start = self._window_start(changed)
      if start is None:
        full.append(k)
        continue
      begin = start * enformer_lib.BIN_SIZE  # In `padded`: the window's first position.
      windows.append(padded[k, begin : begin + self.window_length])
      starts.append(start)
      rows.append(k)
    for i in range(0, len(rows), batch_size):
      outputs = self._alternatives(
          reference.tower,
          np.stack(windows[i : i + batch_size]),
          np.asarray(starts[i : i + batch_size], np.int32),
      )
      for j, k in enumerate(rows[i : i + batch_size]):
        results[k] = {head: value.numpy()[j] for head, value in outputs.items()}
    self.incremental_passes += len(rows)
    for i in range(0, len(full), batch_size):
      outputs = self.forward(alternatives[full[i : i + batch_size]])
      for j, k in enumerate(full[i : i + batch_size]):
        results[k] = {head: value.numpy()[j] for head, value in outputs.items()}
    self.full_passes += len(full)
    return {
        head: np.stack([result[head] for result in results])
        if results
        else np.zeros((0,) + value.shape, np.float32)
        for head, value in reference.outputs.items()
    }

  def __call__(
      self, reference: np.ndarray, alternatives: np.ndarray, batch_size: int = 4
  ) -> Tuple[Outputs, Outputs]:
    """Predictions of the reference and of each alternative.

    Args:
      reference: [L, C_in] model input (or longer by an even number of bp: centre-cropped).
      alternatives: [K, L, C_in] model inputs of the same length.
      batch_size: alternatives per transformer pass.

    Returns:
      ({head: [T', N]} of the reference, {head: [K, T', N]} of the alternatives), float32.
    """
    kept = self.reference(reference)
    return kept.outputs, self.alternatives(kept, alternatives, batch_size)


class Reference:
  """A reference window kept by `IncrementalForward.reference`: inputs [L, C_in], conv-tower
  output [1, T, C] and predictions {head: [T', N]}."""

  def __init__(self, inputs: np.ndarray, tower: tf.Tensor, outputs: Outputs):
    self.inputs = inputs
    self.tower = tower
    self.outputs = outputs


# Compiled incremental forwards per model, keyed by (length, heads, precision, max_span).
_SHARED: 'weakref.WeakKeyDictionary[enformer_lib.Enformer, Dict[tuple, IncrementalForward]]' = (
    weakref.WeakKeyDictionary()
)


def shared(
    model: enformer_lib.Enformer,
    sequence_length: int,
    heads: Optional[Sequence[str]] = None,
    *,
    precision: str = 'float32',
    max_span: int = 128,
) -> IncrementalForward:
  """The `IncrementalForward` of `model` for these settings, compiled (traced) once per model and
  process and reused by every later caller: variant scorers, ISM, Dask tasks. Its pass counters
  count over all callers."""
  cache = _SHARED.setdefault(model, {})
  key = (int(sequence_length), None if heads is None else tuple(heads), precision, int(max_span))
  if key not in cache:
    forward = fast.compile_forward(model, int(sequence_length), heads, precision=precision)
    cache[key] = IncrementalForward(forward, max_span=max_span)
  return cache[key]


def for_predictor(
    predictor, heads: Optional[List[str]] = None, max_span: int = 128
) -> Optional[IncrementalForward]:
  """The shared `IncrementalForward` of `predictor.model` (an `enformer.inference` Predictor) with
  the predictor's length and precision; None when the predictor has no Sonnet module (e.g.
  DeepMind's TF-Hub module), which then runs full passes."""
  model = getattr(predictor, 'model', None)
  if model is None:
    return None
  length = getattr(predictor, 'model_sequence_length', None) or predictor.sequence_length
  return shared(
      model, length, heads, precision=getattr(predictor, 'precision', 'float32'), max_span=max_span
  )
