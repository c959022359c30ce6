"""Gradient × input contribution scores (Avsec et al. 2021, Fig. 2a; the usage colab's method).

Every method of `enformer.interpret` explains one scalar *target*: the prediction of a head,
weighted by a `target_mask` [T, N] (T output bins, N tracks of the head) and, by default, averaged
over the mask (`reduction='mean'`, exactly as the usage colab's `contribution_input_grad`):

    target(x) = sum(prediction(x)[T, N] * mask) / sum(mask)

This module holds the differentiable forward (`forward_function`), its compiled target and
gradient functions (shared with `enformer.interpret.ism`), target masks, gradient × input and
the pooling of per-base scores into output bins.

Shapes: B = batch, L = input length in bp, T = output bins, N = tracks, W = window length in bp,
C = input channels: 4 one-hot (A, C, G, T) + E extra per-base tracks (e.g. conservation) for a
model built with `input_channels = 4 + E`.

Models with extra input channels: every method takes the full [L, 4 + E] input. Gradient × input
scores sum over the 4 nucleotide channels only (the contribution of the bases); the extra channels'
gradient × input is returned separately by `extra_channel_contributions` ([L, E]).
"""

import dataclasses
import weakref
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import tensorflow as tf

from enformer.inference import fast
from enformer.io.targets import Selector, select_tracks
from enformer.enformer import BIN_SIZE, Enformer
from enformer.sequence import NUM_NUCLEOTIDES

Reduction = str  # 'mean' (colab) or 'sum'.
REDUCTIONS = ('mean', 'sum')

# --------------------------------------------------------------------------- model adaptation


def unwrap_model(model) -> Tuple[object, Optional[int]]:
  """(innermost model, input length it sees) following `.model` (Predictor → Enformer, hub root →
  its `.model`). The length is a Predictor's `model_sequence_length` (it centre-crops longer
  inputs to it), else None."""
  crop_length = None
  seen = set()
  while (
      not isinstance(model, Enformer)
      and getattr(model, 'model', None) is not None
      and id(model) not in seen
  ):
    seen.add(id(model))
    if crop_length is None and getattr(model, 'model_sequence_length', None):
      crop_length = int(model.model_sequence_length)
    model = model.model
  return model, crop_length


def forward_function(model, head: str, fast_path: bool = True) -> Callable[[tf.Tensor], tf.Tensor]:
  """Returns f(x [B, L, C] float32) → predictions of `head` [B, T, N] that gradients flow through.

  Accepts an `Enformer` module, an object with a `.model` attribute (the package's Predictor or a
  `hub.load(...)` root, whose `.model` has `predict_on_batch`), or anything with a differentiable
  `predict_on_batch(x) -> dict` (a SavedModel's restored function). Inputs longer than a
  Predictor's `model_sequence_length` are centre-cropped to it, as its predict_on_batch does (the
  cropped bases then get zero gradient).
  """
  outer = model
  model, crop_length = unwrap_model(model)
  if isinstance(model, Enformer):
    if head not in model.heads:
      raise ValueError(f'Unknown head {head!r}; this model has heads {model.head_names}.')
    model.build_variables()  # The fused forward reads the variables directly.
    ref = weakref.ref(model)

    def forward_module(x: tf.Tensor) -> tf.Tensor:
      if crop_length is not None and x.shape[1] is not None and x.shape[1] > crop_length:
        trim = (x.shape[1] - crop_length) // 2
        x = x[:, trim : trim + crop_length]
      if not fast_path:  # The reference op sequence.
        return ref()(x, is_training=False, output_heads=[head])[head]
      # The fused inference forward of enformer.inference.fast (= model(x, is_training=False) within
      # float32 rounding; faster, and its gradient needs less memory).
      embedding = fast.fast_trunk(ref(), x, fast.chunk_length_for(x.shape[1]))
      return fast.fast_heads(ref(), embedding, [head])[head]

    return forward_module
  predict = getattr(model, 'predict_on_batch', None)
  if predict is None or getattr(outer, 'model', 0) is None:
    raise ValueError(
        f'Cannot compute attributions for a {type(outer).__name__} without a differentiable '
        'model: pass an enformer.Enformer module, a Predictor that wraps one (or call the '
        "Predictor's own contribution_input_grad), or a TF-Hub/SavedModel object whose "
        '.model.predict_on_batch is a TensorFlow function.'
    )

  def forward(x: tf.Tensor) -> tf.Tensor:
    outputs = predict(x)
    if head not in outputs:
      raise ValueError(f'Unknown head {head!r}; the model returns heads {sorted(outputs)}.')
    return outputs[head]

  return forward


@dataclasses.dataclass
class _CompiledFunctions:
  gradient_times_input: Callable  # [B, L, C], [T, N] → [B, L, C] gradient × input per channel.
  target_score: Callable
  gradient: Callable  # [B, L, C], [T, N] → [B, L, C] d target / d x.


# (id(model), head, reduction, input shape, mask shape) → compiled functions; entries vanish
# with their model.
_CACHE: Dict[tuple, _CompiledFunctions] = {}


def compiled_functions(
    model, head: str, reduction: Reduction, x: tf.Tensor, mask: tf.Tensor, fast_path: bool = True
) -> _CompiledFunctions:
  """tf.functions for inputs shaped like x ([B, L, C], any B) and this mask shape.

  One graph per sequence length: the batch axis is polymorphic (no retracing when it changes),
  the length is static (the model's pooling needs it).
  """
  if reduction not in REDUCTIONS:
    raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}.')
  length, channels = int(x.shape[1]), int(x.shape[2])
  mask_shape = tuple(int(d) for d in mask.shape)
  key = (id(model), head, reduction, length, channels, mask_shape, fast_path)
  if key in _CACHE:
    return _CACHE[key]
  forward = forward_function(model, head, fast_path)

  def target_score(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, L, C], [T, N] → [B]: the masked target of each sequence."""
    prediction = tf.cast(forward(x), tf.float32)  # [B, T, N]
    if prediction.shape[1] is not None and (
        prediction.shape[1] != mask.shape[0] or prediction.shape[2] != mask.shape[1]
    ):
      raise ValueError(
          f'target_mask has shape {mask.shape.as_list()} but the {head!r} head predicts '
          f'[{prediction.shape[1]} bins, {prediction.shape[2]} tracks] for inputs of '
          f'{x.shape[1]} bp. Build the mask with enformer.interpret.target_mask('
          f'num_bins={prediction.shape[1]}, num_tracks={prediction.shape[2]}, ...).'
      )
    score = tf.reduce_sum(prediction * mask[tf.newaxis], axis=[1, 2])
    if reduction == 'mean':
      score = score / tf.reduce_sum(mask)
    return score

  def gradient(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, L, C], [T, N] → [B, L, C]: d target / d x for every channel."""
    with tf.GradientTape() as tape:
      tape.watch(x)
      # Inference mode: sequences are independent, so the gradient of the batch sum is the
      # gradient of each sequence's own target.
      total = tf.reduce_sum(target_score(x, mask))
    grads = tape.gradient(total, x)
    if grads is None:
      raise ValueError(
          'No gradient flows from the model output to its input; attribution '
          'needs a differentiable model (a SavedModel exported without gradients '
          'cannot be used — load the checkpoint instead).'
      )
    return grads

  def gradient_times_input(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, L, C], [T, N] → [B, L, C]: d target / d x · x for every channel."""
    return gradient(x, mask) * x

  signature = [
      tf.TensorSpec([None, length, channels], tf.float32),
      tf.TensorSpec(mask_shape, tf.float32),
  ]
  functions = _CompiledFunctions(
      gradient_times_input=tf.function(
          gradient_times_input, input_signature=signature, autograph=False
      ),
      target_score=tf.function(target_score, input_signature=signature, autograph=False),
      gradient=tf.function(gradient, input_signature=signature, autograph=False),
  )
  _CACHE[key] = functions
  try:
    weakref.finalize(model, _CACHE.pop, key, None)
  except TypeError:  # Not weak-referenceable: keep the entry (ids of live objects are unique).
    pass
  return functions


def as_batch(sequence_one_hot) -> Tuple[tf.Tensor, bool]:
  """[L, C] or [B, L, C] (any numeric / bool dtype) → (float32 [B, L, C], had_batch_axis)."""
  x = np.asarray(sequence_one_hot) if not tf.is_tensor(sequence_one_hot) else sequence_one_hot
  rank = len(x.shape)
  if rank not in (2, 3) or x.shape[-1] < NUM_NUCLEOTIDES:
    raise ValueError(
        f'sequence_one_hot must be [L, C] or [B, L, C] with C = 4 one-hot channels '
        f'(+ extra input tracks), got shape {tuple(x.shape)}. Encode sequences with '
        'enformer.one_hot_encode.'
    )
  x = tf.cast(tf.convert_to_tensor(x), tf.float32)
  return (x if rank == 3 else x[tf.newaxis]), rank == 3


def as_mask(target_mask) -> tf.Tensor:
  mask = tf.cast(
      tf.convert_to_tensor(
          np.asarray(target_mask) if not tf.is_tensor(target_mask) else target_mask
      ),
      tf.float32,
  )
  if mask.shape.rank != 2:
    raise ValueError(
        f'target_mask must be [bins, tracks], got shape {mask.shape.as_list()}. '
        'Build it with enformer.interpret.target_mask(...).'
    )
  if not float(tf.reduce_sum(tf.abs(mask))) > 0:
    raise ValueError(
        'target_mask selects nothing (all zeros): set the chosen bins and tracks to 1.'
    )
  return mask


# --------------------------------------------------------------------------- target masks


def parse_index_list(text: str) -> List[int]:
  """Output bins: '447-449' or '1,5-7' → sorted unique indices (ranges inclusive; a single
  negative index counts from the end). Tracks are read by `enformer.io.targets.select_tracks`."""
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
      raise ValueError(
          f'Cannot read index {part!r} in {text!r}: use comma-separated integers '
          'and inclusive ranges, e.g. "4828,5111" or "447-449".'
      ) from None
  if not indices:
    raise ValueError(f'No indices in {text!r}; give e.g. "447-449" or "4828,5111".')
  return sorted(indices)


def target_mask(
    num_bins: int,
    num_tracks: int,
    bins: Union[Sequence[int], str],
    tracks: Union[Sequence[Selector], str],
    targets: Optional[pd.DataFrame] = None,
) -> np.ndarray:
  """Mask [num_bins, num_tracks] float32 that is 1 at every (bin, track) of `bins` × `tracks`.

  `bins`: an index list or a string like '447-449' (`parse_index_list`; negative indices count
  from the end). `tracks`: track selectors as `enformer.io.targets.select_tracks` reads them
  (indices, ranges such as '4828,5111' or '10-12', and with `targets` identifiers or
  description substrings). Out-of-range indices raise ValueError.
  """
  bins = parse_index_list(bins) if isinstance(bins, str) else [int(b) for b in bins]
  tracks = select_tracks(targets, [tracks] if isinstance(tracks, str) else list(tracks), num_tracks)
  for name, values, size in (('bin', bins, num_bins), ('track', tracks, num_tracks)):
    if not values:
      raise ValueError(f'Select at least one {name}.')
    bad = [v for v in values if not -size <= v < size]
    if bad:
      raise ValueError(
          f'{name} indices {bad} are out of range: the model has {size} {name}s '
          f'(0..{size - 1}).'
      )
  mask = np.zeros((num_bins, num_tracks), np.float32)
  mask[np.ix_(bins, tracks)] = 1.0
  return mask


# --------------------------------------------------------------------------- gradient × input


def contribution_input_grad(
    model,
    sequence_one_hot,
    target_mask,
    head: str = 'human',
    reduction: Reduction = 'mean',
    fast: bool = True,
) -> np.ndarray:
  """Gradient × input contribution score of every base (the usage colab's method).

  score[l] = sum_c x[l, c] · d target / d x[l, c] over the 4 nucleotide channels c, with
  target = sum(prediction × mask) (divided by sum(mask) when `reduction='mean'`, the colab's
  normalisation). Extra input channels (C > 4) are fed to the model but not summed; see
  `extra_channel_contributions`.

  Args:
    model: an `Enformer` module, a Predictor (its `.model` is used), or a TF-Hub / SavedModel
      object whose `.model.predict_on_batch` is differentiable.
    sequence_one_hot: [L, C] or [B, L, C] model input(s): one-hot sequence (C = 4), followed
      by the extra per-base tracks of a model with more input channels.
    target_mask: [T, N] weights of the head's prediction (T output bins, N tracks); see
      `target_mask(...)`.
    head: output head, e.g. 'human' or 'mouse'.
    reduction: 'mean' (divide by sum(mask), default) or 'sum'.
    fast: differentiate the fused inference forward of `enformer.inference.fast`
      (default; equal within
      float32 rounding, less time and memory); False: the reference op sequence. Applies to
      Sonnet modules (a SavedModel differentiates its own saved graph).

  Returns:
    float32 numpy [L] (or [B, L] for a batch): the contribution of each base.
  """
  per_channel = gradient_times_input(model, sequence_one_hot, target_mask, head, reduction, fast)
  return per_channel[..., :NUM_NUCLEOTIDES].sum(-1)


def extra_channel_contributions(
    model,
    sequence_one_hot,
    target_mask,
    head: str = 'human',
    reduction: Reduction = 'mean',
    fast: bool = True,
) -> np.ndarray:
  """Gradient × input of the extra input channels (C > 4, e.g. conservation), per position.

  extra[l, e] = x[l, 4 + e] · d target / d x[l, 4 + e]; arguments as for
  `contribution_input_grad`.

  Returns:
    float32 numpy [L, E] (or [B, L, E]); E = C − 4 (0 columns for a one-hot-only model).
  """
  per_channel = gradient_times_input(model, sequence_one_hot, target_mask, head, reduction, fast)
  return per_channel[..., NUM_NUCLEOTIDES:]


def gradient_times_input(
    model, sequence_one_hot, target_mask, head: str, reduction: Reduction, fast: bool = True
) -> np.ndarray:
  """x · d target / d x for every input channel: [L, C] (or [B, L, C]) float32 numpy."""
  x, batched = as_batch(sequence_one_hot)
  mask = as_mask(target_mask)
  functions = compiled_functions(model, head, reduction, x, mask, fast)
  per_channel = functions.gradient_times_input(x, mask).numpy()
  return per_channel if batched else per_channel[0]


def input_gradient(
    model,
    sequence_one_hot,
    target_mask,
    head: str = 'human',
    reduction: Reduction = 'mean',
    fast: bool = True,
) -> np.ndarray:
  """d target / d x of every input channel (the gradient itself, not × input).

  What hypothetical contributions are made of (`enformer.interpret.motifs`): the gradient at
  the bases a sequence does not hold. Arguments as for `contribution_input_grad`.

  Returns:
    float32 numpy [L, C] (or [B, L, C] for a batch).
  """
  x, batched = as_batch(sequence_one_hot)
  mask = as_mask(target_mask)
  grads = compiled_functions(model, head, reduction, x, mask, fast).gradient(x, mask).numpy()
  return grads if batched else grads[0]


def pool_contributions(
    scores: np.ndarray,
    num_bins: Optional[int] = None,
    bin_size: int = BIN_SIZE,
    statistic: str = 'mean',
) -> np.ndarray:
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
    raise ValueError(
        f'Score length {length} is not divisible by bin_size={bin_size}; pass the '
        'scores of a whole model input.'
    )
  total_bins = length // bin_size
  num_bins = total_bins if num_bins is None else int(num_bins)
  if num_bins > total_bins or (total_bins - num_bins) % 2:
    raise ValueError(
        f'Cannot centre-crop {total_bins} bins to {num_bins}: need num_bins <= '
        f'{total_bins} with an even difference.'
    )
  if statistic not in ('mean', 'sum'):
    raise ValueError(f"statistic must be 'mean' or 'sum', got {statistic!r}.")
  binned = scores.reshape(scores.shape[:-1] + (total_bins, bin_size))
  binned = binned.mean(-1) if statistic == 'mean' else binned.sum(-1)
  trim = (total_bins - num_bins) // 2
  return binned[..., trim : trim + num_bins]


def target_prediction(
    model, sequence_one_hot, target_mask, head: str = 'human', reduction: Reduction = 'mean'
) -> np.ndarray:
  """The scalar target explained by the attribution methods: sum(prediction × mask) (/ sum(mask)).

  Returns a float [B] for [B, L, C] inputs, a float for [L, C].
  """
  x, batched = as_batch(sequence_one_hot)
  mask = as_mask(target_mask)
  scores = compiled_functions(model, head, reduction, x, mask).target_score(x, mask).numpy()
  return scores if batched else float(scores[0])


def output_shape(
    model, sequence_length: int, head: str = 'human', input_channels: Optional[int] = None
) -> Tuple[int, int]:
  """(bins, tracks) that `head` predicts for inputs of `sequence_length` bp.

  Read from the configuration of an `Enformer` (no computation); other models (SavedModels) are
  run once on an all-zero input of `input_channels` channels (default the model's
  `input_channels` attribute, e.g. a Predictor's, else 4).
  """
  inner, crop_length = unwrap_model(model)
  if isinstance(inner, Enformer):
    if head not in inner.heads:
      raise ValueError(f'Unknown head {head!r}; this model has heads {inner.head_names}.')
    length = min(int(sequence_length), crop_length or int(sequence_length))
    return inner.output_length(length), int(inner.config['heads'][head])
  if input_channels is None:
    input_channels = int(getattr(model, 'input_channels', NUM_NUCLEOTIDES))
  prediction = forward_function(model, head)(
      tf.zeros([1, int(sequence_length), int(input_channels)], tf.float32)
  )
  return int(prediction.shape[1]), int(prediction.shape[2])


# --------------------------------------------------------------------------- logo matrices


def contribution_logo_matrix(sequence_one_hot: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """[W, 4] matrix for a sequence logo of gradient × input: the reference base carries its score.

  `sequence_one_hot` is [W, 4] or a [W, 4 + E] model input (only the one-hot part is used).
  """
  one_hot = np.asarray(sequence_one_hot, np.float32)[:, :NUM_NUCLEOTIDES]
  return one_hot * np.asarray(scores, np.float32)[:, np.newaxis]
