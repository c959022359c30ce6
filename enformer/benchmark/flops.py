"""Analytic FLOPs of an Enformer forward pass, and the machine's measured matmul throughput."""

import time
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from enformer import enformer as enformer_lib


def analytic_gflop(
    channels: int,
    num_heads: int,
    num_transformer_layers: int,
    sequence_length: int,
    target_length: Optional[int],
    *,
    heads: Optional[Dict[str, int]] = None,
    pooling_type: str = 'attention',
    key_size: int = 64,
    batch_size: int = 1,
) -> Dict[str, float]:
  """GFLOP (2 × multiply-adds) of one forward of the reference architecture, by part.

  Counts convolutions, linear layers, attention matmuls (content, relative and value) and the
  softmax-pooling logits at every position, as the reference computes them. Elementwise work
  (batch norm, GELU, softmax) is not counted.
  """
  heads = dict(heads if heads is not None else enformer_lib.HEADS)
  half = channels // 2
  length = sequence_length
  pool = 1 if pooling_type == 'attention' else 0
  parts = {'stem': 2.0 * length * (15 * 4 * half + half * half + pool * half * half)}
  tower = 0.0
  c_in = half
  for c_out in enformer_lib.conv_tower_filters(channels):
    length //= 2
    tower += 2.0 * length * (5 * c_in * c_out + c_out * c_out + pool * c_out * c_out)
    c_in = c_out
  parts['conv_tower'] = tower
  length //= 2
  t = length
  value_size = channels // num_heads
  hk, hv = num_heads * key_size, num_heads * value_size
  per_layer = 2.0 * (
      t * channels * (2 * hk + hv)  # q, k, v
      + (2 * t - 1) * value_size * hk  # r_k (R = C / H features)
      + num_heads * t * t * key_size  # content logits
      + num_heads * t * (2 * t - 1) * key_size  # relative logits
      + num_heads * t * t * value_size  # weights @ v
      + t * hv * channels  # output projection
      + 2 * t * channels * 2 * channels
  )  # MLP
  parts['transformer'] = num_transformer_layers * per_layer
  out = target_length or t
  parts['final_pointwise'] = 2.0 * out * channels * 2 * channels
  parts['heads'] = 2.0 * out * 2 * channels * sum(heads.values())
  parts = {k: v * batch_size / 1e9 for k, v in parts.items()}
  parts['total'] = sum(parts.values())
  return parts


def matmul_gflops(size: int = 4096, repeats: int = 5) -> float:
  """Achieved GFLOP/s of one large float32 matmul (best of `repeats`): this machine's ceiling
  for the dense work that dominates Enformer."""
  a, b = tf.random.normal([size, size]), tf.random.normal([size, size])
  matmul = tf.function(tf.matmul)
  matmul(a, b).numpy()
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best / 1e9
