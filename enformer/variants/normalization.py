"""Normalised variant scores: z-scores and principal components fitted on reference variants.

Like the usage colab's `EnformerScoreVariantsNormalized` (StandardScaler → z-scores) and
`EnformerScoreVariantsPCANormalized` (StandardScaler → PCA → top-k components), whose
transform DeepMind shipped as a scikit-learn pipeline pickle. Here the fitted parameters are
stored as plain arrays in an `.npz` file (no code execution on load). A scikit-learn pickle can
be converted, but only with `allow_pickle=True`, because unpickling runs arbitrary code.
"""

import dataclasses
import os
import warnings
import zipfile
from typing import Optional, Sequence, Union

import numpy as np
import joblib
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from enformer.io.atomic import atomic_open

PathLike = Union[str, os.PathLike]


@dataclasses.dataclass
class ScoreTransform:
  """z = (scores − mean) / scale;  PCs = (z − pca_mean) @ components.T  [/ sqrt(variance)].

  Attributes:
    mean, scale: [N] StandardScaler parameters (per track).
    pca_mean: [N] mean of the z-scores the PCA was fitted on.
    components: [K, N] principal axes, by decreasing explained variance.
    explained_variance: [K] variance of each component.
    whiten: divide the PCs by sqrt(explained_variance) (sklearn's `whiten=True`).
    target_ids: [N] track identifiers the transform was fitted on (may be empty).
  """

  mean: np.ndarray
  scale: np.ndarray
  pca_mean: np.ndarray
  components: np.ndarray
  explained_variance: np.ndarray
  whiten: bool = False
  target_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.array([], dtype=str))

  @property
  def num_tracks(self) -> int:
    return len(self.mean)

  @property
  def num_components(self) -> int:
    return len(self.components)

  def _check(self, scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or scores.shape[1] != self.num_tracks:
      raise ValueError(
          f'Scores have shape {scores.shape}, but the transform was fitted on '
          f'{self.num_tracks} tracks: score with the same head and all its tracks.'
      )
    return scores

  def zscore(self, scores: np.ndarray) -> np.ndarray:
    """[V, N] raw SAD → [V, N] z-scores (float32)."""
    return ((self._check(scores) - self.mean) / self.scale).astype(np.float32)

  def pcs(self, scores: np.ndarray, num_components: Optional[int] = None) -> np.ndarray:
    """[V, N] raw SAD → [V, k] top-k principal components (float32)."""
    k = self.num_components if num_components is None else int(num_components)
    if not 1 <= k <= self.num_components:
      raise ValueError(
          f'Asked for {k} PCs but the transform has {self.num_components}; pass '
          f'`num_pcs` between 1 and {self.num_components} (or refit with more).'
      )
    z = (self._check(scores) - self.mean) / self.scale
    projected = (z - self.pca_mean) @ self.components[:k].T
    if self.whiten:
      projected /= np.sqrt(self.explained_variance[:k])
    return projected.astype(np.float32)

  @classmethod
  def fit(
      cls,
      scores: np.ndarray,
      num_components: int = 20,
      target_ids: Sequence[str] = (),
      whiten: bool = False,
      seed: int = 0,
  ) -> 'ScoreTransform':
    """Fits StandardScaler + PCA (scikit-learn) on reference-variant scores [V, N]."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or len(scores) < 2:
      raise ValueError(
          f'Need scores [variants ≥ 2, tracks] to fit a transform, got shape '
          f'{scores.shape}. Score a larger reference variant set.'
      )
    k = min(int(num_components), *scores.shape)
    if k < 1:
      raise ValueError('num_components must be ≥ 1.')
    scaler = StandardScaler().fit(scores)
    pca = PCA(n_components=k, whiten=whiten, random_state=seed).fit(scaler.transform(scores))
    return cls.from_sklearn_parts(scaler, pca, target_ids)

  @classmethod
  def from_sklearn_parts(cls, scaler, pca=None, target_ids: Sequence[str] = ()) -> 'ScoreTransform':
    """From fitted sklearn StandardScaler (and PCA; None = z-scores only)."""
    num_tracks = len(scaler.mean_)
    scale = np.asarray(scaler.scale_ if scaler.scale_ is not None else np.ones(num_tracks))
    if pca is None:
      pca_mean = np.zeros(num_tracks)
      components = np.zeros((0, num_tracks))
      variance = np.zeros(0)
      whiten = False
    else:
      pca_mean = np.asarray(pca.mean_, np.float64)
      components = np.asarray(pca.components_, np.float64)
      variance = np.asarray(pca.explained_variance_, np.float64)
      whiten = bool(pca.whiten)
    return cls(
        np.asarray(scaler.mean_, np.float64),
        scale.astype(np.float64),
        pca_mean,
        components,
        variance,
        whiten,
        np.asarray(list(target_ids), dtype=str),
    )

  def save(self, path: PathLike) -> None:
    """Writes the parameters as a plain `.npz` (loadable without pickle)."""
    with atomic_open(path, 'wb') as handle:
      np.savez(
          handle,
          mean=self.mean,
          scale=self.scale,
          pca_mean=self.pca_mean,
          components=self.components,
          explained_variance=self.explained_variance,
          whiten=np.array(self.whiten),
          target_ids=np.asarray(self.target_ids, dtype=str),
      )

  @classmethod
  def load(cls, path: PathLike, allow_pickle: bool = False) -> 'ScoreTransform':
    """Loads an `.npz` written by `save`, or (only with allow_pickle) a scikit-learn pickle.

    The pickle may be DeepMind's Pipeline([StandardScaler, PCA]) or a lone StandardScaler.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
      raise FileNotFoundError(f'Transform file {path} does not exist.')
    if zipfile.is_zipfile(path):
      with np.load(path, allow_pickle=False) as data:
        return cls(
            data['mean'],
            data['scale'],
            data['pca_mean'],
            data['components'],
            data['explained_variance'],
            bool(data['whiten']),
            data['target_ids'],
        )
    if not allow_pickle:
      raise ValueError(
          f'{path} is not an .npz transform; it looks like a pickle (e.g. the '
          'scikit-learn pipeline DeepMind shipped). Unpickling runs arbitrary code: '
          'only if you trust the file, set `allow_pickle`, then save it as .npz '
          '(`save_transform`).'
      )
    warnings.warn(
        f'Loading the pickle {path}: unpickling can execute arbitrary code. Convert it '
        'once to .npz (ScoreTransform.save) and use that instead.',
        stacklevel=2,
    )
    obj = joblib.load(path)
    steps = [step for _, step in obj.steps] if hasattr(obj, 'steps') else [obj]
    scaler = next((s for s in steps if hasattr(s, 'mean_') and hasattr(s, 'scale_')), None)
    pca = next((s for s in steps if hasattr(s, 'components_')), None)
    if scaler is None:
      raise ValueError(
          f'{path} holds {type(obj).__name__}, not a StandardScaler or a Pipeline '
          'starting with one.'
      )
    return cls.from_sklearn_parts(scaler, pca)
