"""Attribution: gradient × input contribution scores, in-silico saturation mutagenesis, and
enhancer–gene link scores (Avsec et al. 2021, Fig. 2a and the enhancer prioritisation analysis).

Every method explains one scalar *target*: the prediction of a head, weighted by a `target_mask`
[T, N] (T output bins, N tracks of the head) and, by default, averaged over the mask
(`reduction='mean'`, exactly as the usage colab's `contribution_input_grad`):

    target(x) = sum(prediction(x)[T, N] * mask) / sum(mask)

Shapes: B = batch, L = input length in bp, T = output bins, N = tracks, W = window length in bp.
"""

import dataclasses
import math
import weakref
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from enformer.enformer import BIN_SIZE, Enformer

Reduction = str  # 'mean' (colab) or 'sum'.
REDUCTIONS = ('mean', 'sum')
BASES = 'ACGT'


# --------------------------------------------------------------------------- model adaptation

def _forward_fn(model, head: str) -> Callable[[tf.Tensor], tf.Tensor]:
  """Returns f(x [B, L, 4] float32) → predictions of `head` [B, T, N] that gradients flow through.

  Accepts an `Enformer` module, an object with a `.model` attribute (the package's Predictor or a
  `hub.load(...)` root, whose `.model` has `predict_on_batch`), or anything with a differentiable
  `predict_on_batch(x) -> dict` (a SavedModel's restored function).
  """
  seen = set()
  while not isinstance(model, Enformer) and hasattr(model, 'model') and id(model) not in seen:
    seen.add(id(model))
    model = model.model
  if isinstance(model, Enformer):
    if head not in model.heads:
      raise ValueError(f'Unknown head {head!r}; this model has heads {model.head_names}.')
    ref = weakref.ref(model)
    return lambda x: ref()(x, is_training=False, output_heads=[head])[head]
  predict = getattr(model, 'predict_on_batch', None)
  if predict is None:
    raise ValueError(
        f'Cannot compute attributions for a {type(model).__name__}: pass an enformer.Enformer '
        'module, a Predictor from enformer.load_model, or a TF-Hub/SavedModel object whose '
        '.model.predict_on_batch is a TensorFlow function.')

  def forward(x: tf.Tensor) -> tf.Tensor:
    outputs = predict(x)
    if head not in outputs:
      raise ValueError(f'Unknown head {head!r}; the model returns heads {sorted(outputs)}.')
    return outputs[head]

  return forward


@dataclasses.dataclass
class _CompiledFunctions:
  gradient_times_input: Callable
  target_score: Callable


# (id(model), head, reduction) → compiled functions; entries vanish with their model.
_CACHE: Dict[Tuple[int, str, str], _CompiledFunctions] = {}


def _compiled(model, head: str, reduction: Reduction) -> _CompiledFunctions:
  if reduction not in REDUCTIONS:
    raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}.')
  key = (id(model), head, reduction)
  if key in _CACHE:
    return _CACHE[key]
  forward = _forward_fn(model, head)

  def target_score(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, L, 4], [T, N] → [B]: the masked target of each sequence."""
    prediction = tf.cast(forward(x), tf.float32)  # [B, T, N]
    if prediction.shape[1] is not None and mask.shape[0] is not None and (
        prediction.shape[1] != mask.shape[0] or prediction.shape[2] != mask.shape[1]):
      raise ValueError(
          f'target_mask has shape {mask.shape.as_list()} but the {head!r} head predicts '
          f'[{prediction.shape[1]} bins, {prediction.shape[2]} tracks] for inputs of '
          f'{x.shape[1]} bp. Build the mask with enformer.attribution.target_mask('
          f'num_bins={prediction.shape[1]}, num_tracks={prediction.shape[2]}, ...).')
    score = tf.reduce_sum(prediction * mask[tf.newaxis], axis=[1, 2])
    if reduction == 'mean':
      score = score / tf.reduce_sum(mask)
    return score

  def gradient_times_input(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, L, 4], [T, N] → [B, L]: d target / d x · x, summed over the 4 channels."""
    with tf.GradientTape() as tape:
      tape.watch(x)
      # Inference mode: sequences are independent, so the gradient of the batch sum is the
      # gradient of each sequence's own target.
      total = tf.reduce_sum(target_score(x, mask))
    gradient = tape.gradient(total, x)
    if gradient is None:
      raise ValueError('No gradient flows from the model output to its input; attribution '
                       'needs a differentiable model (a SavedModel exported without gradients '
                       'cannot be used — load the checkpoint instead).')
    return tf.reduce_sum(gradient * x, axis=-1)

  functions = _CompiledFunctions(
      gradient_times_input=tf.function(gradient_times_input, reduce_retracing=True),
      target_score=tf.function(target_score, reduce_retracing=True))
  _CACHE[key] = functions
  try:
    weakref.finalize(model, _CACHE.pop, key, None)
  except TypeError:  # Not weak-referenceable: keep the entry (ids of live objects are unique).
    pass
  return functions


def _as_batch(sequence_one_hot) -> Tuple[tf.Tensor, bool]:
  """[L, 4] or [B, L, 4] (any numeric / bool dtype) → (float32 [B, L, 4], had_batch_axis)."""
  x = np.asarray(sequence_one_hot) if not tf.is_tensor(sequence_one_hot) else sequence_one_hot
  rank = len(x.shape)
  if rank not in (2, 3):
    raise ValueError(f'sequence_one_hot must be [L, 4] or [B, L, 4], got shape {tuple(x.shape)}. '
                     'Encode sequences with enformer.one_hot_encode.')
  x = tf.cast(tf.convert_to_tensor(x), tf.float32)
  return (x if rank == 3 else x[tf.newaxis]), rank == 3


def _as_mask(target_mask) -> tf.Tensor:
  mask = tf.cast(tf.convert_to_tensor(np.asarray(target_mask) if not tf.is_tensor(target_mask)
                                      else target_mask), tf.float32)
  if mask.shape.rank != 2:
    raise ValueError(f'target_mask must be [bins, tracks], got shape {mask.shape.as_list()}. '
                     'Build it with enformer.attribution.target_mask(...).')
  if not float(tf.reduce_sum(tf.abs(mask))) > 0:
    raise ValueError('target_mask selects nothing (all zeros): set the chosen bins and tracks '
                     'to 1.')
  return mask


# --------------------------------------------------------------------------- target masks

def parse_index_list(text: str) -> List[int]:
  """'4828,5111' or '447-449' or '1,5-7' → sorted unique indices (ranges inclusive)."""
  indices = set()
  for part in str(text).split(','):
    part = part.strip()
    if not part:
      continue
    try:
      if '-' in part[1:]:
        first, last = part.split('-', 1) if not part.startswith('-') else (part, '')
        first_i, last_i = int(first), int(last)
        if last_i < first_i:
          raise ValueError
        indices.update(range(first_i, last_i + 1))
      else:
        indices.add(int(part))
    except ValueError:
      raise ValueError(f'Cannot read index {part!r} in {text!r}: use comma-separated integers '
                       'and inclusive ranges, e.g. "4828,5111" or "447-449".') from None
  if not indices:
    raise ValueError(f'No indices in {text!r}; give e.g. "447-449" or "4828,5111".')
  return sorted(indices)


def target_mask(num_bins: int, num_tracks: int, bins: Union[Sequence[int], str],
                tracks: Union[Sequence[int], str]) -> np.ndarray:
  """Mask [num_bins, num_tracks] float32 that is 1 at every (bin, track) of `bins` × `tracks`.

  `bins` and `tracks` are index lists or strings like '447-449' and '4828,5111'. Negative
  indices count from the end. Out-of-range indices raise ValueError.
  """
  bins = parse_index_list(bins) if isinstance(bins, str) else [int(b) for b in bins]
  tracks = parse_index_list(tracks) if isinstance(tracks, str) else [int(t) for t in tracks]
  for name, values, size in (('bin', bins, num_bins), ('track', tracks, num_tracks)):
    if not values:
      raise ValueError(f'Select at least one {name}.')
    bad = [v for v in values if not -size <= v < size]
    if bad:
      raise ValueError(f'{name} indices {bad} are out of range: the model has {size} {name}s '
                       f'(0..{size - 1}).')
  mask = np.zeros((num_bins, num_tracks), np.float32)
  mask[np.ix_(bins, tracks)] = 1.0
  return mask


# --------------------------------------------------------------------------- gradient × input

def contribution_input_grad(model,
                            sequence_one_hot,
                            target_mask,
                            head: str = 'human',
                            reduction: Reduction = 'mean') -> np.ndarray:
  """Gradient × input contribution score of every base (the usage colab's method).

  score[l] = sum_c x[l, c] · d target / d x[l, c], with target = sum(prediction × mask)
  (divided by sum(mask) when `reduction='mean'`, the colab's normalisation).

  Args:
    model: an `Enformer` module, a Predictor (its `.model` is used), or a TF-Hub / SavedModel
      object whose `.model.predict_on_batch` is differentiable.
    sequence_one_hot: [L, 4] or [B, L, 4] one-hot sequence(s).
    target_mask: [T, N] weights of the head's prediction (T output bins, N tracks); see
      `target_mask(...)`.
    head: output head, e.g. 'human' or 'mouse'.
    reduction: 'mean' (divide by sum(mask), default) or 'sum'.

  Returns:
    float32 numpy [L] (or [B, L] for a batch): the contribution of each base.
  """
  x, batched = _as_batch(sequence_one_hot)
  mask = _as_mask(target_mask)
  scores = _compiled(model, head, reduction).gradient_times_input(x, mask).numpy()  # [B, L]
  return scores if batched else scores[0]


def pool_contributions(scores: np.ndarray,
                       num_bins: Optional[int] = None,
                       bin_size: int = BIN_SIZE,
                       statistic: str = 'mean') -> np.ndarray:
  """Pools |scores| into bins aligned with the model's output bins.

  The model sees L / bin_size bins and outputs the central `num_bins` of them (target_length);
  this returns the same central bins, as the colab's
  `avg_pool1d(|scores|, 128)[1088:-1088]` does for 393,216 bp inputs.

  Args:
    scores: [L] or [B, L] per-base contributions.
    num_bins: output bins to keep (centre crop), default all L / bin_size.
    bin_size: bp per bin (128).
    statistic: 'mean' (colab) or 'sum' of |scores| per bin.

  Returns:
    [num_bins] or [B, num_bins].
  """
  scores = np.abs(np.asarray(scores, np.float32))
  length = scores.shape[-1]
  if length % bin_size:
    raise ValueError(f'Score length {length} is not divisible by bin_size={bin_size}; pass the '
                     'scores of a whole model input.')
  total_bins = length // bin_size
  num_bins = total_bins if num_bins is None else int(num_bins)
  if num_bins > total_bins or (total_bins - num_bins) % 2:
    raise ValueError(f'Cannot centre-crop {total_bins} bins to {num_bins}: need num_bins <= '
                     f'{total_bins} with an even difference.')
  if statistic not in ('mean', 'sum'):
    raise ValueError(f"statistic must be 'mean' or 'sum', got {statistic!r}.")
  binned = scores.reshape(scores.shape[:-1] + (total_bins, bin_size))
  binned = binned.mean(-1) if statistic == 'mean' else binned.sum(-1)
  trim = (total_bins - num_bins) // 2
  return binned[..., trim:trim + num_bins]
