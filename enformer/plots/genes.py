"""Gene-level figures: a variant's SED per track for its top genes, and predicted vs observed
expression at TSSs."""

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from enformer.evaluation.tss import pearson_r
from enformer.plots import PathLike, close, save


def plot_sed_top_genes(
    sed: np.ndarray, labels: Sequence[str], track_names: Sequence[str], path: PathLike = None
) -> 'plt.Figure':
  """Grouped bars: SED [pairs, tracks] of the top variant–gene pairs (one group per pair)."""
  sed = np.asarray(sed, np.float32)
  fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(labels) + 2), 3.6))
  width = 0.8 / max(1, sed.shape[1])
  x = np.arange(len(labels))
  for track in range(sed.shape[1]):
    ax.bar(
        x + (track - (sed.shape[1] - 1) / 2) * width,
        sed[:, track],
        width,
        label=str(track_names[track]),
    )
  ax.axhline(0, color='0.3', linewidth=0.5)
  ax.set_xticks(x, labels, fontsize=7, rotation=30, ha='right')
  ax.set_ylabel('SED (ALT − REF at the TSSs)')
  ax.set_title('Variant effects on gene expression: top variant–gene pairs', fontsize=10)
  ax.legend(fontsize=7, frameon=False, ncol=2)
  fig.tight_layout()
  save(fig, path, dpi=110)
  close(fig)
  return fig


def plot_expression_vs_observed(
    predicted: np.ndarray, observed: np.ndarray, track_names: Sequence[str], path: PathLike = None
) -> 'plt.Figure':
  """log1p(predicted) vs log1p(observed) expression [genes, tracks], one panel per track."""
  predicted, observed = np.asarray(predicted), np.asarray(observed)
  count = predicted.shape[1]
  fig, axes = plt.subplots(1, count, figsize=(2.8 * count, 2.9), squeeze=False)
  for track, ax in enumerate(axes[0]):
    x, y = np.log1p(observed[:, track]), np.log1p(np.maximum(predicted[:, track], 0))
    ax.scatter(x, y, s=12, alpha=0.8)
    r = pearson_r(x, y)
    ax.set_title(f'{track_names[track]}: r = {r:.2f}', fontsize=9)
    ax.set_xlabel('observed log(1 + x)', fontsize=8)
    if track == 0:
      ax.set_ylabel('predicted log(1 + x)', fontsize=8)
  fig.suptitle('Expression at the TSSs of the demo genes (held-out chromosome)', fontsize=10)
  fig.tight_layout()
  save(fig, path, dpi=110)
  close(fig)
  return fig
