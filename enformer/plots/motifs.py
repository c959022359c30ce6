"""Plots of motifs: a MoDISco pattern's contribution logo above the logos of its database matches.

Logos are drawn by `enformer.plots.attribution.plot_sequence_logo` (logomaker); database motifs
(position probability matrices) as information content in bits. Functions return the figure and
save a PNG when given `path` (backend: see `enformer.plots`).
"""

import os
from typing import Optional, Sequence, Tuple, Union

import matplotlib.pyplot as plt
import numpy as np

from enformer.plots import save
from enformer.plots.attribution import plot_sequence_logo

PathLike = Union[str, os.PathLike]


def information_content(ppm: np.ndarray, pseudocount: float = 1e-3) -> np.ndarray:
  """[w, 4] letter heights in bits of a [w, 4] probability matrix (uniform background)."""
  ppm = np.asarray(ppm, np.float64) + pseudocount
  ppm = ppm / ppm.sum(1, keepdims=True)
  bits = 2.0 + (ppm * np.log2(ppm)).sum(1, keepdims=True)  # [w, 1]
  return ppm * np.maximum(bits, 0.0)


def plot_pattern(
    cwm: np.ndarray,
    matches: Sequence[Tuple[str, np.ndarray]] = (),
    title: str = '',
    path: Optional[PathLike] = None,
) -> plt.Figure:
  """A pattern's contribution weight matrix above its matches' logos.

  Args:
    cwm: [w, 4] mean contribution of the pattern's seqlets (A, C, G, T).
    matches: (label, probability matrix [4, w'] as the databases store it), best first; each is
      drawn on the strand that matches the pattern's best (forward or reverse complement, chosen
      by correlation with the CWM's positive part).
    title: title of the pattern panel.
    path: PNG to write.
  """
  cwm = np.asarray(cwm, np.float64)
  rows = 1 + len(matches)
  width = min(max(cwm.shape[0] * 0.3, 5), 10)
  fig, axes = plt.subplots(
      rows, 1, figsize=(width, 1.9 * rows), squeeze=False, layout='constrained'
  )
  plot_sequence_logo(cwm, title=title, ylabel='contribution', ax=axes[0, 0])
  for ax, (label, ppm) in zip(axes[1:, 0], matches):
    ppm = np.asarray(ppm, np.float64).T  # [w', 4]
    plot_sequence_logo(information_content(_oriented(ppm, cwm)), title=label, ylabel='bits', ax=ax)
    ax.set_ylim(0, 2)
  save(fig, path, dpi=110)
  return fig


def _oriented(ppm: np.ndarray, cwm: np.ndarray) -> np.ndarray:
  """`ppm` [w', 4] or its reverse complement, whichever correlates better with `cwm` [w, 4] at
  its best offset."""
  target = np.abs(cwm) if cwm.sum() < 0 else np.clip(cwm, 0, None)

  def best(matrix: np.ndarray) -> float:
    short, long_ = (matrix, target) if len(matrix) <= len(target) else (target, matrix)
    return max(
        float((short * long_[o : o + len(short)]).sum()) for o in range(len(long_) - len(short) + 1)
    )

  reverse = ppm[::-1, ::-1]
  return reverse if best(reverse) > best(ppm) else ppm
