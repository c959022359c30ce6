"""Expression of a gene in one window of predictions: its TSSs' CAGE-at-TSS, summed or maxed.

A window's output bin i covers genome positions [s + 128 i, s + 128 (i + 1)), where s is the
0-based genome coordinate of the start of output bin 0 (the window start plus the cropped flank,
(L − 128 T) / 2). A TSS at 0-based position t lies in bin ⌊(t − s) / 128⌋; it counts when that
bin is one of the T output bins. Its expression is `enformer.evaluation.tss.expression_at_tss`:
the bin and its two neighbours (those inside the output), summed. A gene's expression is the
sum (`stat='sum'`, default) or the maximum (`stat='max'`) of that over its TSSs in the output.
"""

from typing import Sequence

import numpy as np

from enformer.evaluation.tss import expression_at_tss

BIN_SIZE = 128
GENE_STATS = ('sum', 'max')


def tss_bins(
    tss: Sequence[int], output_start: int, num_bins: int, bin_size: int = BIN_SIZE
) -> np.ndarray:
  """Output bins [K] holding the TSSs of `tss` that lie in the output (in `tss` order).

  Args:
    tss: 0-based genome positions of TSSs.
    output_start: 0-based genome coordinate of the start of output bin 0.
    num_bins: number of output bins T.
    bin_size: bp per output bin.
  """
  bins = np.floor_divide(np.asarray(tss, np.int64) - int(output_start), bin_size)
  return bins[(bins >= 0) & (bins < num_bins)]


def gene_expression(
    predictions: np.ndarray,
    output_start: int,
    tss: Sequence[int],
    *,
    stat: str = 'sum',
    bin_size: int = BIN_SIZE,
) -> np.ndarray:
  """Expression of one gene in one window: [N] per track.

  Args:
    predictions: [T, N] one window's predictions (genome orientation).
    output_start: 0-based genome coordinate of the start of output bin 0.
    tss: the gene's 0-based TSS positions; those outside the output are ignored.
    stat: 'sum' or 'max' over the gene's TSSs of their 3-bin sums.
    bin_size: bp per output bin.

  Returns:
    [N] float64.

  Raises:
    ValueError: no TSS of the gene lies in the output, or an unknown `stat`.
  """
  if stat not in GENE_STATS:
    raise ValueError(f'stat must be one of {GENE_STATS}, got {stat!r}.')
  predictions = np.asarray(predictions, np.float64)
  if predictions.ndim != 2:
    raise ValueError(f'predictions must be [bins, tracks], got shape {predictions.shape}.')
  bins = tss_bins(tss, output_start, predictions.shape[0], bin_size)
  if bins.size == 0:
    raise ValueError(
        f'No TSS of {list(tss)[:5]} lies in the output bins '
        f'[{output_start}, {output_start + predictions.shape[0] * bin_size}).'
    )
  per_tss = np.stack([expression_at_tss(predictions, int(b)) for b in bins])  # [K, N]
  return per_tss.sum(axis=0) if stat == 'sum' else per_tss.max(axis=0)
