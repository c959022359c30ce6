"""enformer.inference.haplotypes: per-distinct-haplotype and per-distinct-local-haplotype reuse ==
full passes of independently built haplotype sequences."""

import numpy as np
import pytest

from enformer.inference import fast
from enformer.inference.haplotypes import HaplotypeForward
from enformer.testing import MICRO, random_model, random_one_hot

LENGTH = 8192


@pytest.fixture(scope='module')
def setup():
  model = random_model(seed=21, **MICRO)
  forward = fast.compile_forward(model, LENGTH, ['human'])
  reference = random_one_hot(1, LENGTH, seed=22)[0]
  return model, forward, reference


def build(reference: np.ndarray, haplotype) -> np.ndarray:
  """The haplotype's sequence, written base by base (independent of the library's splicing)."""
  x = reference.copy()
  for position, base in haplotype:
    x[position] = 0
    x[position, base] = 1
  return x


def population(reference: np.ndarray, seed: int, count: int, sites: int):
  """`count` haplotypes drawn from `sites` segregating SNVs in linkage blocks: many variants per
  haplotype, local haplotypes that repeat, whole haplotypes that repeat, one with no variant."""
  rng = np.random.default_rng(seed)
  positions = np.sort(rng.choice(np.arange(LENGTH), sites, replace=False))
  positions[:2] = [0, 3]  # Variants at the window's first bases and last base.
  positions[-1] = LENGTH - 1
  alts = (reference[positions].argmax(-1) + rng.integers(1, 4, sites)) % 4
  founders = rng.random((2, sites)) < 0.35  # Two founder haplotypes ...
  haplotypes = []
  for _ in range(count):  # ... recombined in blocks of 2 kb.
    block = np.searchsorted(positions, np.arange(0, LENGTH, 2048))
    carried = np.concatenate([founders[rng.integers(2), a:b]
                              for a, b in zip(block, list(block[1:]) + [sites])])
    haplotypes.append([(int(p), int(a)) for p, a in zip(positions[carried], alts[carried])])
  haplotypes += [haplotypes[0], [], [(int(positions[5]), int(reference[positions[5]].argmax()))]]
  return haplotypes


def rel_error(ours: np.ndarray, theirs: np.ndarray) -> float:
  return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def test_haplotypes_equal_full_passes_of_built_sequences(setup):
  _, forward, reference = setup
  haplotypes = population(reference, seed=23, count=10, sites=60)
  predictor = HaplotypeForward(forward, batch_size=5)
  outputs, stats = predictor(reference, haplotypes)
  expected = forward(np.stack([build(reference, h) for h in haplotypes]))['human'].numpy()
  assert outputs['human'].shape == expected.shape
  assert rel_error(outputs['human'], expected) <= 1e-5
  # Haplotype 10 repeats haplotype 0; 11 (none) and 12 (a reference-base 'substitution') are
  # the reference: predicted by the reference pass.
  assert stats.haplotypes == 13 and stats.reused >= 2 and stats.reference_like == 1
  assert stats.transformer_passes == stats.distinct - 1
  # Local haplotypes repeat: fewer patches than (distinct haplotypes × patches per haplotype).
  assert stats.tower_bp < (stats.distinct - 1) * LENGTH
  assert 0 < stats.full_pass_equivalents < stats.haplotypes
  assert predictor.work(reference, haplotypes) == stats  # The plan alone counts the same work.


def test_sparse_haplotypes_recompute_what_the_incremental_path_does(setup):
  _, forward, reference = setup
  haplotypes = [[(4000, 1)], [(4000, 1)], [(100, 2), (105, 3)], [(LENGTH - 2, 0)]]
  predictor = HaplotypeForward(forward)
  outputs, stats = predictor(reference, haplotypes)
  expected = forward(np.stack([build(reference, h) for h in haplotypes]))['human'].numpy()
  assert rel_error(outputs['human'], expected) <= 1e-5
  assert stats.distinct == 3 and stats.reused == 1
  # One patch of the bins an SNV reaches per variant cluster, as incremental.IncrementalForward.
  assert stats.patches == 3 and stats.tower_bp == 3 * (predictor.reach * 128 + 2 * predictor.halo)


def test_the_receptive_field_is_exact_and_one_bin_less_is_caught(setup):
  """The patches' context (`receptive_radius`, rounded up to whole bins) is exact; one bin less
  misses context and the outputs differ from full passes (what the exactness test would catch)."""
  model, forward, reference = setup
  predictor = HaplotypeForward(forward)
  assert predictor.radius == 259 and predictor.halo == 384  # 7 + 2 · (2 + 4 + ... + 64) bp.
  assert predictor.halo <= fast.halo_length(model, 6)
  # A variant changes exactly the bins `_reached_bins` names (full towers, ref vs SNV).
  for position in (1000, 1000 + 127, 1000 + 386 - 259):
    towers = forward.tower(np.stack([reference, build(reference, [(position, (
        reference[position].argmax() + 1) % 4)])])).numpy()
    changed = np.flatnonzero(np.abs(towers[1] - towers[0]).max(-1) > 1e-6 * np.abs(towers).max())
    first, last = predictor._reached_bins(np.array([position]))[:, 0]  # pylint: disable=protected-access
    assert changed.min() == first and changed.max() == last, position
  haplotypes = population(reference, seed=24, count=6, sites=30)
  expected = forward(np.stack([build(reference, h) for h in haplotypes]))['human'].numpy()
  short = HaplotypeForward(forward)
  short.radius -= 128
  short.halo -= 128
  outputs, _ = short(reference, haplotypes)
  assert rel_error(outputs['human'], expected) > 1e-4


def test_positions_with_offset_and_bad_input(setup):
  _, forward, reference = setup
  predictor = HaplotypeForward(forward, patch_bins=[predictor_bins := 16])
  assert predictor.patch_bins == [predictor_bins]
  ours, _ = predictor(reference, [[(1_000_500, 2)]], offset=1_000_000)
  expected = forward(build(reference, [(500, 2)])[np.newaxis])['human'].numpy()
  assert rel_error(ours['human'], expected) <= 1e-5
  with pytest.raises(ValueError, match='outside'):
    predictor(reference, [[(LENGTH, 0)]])
  with pytest.raises(ValueError, match='one allele per position'):
    predictor(reference, [[(10, 0), (10, 1)]])
  empty, stats = predictor(reference, [])
  assert empty['human'].shape[0] == 0 and stats.haplotypes == 0
