"""Enformer models from the named configurations of `enformer.presets`.

model = build_model('small', heads={'rna': 50})  # [B, L, 4] → {'rna': [B, T, 50]}
"""

from typing import Any

from enformer.enformer import Enformer
from enformer.presets import PAPER, preset_config


def build_model(name: str = PAPER, **overrides: Any) -> Enformer:
  """Builds `Enformer(**preset_config(name, **overrides))` (variables are created lazily).

  Args:
    name: preset name (`enformer.presets.preset_names()`), e.g. 'paper', 'small', 'tiny'.
    **overrides: `Enformer` constructor arguments replacing the preset's, e.g. heads={...}.

  Raises:
    ValueError: unknown preset name.
  """
  return Enformer(**preset_config(name, **overrides))
