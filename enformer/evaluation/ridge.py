"""Ridge regression from predicted tracks at gene TSSs to expression of new cell types.

Enformer's predicted tracks (e.g. the 638 CAGE tracks) summarise each gene's promoter; a linear
model per new cell type maps them to that cell type's measured expression:

  1. features: per gene, the 3 output bins centred on the TSS bin, summed, log1p  → [G, N]
     (`tss_log_features`);
  2. z-score each track across the training genes (statistics kept for prediction);
  3. one scikit-learn ridge regression per cell type, alpha chosen by cross-validation
     (`sklearn.linear_model.RidgeCV`: efficient leave-one-out by default, or k-fold);
  4. Pearson correlation between predicted and measured expression on held-out genes, per cell type.

`fit_ridge` returns a `RidgeExpressionModel` (coefficients, intercepts, alphas, z-score statistics,
held-out correlations) saved/loaded as `.npz` (no pickle).
"""

import dataclasses
import os
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from tqdm.auto import tqdm
from enformer.evaluation.tss import TSS_BINS, expression_at_tss, pearson_r
from enformer.io.atomic import atomic_open

PathLike = Union[str, os.PathLike]
DEFAULT_ALPHAS = np.logspace(-3, 6, 19)


def tss_bin_sum(
    predictions: np.ndarray, tss_bins: Union[int, Sequence[int], np.ndarray]
) -> np.ndarray:
  """Sums the 3 bins centred on each gene's TSS bin (`enformer.evaluation.tss.expression_at_tss`).

  Args:
    predictions: [G, T, N] predicted tracks per gene (T bins), or [T, N] for one gene.
    tss_bins: index of the bin holding the TSS, one per gene ([G]) or one for all (int); for
      windows centred on the TSS this is T // 2. It must not be the first or last bin.

  Returns:
    [G, N] (or [N] for a [T, N] input) sums.
  """
  predictions = np.asarray(predictions)
  single = predictions.ndim == 2
  if single:
    predictions = predictions[np.newaxis]
  if predictions.ndim != 3:
    raise ValueError(f'predictions must be [genes, bins, tracks], got shape {predictions.shape}.')
  num_genes, num_bins, _ = predictions.shape
  centres = np.broadcast_to(np.asarray(tss_bins, dtype=np.int64), (num_genes,))
  half = TSS_BINS // 2
  outside = (centres - half < 0) | (centres + half >= num_bins)
  if np.any(outside):
    raise ValueError(
        f'TSS bins {centres[outside][:5].tolist()} leave no room for {TSS_BINS} bins in '
        f'{num_bins} output bins; predict windows centred on the TSS (TSS bin = bins // 2).'
    )
  sums = expression_at_tss(predictions, centres)
  return sums[0] if single else sums


def tss_log_features(
    predictions: np.ndarray, tss_bins: Union[int, Sequence[int], np.ndarray]
) -> np.ndarray:
  """log1p of `tss_bin_sum`: the per-gene features before z-scoring, [G, N] float32."""
  sums = tss_bin_sum(predictions, tss_bins)
  if np.any(sums < 0):
    raise ValueError('Predicted tracks must be non-negative (softplus outputs) for log1p.')
  return np.log1p(sums).astype(np.float32)


def zscore_statistics(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Per-track mean and standard deviation across genes ([N] each; std 0 → 1)."""
  features = np.asarray(features, dtype=np.float64)
  mean = features.mean(axis=0)
  std = features.std(axis=0)
  return mean, np.where(std > 0, std, 1.0)


@dataclasses.dataclass
class RidgeExpressionModel:
  """One ridge regression per cell type on z-scored TSS features.

  Attributes:
    cell_types: C names.
    track_names: N feature (track) names.
    coef: [C, N] coefficients on z-scored features.
    intercept: [C].
    alpha: [C] regularisation chosen by cross-validation.
    feature_mean, feature_std: [N] z-score statistics of the training genes (log1p features).
    heldout_r: [C] Pearson R on held-out genes (NaN without a held-out set).
    num_train, num_heldout: genes used for fitting / evaluation.
  """

  cell_types: List[str]
  track_names: List[str]
  coef: np.ndarray
  intercept: np.ndarray
  alpha: np.ndarray
  feature_mean: np.ndarray
  feature_std: np.ndarray
  heldout_r: np.ndarray
  num_train: int = 0
  num_heldout: int = 0

  def standardize(self, features: np.ndarray) -> np.ndarray:
    """Z-scores log1p TSS features [G, N] with the training statistics."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != len(self.feature_mean):
      raise ValueError(
          f'Expected features [genes, {len(self.feature_mean)}] (log1p TSS sums of '
          f'the tracks the model was fitted on), got shape {features.shape}.'
      )
    return (features - self.feature_mean) / self.feature_std

  def predict(self, features: np.ndarray) -> np.ndarray:
    """Predicted expression [G, C] from log1p TSS features [G, N] (`tss_log_features`)."""
    return self.standardize(features) @ self.coef.T + self.intercept

  def save(self, path: PathLike) -> None:
    """Writes an `.npz` (strings as unicode arrays; loads without pickle)."""
    path = os.fspath(path)
    path = path if path.endswith('.npz') else path + '.npz'  # np.savez's naming.
    with atomic_open(path, 'wb') as handle:
      np.savez(
          handle,
          cell_types=np.asarray(self.cell_types, dtype=str),
          track_names=np.asarray(self.track_names, dtype=str),
          coef=self.coef,
          intercept=self.intercept,
          alpha=self.alpha,
          feature_mean=self.feature_mean,
          feature_std=self.feature_std,
          heldout_r=self.heldout_r,
          num_train=self.num_train,
          num_heldout=self.num_heldout,
      )

  @classmethod
  def load(cls, path: PathLike) -> 'RidgeExpressionModel':
    with np.load(path, allow_pickle=False) as data:
      return cls(
          cell_types=data['cell_types'].tolist(),
          track_names=data['track_names'].tolist(),
          coef=data['coef'],
          intercept=data['intercept'],
          alpha=data['alpha'],
          feature_mean=data['feature_mean'],
          feature_std=data['feature_std'],
          heldout_r=data['heldout_r'],
          num_train=int(data['num_train']),
          num_heldout=int(data['num_heldout']),
      )

  def summary(self) -> str:
    lines = [
        f'{len(self.cell_types)} cell types, {len(self.track_names)} tracks, '
        f'{self.num_train} training / {self.num_heldout} held-out genes'
    ]
    for name, r, alpha in zip(self.cell_types, self.heldout_r, self.alpha):
      lines.append(f'  {name}: held-out R = {r:.3f} (alpha {alpha:.3g})')
    if self.num_heldout:
      lines.append(f'  mean held-out R = {np.nanmean(self.heldout_r):.3f}')
    return '\n'.join(lines)


def heldout_split(num_genes: int, fraction: float = 0.2, seed: int = 0) -> np.ndarray:
  """Boolean mask [G] of randomly held-out genes (for chromosome splits pass your own mask)."""
  if not 0 <= fraction < 1:
    raise ValueError(f'heldout fraction must be in [0, 1), got {fraction}.')
  mask = np.zeros(num_genes, bool)
  mask[np.random.default_rng(seed).permutation(num_genes)[: int(round(fraction * num_genes))]] = (
      True
  )
  return mask


def fit_ridge(
    features: np.ndarray,
    expression: np.ndarray,
    *,
    cell_types: Optional[Sequence[str]] = None,
    track_names: Optional[Sequence[str]] = None,
    heldout: Union[float, np.ndarray] = 0.2,
    alphas: Iterable[float] = DEFAULT_ALPHAS,
    cv: Optional[int] = None,
    seed: int = 0,
    progress: bool = True,
) -> RidgeExpressionModel:
  """Fits one ridge regression per cell type from TSS features to measured expression.

  Args:
    features: [G, N] log1p TSS features (`tss_log_features`), not yet z-scored.
    expression: [G, C] measured expression (e.g. log1p CAGE/RNA) of C new cell types.
    cell_types, track_names: names for the C targets and N features.
    heldout: fraction of genes held out at random (seeded), or a boolean mask [G] (e.g. genes on
      test chromosomes). Z-score statistics and alphas come from the training genes only.
    alphas: candidate regularisation strengths.
    cv: None for efficient leave-one-out cross-validation, or k for (shuffled) k-fold.
    seed: held-out split and fold shuffling.
    progress: show a tqdm bar over cell types.

  Returns:
    A `RidgeExpressionModel` with held-out Pearson R per cell type.
  """
  features = np.asarray(features, dtype=np.float64)
  expression = np.asarray(expression, dtype=np.float64)
  if expression.ndim == 1:
    expression = expression[:, np.newaxis]
  if features.ndim != 2 or expression.ndim != 2 or len(features) != len(expression):
    raise ValueError(
        f'Expected features [genes, tracks] and expression [genes, cell types] for '
        f'the same genes, got {features.shape} and {expression.shape}.'
    )
  if not (np.isfinite(features).all() and np.isfinite(expression).all()):
    raise ValueError(
        'features and expression must be finite (no NaN/Inf); drop or impute genes '
        'with missing measurements first.'
    )
  num_genes, num_tracks = features.shape
  num_cell_types = expression.shape[1]
  cell_types = (
      list(cell_types)
      if cell_types is not None
      else [f'cell_type_{i}' for i in range(num_cell_types)]
  )
  track_names = (
      list(track_names) if track_names is not None else [f'track_{i}' for i in range(num_tracks)]
  )
  if len(cell_types) != num_cell_types or len(track_names) != num_tracks:
    raise ValueError(
        f'{len(cell_types)} cell type names for {num_cell_types} columns / '
        f'{len(track_names)} track names for {num_tracks} features.'
    )
  mask = (
      np.asarray(heldout, bool)
      if isinstance(heldout, np.ndarray)
      else heldout_split(num_genes, float(heldout), seed)
  )
  if mask.shape != (num_genes,):
    raise ValueError(f'heldout mask must have one entry per gene ({num_genes}), got {mask.shape}.')
  train = ~mask
  min_genes = max(3, cv or 3)
  if train.sum() < min_genes:
    raise ValueError(f'Only {train.sum()} training genes; need at least {min_genes}.')

  mean, std = zscore_statistics(features[train])
  z = (features - mean) / std
  folds = KFold(cv, shuffle=True, random_state=seed) if cv else None
  alphas = np.asarray(list(alphas), dtype=np.float64)
  coef = np.zeros((num_cell_types, num_tracks))
  intercept = np.zeros(num_cell_types)
  chosen = np.zeros(num_cell_types)
  heldout_r = np.full(num_cell_types, np.nan)
  for c in tqdm(range(num_cell_types), desc='ridge per cell type', disable=not progress):
    regression = RidgeCV(alphas=alphas, cv=folds).fit(z[train], expression[train, c])
    coef[c], intercept[c], chosen[c] = regression.coef_, regression.intercept_, regression.alpha_
    if mask.sum() >= 2:
      heldout_r[c] = pearson_r(regression.predict(z[mask]), expression[mask, c])
  return RidgeExpressionModel(
      cell_types=cell_types,
      track_names=track_names,
      coef=coef,
      intercept=intercept,
      alpha=chosen,
      feature_mean=mean,
      feature_std=std,
      heldout_r=heldout_r,
      num_train=int(train.sum()),
      num_heldout=int(mask.sum()),
  )
