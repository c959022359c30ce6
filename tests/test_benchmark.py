"""enformer.benchmark (the harness of `enformer benchmark`): analytic FLOPs and the timed
training step."""

import numpy as np
import pytest

from enformer import benchmark as fast_benchmark
from random_models import random_model


def small_random_model(pooling_type: str, target_length=None):
  return random_model(seed=3, channels=384, num_heads=4, num_transformer_layers=1,
                      pooling_type=pooling_type, target_length=target_length,
                      attention_projection=False)


def test_analytic_gflop_of_the_published_model():
  parts = fast_benchmark.analytic_gflop(**fast_benchmark.CONFIGS['full'])
  # Stem: 196,608 positions × (15×4×768 conv + 768² pointwise + 768² pooling logits) × 2.
  assert parts['stem'] == pytest.approx(2 * 196_608 * (15 * 4 * 768 + 2 * 768**2) / 1e9)
  assert 3_200 < parts['total'] < 3_400  # ≈ 3.3 TFLOP per forward.
  assert parts['total'] == pytest.approx(sum(v for k, v in parts.items() if k != 'total'))
  doubled = fast_benchmark.analytic_gflop(**fast_benchmark.CONFIGS['full'], batch_size=2)
  assert doubled['total'] == pytest.approx(2 * parts['total'])


def test_benchmark_train_step_is_the_training_step():
  """The benchmark times enformer.training's step: one step changes the weights, loss is finite."""
  model = small_random_model('attention')
  before = [v.numpy().copy() for v in model.trainable_variables]
  result = fast_benchmark.measure_train_step(model, 2048, batch_size=1, steps=1)
  assert np.isfinite(result['loss']) and result['step_s'] > 0 and result['peak_rss_gb'] > 0
  changed = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
  assert changed > 0.9 * len(before)
