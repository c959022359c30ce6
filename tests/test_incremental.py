"""enformer.inference.incremental: reference tower once, a recomputed window per alternative ==
full passes."""

import numpy as np
import pytest

from conftest import SMALL_REFERENCE_LENGTH
from enformer.inference import fast
from enformer.inference.incremental import IncrementalForward
from enformer.testing import MICRO, random_model, random_one_hot


def rel_error(ours: np.ndarray, theirs: np.ndarray) -> float:
  return float(np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max())


def snv(x: np.ndarray, position: int, shift: int = 1) -> np.ndarray:
  """`x` [L, 4] with the base at `position` replaced by another one."""
  y = x.copy()
  y[position] = np.roll(x[position], shift)
  return y


def assert_effects_exact(ref: np.ndarray, alts: np.ndarray, full: np.ndarray) -> None:
  """Variant effects (alt − ref bin means) equal a full recompute's within 1e-3 of the largest;
  `full` [1 + K, T', N] holds the full reference and alternatives."""
  effects = full[1:].mean(axis=1) - full[0].mean(axis=0)
  ours = alts.mean(axis=1) - ref.mean(axis=0)
  assert np.abs(ours - effects).max() <= 1e-3 * np.abs(effects).max()


def alternatives_of(reference: np.ndarray) -> np.ndarray:
  length = len(reference)
  alts = [snv(reference, p) for p in (0, 1, 700, length // 2, length // 2 + 127, length - 1)]
  mnv = reference.copy()
  mnv[length // 3 : length // 3 + 3] = np.roll(reference[length // 3 : length // 3 + 3], 2, axis=-1)
  alts.append(mnv)
  insertion = reference.copy()  # An insertion shifts everything right of it: full path.
  insertion[length // 2 + 1 :] = reference[length // 2 : -1]
  alts.append(insertion)
  alts.append(reference.copy())  # Unchanged.
  return np.stack(alts)


@pytest.mark.parametrize(
    'config',
    [
        dict(MICRO, num_transformer_layers=2),
        dict(MICRO, pooling_type='max', target_length=40, input_channels=5, heads={'atac': 3}),
    ],
)
def test_incremental_equals_full_recompute(config):
  model = random_model(seed=11, **config)
  length = 8192
  forward = fast.compile_forward(model, length)
  incremental = IncrementalForward(forward)
  reference = random_one_hot(1, length, seed=12, channels=config.get('input_channels', 4))[0]
  alternatives = alternatives_of(reference)
  ref_outputs, alt_outputs = incremental(reference, alternatives, batch_size=3)
  expected = forward(np.concatenate([reference[np.newaxis], alternatives]))
  assert incremental.full_passes == 1 and incremental.incremental_passes == 7
  for head, value in expected.items():
    value = value.numpy()
    assert rel_error(ref_outputs[head], value[0]) <= 1e-5
    assert alt_outputs[head].shape == value[1:].shape
    assert rel_error(alt_outputs[head], value[1:]) <= 1e-5, head
    assert_effects_exact(ref_outputs[head], alt_outputs[head], value)


def test_halo_is_large_enough_and_not_wasteful():
  """Every tower bin the change really alters lies inside the recomputed window, and the window
  is not much wider than those bins."""
  model = random_model(seed=13, **MICRO)
  length = 8192
  forward = fast.compile_forward(model, length)
  reference = random_one_hot(1, length, seed=14)[0]
  position = length // 2 + 5
  full = forward.tower(np.stack([reference, snv(reference, position)])).numpy()
  # Rows of one batch may differ by float32 rounding where their inputs are equal (seen on an
  # AVX2-only CPU: 2e-6 in the last bins, against changes of 0.04-1.4 near the SNV).
  changed_bins = np.flatnonzero(np.abs(full[1] - full[0]).max(axis=-1) > 1e-5 * np.abs(full).max())
  incremental = IncrementalForward(forward)
  start = incremental._window_start(np.array([position]))  # pylint: disable=protected-access
  assert changed_bins.min() >= start and changed_bins.max() < start + incremental.patch_bins
  assert incremental.patch_bins <= 2 * len(changed_bins) + 2  # The window is not much wider.


@pytest.mark.slow
def test_incremental_on_deepmind_small_reference(reference_small_model, reference_small_io):
  forward = fast.compile_forward(reference_small_model, SMALL_REFERENCE_LENGTH)
  incremental = IncrementalForward(forward)
  reference = reference_small_io['one_hot'][0]
  alternatives = np.stack(
      [snv(reference, p) for p in (10, SMALL_REFERENCE_LENGTH // 2, SMALL_REFERENCE_LENGTH - 300)]
  )
  ref_outputs, alt_outputs = incremental(reference, alternatives)
  expected = forward(np.concatenate([reference[np.newaxis], alternatives]))
  for head, value in expected.items():
    value = value.numpy()
    assert rel_error(alt_outputs[head], value[1:]) <= 1e-5
    assert_effects_exact(ref_outputs[head], alt_outputs[head], value)


@pytest.mark.slow
def test_incremental_ism_equals_full_ism():
  from enformer.interpret import ism as ism_lib

  model = random_model(seed=15, **MICRO)
  x = random_one_hot(1, 4096, seed=16)[0]
  mask = np.zeros((32, 5313), np.float32)
  mask[14:18, :10] = 1
  window = (1990, 2010)
  full = ism_lib.in_silico_mutagenesis(
      model, x, mask, window=window, incremental=False, progress=False
  )
  fast_ism = ism_lib.in_silico_mutagenesis(model, x, mask, window=window, progress=False)
  forward = ism_lib.incremental_forward(model, 4096, 'human')
  assert forward.incremental_passes >= 60 and forward.full_passes == 0
  assert np.abs(fast_ism - full).max() <= 1e-3 * np.abs(full).max()


def test_scorers_of_one_predictor_share_one_compiled_incremental_forward(tmp_path):
  """Every VariantScorer (each score_vcf call, each Dask task) of a predictor reuses the compiled
  incremental forward: it is traced once, not once per scorer; another precision is another."""
  from enformer.inference import Predictor
  from enformer.io.fasta import FastaStringExtractor
  from enformer.io.vcf import VariantSite
  from enformer.variants.scoring import VariantScorer
  from kipoiseq import Variant

  model = random_model(seed=21, **dict(MICRO, heads={'human': 4}))
  genome = ''.join(np.random.default_rng(3).choice(list('ACGT'), 8_000))
  fasta = tmp_path / 'g.fa'
  fasta.write_text('>chr1\n' + genome + '\n')
  predictor = Predictor.from_module(model, 4096)
  alt = 'A' if genome[3999] != 'A' else 'C'
  sites = [VariantSite((Variant('chr1', 4000, genome[3999], alt),), 'chr1')]
  scorers = [VariantScorer(predictor, FastaStringExtractor(str(fasta))) for _ in range(3)]
  assert all(scorer.incremental is scorers[0].incremental for scorer in scorers)
  results = [scorer.score_sites(sites)[0] for scorer in scorers]
  assert scorers[0].incremental._alternatives.experimental_get_tracing_count() == 1
  assert scorers[0].incremental.forward._tower_function.experimental_get_tracing_count() == 1
  for result in results[1:]:
    np.testing.assert_array_equal(result, results[0])
  bf16 = VariantScorer(
      Predictor.from_module(model, 4096, precision='bfloat16'), FastaStringExtractor(str(fasta))
  )
  assert bf16.incremental is not scorers[0].incremental
  assert bf16.incremental.forward.precision == 'bfloat16'
