"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""

import os
import pathlib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('ENFORMER_SHARED', REPO.parent / 'shared'))

# The configuration of ../shared/reference/small (written by DeepMind's implementation).
SMALL_REFERENCE_CONFIG = dict(channels=384, num_heads=4, num_transformer_layers=2,
                              pooling_type='attention')
SMALL_REFERENCE_LENGTH = 131_072


def shared_path(*parts: str) -> pathlib.Path:
  """Path inside ../shared, or skips the test when it is not there."""
  path = SHARED.joinpath(*parts)
  if not path.exists():
    pytest.skip(f'{path} not found: the ../shared fixtures are only present in the project '
                'workspace (set ENFORMER_SHARED to point elsewhere).')
  return path


@pytest.fixture(scope='session')
def reference_small_dir() -> pathlib.Path:
  return shared_path('reference', 'small')


@pytest.fixture(scope='session')
def reference_small_model(reference_small_dir):
  """Enformer(384 channels, 4 heads, 2 layers) with DeepMind's small reference weights."""
  import tensorflow as tf
  from enformer import Enformer
  model = Enformer(**SMALL_REFERENCE_CONFIG)
  model.build_variables()
  status = tf.train.Checkpoint(module=model).read(str(reference_small_dir / 'checkpoint' /
                                                      'enformer'))
  status.assert_consumed()
  return model


@pytest.fixture(scope='session')
def reference_small_io(reference_small_dir):
  """Arrays of io.npz, plus `one_hot` [2, 131072, 4] decoded from `sequence_index`."""
  io = dict(np.load(reference_small_dir / 'io.npz'))
  io['one_hot'] = np.eye(5, dtype=np.float32)[io['sequence_index']][..., :4]
  return io
