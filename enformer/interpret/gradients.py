"""Attribution: gradient × input contribution scores, in-silico saturation mutagenesis, and
enhancer–gene link scores (Avsec et al. 2021, Fig. 2a and the enhancer prioritisation analysis).

Every method explains one scalar *target*: the prediction of a head, weighted by a `target_mask`
[T, N] (T output bins, N tracks of the head) and, by default, averaged over the mask
(`reduction='mean'`, exactly as the usage colab's `contribution_input_grad`):

    target(x) = sum(prediction(x)[T, N] * mask) / sum(mask)

Shapes: B = batch, L = input length in bp, T = output bins, N = tracks, W = window length in bp,
C = input channels: 4 one-hot (A, C, G, T) + E extra per-base tracks (e.g. conservation) for a
model built with `input_channels = 4 + E`.

Models with extra input channels: every method takes the full [L, 4 + E] input. Gradient × input
scores sum over the 4 nucleotide channels only (the contribution of the bases); the extra channels'
gradient × input is returned separately by `extra_channel_contributions` ([L, E]) and stored in
`IntervalAttribution.extra_scores`. ISM substitutes bases in the 4 nucleotide channels and keeps
the extra channels as they are.
"""

import dataclasses
import math
import weakref
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from enformer.enformer import BIN_SIZE, Enformer
from enformer.sequence import NUM_NUCLEOTIDES

Reduction = str  # 'mean' (colab) or 'sum'.
REDUCTIONS = ('mean', 'sum')


# --------------------------------------------------------------------------- model adaptation

def _unwrap(model) -> Tuple[object, Optional[int]]:
  """(innermost model, input length it sees) following `.model` (Predictor → Enformer, hub root →
  its `.model`). The length is a Predictor's `model_sequence_length` (it centre-crops longer
  inputs to it), else None."""
  crop_length = None
  seen = set()
  while (not isinstance(model, Enformer) and getattr(model, 'model', None) is not None and
         id(model) not in seen):
    seen.add(id(model))
    if crop_length is None and getattr(model, 'model_sequence_length', None):
      crop_length = int(model.model_sequence_length)
    model = model.model
  return model, crop_length


def _forward_fn(model, head: str) -> Callable[[tf.Tensor], tf.Tensor]:
  """Returns f(x [B, L, C] float32) → predictions of `head` [B, T, N] that gradients flow through.

  Accepts an `Enformer` module, an object with a `.model` attribute (the package's Predictor or a
  `hub.load(...)` root, whose `.model` has `predict_on_batch`), or anything with a differentiable
  `predict_on_batch(x) -> dict` (a SavedModel's restored function). Inputs longer than a
  Predictor's `model_sequence_length` are centre-cropped to it, as its predict_on_batch does (the
  cropped bases then get zero gradient).
  """
  outer = model
  model, crop_length = _unwrap(model)
  if isinstance(model, Enformer):
    if head not in model.heads:
      raise ValueError(f'Unknown head {head!r}; this model has heads {model.head_names}.')
    from enformer import fast  # pylint: disable=import-outside-toplevel
    model.build_variables()  # The fused forward reads the variables directly.
    ref = weakref.ref(model)

    def forward_module(x: tf.Tensor) -> tf.Tensor:
      if crop_length is not None and x.shape[1] is not None and x.shape[1] > crop_length:
        trim = (x.shape[1] - crop_length) // 2
        x = x[:, trim:trim + crop_length]
      # The fused inference forward of enformer.fast (= model(x, is_training=False) within
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
        '.model.predict_on_batch is a TensorFlow function.')

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


# (id(model), head, reduction, input shape, mask shape) → compiled functions; entries vanish
# with their model.
_CACHE: Dict[tuple, _CompiledFunctions] = {}


def _compiled(model, head: str, reduction: Reduction, x: tf.Tensor,
              mask: tf.Tensor) -> _CompiledFunctions:
  """tf.functions for inputs shaped like x ([B, L, C], any B) and this mask shape.

  One graph per sequence length: the batch axis is polymorphic (no retracing when it changes),
  the length is static (the model's pooling needs it).
  """
  if reduction not in REDUCTIONS:
    raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}.')
  length, channels = int(x.shape[1]), int(x.shape[2])
  mask_shape = tuple(int(d) for d in mask.shape)
  key = (id(model), head, reduction, length, channels, mask_shape)
  if key in _CACHE:
    return _CACHE[key]
  forward = _forward_fn(model, head)

  def target_score(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, L, C], [T, N] → [B]: the masked target of each sequence."""
    prediction = tf.cast(forward(x), tf.float32)  # [B, T, N]
    if prediction.shape[1] is not None and (
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
    """[B, L, C], [T, N] → [B, L, C]: d target / d x · x for every channel."""
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
    return gradient * x

  signature = [tf.TensorSpec([None, length, channels], tf.float32),
               tf.TensorSpec(mask_shape, tf.float32)]
  functions = _CompiledFunctions(
      gradient_times_input=tf.function(gradient_times_input, input_signature=signature),
      target_score=tf.function(target_score, input_signature=signature))
  _CACHE[key] = functions
  try:
    weakref.finalize(model, _CACHE.pop, key, None)
  except TypeError:  # Not weak-referenceable: keep the entry (ids of live objects are unique).
    pass
  return functions


def _as_batch(sequence_one_hot) -> Tuple[tf.Tensor, bool]:
  """[L, C] or [B, L, C] (any numeric / bool dtype) → (float32 [B, L, C], had_batch_axis)."""
  x = np.asarray(sequence_one_hot) if not tf.is_tensor(sequence_one_hot) else sequence_one_hot
  rank = len(x.shape)
  if rank not in (2, 3) or x.shape[-1] < NUM_NUCLEOTIDES:
    raise ValueError(f'sequence_one_hot must be [L, C] or [B, L, C] with C = 4 one-hot channels '
                     f'(+ extra input tracks), got shape {tuple(x.shape)}. Encode sequences with '
                     'enformer.one_hot_encode.')
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

  Returns:
    float32 numpy [L] (or [B, L] for a batch): the contribution of each base.
  """
  per_channel = _gradient_times_input(model, sequence_one_hot, target_mask, head, reduction)
  return per_channel[..., :NUM_NUCLEOTIDES].sum(-1)


def extra_channel_contributions(model,
                                sequence_one_hot,
                                target_mask,
                                head: str = 'human',
                                reduction: Reduction = 'mean') -> np.ndarray:
  """Gradient × input of the extra input channels (C > 4, e.g. conservation), per position.

  extra[l, e] = x[l, 4 + e] · d target / d x[l, 4 + e]; arguments as for
  `contribution_input_grad`.

  Returns:
    float32 numpy [L, E] (or [B, L, E]); E = C − 4 (0 columns for a one-hot-only model).
  """
  per_channel = _gradient_times_input(model, sequence_one_hot, target_mask, head, reduction)
  return per_channel[..., NUM_NUCLEOTIDES:]


def _gradient_times_input(model, sequence_one_hot, target_mask, head: str,
                          reduction: Reduction) -> np.ndarray:
  """x · d target / d x for every input channel: [L, C] (or [B, L, C]) float32 numpy."""
  x, batched = _as_batch(sequence_one_hot)
  mask = _as_mask(target_mask)
  per_channel = _compiled(model, head, reduction, x, mask).gradient_times_input(x, mask).numpy()
  return per_channel if batched else per_channel[0]


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


def target_prediction(model,
                      sequence_one_hot,
                      target_mask,
                      head: str = 'human',
                      reduction: Reduction = 'mean') -> np.ndarray:
  """The scalar target explained by the attribution methods: sum(prediction × mask) (/ sum(mask)).

  Returns a float [B] for [B, L, C] inputs, a float for [L, C].
  """
  x, batched = _as_batch(sequence_one_hot)
  mask = _as_mask(target_mask)
  scores = _compiled(model, head, reduction, x, mask).target_score(x, mask).numpy()
  return scores if batched else float(scores[0])


# --------------------------------------------------------------------------- in-silico mutagenesis

def _check_window(window: Optional[Tuple[int, int]], length: int) -> Tuple[int, int]:
  if window is None:
    return 0, length
  start, end = int(window[0]), int(window[1])
  if not 0 <= start < end <= length:
    raise ValueError(f'ISM window {window} must satisfy 0 <= start < end <= {length} (positions '
                     'within the input sequence, 0-based, end exclusive).')
  return start, end


def in_silico_mutagenesis(model,
                          sequence_one_hot,
                          target_mask,
                          window: Optional[Tuple[int, int]] = None,
                          head: str = 'human',
                          reduction: Reduction = 'mean',
                          batch_size: int = 8,
                          progress: bool = True) -> np.ndarray:
  """In-silico saturation mutagenesis: Δ target for every single-base substitution in a window.

  Each base of the window is replaced by each of the other three bases (one mutant sequence per
  substitution, evaluated in batches of `batch_size`), and the masked target is compared with the
  reference sequence's: ism[i, b] = target(x with base b at window_start + i) − target(x).
  Only the 4 nucleotide channels are mutated; extra input channels keep their values.

  Args:
    model: as for `contribution_input_grad`.
    sequence_one_hot: [L, C] model input (or [1, L, C]): one-hot sequence + extra tracks.
    target_mask: [T, N] weights of the head's prediction; see `target_mask(...)`.
    window: (start, end) positions within the sequence (0-based, end exclusive); default the
      whole sequence (3·L forward passes — choose a window for long inputs).
    head: output head.
    reduction: 'mean' (default, as for gradient × input) or 'sum'.
    batch_size: mutant sequences per forward pass.
    progress: show a tqdm progress bar.

  Returns:
    float32 numpy [W, 4] in A, C, G, T order; 0 at the reference base. At an N position (all-zero
    row) all four bases are substituted.
  """
  x, _ = _as_batch(sequence_one_hot)
  if x.shape[0] != 1:
    raise ValueError(f'in_silico_mutagenesis takes one sequence, got a batch of {x.shape[0]}; '
                     'loop over the sequences.')
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
  reference = x[0].numpy()  # [L, C]
  start, end = _check_window(window, reference.shape[0])
  mask = _as_mask(target_mask)
  target_score = _compiled(model, head, reduction, x, mask).target_score
  reference_score = float(target_score(x, mask).numpy()[0])

  # Every (position, base) that differs from the reference.
  positions, bases = np.nonzero(reference[start:end, :NUM_NUCLEOTIDES] != 1.0)
  identity = np.eye(4, dtype=np.float32)
  ism = np.zeros((end - start, 4), np.float32)
  from tqdm.auto import tqdm  # Light import; only needed here.
  with tqdm(total=len(positions), desc='ISM', unit='mutant', disable=not progress) as bar:
    for first in range(0, len(positions), batch_size):
      batch_positions = positions[first:first + batch_size]
      batch_bases = bases[first:first + batch_size]
      count = len(batch_positions)
      # Pad the last batch to a full one, so every call has the same shape (no retracing).
      mutants = np.repeat(reference[np.newaxis], batch_size, axis=0)  # [batch, L, C]
      mutants[np.arange(count), start + batch_positions, :NUM_NUCLEOTIDES] = identity[batch_bases]
      scores = target_score(tf.constant(mutants), mask).numpy()[:count]
      ism[batch_positions, batch_bases] = scores - reference_score
      bar.update(count)
  return ism


# --------------------------------------------------------------------------- logo matrices

def contribution_logo_matrix(sequence_one_hot: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """[W, 4] matrix for a sequence logo of gradient × input: the reference base carries its score.

  `sequence_one_hot` is [W, 4] or a [W, 4 + E] model input (only the one-hot part is used).
  """
  one_hot = np.asarray(sequence_one_hot, np.float32)[:, :NUM_NUCLEOTIDES]
  return one_hot * np.asarray(scores, np.float32)[:, np.newaxis]


def ism_logo_matrix(sequence_one_hot: np.ndarray, ism: np.ndarray) -> np.ndarray:
  """[W, 4] logo matrix of ISM: the reference base carries −(mean Δ of its 3 substitutions).

  A base whose mutation lowers the target gets a positive letter, as in gradient × input.
  `sequence_one_hot` is [W, 4] or a [W, 4 + E] model input (only the one-hot part is used).
  """
  one_hot = np.asarray(sequence_one_hot, np.float32)[:, :NUM_NUCLEOTIDES]
  ism = np.asarray(ism, np.float32)
  return one_hot * (-ism.sum(axis=1, keepdims=True) / 3.0)


# --------------------------------------------------------------------------- enhancer–gene links

@dataclasses.dataclass
class EnhancerLink:
  """Link score of one enhancer for one gene: sum of |contribution| around the enhancer."""
  name: str
  chrom: str
  start: int
  end: int
  score: float
  distance_to_tss: Optional[int]


def enhancer_link_scores(contributions: np.ndarray,
                         sequence_chrom: str,
                         sequence_start: int,
                         enhancers: Iterable,
                         window: int = 2000,
                         tss: Optional[int] = None,
                         statistic: str = 'sum') -> List[EnhancerLink]:
  """Scores enhancers by the |contribution| of the bases in a window centred on each enhancer.

  As in the paper's enhancer prioritisation: contributions are computed for a gene's TSS bins
  (CAGE tracks), and each candidate enhancer is scored by the absolute contribution within
  `window` bp centred on it (clipped to the sequence). Enhancers on another chromosome or whose
  window lies entirely outside the sequence get NaN.

  Args:
    contributions: [L] per-base scores of the sequence starting at `sequence_start`.
    sequence_chrom: chromosome of the sequence.
    sequence_start: 0-based genomic position of contributions[0].
    enhancers: intervals with `chrom`, `start`, `end` (and optionally `name`), e.g.
      `enformer.io.bed.read_bed(path)`, or (chrom, start, end) tuples.
    window: bp around each enhancer's centre (use 0 for the enhancer's own extent).
    tss: genomic position of the TSS, to report distances.
    statistic: 'sum' or 'mean' of |contribution| in the window.

  Returns:
    One EnhancerLink per enhancer, in input order.
  """
  if statistic not in ('sum', 'mean'):
    raise ValueError(f"statistic must be 'sum' or 'mean', got {statistic!r}.")
  values = np.abs(np.asarray(contributions, np.float64))
  if values.ndim != 1:
    raise ValueError(f'contributions must be [L] per-base scores, got shape {values.shape}.')
  length = len(values)
  links = []
  for enhancer in enhancers:
    if isinstance(enhancer, (tuple, list)):
      chrom, start, end = enhancer[0], int(enhancer[1]), int(enhancer[2])
      name = enhancer[3] if len(enhancer) > 3 else f'{chrom}:{start + 1}-{end}'
    else:
      chrom, start, end = enhancer.chrom, int(enhancer.start), int(enhancer.end)
      name = getattr(enhancer, 'name', '') or f'{chrom}:{start + 1}-{end}'
    if window > 0:
      centre = (start + end) // 2
      lo, hi = centre - window // 2, centre - window // 2 + window
    else:
      lo, hi = start, end
    lo, hi = max(lo - sequence_start, 0), min(hi - sequence_start, length)
    if chrom != sequence_chrom or hi <= lo:
      score = math.nan
    else:
      score = float(values[lo:hi].sum() if statistic == 'sum' else values[lo:hi].mean())
    distance = None if tss is None else (start + end) // 2 - int(tss)
    links.append(EnhancerLink(name, chrom, start, end, score, distance))
  return links


def tss_bins(num_bins: int, sequence_start: int, sequence_length: int, tss: int,
             flank_bins: int = 1, bin_size: int = BIN_SIZE) -> List[int]:
  """Output bins holding a TSS ± `flank_bins` (the paper's gene-level CAGE readout).

  The output bins are the central `num_bins` of the sequence's sequence_length / bin_size bins.
  """
  first_bin_start = sequence_start + (sequence_length - num_bins * bin_size) // 2
  centre = (int(tss) - first_bin_start) // bin_size
  if not 0 <= centre < num_bins:
    raise ValueError(f'TSS {tss} is outside the output bins of the sequence starting at '
                     f'{sequence_start} ({num_bins} bins of {bin_size} bp, centred): centre the '
                     'sequence on the gene.')
  return [b for b in range(centre - flank_bins, centre + flank_bins + 1) if 0 <= b < num_bins]


def enhancer_gene_link_scores(model,
                              sequence_one_hot: np.ndarray,
                              sequence_chrom: str,
                              sequence_start: int,
                              tss: int,
                              enhancers: Iterable,
                              tracks: Union[Sequence[int], str],
                              head: str = 'human',
                              window: int = 2000,
                              flank_bins: int = 1) -> Tuple[np.ndarray, List[EnhancerLink]]:
  """Enhancer–gene link scores for one gene: gradient × input of the TSS bins, then window sums.

  Args:
    model: as for `contribution_input_grad`.
    sequence_one_hot: [L, C] model input around the gene (one-hot + extra tracks when C > 4).
    sequence_chrom, sequence_start: genomic location of the input (0-based start).
    tss: 0-based genomic position of the gene's TSS; its bin ± `flank_bins` form the target.
    enhancers: candidate enhancers (see `enhancer_link_scores`).
    tracks: tracks of `head` to explain (e.g. the CAGE tracks of the cell type).
    head: output head.
    window: bp around each enhancer summed.
    flank_bins: bins on each side of the TSS bin.

  Returns:
    (contributions [L], links): the per-base scores and one EnhancerLink per enhancer.
  """
  x, _ = _as_batch(sequence_one_hot)
  length = int(x.shape[1])
  num_bins, num_tracks = output_shape(model, length, head, input_channels=int(x.shape[2]))
  bins = tss_bins(num_bins, sequence_start, length, tss, flank_bins)
  mask = target_mask(num_bins, num_tracks, bins, tracks)
  contributions = contribution_input_grad(model, x, mask, head)[0]
  return contributions, enhancer_link_scores(contributions, sequence_chrom, sequence_start,
                                             enhancers, window=window, tss=tss)


def output_shape(model, sequence_length: int, head: str = 'human',
                 input_channels: Optional[int] = None) -> Tuple[int, int]:
  """(bins, tracks) that `head` predicts for inputs of `sequence_length` bp.

  Read from the configuration of an `Enformer` (no computation); other models (SavedModels) are
  run once on an all-zero input of `input_channels` channels (default the model's
  `input_channels` attribute, e.g. a Predictor's, else 4).
  """
  inner, crop_length = _unwrap(model)
  if isinstance(inner, Enformer):
    if head not in inner.heads:
      raise ValueError(f'Unknown head {head!r}; this model has heads {inner.head_names}.')
    length = min(int(sequence_length), crop_length or int(sequence_length))
    return inner.output_length(length), int(inner.config['heads'][head])
  if input_channels is None:
    input_channels = int(getattr(model, 'input_channels', NUM_NUCLEOTIDES))
  prediction = _forward_fn(model, head)(
      tf.zeros([1, int(sequence_length), int(input_channels)], tf.float32))
  return int(prediction.shape[1]), int(prediction.shape[2])


# --------------------------------------------------------------------------- genomic intervals

@dataclasses.dataclass
class IntervalAttribution:
  """Attribution of one genomic interval (what `enformer attribute` writes).

  Attributes:
    chrom, start, end: the model input (0-based, half-open; N-padded past chromosome ends).
    bins_start: genomic start of output bin 0 (the output bins are the central ones).
    head, tracks, bins: the explained target (tracks of `head` in output `bins`).
    method: 'grad' (gradient × input) or 'ism'.
    predictions: [T, len(tracks)] predicted values of the selected tracks on all output bins.
    scores: [L] per-base scores: gradient × input, or for ISM −(mean Δ of the 3 substitutions)
      inside the window and 0 elsewhere.
    pooled: [T] mean |scores| per output bin.
    window: (start, end) of the ISM / logo window within the input (0-based, end exclusive).
    ism: [W, 4] Δ target per substitution (ISM only).
    sequence_one_hot: [L, 4] the one-hot part of the input.
    extra_inputs: [L, E] the extra input channels (E = 0 for a one-hot-only model).
    extra_scores: [L, E] gradient × input of the extra channels ('grad' only; None for ISM).
  """
  chrom: str
  start: int
  end: int
  bins_start: int
  head: str
  tracks: List[int]
  bins: List[int]
  method: str
  predictions: np.ndarray
  scores: np.ndarray
  pooled: np.ndarray
  window: Tuple[int, int]
  sequence_one_hot: np.ndarray
  ism: Optional[np.ndarray] = None
  extra_inputs: Optional[np.ndarray] = None
  extra_scores: Optional[np.ndarray] = None

  @property
  def bin_size(self) -> int:
    return BIN_SIZE

  @property
  def bins_end(self) -> int:
    return self.bins_start + len(self.pooled) * BIN_SIZE


def attribute_interval(model,
                       sequence_one_hot: np.ndarray,
                       chrom: str,
                       start: int,
                       tracks: Union[Sequence[int], str],
                       bins: Union[Sequence[int], str],
                       head: str = 'human',
                       method: str = 'grad',
                       window: Optional[Tuple[int, int]] = None,
                       reduction: Reduction = 'mean',
                       batch_size: int = 8,
                       progress: bool = True) -> IntervalAttribution:
  """Explains `tracks` × `bins` of one input sequence located at chrom:start.

  Args:
    model: as for `contribution_input_grad` (an Enformer, a Predictor, a hub object).
    sequence_one_hot: [L, C] model input (one-hot, then the extra tracks when C > 4).
    chrom, start: genomic location of the input (0-based start).
    tracks, bins: indices (or '4828,5111' / '447-449' strings) of the head's tracks and output
      bins forming the target.
    head: output head.
    method: 'grad' (gradient × input over the whole input) or 'ism' (saturation mutagenesis of
      `window`).
    window: (start, end) within the input; for ISM the mutated bases (default: the bases of the
      target bins), for 'grad' the logo window (default: 100 bp around the top |score|).
    reduction, batch_size, progress: see `in_silico_mutagenesis`.

  Returns:
    An IntervalAttribution.
  """
  if method not in ('grad', 'ism'):
    raise ValueError(f"method must be 'grad' (gradient × input) or 'ism', got {method!r}.")
  x, batched = _as_batch(sequence_one_hot)
  if batched and x.shape[0] != 1:
    raise ValueError('attribute_interval explains one sequence; pass [L, C].')
  model_input = x[0].numpy()  # [L, C]
  one_hot, extra_inputs = model_input[:, :NUM_NUCLEOTIDES], model_input[:, NUM_NUCLEOTIDES:]
  length = model_input.shape[0]
  num_bins, num_tracks = output_shape(model, length, head, input_channels=model_input.shape[1])
  mask = target_mask(num_bins, num_tracks, bins, tracks)
  tracks = sorted(set(np.nonzero(mask.any(0))[0].tolist()))
  bins = sorted(set(np.nonzero(mask.any(1))[0].tolist()))
  bins_offset = (length - num_bins * BIN_SIZE) // 2
  predictions = tf.cast(_forward_fn(model, head)(x), tf.float32).numpy()[0][:, tracks]

  extra_scores = None
  if method == 'grad':
    per_channel = _gradient_times_input(model, model_input, mask, head, reduction)  # [L, C]
    scores = per_channel[:, :NUM_NUCLEOTIDES].sum(-1)
    extra_scores = per_channel[:, NUM_NUCLEOTIDES:]
    if window is None:
      top = int(np.argmax(np.abs(scores)))
      first = int(np.clip(top - 50, 0, max(length - 100, 0)))
      window = (first, min(length, first + 100))
    window = _check_window(window, length)
    ism = None
  else:
    if window is None:
      window = (bins_offset + bins[0] * BIN_SIZE, bins_offset + (bins[-1] + 1) * BIN_SIZE)
    window = _check_window(window, length)
    ism = in_silico_mutagenesis(model, model_input, mask, window, head, reduction, batch_size,
                                progress)
    scores = np.zeros(length, np.float32)
    scores[window[0]:window[1]] = ism_logo_matrix(one_hot[window[0]:window[1]], ism).sum(1)
  return IntervalAttribution(
      chrom=chrom, start=int(start), end=int(start) + length,
      bins_start=int(start) + bins_offset, head=head, tracks=tracks, bins=bins, method=method,
      predictions=predictions, scores=scores, pooled=pool_contributions(scores, num_bins),
      window=window, sequence_one_hot=one_hot, ism=ism, extra_inputs=extra_inputs,
      extra_scores=extra_scores)
