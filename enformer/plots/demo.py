"""Figures of the demo report: per-track test Pearson R against a shuffled-label baseline, and the
variant effects of motif-destroying vs far-from-motif SNVs."""

import textwrap
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from enformer.plots import PathLike, close, save


def plot_pearson_per_track(tables: Mapping[str, pd.DataFrame], path: PathLike) -> None:
  """Bars of test Pearson R per track, trained model vs shuffled-label baseline, per organism."""
  fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 3.6), squeeze=False)
  for ax, (organism, frame) in zip(axes[0], tables.items()):
    x = np.arange(len(frame))
    ax.bar(x - 0.2, frame['pearson_r'], width=0.4, label='trained model')
    ax.bar(
        x + 0.2,
        frame['shuffled_pearson_r'],
        width=0.4,
        color='0.6',
        label='shuffled-label baseline',
    )
    # Track index over its motif recipe, wrapped so neighbouring labels never overlap.
    labels = [
        f'{i}\n' + textwrap.fill(d.split(' ', 1)[-1], 10)
        for i, d in zip(frame['track'], frame['description'])
    ]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(min(-0.1, float(np.nanmin(frame['shuffled_pearson_r'])) - 0.05), 1.3)
    ax.set_yticks(np.arange(0, 1.01, 0.2))
    ax.axhline(0, color='0.3', linewidth=0.5)
    ax.set_ylabel('Pearson R')
    ax.set_title(f'{organism}: test-chromosome Pearson R per track', fontsize=10)
    ax.legend(fontsize=8, loc='upper center', ncol=2, frameon=False)
  fig.tight_layout()
  save(fig, path, dpi=110)
  close(fig)


def plot_hit_vs_miss(hit: np.ndarray, miss: np.ndarray, path: PathLike) -> None:
  """Largest |SAD| per variant by class; the bars are the class medians the report quotes."""
  rng = np.random.default_rng(0)
  fig, ax = plt.subplots(figsize=(4.5, 3.5))
  for x, (label, values) in enumerate([('destroys a motif', hit), ('far from motifs', miss)]):
    ax.scatter(x + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.8)
    ax.hlines(np.median(values), x - 0.25, x + 0.25, color='k', label='median' if x == 0 else None)
  ax.set_xticks([0, 1], ['destroys a motif', 'far from motifs'])
  ax.set_ylabel('max over tracks |SAD|')
  ax.set_yscale('log')
  ax.legend(fontsize=8, loc='upper right', frameon=False)
  ax.set_title('Variant effects on the held-out chromosome', fontsize=10)
  fig.tight_layout()
  save(fig, path, dpi=110)
  close(fig)
