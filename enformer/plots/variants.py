"""Heatmap of variant scores: variants × the tracks with the largest effects."""

import os
from typing import Union

import matplotlib.pyplot as plt
import numpy as np

from enformer.plots import save
from enformer.io.sad import VariantScores


def top_tracks(values: np.ndarray, num_tracks: int) -> np.ndarray:
  """Indices of the `num_tracks` tracks with the largest max |score| over variants, descending."""
  strength = np.nanmax(np.abs(np.asarray(values, np.float32)), axis=0)
  return np.argsort(-strength, kind='stable')[:num_tracks]


def plot_variant_scores(
    scores: VariantScores,
    path: Union[str, os.PathLike],
    dataset: str = 'SAD',
    num_tracks: int = 20,
    max_variants: int = 60,
) -> str:
  """Writes a PNG heatmap of `dataset` [variants, top tracks] (diverging colours, 0 = white).

  Args:
    scores: from `read_sad_h5` or `score_vcf(...).scores`.
    path: PNG path.
    dataset: 'SAD', 'SAR' or 'SAD_z'.
    num_tracks: tracks shown (largest max |score|).
    max_variants: variants shown (largest max |score| over the shown tracks; file order kept).

  Returns:
    The path written.
  """

  if dataset not in scores.scores:
    raise ValueError(f'{dataset} is not in the scores; choose one of {sorted(scores.scores)}.')
  values = np.asarray(scores.scores[dataset], np.float32)
  tracks = top_tracks(values, num_tracks)
  rows = np.arange(len(values))
  if len(rows) > max_variants:
    strength = np.abs(values[:, tracks]).max(axis=1)
    rows = np.sort(np.argsort(-strength, kind='stable')[:max_variants])
  shown = values[np.ix_(rows, tracks)]
  limit = float(np.nanmax(np.abs(shown))) or 1.0
  labels = [scores.target_labels[t] or scores.target_ids[t] for t in tracks]
  labels = [label if len(label) <= 40 else label[:37] + '...' for label in labels]
  names = [
      f'{scores.snp[i]} {scores.chr[i]}:{scores.pos[i]} {scores.ref[i][:6]}>{scores.alt[i][:6]}'
      for i in rows
  ]
  figure, axis = plt.subplots(figsize=(2 + 0.35 * len(tracks), 1.5 + 0.28 * len(rows)))
  image = axis.imshow(
      shown, cmap='RdBu_r', vmin=-limit, vmax=limit, aspect='auto', interpolation='nearest'
  )
  axis.set_xticks(range(len(tracks)), labels, rotation=90, fontsize=7)
  axis.set_yticks(range(len(rows)), names, fontsize=7)
  axis.set_title(
      f'{dataset}: {len(rows)} variants × {len(tracks)} tracks with the largest effects', fontsize=9
  )
  figure.colorbar(image, ax=axis, shrink=0.6, label=dataset)
  figure.tight_layout()
  save(figure, path, dpi=120)
  plt.close(figure)
  return os.fspath(path)
