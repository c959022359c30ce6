"""Quantile scores against a background (enformer.variants.background) in score-genes and
score-variants outputs."""

import h5py
import numpy as np
import pytest
from scipy import stats

from enformer.genes import score_genes
from enformer.variants import score_vcf
from enformer.variants.background import Background
from test_genes_pipeline import inputs  # noqa: F401  (fixture)
from test_genes_scoring import BinPredictor


def test_quantiles_of_the_background_itself_are_uniform(tmp_path):
  rng = np.random.default_rng(0)
  scores = rng.laplace(0, [1.0, 5.0, 0.01], size=(3000, 3))  # Different scales per track.
  background = Background.fit({'SED': scores}, ['a', 'b', 'c'])
  path = tmp_path / 'bg.npz'
  background.save(path)
  loaded = Background.load(path)
  quantiles = loaded.quantile_score('SED', scores)
  for track in range(3):
    assert stats.kstest(np.abs(quantiles[:, track]), 'uniform').pvalue > 0.05
  assert np.all(quantiles * scores >= 0) and np.count_nonzero(quantiles == 0) <= 3  # Signs kept.
  # Outside the background's range: ±1; zero: 0; a track's scale does not matter.
  extreme = loaded.quantile_score('SED', np.array([[100.0, -500.0, 0.0]]))
  np.testing.assert_array_equal(extreme, [[1.0, -1.0, 0.0]])
  # Scores 10x larger than the background's are not uniform (they crowd near 1).
  fresh = rng.laplace(0, [1.0, 5.0, 0.01], size=(2000, 3))
  shifted = np.abs(loaded.quantile_score('SED', 10 * fresh)[:, 1])
  assert stats.kstest(shifted, 'uniform').pvalue < 1e-6
  with pytest.raises(ValueError, match='no logSED'):
    loaded.quantile_score('logSED', scores)
  with pytest.raises(ValueError, match='tracks'):
    loaded.quantile_score('SED', scores[:, :2])


def test_ties_get_the_fraction_at_or_below():
  scores = np.zeros((100, 1))
  scores[90:] = np.arange(1, 11)[:, None]  # 90 % zeros.
  background = Background.fit({'SAD': scores})
  q = background.quantile_score('SAD', np.array([[0.0], [1e-9], [10.0]]))[:, 0]
  assert q[0] == 0 and q[1] == pytest.approx(0.9, abs=0.01) and q[2] == 1


def test_background_in_score_genes_and_score_variants(tmp_path, inputs):
  fasta, vcf, gtf = inputs
  first = score_genes(BinPredictor(), fasta, vcf, gtf, tmp_path / 'bg.h5', progress=False)
  background = Background.fit({n: first.scores.scores[n] for n in ('SED', 'logSED')})
  out = tmp_path / 'sed.h5'
  result = score_genes(
      BinPredictor(), fasta, vcf, gtf, out, background=background, tsv=True, progress=False
  )
  expected = background.quantile_score('SED', result.scores.scores['SED'])
  with h5py.File(out) as h5:
    np.testing.assert_allclose(h5['SED_quantile'][:], expected, atol=1e-3)
    assert 'logSED_quantile' in h5
  assert 'SED_quantile' in (tmp_path / 'sed.tsv').read_text().splitlines()[0]

  sad = score_vcf(BinPredictor(), fasta, vcf, tmp_path / 'sad_bg.h5', progress=False)
  variants_bg = Background.fit({n: sad.scores.scores[n] for n in ('SAD', 'SAR')})
  scored = score_vcf(
      BinPredictor(),
      fasta,
      vcf,
      tmp_path / 'sad.h5',
      background=variants_bg,
      tsv=True,
      progress=False,
  )
  with h5py.File(tmp_path / 'sad.h5') as h5:
    np.testing.assert_allclose(
        h5['SAD_quantile'][:], variants_bg.quantile_score('SAD', scored.scores.sad), atol=1e-3
    )
  with pytest.raises(ValueError, match='not SED or logSED'):
    score_genes(
        BinPredictor(), fasta, vcf, gtf, tmp_path / 'x.h5', background=variants_bg, progress=False
    )
