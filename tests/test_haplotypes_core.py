"""enformer.inference.haplotypes: per-distinct-haplotype and per-distinct-local-haplotype reuse ==
full passes of independently built haplotype sequences."""

import numpy as np
import pytest

import tensorflow as tf

from enformer.inference import fast
from enformer.inference.haplotypes import (HaplotypeForward, input_halo, stage_halos, tower_macs,
                                           trimmed_tower)
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


def reached_bins(predictor: HaplotypeForward, position: int) -> np.ndarray:
  """The tower bins whose receptive field holds `position`, as the plan sees them."""
  bins = [(t, t + 1) for t in range(predictor.num_bins)]
  first, last = predictor._fields(np.array([position]), bins)  # pylint: disable=protected-access
  return np.flatnonzero(last > first)


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
  # Local haplotypes repeat: less tower work than one full tower per distinct haplotype.
  assert 0 < stats.tower_work < stats.distinct - 1
  assert 0 < stats.full_pass_equivalents < stats.haplotypes
  assert predictor.work(reference, haplotypes) == stats  # The plan alone counts the same work.
  # Patch sizes are mixed within the window, and the segments own each bin at most once.
  segments = predictor.plan(reference, haplotypes)
  assert len({segment.bins for segment in segments}) >= 2
  assert all(a.last <= b.first for a, b in zip(segments, segments[1:]))
  assert segments[0].first == 0 and segments[-1].last == LENGTH // 128  # Variants at both ends.
  assert stats.tower_work == pytest.approx(sum(
      predictor.patch_work[s.bins] * len({tuple(sorted(
          (p, b) for p, b in h
          if s.first * 128 - 259 <= p < s.last * 128 + 259 and reference[p].argmax() != b))
                                          for h in haplotypes} - {()})
      for s in segments), rel=1e-12)


def test_sparse_haplotypes_recompute_what_the_incremental_path_does(setup):
  _, forward, reference = setup
  haplotypes = [[(4000, 1)], [(4000, 1)], [(100, 2), (105, 3)], [(LENGTH - 2, 0)]]
  predictor = HaplotypeForward(forward)
  outputs, stats = predictor(reference, haplotypes)
  expected = forward(np.stack([build(reference, h) for h in haplotypes]))['human'].numpy()
  assert rel_error(outputs['human'], expected) <= 1e-5
  assert stats.distinct == 3 and stats.reused == 1
  # One patch per variant cluster, of the smallest size that holds the bins it reaches (4000:
  # bins 29-33; 100 and 105: bins 0-2; LENGTH - 2: bins 61-63), as incremental.IncrementalForward.
  assert max(len(reached_bins(predictor, p)) for p in range(1000, 1000 + 128)) == 6
  assert [(s.first, s.last, s.bins) for s in predictor.plan(reference, haplotypes)] == [
      (0, 3, 3), (29, 34, 5), (61, 64, 3)]
  assert stats.patches == 3
  assert stats.tower_work == sum(predictor.patch_work[p] for p in (3, 5, 3))


def test_the_receptive_field_is_exact_and_a_shorter_context_is_caught(setup):
  """The patches' context (`receptive_radius`, `stage_halos`) is exact; trimming one position
  more after any one convolution misses context and the outputs differ from full passes."""
  model, forward, reference = setup
  predictor = HaplotypeForward(forward)
  assert predictor.radius == 259  # 7 + 2 · (2 + 4 + ... + 64) bp.
  assert predictor.halos == (252, 248, 240, 224, 192, 128, 0) and predictor.input_halo == 259
  # A variant changes exactly the bins whose receptive field the plan says holds it (full
  # towers, ref vs SNV).
  for position in (1000, 1000 + 127, 1000 + 386 - 259):
    towers = forward.tower(np.stack([reference, build(reference, [(position, (
        reference[position].argmax() + 1) % 4)])])).numpy()
    changed = np.flatnonzero(np.abs(towers[1] - towers[0]).max(-1) > 1e-6 * np.abs(towers).max())
    np.testing.assert_array_equal(changed, reached_bins(predictor, position), err_msg=position)
  haplotypes = population(reference, seed=24, count=6, sites=30)
  expected = forward(np.stack([build(reference, h) for h in haplotypes]))['human'].numpy()
  short = HaplotypeForward(forward)
  short.halos = (252, 248, 240, 224 - 16, 192, 128, 0)  # One position less after block 2.
  outputs, _ = short(reference, haplotypes)
  assert rel_error(outputs['human'], expected) > 1e-4


def test_trimmed_patches_equal_tower_window_and_each_stage_context_is_needed(setup):
  """`trimmed_tower` (cropped after each convolution) == `fast.tower_window` (the full 384 bp halo
  at every stage) at the sequence's start, middle and end; one position less of context after any
  one convolution changes the patch's end bins."""
  model, _, reference = setup
  halos = stage_halos(model)
  bins, num_blocks = 4, len(model.trunk.conv_tower.blocks)
  padded = np.pad(reference, [(384, 384), (0, 0)])
  for start in (0, 30 * 128, LENGTH - bins * 128):
    window = padded[start:start + bins * 128 + 2 * 384][np.newaxis]
    expected = fast.tower_window(model, tf.constant(window), start, LENGTH, num_blocks, 384)
    trim = 384 - input_halo(model, halos)
    ours = trimmed_tower(model, tf.constant(window[:, trim:window.shape[1] - trim]),
                         tf.constant([start]), LENGTH, halos)
    assert ours.shape == expected.shape == (1, bins, model.trunk.conv_tower.blocks[-1].filters)
    assert rel_error(ours.numpy(), expected.numpy()) <= 1e-5, start
    for stage in range(num_blocks):
      shorter = list(halos)
      shorter[stage] -= 2**(stage + 1)  # One position at the stage's resolution.
      trim = 384 - input_halo(model, shorter)
      wrong = trimmed_tower(model, tf.constant(window[:, trim:window.shape[1] - trim]),
                            tf.constant([start]), LENGTH, shorter).numpy()
      error = np.abs(wrong - expected.numpy()).max(-1)[0] / np.abs(expected.numpy()).max()
      assert error.max() > 1e-4, (start, stage)
      assert error[1:-1].max() <= 1e-5, (start, stage)  # Only the end bins miss context.


def _graph_macs(function, *specs) -> int:
  """Multiply-adds of the convolutions and matmuls in a traced graph, from its ops' shapes."""
  total = 0
  for op in function.get_concrete_function(*specs).graph.get_operations():
    if op.type == 'Conv2D':  # conv1d: [B, 1, T, C_out] outputs, [1, k, C_in, C_out] filter.
      out, kernel = op.outputs[0].shape, op.inputs[1].shape
      total += int(np.prod(out)) * kernel[1] * kernel[2]
    elif op.type in ('MatMul', 'BatchMatMulV2'):
      a = op.inputs[0].shape
      adjoint = op.get_attr('transpose_a' if op.type == 'MatMul' else 'adj_x')
      total += int(np.prod(op.outputs[0].shape)) * (a[-2] if adjoint else a[-1])
    elif op.type == 'Einsum':
      total += int(np.prod(op.outputs[0].shape)) * op.inputs[0].shape[-1]
  return total


def test_a_patch_counts_the_multiply_adds_it_computes(setup):
  model, forward, _ = setup
  predictor = HaplotypeForward(forward)
  full = _graph_macs(tf.function(lambda x: fast.fast_tower(model, x), autograph=False),
                     tf.TensorSpec([1, LENGTH, 4], tf.float32))
  assert full == tower_macs(model, LENGTH)
  patch = tf.function(lambda x, start: trimmed_tower(model, x, start, LENGTH, predictor.halos),
                      autograph=False)
  for bins in (2, 5, 24):
    counted = _graph_macs(patch, tf.TensorSpec([1, bins * 128 + 2 * 259, 4], tf.float32),
                          tf.TensorSpec([1], tf.int32))
    assert counted == tower_macs(model, bins * 128, predictor.halos), bins
    assert predictor.patch_work[bins] == counted / full
  # The context costs: per bin, short patches cost more than long ones, all more than a tower's.
  per_bin = [predictor.patch_work[p] / p for p in predictor.patch_bins]
  assert all(a > b > 1 / 64 for a, b in zip(per_bin, per_bin[1:]))


def test_positions_with_offset_and_bad_input(setup):
  _, forward, reference = setup
  predictor = HaplotypeForward(forward, patch_bins=[predictor_bins := 16, 99])
  assert predictor.patch_bins == [predictor_bins, 64]  # Clipped to the 64 bins.
  predictor.warm_up()  # Traces each size once; a run then reuses the traces.
  ours, _ = predictor(reference, [[(1_000_500, 2)]], offset=1_000_000)
  expected = forward(build(reference, [(500, 2)])[np.newaxis])['human'].numpy()
  assert rel_error(ours['human'], expected) <= 1e-5
  assert [predictor._patch_function(p).experimental_get_tracing_count()  # pylint: disable=protected-access
          for p in predictor.patch_bins] == [1, 1]
  with pytest.raises(ValueError, match='outside'):
    predictor(reference, [[(LENGTH, 0)]])
  with pytest.raises(ValueError, match='one allele per position'):
    predictor(reference, [[(10, 0), (10, 1)]])
  empty, stats = predictor(reference, [])
  assert empty['human'].shape[0] == 0 and stats.haplotypes == 0
