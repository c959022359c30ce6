"""Enhancer–gene link scores (the paper's enhancer prioritisation).

Gradient × input of a gene's TSS bins (CAGE tracks), then the sum of |contribution| in a window
around each candidate enhancer. Shapes: L = input length in bp, C = input channels.
"""

import dataclasses
import math
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from enformer.enformer import BIN_SIZE
from enformer.evaluation.tss import tss_window
from enformer.interpret.gradients import (
    as_batch,
    contribution_input_grad,
    output_shape,
    target_mask,
)


@dataclasses.dataclass
class EnhancerLink:
  """Link score of one enhancer for one gene: sum of |contribution| around the enhancer."""

  name: str
  chrom: str
  start: int
  end: int
  score: float
  distance_to_tss: Optional[int]


def enhancer_link_scores(
    contributions: np.ndarray,
    sequence_chrom: str,
    sequence_start: int,
    enhancers: Iterable,
    window: int = 2000,
    tss: Optional[int] = None,
    statistic: str = 'sum',
) -> List[EnhancerLink]:
  """Scores enhancers by the |contribution| of the bases in a window centred on each enhancer.

  As in the paper's enhancer prioritisation: contributions are computed for a gene's TSS bins
  (CAGE tracks), and each candidate enhancer is scored by the absolute contribution within
  `window` bp centred on it (clipped to the sequence). Enhancers on another chromosome or whose
  window lies entirely outside the sequence get NaN.

  Args:
    contributions: [L] per-base scores of the sequence starting at `sequence_start`.
    sequence_chrom: chromosome of the sequence.
    sequence_start: 0-based genomic position of contributions[0].
    enhancers: intervals with `chrom`, `start`, `end` (and optionally `name`), e.g.
      `enformer.io.bed.read_bed(path)`, or (chrom, start, end) tuples.
    window: bp around each enhancer's centre (use 0 for the enhancer's own extent).
    tss: genomic position of the TSS, to report distances.
    statistic: 'sum' or 'mean' of |contribution| in the window.

  Returns:
    One EnhancerLink per enhancer, in input order.
  """
  if statistic not in ('sum', 'mean'):
    raise ValueError(f"statistic must be 'sum' or 'mean', got {statistic!r}.")
  values = np.abs(np.asarray(contributions, np.float64))
  if values.ndim != 1:
    raise ValueError(f'contributions must be [L] per-base scores, got shape {values.shape}.')
  length = len(values)
  links = []
  for enhancer in enhancers:
    if isinstance(enhancer, (tuple, list)):
      chrom, start, end = enhancer[0], int(enhancer[1]), int(enhancer[2])
      name = enhancer[3] if len(enhancer) > 3 else f'{chrom}:{start + 1}-{end}'
    else:
      chrom, start, end = enhancer.chrom, int(enhancer.start), int(enhancer.end)
      name = getattr(enhancer, 'name', '') or f'{chrom}:{start + 1}-{end}'
    if window > 0:
      centre = (start + end) // 2
      lo, hi = centre - window // 2, centre - window // 2 + window
    else:
      lo, hi = start, end
    lo, hi = max(lo - sequence_start, 0), min(hi - sequence_start, length)
    if chrom != sequence_chrom or hi <= lo:
      score = math.nan
    else:
      score = float(values[lo:hi].sum() if statistic == 'sum' else values[lo:hi].mean())
    distance = None if tss is None else (start + end) // 2 - int(tss)
    links.append(EnhancerLink(name, chrom, start, end, score, distance))
  return links


def tss_window_bins(
    num_bins: int,
    sequence_start: int,
    sequence_length: int,
    tss: int,
    flank_bins: int = 1,
    bin_size: int = BIN_SIZE,
) -> List[int]:
  """Output bins of one TSS's window: its bin ± `flank_bins`, those inside the output.

  The paper's gene-level CAGE readout (`enformer.evaluation.tss.tss_window`) for the TSS at genome
  position `tss`. The output bins are the central `num_bins` of the sequence's
  sequence_length / bin_size bins.
  """
  first_bin_start = sequence_start + (sequence_length - num_bins * bin_size) // 2
  centre = (int(tss) - first_bin_start) // bin_size
  if not 0 <= centre < num_bins:
    raise ValueError(
        f'TSS {tss} is outside the output bins of the sequence starting at '
        f'{sequence_start} ({num_bins} bins of {bin_size} bp, centred): centre the '
        'sequence on the gene.'
    )
  return list(range(*tss_window(centre, num_bins, flank_bins)))


def enhancer_gene_link_scores(
    model,
    sequence_one_hot: np.ndarray,
    sequence_chrom: str,
    sequence_start: int,
    *,
    tss: int,
    enhancers: Iterable,
    tracks: Union[Sequence[int], str],
    head: str = 'human',
    window: int = 2000,
    flank_bins: int = 1,
) -> Tuple[np.ndarray, List[EnhancerLink]]:
  """Enhancer–gene link scores for one gene: gradient × input of the TSS bins, then window sums.

  Args:
    model: as for `contribution_input_grad`.
    sequence_one_hot: [L, C] model input around the gene (one-hot + extra tracks when C > 4).
    sequence_chrom, sequence_start: genomic location of the input (0-based start).
    tss: 0-based genomic position of the gene's TSS; its bin ± `flank_bins` form the target.
    enhancers: candidate enhancers (see `enhancer_link_scores`).
    tracks: tracks of `head` to explain (e.g. the CAGE tracks of the cell type).
    head: output head.
    window: bp around each enhancer summed.
    flank_bins: bins on each side of the TSS bin.

  Returns:
    (contributions [L], links): the per-base scores and one EnhancerLink per enhancer.
  """
  x, _ = as_batch(sequence_one_hot)
  length = int(x.shape[1])
  num_bins, num_tracks = output_shape(model, length, head, input_channels=int(x.shape[2]))
  bins = tss_window_bins(num_bins, sequence_start, length, tss, flank_bins)
  mask = target_mask(num_bins, num_tracks, bins, tracks)
  contributions = contribution_input_grad(model, x, mask, head)[0]
  return contributions, enhancer_link_scores(
      contributions, sequence_chrom, sequence_start, enhancers, window=window, tss=tss
  )
