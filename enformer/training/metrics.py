"""Streaming per-track Pearson R and R² from summed sufficient statistics.

Every batch (on every replica) yields seven sums per track over all (sequence, bin) pairs:
count, Σp, Σy, Σp², Σy², Σpy, Σ(y − p)². Sums add up exactly across batches, replicas and
workers, so the correlation of the whole validation set is computed once from the totals —
never by averaging per-replica or per-batch correlations. Totals are kept in float64 on the host.

  Pearson R = cov(p, y) / (sd(p) · sd(y))   (the paper's metric: over bins and sequences)
  R²        = 1 − Σ(y − p)² / Σ(y − ȳ)²

Tracks with zero variance (constant target or prediction) have R = NaN; `summarize` averages over
the other tracks and reports how many were skipped.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

STATISTICS = (
    'count',
    'sum_pred',
    'sum_target',
    'sum_pred_sq',
    'sum_target_sq',
    'sum_pred_target',
    'sum_sq_error',
)
NUM_STATISTICS = len(STATISTICS)


def sufficient_statistics(targets: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
  """Per-track sums of a batch.

  Args:
    targets: [B, T, N] observed values.
    predictions: [B, T, N] predicted values.

  Returns:
    float32 [7, N] in the order of STATISTICS, summed over batch and bins.
  """
  y = tf.cast(targets, tf.float32)
  p = tf.cast(predictions, tf.float32)
  if y.shape.rank != 3:
    raise ValueError(f'Expected targets [batch, bins, tracks], got shape {y.shape}.')
  axes = [0, 1]
  # Works for empty batches too (a replica may get no examples of the last partial batch).
  count = tf.fill(tf.shape(y)[-1:], tf.cast(tf.shape(y)[0] * tf.shape(y)[1], tf.float32))
  return tf.stack(
      [
          count,
          tf.reduce_sum(p, axes),
          tf.reduce_sum(y, axes),
          tf.reduce_sum(p * p, axes),
          tf.reduce_sum(y * y, axes),
          tf.reduce_sum(p * y, axes),
          tf.reduce_sum(tf.math.squared_difference(y, p), axes),
      ]
  )


def numpy_statistics(targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
  """float64 [7, N] sums over every axis but the last (targets/predictions [..., N])."""
  y = np.asarray(targets, np.float64).reshape(-1, np.shape(targets)[-1])
  p = np.asarray(predictions, np.float64).reshape(-1, np.shape(predictions)[-1])
  return np.stack(
      [
          np.full(y.shape[1], y.shape[0], np.float64),
          p.sum(0),
          y.sum(0),
          (p * p).sum(0),
          (y * y).sum(0),
          (p * y).sum(0),
          ((y - p) ** 2).sum(0),
      ]
  )


class TrackCorrelation:
  """Accumulates sufficient statistics of N tracks; gives per-track Pearson R and R²."""

  def __init__(self, num_tracks: Optional[int] = None):
    self.totals = None if num_tracks is None else np.zeros([NUM_STATISTICS, num_tracks])

  def update(self, statistics) -> None:
    """Adds sums [7, N] (tensor or array) of one batch, replica or worker."""
    statistics = np.asarray(statistics, np.float64)
    if statistics.ndim != 2 or statistics.shape[0] != NUM_STATISTICS:
      raise ValueError(f'Expected statistics [{NUM_STATISTICS}, tracks], got {statistics.shape}.')
    if self.totals is None:
      self.totals = np.zeros_like(statistics)
    if statistics.shape != self.totals.shape:
      raise ValueError(
          f'Statistics for {statistics.shape[1]} tracks cannot be added to '
          f'{self.totals.shape[1]} tracks.'
      )
    self.totals += statistics

  def update_from_values(self, targets, predictions) -> None:
    self.update(numpy_statistics(targets, predictions))

  @property
  def count(self) -> float:
    return 0.0 if self.totals is None else float(self.totals[0].max(initial=0.0))

  def _moments(self):
    if self.totals is None or self.count == 0:
      raise ValueError('No data was accumulated: the evaluation set is empty.')
    n, sp, sy, spp, syy, spy, sse = self.totals
    mean_p, mean_y = sp / n, sy / n
    cov = spy / n - mean_p * mean_y
    var_p = np.maximum(spp / n - mean_p**2, 0.0)
    var_y = np.maximum(syy / n - mean_y**2, 0.0)
    return n, cov, var_p, var_y, sse

  def pearson_r(self) -> np.ndarray:
    """[N] Pearson correlation per track (NaN where a variance is zero)."""
    _, cov, var_p, var_y, _ = self._moments()
    with np.errstate(divide='ignore', invalid='ignore'):
      r = cov / np.sqrt(var_p * var_y)
    r[(var_p <= 0) | (var_y <= 0)] = np.nan
    return np.clip(r, -1.0, 1.0)

  def r2(self) -> np.ndarray:
    """[N] coefficient of determination per track (NaN where the target is constant)."""
    n, _, _, var_y, sse = self._moments()
    with np.errstate(divide='ignore', invalid='ignore'):
      r2 = 1.0 - sse / (var_y * n)
    r2[var_y <= 0] = np.nan
    return r2


@dataclasses.dataclass
class Summary:
  """Mean of a per-track metric over the tracks where it is defined."""

  mean: float
  num_tracks: int
  num_nan: int

  def __str__(self) -> str:
    skipped = f', {self.num_nan} NaN track(s) skipped' if self.num_nan else ''
    return f'{self.mean:.4f} over {self.num_tracks - self.num_nan} tracks{skipped}'


def summarize(values: Sequence[float]) -> Summary:
  """Mean over non-NaN values, with the number of NaN tracks skipped."""
  values = np.asarray(values, np.float64)
  finite = np.isfinite(values)
  mean = float(values[finite].mean()) if finite.any() else float('nan')
  return Summary(mean=mean, num_tracks=int(values.size), num_nan=int((~finite).sum()))


def head_metrics(correlation: TrackCorrelation) -> Dict[str, object]:
  """{'pearson_r': [N], 'r2': [N], 'pearson_r_mean': Summary, 'r2_mean': Summary}."""
  r, r2 = correlation.pearson_r(), correlation.r2()
  return {'pearson_r': r, 'r2': r2, 'pearson_r_mean': summarize(r), 'r2_mean': summarize(r2)}


def pearson_per_row(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Pearson R between matching rows of x and y [M, K] (NaN for constant rows)."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  stats = numpy_statistics(y.T, x.T)  # Rows become tracks.
  correlation = TrackCorrelation()
  correlation.update(stats)
  return correlation.pearson_r()


def describe(metrics_by_head: Dict[str, Dict[str, object]]) -> List[str]:
  """One line per head: mean Pearson R and R² (with NaN tracks skipped)."""
  return [
      f'{head}: Pearson R {m["pearson_r_mean"]}; R² {m["r2_mean"]}'
      for head, m in metrics_by_head.items()
  ]
