"""Attribution of genomic intervals: `attribute_interval` (one input sequence) and
`attribute_to_files` (a region of a FASTA → attribution.npz, a bigWig of scores and plots; what
`enformer attribute` runs).

Shapes: L = input length in bp, T = output bins, W = window length, C = input channels
(4 one-hot + E extra tracks).
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import kipoiseq
import numpy as np
import pandas as pd
import tensorflow as tf

from enformer.enformer import BIN_SIZE
from enformer.plots import attribution as plots_lib
from enformer.interpret.gradients import (
    Reduction,
    as_batch,
    forward_function,
    gradient_times_input,
    output_shape,
    parse_index_list,
    pool_contributions,
    target_mask,
)
from enformer.interpret.ism import check_window, in_silico_mutagenesis, ism_logo_matrix
from enformer.io.atomic import atomic_open
from enformer.io.bed import format_region, parse_region
from enformer.io.bigwig import write_bigwig
from enformer.io.fasta import FastaStringExtractor
from enformer.io.lock import OutputLock
from enformer.io.outputs import OutputFolder
from enformer.io.targets import select_tracks, track_labels
from enformer.inference.regions import model_inputs
from enformer.sequence import NEUTRAL_VALUE, NUM_NUCLEOTIDES, check_neutral_value


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


def attribute_interval(
    model,
    sequence_one_hot: np.ndarray,
    chrom: str,
    start: int,
    *,
    tracks: Union[Sequence[int], str],
    bins: Union[Sequence[int], str],
    head: str = 'human',
    method: str = 'grad',
    window: Optional[Tuple[int, int]] = None,
    reduction: Reduction = 'mean',
    batch_size: int = 8,
    progress: bool = True,
) -> IntervalAttribution:
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
  x, batched = as_batch(sequence_one_hot)
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
  predictions = tf.cast(forward_function(model, head)(x), tf.float32).numpy()[0][:, tracks]

  extra_scores = None
  if method == 'grad':
    per_channel = gradient_times_input(model, model_input, mask, head, reduction)  # [L, C]
    scores = per_channel[:, :NUM_NUCLEOTIDES].sum(-1)
    extra_scores = per_channel[:, NUM_NUCLEOTIDES:]
    if window is None:
      top = int(np.argmax(np.abs(scores)))
      first = int(np.clip(top - 50, 0, max(length - 100, 0)))
      window = (first, min(length, first + 100))
    window = check_window(window, length)
    ism = None
  else:
    if window is None:
      window = (bins_offset + bins[0] * BIN_SIZE, bins_offset + (bins[-1] + 1) * BIN_SIZE)
    window = check_window(window, length)
    ism = in_silico_mutagenesis(
        model,
        model_input,
        mask,
        window=window,
        head=head,
        reduction=reduction,
        batch_size=batch_size,
        progress=progress,
    )
    scores = np.zeros(length, np.float32)
    scores[window[0] : window[1]] = ism_logo_matrix(one_hot[window[0] : window[1]], ism).sum(1)
  return IntervalAttribution(
      chrom=chrom,
      start=int(start),
      end=int(start) + length,
      bins_start=int(start) + bins_offset,
      head=head,
      tracks=tracks,
      bins=bins,
      method=method,
      predictions=predictions,
      scores=scores,
      pooled=pool_contributions(scores, num_bins),
      window=window,
      sequence_one_hot=one_hot,
      ism=ism,
      extra_inputs=extra_inputs,
      extra_scores=extra_scores,
  )


# --------------------------------------------------------------------------- regions to files


def attribute_to_files(
    predictor,
    fasta: str,
    region: Union[str, kipoiseq.Interval],
    out_dir: str,
    *,
    tracks: Union[str, Sequence[Union[int, str]]],
    bins: Union[None, str, Sequence[int]] = None,
    head: str = 'human',
    targets: Optional[pd.DataFrame] = None,
    method: str = 'grad',
    window: Union[None, str, kipoiseq.Interval] = None,
    reduction: Reduction = 'mean',
    batch_size: int = 8,
    extra_tracks: Sequence[str] = (),
    neutral_value: float = NEUTRAL_VALUE,
    progress: bool = True,
    overwrite: bool = False,
) -> Dict[str, Any]:
  """Explains chosen tracks × bins of a genomic region and writes the results into `out_dir`.

  The region is resized around its centre to the predictor's input length. Writes
  `attribution.npz` (scores [L], pooled [T], predictions [T, tracks], coordinates, `ism` [W, 4]
  for ISM, the extra channels' inputs and gradient × input for models with extra input channels),
  `<method>_scores.bw` (per-base scores; ISM: the window only), `tracks.png` (predictions over
  pooled |scores|) and `logo.png` (sequence logo of the window; ISM adds a Δ heatmap).

  Args:
    predictor: a Predictor (`enformer.load_model`).
    fasta: indexed (or indexable) FASTA of the genome.
    region: 'chrom:start-end' (1-based inclusive) or a 0-based kipoiseq.Interval.
    out_dir: output folder (created).
    tracks: tracks of `head` to explain: indices, ranges ('10-12'), and with `targets` also
      identifiers or description substrings (e.g. 'CAGE:K562'); a comma-separated string or a list.
    bins: output bins to explain (indices or '447-449'); default the 3 central bins.
    head: output head.
    targets: targets table (`enformer.io.targets.read_targets`) for track names and selection.
    method: 'grad' (gradient × input) or 'ism' (saturation mutagenesis of the window).
    window: 'chrom:start-end' or Interval inside the model input: bases to mutate (ISM; default
      the target bins) or drawn in the logo (grad; default 100 bp around the top |score|).
    reduction: 'mean' (default, as the colab) or 'sum' of the masked predictions.
    batch_size: ISM mutant sequences per forward pass.
    extra_tracks: per-base bigWigs of a model's extra input channels (as `predict_to_files`).
    neutral_value: one-hot value of N (and of the padding past chromosome ends) in each channel:
      0 (default; enformer.py, Basenji2) or 0.25 (DeepMind's usage notebook); saved as `n_value`.
    progress: tqdm progress bar (ISM).
    overwrite: replace the files an earlier `attribute_to_files` wrote into a used `out_dir`
      (recorded in the folder's manifest, `enformer.io.outputs`; other files stay and are never
      replaced); otherwise a folder holding files is refused (FileExistsError). The folder is
      locked while the files are written (a second run on it stops, naming this one).

  Returns:
    Summary: 'result' (the IntervalAttribution), 'interval' (the model input, 0-based),
    'npz', 'bigwig', 'plots' (paths written) and 'summary' (one line describing the top score).
  """
  if not os.path.exists(fasta):
    raise FileNotFoundError(f'FASTA {fasta} does not exist.')
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
  neutral_value = check_neutral_value(neutral_value)
  region = parse_region(region) if isinstance(region, str) else region
  window_region = parse_region(window) if isinstance(window, str) else window
  if head not in predictor.heads:
    raise ValueError(f'Head {head!r} is not a head of this model: {list(predictor.heads)}.')
  num_tracks = predictor.heads[head]
  track_indices = select_tracks(targets, tracks, num_tracks)
  num_bins = predictor.output_length
  if bins is None:
    bins = [num_bins // 2 - 1, num_bins // 2, num_bins // 2 + 1][:num_bins]
  elif isinstance(bins, str):
    bins = parse_index_list(bins)
  extractor = FastaStringExtractor(fasta)
  extractor.check_regions([region])  # Unknown chromosome or past its end: an error.
  with OutputLock(out_dir, what=f'output folder {out_dir}'):
    folder = OutputFolder(out_dir, 'attribute', overwrite=overwrite)
    return _attribute_into(
        predictor,
        extractor,
        region,
        window_region,
        folder,
        track_indices,
        bins,
        head,
        targets,
        method,
        reduction,
        batch_size,
        extra_tracks,
        neutral_value,
        progress,
    )


def _attribute_into(
    predictor,
    extractor,
    region,
    window_region,
    folder,
    track_indices,
    bins,
    head,
    targets,
    method,
    reduction,
    batch_size,
    extra_tracks,
    neutral_value,
    progress,
) -> Dict[str, Any]:
  """`attribute_to_files` once the output folder (`folder`, an `OutputFolder`) is locked and
  ready."""
  # Every output named before the work: a file of the user's under one of them stops it now.
  npz_path, bigwig_path, tracks_png, logo_png = folder.claim_all(
      ['attribution.npz', f'{method}_scores.bw', 'tracks.png', 'logo.png']
  )
  chrom = extractor.resolve_chromosome(region.chrom)
  interval = region.resize(predictor.sequence_length)
  model_input = model_inputs(extractor, [interval], extra_tracks, neutral_value=neutral_value)[
      0
  ]  # [L, 4 + E]
  one_hot = model_input[:, :NUM_NUCLEOTIDES]
  input_window = None
  if window_region is not None:
    if extractor.resolve_chromosome(window_region.chrom) != chrom or not (
        interval.start <= window_region.start < window_region.end <= interval.end
    ):
      raise ValueError(
          f'The window {format_region(window_region)} must lie inside the model '
          f'input {format_region(interval)} (the region resized to '
          f'{predictor.sequence_length:,} bp).'
      )
    input_window = (window_region.start - interval.start, window_region.end - interval.start)

  result = attribute_interval(
      predictor,
      model_input,
      chrom,
      interval.start,
      tracks=track_indices,
      bins=bins,
      head=head,
      method=method,
      window=input_window,
      reduction=reduction,
      batch_size=batch_size,
      progress=progress,
  )

  labels = track_labels(targets, result.tracks)
  arrays = dict(
      scores=result.scores,
      pooled=result.pooled,
      predictions=result.predictions,
      tracks=np.asarray(result.tracks),
      bins=np.asarray(result.bins),
      track_labels=np.asarray(labels),
      chrom=chrom,
      start=result.start,
      end=result.end,
      bins_start=result.bins_start,
      window=np.asarray(result.window),
      method=method,
      head=head,
      n_value=float(neutral_value),
      sequence_index=np.where(one_hot.max(1) == 1, one_hot.argmax(1), 4).astype(np.int8),
  )
  if result.ism is not None:
    arrays['ism'] = result.ism
  if extra_tracks:
    arrays.update(extra_inputs=result.extra_inputs, extra_tracks=np.asarray(list(extra_tracks)))
    if result.extra_scores is not None:
      arrays['extra_scores'] = result.extra_scores
  with atomic_open(npz_path, 'wb') as handle:
    np.savez_compressed(handle, **arrays)

  w0, w1 = result.window
  if result.ism is None:
    blocks = [(chrom, result.start, result.scores)]
  else:  # Only the mutated window has ISM scores.
    blocks = [(chrom, result.start + w0, result.scores[w0:w1])]
  write_bigwig(bigwig_path, extractor.chromosome_sizes, blocks, bin_size=1)

  panels = {
      f'{label} (track {index})': result.predictions[:, i]
      for i, (index, label) in enumerate(zip(result.tracks, labels))
  }
  method_label = 'gradient × input' if method == 'grad' else 'ISM −mean Δ (window)'
  plots_lib.plot_tracks_with_contributions(
      panels,
      result.pooled,
      (chrom, result.bins_start, result.bins_end),
      contribution_label=f'|{method_label}| per bin',
      highlight_bins=result.bins,
      path=tracks_png,
  )
  window_text = f'{chrom}:{result.start + w0 + 1:,}-{result.start + w1:,}'
  if result.ism is None:
    plots_lib.plot_contribution_logo(
        one_hot[w0:w1],
        result.scores[w0:w1],
        start=result.start + w0 + 1,
        title=f'gradient × input, {window_text}',
        path=logo_png,
    )
  else:
    plots_lib.plot_ism(
        one_hot[w0:w1],
        result.ism,
        start=result.start + w0 + 1,
        title=f'in-silico mutagenesis, {window_text}',
        path=logo_png,
    )
  top = int(np.argmax(np.abs(result.scores)))
  summary = (
      f'{method}: {format_region(interval)}, head {head}, tracks {result.tracks}, '
      f'bins {result.bins[0]}-{result.bins[-1]} '
      f'({chrom}:{result.bins_start + result.bins[0] * BIN_SIZE + 1:,}-'
      f'{result.bins_start + (result.bins[-1] + 1) * BIN_SIZE:,}); top |score| '
      f'{result.scores[top]:.4g} at {chrom}:{result.start + top + 1:,}'
  )
  return dict(
      result=result,
      interval=interval,
      npz=npz_path,
      bigwig=bigwig_path,
      plots=[tracks_png, logo_png],
      summary=summary,
  )
