"""Personal-genome figures: a samples × genes heat map of predicted expression for one track
(`enformer.genes.haplotypes.predict_haplotypes` output)."""

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from enformer.plots import PathLike, close, save


def plot_haplotype_heatmap(
    values: np.ndarray,
    samples: Sequence[str],
    genes: Sequence[str],
    track: str,
    path: PathLike = None,
) -> 'plt.Figure':
  """Heat map of `values` [samples, genes] (expression at the genes' TSSs for one track).

  Colour: log2(1 + value) − log2(1 + the first sample's value) (as SAR), the change of each
  gene against the first row (e.g. the reference sample) on one symmetric scale; the cells print
  the values themselves.

  Args:
    values: [S, G] expression of each sample (e.g. the diploid mean of its haplotypes).
    samples: S row labels (the first is the reference of the colour scale).
    genes: G column labels.
    track: the track's name (title).
    path: PNG to write (None: only return the figure).
  """
  values = np.asarray(values, np.float64)
  change = np.log2(1 + np.maximum(values, 0)) - np.log2(1 + np.maximum(values[:1], 0))
  limit = max(float(np.abs(change).max()), 0.1)
  fig, ax = plt.subplots(
      figsize=(max(4.5, 0.95 * len(genes) + 2.4), max(2.6, 0.45 * len(samples) + 1.6))
  )
  image = ax.imshow(change, cmap='RdBu_r', vmin=-limit, vmax=limit, aspect='auto')
  for row in range(values.shape[0]):
    for column in range(values.shape[1]):
      ax.text(
          column,
          row,
          f'{values[row, column]:.3g}',
          ha='center',
          va='center',
          fontsize=7,
          color='white' if abs(change[row, column]) > 0.6 * limit else 'black',
      )
  ax.set_xticks(np.arange(len(genes)), list(genes), fontsize=7, rotation=30, ha='right')
  ax.set_yticks(np.arange(len(samples)), list(samples), fontsize=8)
  ax.set_title(f'Predicted expression at the TSSs, {track}', fontsize=9)
  fig.colorbar(image, ax=ax, shrink=0.8, label=f'log2(1 + x) vs {samples[0]}')
  fig.tight_layout()
  save(fig, path, dpi=110)
  close(fig)
  return fig
