"""Ridge regression from TSS features to new cell types: features, recovery, save/load, errors."""

import numpy as np
import pytest

from enformer.evaluation import ridge
from enformer.plots.evaluation import plot_heldout


def test_tss_features_sum_three_central_bins_log1p():
  predictions = np.arange(2 * 7 * 3, dtype=np.float32).reshape(2, 7, 3)
  sums = ridge.tss_bin_sum(predictions, [3, 1])
  np.testing.assert_array_equal(sums[0], predictions[0, 2:5].sum(axis=0))
  np.testing.assert_array_equal(sums[1], predictions[1, 0:3].sum(axis=0))
  np.testing.assert_allclose(
      ridge.tss_log_features(predictions, 3), np.log1p(predictions[:, 2:5].sum(axis=1)), rtol=1e-6
  )
  np.testing.assert_array_equal(ridge.tss_bin_sum(predictions[0], 3), sums[0])
  with pytest.raises(ValueError, match='no room'):
    ridge.tss_bin_sum(predictions, [0, 3])
  with pytest.raises(ValueError, match='non-negative'):
    ridge.tss_log_features(-predictions - 1, 3)


def synthetic(num_genes=1500, num_tracks=30, num_cell_types=3, noise=0.1, seed=0):
  """Predicted tracks around TSSs, and expression = z-scored TSS features @ known coefficients."""
  rng = np.random.default_rng(seed)
  # Correlated tracks, like real CAGE/DNase predictions: a shared promoter activity + track noise.
  activity = rng.gamma(2.0, 1.0, (num_genes, 1, 1))
  predictions = activity * rng.gamma(2.0, 1.0, (num_genes, 9, num_tracks)).astype(np.float32)
  features = ridge.tss_log_features(predictions, 4)
  mean, std = ridge.zscore_statistics(features)
  true_coef = rng.normal(0, 1, (num_cell_types, num_tracks)) * (
      rng.random((num_cell_types, num_tracks)) < 0.4
  )
  true_intercept = rng.normal(0, 1, num_cell_types)
  expression = (features - mean) / std @ true_coef.T + true_intercept
  expression += rng.normal(0, noise, expression.shape)
  return predictions, features, expression, true_coef, true_intercept


def test_ridge_recovers_known_coefficients(tmp_path):
  _, features, expression, true_coef, true_intercept = synthetic()
  model = ridge.fit_ridge(
      features, expression, cell_types=['a', 'b', 'c'], heldout=0.2, progress=False
  )
  assert model.coef.shape == true_coef.shape
  np.testing.assert_allclose(model.coef, true_coef, atol=0.05)
  # Intercepts differ slightly: z-score statistics come from the training genes only.
  mean, std = ridge.zscore_statistics(features)
  noiseless = (features - mean) / std @ true_coef.T + true_intercept
  assert np.abs(model.predict(features) - noiseless).max() < 0.15
  np.testing.assert_allclose(model.intercept, true_intercept, atol=0.15)
  assert np.all(model.heldout_r > 0.99), model.summary()
  assert model.num_heldout == 300 and model.num_train == 1200
  assert np.all(np.isin(model.alpha, ridge.DEFAULT_ALPHAS))
  # k-fold cross-validation chooses alpha as well.
  kfold = ridge.fit_ridge(features, expression[:, :1], cv=5, progress=False)
  np.testing.assert_allclose(kfold.coef[0], true_coef[0], atol=0.05)

  path = tmp_path / 'ridge.npz'
  model.save(path)
  loaded = ridge.RidgeExpressionModel.load(path)
  assert loaded.cell_types == ['a', 'b', 'c'] and loaded.track_names[0] == 'track_0'
  np.testing.assert_array_equal(loaded.coef, model.coef)
  np.testing.assert_allclose(loaded.predict(features), model.predict(features))
  with np.load(path, allow_pickle=False) as data:  # A plain npz, no pickled objects.
    assert set(data.files) >= {'coef', 'intercept', 'alpha', 'feature_mean', 'heldout_r'}

  png = tmp_path / 'heldout.png'
  mask = ridge.heldout_split(len(features), 0.2, seed=0)
  plot_heldout(model, features, expression, mask, png)
  assert png.stat().st_size > 10_000


def test_strong_regularisation_chosen_for_noise():
  """Expression unrelated to the features: CV picks a large alpha and held-out R is near 0."""
  _, features, _, _, _ = synthetic()
  noise = np.random.default_rng(5).normal(size=(len(features), 2))
  model = ridge.fit_ridge(features, noise, progress=False)
  assert np.all(model.alpha >= 100)
  assert np.all(np.abs(model.heldout_r) < 0.2)


def test_chromosome_mask_and_bad_input():
  _, features, expression, _, _ = synthetic(num_genes=200)
  mask = np.zeros(200, bool)
  mask[:50] = True  # E.g. genes on held-out chromosomes.
  model = ridge.fit_ridge(features, expression, heldout=mask, progress=False)
  assert model.num_heldout == 50
  with pytest.raises(ValueError, match='same genes'):
    ridge.fit_ridge(features, expression[:-1], progress=False)
  bad = expression.copy()
  bad[3, 1] = np.nan
  with pytest.raises(ValueError, match='finite'):
    ridge.fit_ridge(features, bad, progress=False)
  with pytest.raises(ValueError, match=r'features \[genes, 30\]'):
    model.predict(features[:, :5])
