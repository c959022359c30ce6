"""enformer.inference.haplotypes: per-distinct-haplotype and per-distinct-local-haplotype reuse ==
full passes of independently built haplotype sequences."""

import dataclasses

import numpy as np
import pytest

import tensorflow as tf

from enformer.inference import fast
from enformer.inference.haplotypes import HaplotypeForward, stage_positions, tower_macs
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
    carried = np.concatenate(
        [founders[rng.integers(2), a:b] for a, b in zip(block, list(block[1:]) + [sites])]
    )
    haplotypes.append([(int(p), int(a)) for p, a in zip(positions[carried], alts[carried])])
  haplotypes += [haplotypes[0], [], [(int(positions[5]), int(reference[positions[5]].argmax()))]]
  return haplotypes


def stage_work(predictor: HaplotypeForward, reference: np.ndarray, haplotypes) -> float:
  """Σ over stages of the distinct (output position, variants in its input) × the stage's
  multiply-adds, counted position by position (independent of the library's hashing)."""
  work = 0.0
  for stage in predictor.stages:
    j = np.arange(stage.length)
    low, high = j * stage.resolution - stage.extent, (j + 1) * stage.resolution + stage.extent
    keys = set()
    for haplotype in haplotypes:
      variants = sorted((p, b) for p, b in haplotype if reference[p].argmax() != b)
      positions = np.array([p for p, _ in variants], np.int64).reshape(-1)
      holds = (positions >= low[:, np.newaxis]) & (positions < high[:, np.newaxis])  # [n, V]
      for position in np.flatnonzero(holds.any(axis=1)):
        keys.add((position, tuple(v for v, h in zip(variants, holds[position]) if h)))
    work += len(keys) * stage.macs / predictor.full_tower_macs
  return work


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
  # Each distinct (stage output, variants in its input) is computed once, at its multiply-adds.
  assert stats.tower_work == pytest.approx(stage_work(predictor, reference, haplotypes), rel=1e-12)


def test_sparse_haplotypes_compute_each_variants_cone_once(setup):
  _, forward, reference = setup
  haplotypes = [[(4000, 1)], [(4000, 1)], [(100, 2), (105, 3)], [(LENGTH - 2, 0)], [(0, 3)]]
  haplotypes = [
      [(p, b if reference[p].argmax() != b else (b + 1) % 4) for p, b in h] for h in haplotypes
  ]
  predictor = HaplotypeForward(forward)
  outputs, stats = predictor(reference, haplotypes)
  expected = forward(np.stack([build(reference, h) for h in haplotypes]))['human'].numpy()
  assert rel_error(outputs['human'], expected) <= 1e-5
  assert stats.distinct == 4 and stats.reused == 1
  # Each distinct haplotype computes the cone of its variants once: at each stage the outputs
  # whose input holds one of them (100 and 105 share most of theirs), as the incremental path.
  cones = 0
  for haplotype in ([(4000, 1)], [(100, 2), (105, 3)], [(LENGTH - 2, 0)], [(0, 3)]):
    for stage in predictor.stages:
      first, last = predictor.reached(stage, [p for p, _ in haplotype])
      cones += len(set().union(*(range(a, b) for a, b in zip(first, last))))
  assert stats.tower_positions == cones
  assert stats.tower_work == pytest.approx(stage_work(predictor, reference, haplotypes), rel=1e-12)


def test_each_stage_changes_where_the_plan_says_and_less_reach_is_caught(setup):
  """A variant changes exactly the stage outputs `reached` says, at every stage (whole-sequence
  stages, reference vs SNV); a stage that reaches one input position less gives wrong outputs."""
  _, forward, reference = setup
  predictor = HaplotypeForward(forward)
  # 7 bp (the stem's half-width), then + 2 · 2^(i+1) bp per block: a tower bin's 259 bp.
  assert [stage.extent for stage in predictor.stages] == [7, 11, 19, 35, 67, 131, 259]
  for position in (1000, 1000 + 127, 1000 + 386 - 259, 3):
    base = (reference[position].argmax() + 1) % 4
    ours = predictor._reference_stages(reference[np.newaxis])  # pylint: disable=protected-access
    theirs = predictor._reference_stages(  # pylint: disable=protected-access
        build(reference, [(position, base)])[np.newaxis]
    )
    for stage, a, b in zip(predictor.stages, ours, theirs):
      a, b = a.numpy(), b.numpy()
      changed = np.flatnonzero(np.abs(b - a).max(-1) > 1e-6 * np.abs(a).max())
      first, last = predictor.reached(stage, [position])
      np.testing.assert_array_equal(
          changed, np.arange(first[0], last[0]), err_msg=f'{position} {stage}'
      )
  haplotypes = population(reference, seed=24, count=6, sites=30)
  expected = forward(np.stack([build(reference, h) for h in haplotypes]))['human'].numpy()
  stages = predictor.stages
  for index, stage in enumerate(stages):
    less = stage.resolution // 2  # One input position less of reach at this stage.
    predictor.stages = (
        stages[:index]
        + (dataclasses.replace(stage, extent=stage.extent - less),)
        + stages[index + 1 :]
    )
    outputs, _ = predictor(reference, haplotypes)
    assert rel_error(outputs['human'], expected) > 1e-4, index


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


def test_a_stage_counts_the_multiply_adds_it_computes(setup):
  model, forward, _ = setup
  predictor = HaplotypeForward(forward)
  full = _graph_macs(
      tf.function(lambda x: fast.fast_tower(model, x), autograph=False),
      tf.TensorSpec([1, LENGTH, 4], tf.float32),
  )
  assert full == tower_macs(model, LENGTH) == predictor.full_tower_macs
  channels = [4] + [stage.channels for stage in predictor.stages]
  for stage, inputs in zip(predictor.stages, channels):
    function = tf.function(
        lambda t, r, m, i=stage.index: stage_positions(model, i, t, r, m), autograph=False
    )
    counted = _graph_macs(
        function,
        tf.TensorSpec([100, inputs], tf.float32),
        tf.TensorSpec([7, 2, stage.width], tf.int32),
        tf.TensorSpec([7, 2, stage.width], tf.float32),
    )
    assert counted == 7 * stage.macs, stage
  # Every position of every stage, once, is one full tower.
  assert sum(stage.length * stage.macs for stage in predictor.stages) == full


def test_max_pooling_and_positions_with_offset_and_bad_input(setup):
  _, _, reference = setup
  forward = fast.compile_forward(
      random_model(seed=25, **{**MICRO, 'pooling_type': 'max'}), LENGTH, ['human']
  )
  predictor = HaplotypeForward(forward, positions_per_call=5)
  haplotypes = [[(1_000_500, 2), (1_000_530, 1)], [(1_000_500, 2)]]
  ours, _ = predictor(reference, haplotypes, offset=1_000_000)
  expected = forward(
      np.stack([build(reference, [(p - 1_000_000, b) for p, b in h]) for h in haplotypes])
  )['human'].numpy()
  assert rel_error(ours['human'], expected) <= 1e-5
  # `reduce` keeps what it returns of each distinct haplotype (the reference's included).
  pick = lambda outputs: {'bin_3': outputs['human'][3, :2]}
  reduced, _ = predictor(reference, haplotypes + [[]], offset=1_000_000, reduce=pick)
  np.testing.assert_array_equal(reduced['bin_3'][:2], ours['human'][:, 3, :2])
  assert reduced['bin_3'].shape == (3, 2) and predictor(reference, [], reduce=pick)[0][
      'bin_3'
  ].shape == (0, 2)
  # Calls of any number of positions reuse one trace per stage.
  assert [f.experimental_get_tracing_count() for f in predictor._stage_functions] == [
      1
  ] * 7  # pylint: disable=protected-access
  with pytest.raises(ValueError, match='outside'):
    predictor(reference, [[(LENGTH, 0)]])
  with pytest.raises(ValueError, match='one allele per position'):
    predictor(reference, [[(10, 0), (10, 1)]])
  empty, stats = predictor(reference, [])
  assert empty['human'].shape[0] == 0 and stats.haplotypes == 0
