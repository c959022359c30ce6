"""Named presets: the configurations, and that they build the architectures they describe."""

import numpy as np
import pytest

from enformer import presets
from enformer.models import build_model
from enformer.enformer import Enformer


def test_preset_configs():
  assert presets.preset_config('paper') == dict(
      channels=1536, num_transformer_layers=11, num_heads=8, pooling_type='attention'
  )
  assert presets.preset_config('notebook') == dict(
      channels=384, num_transformer_layers=11, num_heads=8, pooling_type='max'
  )
  small = presets.preset_config('small')
  assert small['num_transformer_layers'] == 5 and small['final_pointwise'] is False
  assert small.get('transformer_mlp', True) is True
  no_mlp = presets.preset_config('small-no-mlp')
  assert no_mlp == dict(small, transformer_mlp=False)
  assert presets.preset_config('small', channels=768)['channels'] == 768
  with pytest.raises(ValueError, match='Unknown preset'):
    presets.preset_config('huge')
  described = presets.describe_presets()
  assert all(name in described for name in presets.PRESETS)


def test_paper_preset_is_the_default_model():
  """Constructing does not create variables, so the full-size config is cheap to compare."""
  assert build_model('paper').config == Enformer().config


@pytest.mark.parametrize('name', ['small', 'small-no-mlp'])
def test_small_enformers_structure(name):
  """At 384 channels: 5 transformer blocks, no final pointwise block, MLP on/off."""
  model = build_model(name, channels=384, num_heads=4, target_length=None, heads={'rna': 3})
  x = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (1, 2048))]
  outputs = model(x, is_training=False)
  assert outputs['rna'].shape == (1, 16, 3)
  assert model.trunk_channels == 384
  assert model.trunk.layers[4] is None  # The final pointwise slot stays empty.
  assert len(model.trunk.layers[2].layers) == 5
  blocks = model.trunk.layers[2].layers
  # Each block: Residual(attention) then, with the MLP, Residual(LayerNorm, Linear, …, Linear).
  assert [len(block.layers) for block in blocks] == [1 if name == 'small-no-mlp' else 2] * 5
  mlp_variables = sum(
      len(block.layers[1].trainable_variables) for block in blocks if len(block.layers) == 2
  )
  assert mlp_variables == (0 if name == 'small-no-mlp' else 5 * 6)  # LayerNorm + 2 Linear.
  assert model.heads['rna'].trainable_variables[1].shape == (384, 3)


def test_notebook_preset_builds_and_runs():
  model = build_model('notebook', target_length=None, heads={'human': 4})
  x = np.eye(4, dtype=np.float32)[np.random.default_rng(1).integers(0, 4, (1, 2048))]
  assert model(x, is_training=False)['human'].shape == (1, 16, 4)
  assert model.trunk_channels == 768
  assert len(model.trunk.layers[2].layers) == 11
  assert not any('logit_linear' in v.name for v in model.variables)  # Max pooling.
