"""Plots of attributions: predicted tracks with pooled contribution scores (usage colab, Fig. 2a),
sequence logos of gradient × input or ISM (logomaker), and ISM heatmaps.

All functions return the figure; pass `path` to also save a PNG (backend: see `enformer.plots`).
"""

import os
from typing import Mapping, Optional, Sequence, Tuple, Union

import kipoiseq
import logomaker
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from enformer.interpret.gradients import contribution_logo_matrix
from enformer.interpret.ism import ism_logo_matrix
from enformer.plots import save
from enformer.plots.tracks import plot_tracks
from enformer.sequence import BASES

PathLike = Union[str, os.PathLike]
Interval = Tuple[str, int, int]  # chrom, start (0-based), end — or any object with those fields.


def _interval_fields(interval) -> Tuple[str, int, int]:
  if isinstance(interval, (tuple, list)):
    return str(interval[0]), int(interval[1]), int(interval[2])
  return str(interval.chrom), int(interval.start), int(interval.end)


def _save(fig: plt.Figure, path: Optional[PathLike]) -> plt.Figure:
  save(fig, path, dpi=120, bbox_inches='tight')
  return fig


def plot_tracks_with_contributions(
    tracks: Mapping[str, np.ndarray],
    pooled_contributions: np.ndarray,
    interval,
    *,
    contribution_label: str = 'Enformer gradient × input',
    clip_quantile: Optional[float] = 0.995,
    highlight_bins: Optional[Sequence[int]] = None,
    height: float = 1.5,
    path: Optional[PathLike] = None,
) -> plt.Figure:
  """Predicted tracks above the pooled |contribution| scores, on the output bins (Fig. 2a style).

  The panels are drawn by `enformer.plots.tracks.plot_tracks` (CAGE titles on log10(1 + x)); the
  contribution panel is the last one, in red.

  Args:
    tracks: title → [T] values (e.g. predicted CAGE, on the output bins).
    pooled_contributions: [T] |gradient × input| pooled per bin (`pool_contributions`).
    interval: genomic span of the T output bins: (chrom, start, end) or a kipoiseq.Interval.
    contribution_label: title of the contribution panel.
    clip_quantile: clip the contribution panel at this quantile (the colab clips at a fixed
      0.03 so that a few strong bins do not flatten the rest); None draws raw values.
    highlight_bins: output bins to shade in every panel (the bins the target explains).
    height: inches per panel.
    path: PNG to write.

  Returns:
    The matplotlib figure.
  """
  chrom, start, end = _interval_fields(interval)
  pooled = np.asarray(pooled_contributions, np.float64)
  if clip_quantile is not None and pooled.size:
    pooled = np.minimum(pooled, np.quantile(pooled, clip_quantile))
  lengths = {len(values) for values in tracks.values()} | {len(pooled)}
  if len(lengths) != 1:
    raise ValueError(
        f'Tracks and pooled contributions must have the same number of bins, got '
        f'{sorted(lengths)}. Pool with num_bins=<model output length>.'
    )
  if contribution_label in tracks:
    raise ValueError(f'A track is already titled {contribution_label!r}.')
  fig = plot_tracks(
      {**tracks, contribution_label: pooled},
      kipoiseq.Interval(chrom, start, end),
      height=height,
      width=11,
  )
  axes = fig.axes
  for collection in axes[-1].collections:
    collection.set_color('C3')
  bin_size = (end - start) / len(pooled)
  for ax in axes:
    for b in highlight_bins or ():
      ax.axvspan(start + b * bin_size, start + (b + 1) * bin_size, color='0.92', zorder=0)
  axes[-1].set_xlim(start, end)
  return _save(fig, path)


def plot_sequence_logo(
    matrix: np.ndarray,
    start: int = 0,
    title: str = '',
    ylabel: str = 'contribution',
    ax: Optional[plt.Axes] = None,
    path: Optional[PathLike] = None,
) -> plt.Figure:
  """Sequence logo (logomaker) of a [W, 4] matrix in A, C, G, T order.

  Args:
    matrix: [W, 4] letter heights, e.g. `contribution_logo_matrix` or `ism_logo_matrix`.
    start: coordinate of the first position (x axis labels).
    title: axes title.
    ylabel: y axis label.
    ax: axes to draw into (a new figure otherwise).
    path: PNG to write.
  """
  matrix = np.asarray(matrix, np.float64)
  if matrix.ndim != 2 or matrix.shape[1] != 4:
    raise ValueError(f'A logo needs a [W, 4] matrix (A, C, G, T), got shape {matrix.shape}.')
  own_figure = ax is None
  if own_figure:
    fig, ax = plt.subplots(figsize=(min(max(matrix.shape[0] * 0.11, 6), 11), 2.5))
  else:
    fig = ax.figure
  frame = pd.DataFrame(matrix, columns=list(BASES), index=np.arange(start, start + len(matrix)))
  # Negative contributions draw as upright letters below the axis (flipped ones read as markers);
  # a bold monospace font (shipped with matplotlib) keeps tall, narrow letters recognisable.
  logomaker.Logo(
      frame,
      ax=ax,
      color_scheme='classic',
      flip_below=False,
      font_name='DejaVu Sans Mono',
      font_weight='bold',
  )
  ax.axhline(0, color='0.5', linewidth=0.5)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10, loc='left')
  for side in ('top', 'right'):
    ax.spines[side].set_visible(False)
  if own_figure:
    fig.tight_layout()
  return _save(fig, path)


def plot_contribution_logo(
    sequence_one_hot: np.ndarray,
    scores: np.ndarray,
    start: int = 0,
    title: str = 'gradient × input',
    path: Optional[PathLike] = None,
) -> plt.Figure:
  """Logo of gradient × input over a window: [W, 4] one-hot and [W] scores."""
  return plot_sequence_logo(
      contribution_logo_matrix(sequence_one_hot, scores), start=start, title=title, path=path
  )


def plot_ism(
    sequence_one_hot: np.ndarray,
    ism: np.ndarray,
    start: int = 0,
    title: str = 'in-silico mutagenesis',
    path: Optional[PathLike] = None,
) -> plt.Figure:
  """ISM of a window: logo of −mean Δ at the reference base above a [4, W] Δ heatmap.

  Args:
    sequence_one_hot: [W, 4] reference one-hot of the window.
    ism: [W, 4] Δ target per substitution (`in_silico_mutagenesis`).
    start: coordinate of the first position.
    title: figure title.
    path: PNG to write.
  """
  ism = np.asarray(ism, np.float64)
  width = min(max(ism.shape[0] * 0.11, 6), 11)
  fig, (logo_ax, heat_ax) = plt.subplots(
      2,
      1,
      figsize=(width, 4.2),
      sharex=False,
      gridspec_kw=dict(height_ratios=[1.2, 1]),
      layout='constrained',
  )
  plot_sequence_logo(
      ism_logo_matrix(sequence_one_hot, ism), start=start, title=title, ylabel='−mean Δ', ax=logo_ax
  )
  limit = float(np.abs(ism).max()) or 1.0
  image = heat_ax.imshow(
      ism.T,
      aspect='auto',
      cmap='RdBu_r',
      vmin=-limit,
      vmax=limit,
      interpolation='nearest',
      extent=(start - 0.5, start + len(ism) - 0.5, 3.5, -0.5),
  )
  heat_ax.set_yticks(range(4), list(BASES))
  heat_ax.set_xlim(logo_ax.get_xlim())
  heat_ax.set_xlabel('position')
  fig.colorbar(image, ax=[logo_ax, heat_ax], label='Δ target', fraction=0.03, pad=0.01)
  return _save(fig, path)
