"""enformer.benchmark (the harness of `enformer benchmark`): analytic FLOPs and the timed
training step."""

import numpy as np
import pytest

from enformer import benchmark as fast_benchmark
from enformer import presets
from enformer.testing import MICRO, random_model


def small_random_model(pooling_type: str, target_length=None):
  return random_model(
      seed=3,
      **dict(MICRO, pooling_type=pooling_type, target_length=target_length),
      attention_projection=False,
  )


def test_analytic_gflop_of_the_published_model():
  parts = fast_benchmark.analytic_gflop(**fast_benchmark.CONFIGS['paper'])
  # Stem: 196,608 positions × (15×4×768 conv + 768² pointwise + 768² pooling logits) × 2.
  assert parts['stem'] == pytest.approx(2 * 196_608 * (15 * 4 * 768 + 2 * 768**2) / 1e9)
  assert 3_200 < parts['total'] < 3_400  # ≈ 3.3 TFLOP per forward.
  assert parts['total'] == pytest.approx(sum(v for k, v in parts.items() if k != 'total'))
  doubled = fast_benchmark.analytic_gflop(**fast_benchmark.CONFIGS['paper'], batch_size=2)
  assert doubled['total'] == pytest.approx(2 * parts['total'])


@pytest.mark.slow
def test_benchmark_train_step_is_the_training_step():
  """The benchmark times enformer.training's step: one step changes the weights, loss is finite."""
  model = small_random_model('attention')
  before = [v.numpy().copy() for v in model.trainable_variables]
  result = fast_benchmark.measure_train_step(model, 2048, batch_size=1, steps=1)
  assert np.isfinite(result['loss']) and result['step_s'] > 0 and result['peak_rss_gb'] > 0
  changed = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
  assert changed > 0.9 * len(before)


def test_ism_positions_per_s_amortizes_one_reference_over_the_window():
  median = {
      'ism_reference_float32': 8.0,
      'ism_incremental_float32': 2.0 * 2,
      'ism_full_float32': 24.0 * 2,
  }
  # 100 positions: one 8 s reference, then 2 s (incremental) or 24 s (full) per position.
  assert fast_benchmark.ism_positions_per_s(
      median, 2, 'incremental', 'float32', 100
  ) == pytest.approx(100 / (8 + 200))
  assert fast_benchmark.ism_positions_per_s(median, 2, 'full', 'float32', 100) == pytest.approx(
      100 / (8 + 2400)
  )


def test_worker_scoring_times_every_row_and_prints_the_ratios():
  config = dict(MICRO, sequence_length=8192)
  scoring = fast_benchmark.worker_scoring(config, repeats=1, precisions=('float32',))
  for kind in (
      'forward',
      'variant_full',
      'variant_incremental',
      'ism_reference',
      'ism_full',
      'ism_incremental',
  ):
    assert len(scoring['times'][f'{kind}_float32']) == 1 and scoring['median_s'][f'{kind}_float32']
  lines = []
  ratios = fast_benchmark.scoring_rows(scoring, lines.append)
  assert all(np.isfinite(v) and v > 0 for v in ratios.values()) and len(ratios) == 3
  assert any('ISM positions/s, incremental' in line for line in lines)
  assert scoring['reference_tower_mb'] == pytest.approx(8192 // 128 * MICRO['channels'] * 4 / 1e6)


def test_scoring_rows_of_both_precisions():
  kinds = (
      'forward',
      'variant_full',
      'variant_incremental',
      'ism_reference',
      'ism_full',
      'ism_incremental',
  )
  median = {
      f'{k}_{p}': (i + 1) * (0.5 if p == 'bfloat16' else 1.0)
      for i, k in enumerate(kinds)
      for p in ('float32', 'bfloat16')
  }
  scoring = dict(
      median_s=median,
      ism_positions=1,
      precisions=['float32', 'bfloat16'],
      reference_tower_mb=9.4,
      peak_rss_gb=3.0,
      rss_before_gb=2.0,
      bf16_max_rel_error=0.01,
      cpu_bfloat16=False,
  )
  lines = []
  ratios = fast_benchmark.scoring_rows(scoring, lines.append)
  assert ratios['bfloat16/float32 forward time'] == pytest.approx(0.5)
  assert ratios['incremental/full variants per s (float32)'] == pytest.approx(2 / 3)
  assert any('emulated' in line for line in lines)


def test_a_size_named_like_a_preset_is_that_preset():
  """`--size paper` benchmarks the `paper` preset's architecture."""
  for name, config in fast_benchmark.CONFIGS.items():
    if name in presets.PRESETS:
      model = {k: v for k, v in config.items() if k not in ('sequence_length', 'target_length')}
      assert model.items() <= dict(presets.preset_config(name)).items(), name
