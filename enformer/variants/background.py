"""Quantile scores against a background set of variants (AlphaGenome's `quantile_score`).

A background (e.g. common variants) is scored once; per statistic (SAD, SED, logSED, ...) and
track, the distribution of |score| over it is stored as Q quantiles of |score| at probabilities
0, 1/(Q−1), ..., 1. A new score x then gets

  quantile_score(x) = sign(x) · F(|x|)      in [−1, 1]

where F is the background's empirical distribution function of |score| (piecewise linear between
the stored quantiles, 0 below the smallest and 1 above the largest). On the background itself,
F(|x|) is uniform on [0, 1]. Stored as `.npz` (plain arrays, never a pickle) beside the z/PCA
transform of `enformer.variants.normalization`.
"""

import dataclasses
import os
from typing import Dict, Mapping, Sequence, Union

import numpy as np

from enformer.io.atomic import atomic_open

PathLike = Union[str, os.PathLike]
DEFAULT_QUANTILES = 1001


@dataclasses.dataclass
class Background:
  """Per statistic, quantiles of |score| per track: {stat: [Q, N]} at `probabilities` [Q].

  Attributes:
    probabilities: [Q] increasing, 0 … 1.
    quantiles: statistic name → [Q, N] quantiles of |score| of each track.
    target_ids: [N] track identifiers the background was scored on (may be empty).
    num_variants: background scores each statistic was fitted on.
  """

  probabilities: np.ndarray
  quantiles: Dict[str, np.ndarray]
  target_ids: np.ndarray
  num_variants: Dict[str, int]

  @classmethod
  def fit(
      cls,
      scores: Mapping[str, np.ndarray],
      target_ids: Sequence[str] = (),
      num_quantiles: int = DEFAULT_QUANTILES,
  ) -> 'Background':
    """Fits the |score| quantiles of each statistic's [V, N] background scores."""
    if num_quantiles < 2:
      raise ValueError(f'num_quantiles must be at least 2, got {num_quantiles}.')
    probabilities = np.linspace(0.0, 1.0, num_quantiles)
    quantiles, counts = {}, {}
    for name, values in scores.items():
      values = np.abs(np.asarray(values, np.float64))
      if values.ndim != 2 or len(values) < 2:
        raise ValueError(
            f'A background needs [variants, tracks] scores of at least 2 variants; '
            f'{name} has shape {values.shape}.'
        )
      quantiles[name] = np.quantile(values, probabilities, axis=0)  # [Q, N]
      counts[name] = int(len(values))
    return cls(probabilities, quantiles, np.asarray(list(target_ids), str), counts)

  @property
  def stats(self):
    return sorted(self.quantiles)

  def quantile_score(self, name: str, scores: np.ndarray) -> np.ndarray:
    """sign(x) · F(|x|) of [P, N] scores of statistic `name` → [P, N] float32 in [−1, 1]."""
    if name not in self.quantiles:
      raise ValueError(
          f'The background holds no {name} distribution (it has {self.stats}); fit '
          f'it on {name} scores.'
      )
    table = self.quantiles[name]
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or scores.shape[1] != table.shape[1]:
      raise ValueError(
          f"{name} scores of shape {scores.shape} do not match the background's "
          f'{table.shape[1]} tracks; use a background of the same head and targets.'
      )
    magnitude = np.abs(scores)
    result = np.empty_like(magnitude)
    for track in range(table.shape[1]):
      # Ties in the table (e.g. many zero scores): interpolate on the unique points, at their
      # largest probability (the fraction of the background at or below that value).
      points, last = np.unique(table[:, track][::-1], return_index=True)
      probabilities = self.probabilities[::-1][last]
      result[:, track] = np.interp(magnitude[:, track], points, probabilities, left=0.0, right=1.0)
    return (np.sign(scores) * result).astype(np.float32)

  def check_targets(self, target_ids: Sequence[str]) -> None:
    """ValueError when the background was scored on other tracks."""
    fitted = [str(t) for t in self.target_ids]
    if fitted and fitted != [str(t) for t in target_ids]:
      raise ValueError(
          'The background was scored on other tracks (target identifiers differ); '
          'use a background of the same head and targets table.'
      )

  def save(self, path: PathLike) -> None:
    """Writes an `.npz` (atomically): probabilities, target_ids, stats and one array per stat."""
    arrays = {f'quantiles_{name}': table for name, table in self.quantiles.items()}
    with atomic_open(path, 'wb') as handle:
      np.savez(
          handle,
          probabilities=self.probabilities,
          target_ids=self.target_ids,
          stats=np.asarray(self.stats, str),
          num_variants=np.asarray([self.num_variants[s] for s in self.stats], np.int64),
          **arrays,
      )

  @classmethod
  def load(cls, path: PathLike) -> 'Background':
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f'Background {path} does not exist; fit one on a background '
          'variant set (`fit_background`).'
      )
    try:
      with np.load(path, allow_pickle=False) as data:
        stats = [str(s) for s in data['stats']]
        return cls(
            data['probabilities'],
            {s: data[f'quantiles_{s}'] for s in stats},
            data['target_ids'],
            dict(zip(stats, map(int, data['num_variants']))),
        )
    except (KeyError, ValueError, OSError) as error:
      raise ValueError(
          f'{path} is not a background file ({error}); fit one on a '
          'background variant set (`fit_background`).'
      ) from None
