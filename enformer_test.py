"""The reference's own check, on the full-size model: `python -m enformer_test`.

Builds `Enformer()` (1536 channels, 11 transformer layers, 8 heads, attention pooling), runs one
random 196,608 bp sequence with `is_training=True` and checks the output shapes (1, 896, 5313) and
(1, 896, 1643); checks that the default inference path (`enformer.inference.fast` through
`Predictor`) equals `model(x, is_training=False)` within 1e-5 of the largest output; then checks
that the model built by that forward pass holds exactly DeepMind's checkpoint variable tree
(skipped when ../shared is absent).

It takes 1–1½ minutes on 2 CPU cores (2-vCPU AMD EPYC: 88–97 s with AVX2 only, 70 s with
AVX-512 BF16) and peaks at 6.3 GB of memory.
"""

import os
import pathlib
import unittest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np

import enformer
from enformer import cpu_memory, testing

SHARED = pathlib.Path(
    os.environ.get('ENFORMER_SHARED', pathlib.Path(__file__).resolve().parent.parent / 'shared')
)


def _get_random_input() -> np.ndarray:
  seq = ''.join(np.random.default_rng(0).choice(list('ACGT'), size=enformer.SEQUENCE_LENGTH))
  return np.expand_dims(enformer.one_hot_encode(seq), 0).astype(np.float32)


class TestEnformer(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    cpu_memory.use_pooled_cpu_memory()  # As the `enformer` command (before the first operation).
    cls.model = enformer.Enformer(channels=1536, num_transformer_layers=11)
    cls.outputs = cls.model(_get_random_input(), is_training=True)

  def test_output_shapes(self):
    self.assertEqual(self.outputs['human'].shape, (1, enformer.TARGET_LENGTH, 5313))
    self.assertEqual(self.outputs['mouse'].shape, (1, enformer.TARGET_LENGTH, 1643))
    for output in self.outputs.values():
      self.assertTrue(np.isfinite(output.numpy()).all())

  def test_fast_path_equals_the_reference_op_sequence(self):
    """The default inference path (enformer.inference.fast, via Predictor) at full size and
    length."""
    x = _get_random_input()
    expected = self.model(x, is_training=False)
    outputs = enformer.Predictor.from_module(self.model).predict_on_batch(x)
    for head, value in expected.items():
      error = np.abs(outputs[head] - value.numpy()).max() / np.abs(value.numpy()).max()
      self.assertLessEqual(error, 1e-5, head)

  def test_checkpoint_tree_is_deepmind_layout(self):
    reference = SHARED / 'reference' / 'checkpoint_variables_full.txt'
    if not reference.exists():
      self.skipTest(f'{reference} not found (../shared is only in the project workspace).')
    self.assertEqual(testing.checkpoint_tree(self.model), testing.read_checkpoint_tree(reference))


if __name__ == '__main__':
  unittest.main()
