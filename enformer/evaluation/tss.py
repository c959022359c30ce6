"""Expression at a transcription start site (TSS), and the Pearson correlation used with it.

Expression at a TSS is the prediction summed over the bin holding the TSS and its two
neighbours, those inside the output (the Enformer paper's CAGE-at-TSS): bins [b − 1, b + 1]
clipped to [0, T − 1] for a TSS in bin b of T output bins.
"""

from typing import Sequence, Tuple, Union

import numpy as np

TSS_BINS = 3  # The TSS bin and one on each side.


def expression_at_tss(
    values: np.ndarray, tss_bins: Union[int, Sequence[int], np.ndarray]
) -> np.ndarray:
  """Sum of bins [b − 1, b + 1] (clipped to the output) around each TSS bin b.

  Args:
    values: [T, N] predicted or observed tracks of one window, or [G, T, N] one window per gene.
    tss_bins: the bin holding the TSS: an int, or one per gene ([G]) for a [G, T, N] input.

  Returns:
    [N] for a [T, N] input, else [G, N].
  """
  values = np.asarray(values)
  if values.ndim == 2:
    low, high = tss_window(int(tss_bins), values.shape[0])
    return values[low:high].sum(axis=0)
  if values.ndim != 3:
    raise ValueError(
        f'values must be [bins, tracks] or [genes, bins, tracks], got shape {values.shape}.'
    )
  centres = np.broadcast_to(np.asarray(tss_bins, dtype=np.int64), (values.shape[0],))
  return np.stack([expression_at_tss(v, int(c)) for v, c in zip(values, centres)])


def tss_window(tss_bin: int, num_bins: int, flank_bins: int = TSS_BINS // 2) -> Tuple[int, int]:
  """Bins [low, high) of the TSS bin ± `flank_bins`, clipped to the `num_bins` output bins.

  Raises:
    ValueError: the TSS bin is not one of the output bins.
  """
  if not 0 <= tss_bin < num_bins:
    raise ValueError(f'TSS bin {tss_bin} is outside the {num_bins} output bins.')
  return max(0, tss_bin - flank_bins), min(num_bins, tss_bin + flank_bins + 1)


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
  """Pearson correlation of two vectors, in float64 (NaN when either is constant).

  The package's one Pearson r of two vectors (the plots', the ridge probe's, the demo's);
  `enformer.training.metrics` streams the per-track one over batches.
  """
  x = np.asarray(x, np.float64).ravel()
  y = np.asarray(y, np.float64).ravel()
  x, y = x - x.mean(), y - y.mean()
  denominator = np.sqrt((x * x).sum() * (y * y).sum())
  return float((x * y).sum() / denominator) if denominator > 0 else float('nan')
