"""Figures of predicted (and observed) genomic tracks, like the usage colab's `plot_tracks`.

Functions return the Figure and save it when given a path (backend: see `enformer.plots`).
"""

import os
from typing import Mapping, Optional, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np

from enformer.evaluation.tss import pearson_r
from enformer.io.targets import track_labels
from enformer.plots import close, save

PREDICTED_COLOR = '#1f77b4'
OBSERVED_COLOR = '#d62728'


def log10_1p_if_cage(title: str, values: np.ndarray) -> tuple:
  """CAGE tracks are shown on log10(1 + x) (as in the usage colab); returns (title, values)."""
  if title.upper().startswith('CAGE'):
    return f'{title}  [log10(1+x)]', np.log10(1 + np.asarray(values))
  return title, np.asarray(values)


def pearson_log2(predicted: np.ndarray, observed: np.ndarray) -> float:
  """Pearson correlation of log2(1 + x) between two binned tracks (nan when one is constant)."""
  return pearson_r(
      np.log2(1 + np.asarray(predicted, np.float64)), np.log2(1 + np.asarray(observed, np.float64))
  )


def plot_tracks(
    tracks: Mapping[str, np.ndarray],
    interval,
    observed: Optional[Mapping[str, np.ndarray]] = None,
    *,
    height: float = 1.5,
    width: float = 11.0,
    log_cage: bool = True,
    title: str = '',
    chrom_size: Optional[int] = None,
    path: Optional[Union[str, os.PathLike]] = None,
) -> plt.Figure:
  """One filled panel per track over the genomic interval (the colab's plot_tracks).

  Args:
    tracks: title → values [bins] (predictions), evenly spread over `interval`.
    interval: kipoiseq.Interval (or anything with chrom, start, end) the bins cover.
    observed: optional title → observed values [bins] for the same titles; drawn in a panel under
      the prediction, with the Pearson r of log2(1 + x) in the title.
    height: inches per panel.
    width: figure width in inches.
    log_cage: show CAGE tracks (titles starting with 'CAGE') on log10(1 + x).
    title: figure title.
    chrom_size: chromosome length; parts of the interval outside the chromosome (N-padded input)
      are shaded grey.
    path: save the figure here (PNG, 100 dpi) when given.
  """
  observed = dict(observed or {})
  unknown = sorted(set(observed) - set(tracks))
  if unknown:
    raise ValueError(f'Observed tracks {unknown} have no predicted track of the same title.')
  panels = []
  for name, values in tracks.items():
    label, shown = log10_1p_if_cage(name, values) if log_cage else (name, np.asarray(values))
    panels.append((label, shown, PREDICTED_COLOR))
    if name in observed:
      r = pearson_log2(values, observed[name])
      obs_label, obs_shown = (
          log10_1p_if_cage(name, observed[name]) if log_cage else (name, np.asarray(observed[name]))
      )
      panels.append(
          (f'observed: {obs_label}  (log2 Pearson r = {r:.3f})', obs_shown, OBSERVED_COLOR)
      )
  if not panels:
    raise ValueError('plot_tracks needs at least one track.')
  fig, axes = plt.subplots(
      len(panels), 1, figsize=(width, height * len(panels)), sharex=True, squeeze=False
  )
  for ax, (label, values, color) in zip(axes[:, 0], panels):
    x = np.linspace(interval.start, interval.end, num=len(values))
    ax.fill_between(x, values, color=color, linewidth=0)
    ax.set_title(label, fontsize=10, loc='left')
    for side in ('top', 'right', 'bottom'):
      ax.spines[side].set_visible(False)
    if interval.start < 0:
      ax.axvspan(interval.start, 0, color='0.85', zorder=0)
    if chrom_size is not None and interval.end > chrom_size:
      ax.axvspan(chrom_size, interval.end, color='0.85', zorder=0)
  axes[-1, 0].set_xlabel(f'{interval.chrom}:{interval.start:,}-{interval.end:,}')
  axes[-1, 0].ticklabel_format(axis='x', style='plain', useOffset=False)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  save(fig, path)
  return fig


def _plot_title(prediction) -> str:
  region = prediction.region
  coordinates = f'{region.chrom}:{region.start + 1:,}-{region.end:,}'
  return coordinates if prediction.name == coordinates else f'{prediction.name}  ({coordinates})'


def plot_prediction(
    prediction,
    tracks: Sequence[int],
    targets=None,
    observed: Optional[Mapping[int, np.ndarray]] = None,
    path: Optional[str] = None,
    title: str = '',
    chrom_size: Optional[int] = None,
):
  """PNG of the chosen `tracks` (indices) of one `enformer.inference.regions.RegionPrediction`
  (CAGE on log10(1+x)); `observed`: track index → [bins].

  Bins past the chromosome ends (when `chrom_size` is given, or before position 0) are shaded.
  """
  columns = [prediction.track_indices.index(t) for t in tracks]
  labels = track_labels(targets, tracks)
  values = {label: prediction.values[:, c] for label, c in zip(labels, columns)}
  observed_by_label = {
      label: observed[t]
      for label, t in zip(labels, tracks)
      if observed is not None and t in observed
  }
  fig = plot_tracks(
      values,
      prediction.output_interval,
      observed=observed_by_label,
      title=title or _plot_title(prediction),
      chrom_size=chrom_size,
      path=path,
  )
  close(fig)
