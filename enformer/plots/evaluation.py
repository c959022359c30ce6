"""Figures of evaluations: per-track Pearson R by assay, and held-out expression fits."""

import os
from typing import Union

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from enformer.plots import save

PathLike = Union[str, os.PathLike]


def plot_by_assay(table: pd.DataFrame, path: str, title: str = '') -> str:
  """PNG: per-track Pearson R by assay type (box + points), with the mean of each."""
  groups = [(assay, g['pearson_r'].dropna().to_numpy()) for assay, g in table.groupby('assay')]
  groups = [(a, v) for a, v in groups if len(v)]
  fig, ax = plt.subplots(figsize=(1.8 + 1.4 * max(1, len(groups)), 4))
  if groups:
    ax.boxplot([v for _, v in groups], showfliers=False)
    rng = np.random.default_rng(0)
    for i, (_, values) in enumerate(groups, start=1):
      ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=8, alpha=0.6)
    ax.set_xticks(range(1, len(groups) + 1))
    ax.set_xticklabels([f'{a}\nn={len(v)}\nmean {v.mean():.3f}' for a, v in groups])
  ax.set_ylabel('Pearson R (per track, over bins and sequences)')
  ax.set_title(title or 'Per-track correlation by assay')
  ax.grid(axis='y', alpha=0.3)
  fig.tight_layout()
  save(fig, path, dpi=120)
  plt.close(fig)
  return path


def plot_heldout(
    model,
    features: np.ndarray,
    expression: np.ndarray,
    heldout: np.ndarray,
    path: PathLike,
    max_panels: int = 12,
) -> None:
  """Scatter of predicted vs measured expression on held-out genes, one panel per cell type
  (`model`: an `enformer.evaluation.ridge.RidgeExpressionModel`)."""
  predicted = model.predict(np.asarray(features)[heldout])
  measured = np.asarray(expression)[heldout]
  num = min(len(model.cell_types), max_panels)
  columns = min(num, 4)
  rows = -(-num // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
  for c, axis in enumerate(axes.flat):
    if c >= num:
      axis.axis('off')
      continue
    axis.scatter(measured[:, c], predicted[:, c], s=4, alpha=0.5)
    axis.set_title(f'{model.cell_types[c]}  R={model.heldout_r[c]:.2f}', fontsize=9)
    axis.set_xlabel('measured')
    axis.set_ylabel('predicted')
  figure.suptitle(f'Ridge on TSS features: {int(np.sum(heldout))} held-out genes')
  figure.tight_layout()
  save(figure, path, dpi=120)
  plt.close(figure)
