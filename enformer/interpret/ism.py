"""In-silico saturation mutagenesis (ISM): Δ target for every single-base substitution.

The target is the one of `enformer.interpret.gradients` (sum(prediction × mask), / sum(mask) for
`reduction='mean'`). Only the 4 nucleotide channels are mutated; extra input channels (C > 4) keep
their values. Shapes: L = input length, W = window length, C = input channels.
"""

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from enformer.inference import incremental as incremental_lib
from enformer.enformer import Enformer
from enformer.inference.incremental import IncrementalForward
from enformer.interpret.gradients import (
    Reduction,
    as_batch,
    as_mask,
    compiled_functions,
    unwrap_model,
)
from enformer.sequence import NUM_NUCLEOTIDES


def incremental_forward(
    model: Enformer, sequence_length: int, head: str, precision: str = 'float32'
) -> IncrementalForward:
  """The (shared, compiled once) `IncrementalForward` of `model` for one length, head and
  precision."""
  return incremental_lib.shared(model, sequence_length, [head], precision=precision)


def check_window(window: Optional[Tuple[int, int]], length: int) -> Tuple[int, int]:
  if window is None:
    return 0, length
  start, end = int(window[0]), int(window[1])
  if not 0 <= start < end <= length:
    raise ValueError(
        f'ISM window {window} must satisfy 0 <= start < end <= {length} (positions '
        'within the input sequence, 0-based, end exclusive).'
    )
  return start, end


def in_silico_mutagenesis(
    model,
    sequence_one_hot,
    target_mask,
    *,
    window: Optional[Tuple[int, int]] = None,
    head: str = 'human',
    reduction: Reduction = 'mean',
    batch_size: int = 8,
    progress: bool = True,
    incremental: bool = True,
) -> np.ndarray:
  """In-silico saturation mutagenesis: Δ target for every single-base substitution in a window.

  Each base of the window is replaced by each of the other three bases (one mutant sequence per
  substitution, evaluated in batches of `batch_size`), and the masked target is compared with the
  reference sequence's: ism[i, b] = target(x with base b at window_start + i) − target(x).
  Only the 4 nucleotide channels are mutated; extra input channels keep their values.

  Args:
    model: as for `contribution_input_grad`; a Predictor's `precision` ('bfloat16') is used for
      the forward passes.
    sequence_one_hot: [L, C] model input (or [1, L, C]): one-hot sequence + extra tracks.
    target_mask: [T, N] weights of the head's prediction; see `target_mask(...)`.
    window: (start, end) positions within the sequence (0-based, end exclusive); default the
      whole sequence (3·L forward passes — choose a window for long inputs).
    head: output head.
    reduction: 'mean' (default, as for gradient × input) or 'sum'.
    batch_size: mutant sequences per forward pass.
    progress: show a tqdm progress bar.
    incremental: for a Sonnet `Enformer` (or a Predictor over one), reuse the reference's
      conv-tower output and recompute only the tower bins around each substitution
      (`enformer.inference.incremental`; exact within float32 rounding, ~4x faster at full size).
      False:
      a full forward pass per mutant.

  Returns:
    float32 numpy [W, 4] in A, C, G, T order; 0 at the reference base. At an N position (all-zero
    row) all four bases are substituted.
  """
  x, _ = as_batch(sequence_one_hot)
  if x.shape[0] != 1:
    raise ValueError(
        f'in_silico_mutagenesis takes one sequence, got a batch of {x.shape[0]}; '
        'loop over the sequences.'
    )
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
  reference = x[0].numpy()  # [L, C]
  start, end = check_window(window, reference.shape[0])
  mask = as_mask(target_mask)
  inner, crop_length = unwrap_model(model)
  precision = getattr(model, 'precision', 'float32')  # A Predictor's inference precision.
  weights = mask.numpy()
  scale = 1.0 / weights.sum() if reduction == 'mean' else 1.0

  def check_mask(predictions: np.ndarray) -> None:  # [T, N]
    if predictions.shape != weights.shape:
      bins, tracks = predictions.shape
      raise ValueError(
          f'target_mask has shape {list(weights.shape)} but the {head!r} head predicts '
          f'[{bins} bins, {tracks} tracks] for inputs of {reference.shape[0]} bp. Build the mask '
          f'with enformer.interpret.target_mask(num_bins={bins}, num_tracks={tracks}, ...).'
      )

  if incremental and isinstance(inner, Enformer):
    forward = incremental_forward(inner, crop_length or reference.shape[0], head, precision)
    kept = forward.reference(reference)
    check_mask(kept.outputs[head])

    def target_score(mutants: tf.Tensor, _) -> np.ndarray:
      predictions = forward.alternatives(kept, mutants.numpy(), batch_size)[head]
      return tf.constant((predictions * weights).sum(axis=(1, 2)) * scale)

    reference_score = float((kept.outputs[head] * weights).sum() * scale)
  elif precision != 'float32':  # Full passes through the predictor's own (bfloat16) forward.
    reference_predictions = model.predict_on_batch(reference[np.newaxis])[head][0]
    check_mask(reference_predictions)

    def target_score(mutants: tf.Tensor, _) -> np.ndarray:
      predictions = model.predict_on_batch(mutants.numpy())[head]
      return tf.constant((predictions * weights).sum(axis=(1, 2)) * scale)

    reference_score = float((reference_predictions * weights).sum() * scale)
  else:
    target_score = compiled_functions(model, head, reduction, x, mask).target_score
    reference_score = float(target_score(x, mask).numpy()[0])

  # Every (position, base) that differs from the reference.
  positions, bases = np.nonzero(reference[start:end, :NUM_NUCLEOTIDES] != 1.0)
  identity = np.eye(4, dtype=np.float32)
  ism = np.zeros((end - start, 4), np.float32)
  with tqdm(total=len(positions), desc='ISM', unit='mutant', disable=not progress) as bar:
    for first in range(0, len(positions), batch_size):
      batch_positions = positions[first : first + batch_size]
      batch_bases = bases[first : first + batch_size]
      count = len(batch_positions)
      # Pad the last batch to a full one, so every call has the same shape (no retracing).
      mutants = np.repeat(reference[np.newaxis], batch_size, axis=0)  # [batch, L, C]
      mutants[np.arange(count), start + batch_positions, :NUM_NUCLEOTIDES] = identity[batch_bases]
      scores = target_score(tf.constant(mutants), mask).numpy()[:count]
      ism[batch_positions, batch_bases] = scores - reference_score
      bar.update(count)
  return ism


def ism_logo_matrix(sequence_one_hot: np.ndarray, ism: np.ndarray) -> np.ndarray:
  """[W, 4] logo matrix of ISM: the reference base carries −(mean Δ of its 3 substitutions).

  A base whose mutation lowers the target gets a positive letter, as in gradient × input.
  `sequence_one_hot` is [W, 4] or a [W, 4 + E] model input (only the one-hot part is used).
  """
  one_hot = np.asarray(sequence_one_hot, np.float32)[:, :NUM_NUCLEOTIDES]
  ism = np.asarray(ism, np.float32)
  return one_hot * (-ism.sum(axis=1, keepdims=True) / 3.0)
