"""Named Enformer configurations: the model family as configuration, not copied code.

Every preset is a set of `Enformer` constructor arguments; `enformer.build_model('small',
heads={...})` (`enformer.models`) builds one with overrides. This module holds data only and does
not import TensorFlow, so the command line can list the presets quickly. The architecture switches
(`num_transformer_layers`, `final_pointwise`, `transformer_mlp`, `pooling_type`,
`input_channels`) all live in `enformer.Enformer`.

Presets:
  paper         The published model (Avsec et al. 2021): 1,536 channels, 11 transformer layers,
                8 attention heads, attention pooling, heads human 5,313 / mouse 1,643.
  notebook      DeepMind's training notebook: 4x narrower (1536 // 4 = 384 channels), 8 heads,
                11 layers, max pooling.
  small         Small Enformer (fine-tuning studies): 5 transformer layers, no final pointwise
                block.
  small-no-mlp  As `small`, and the transformer blocks have no feed-forward (MLP) part.
  tiny          384 channels, 4 heads, 1 layer, all bins kept: for CPU tests and demos.
  micro         48 channels, 2 heads, 1 layer, conv tower widths in multiples of 16, all bins kept:
                every block of the model at about 1/15 of tiny's cost, for smoke tests.

Channel count of the small Enformers: 1,536 (the paper's width). "Small" refers to depth (5 of 11
transformer layers), the missing final pointwise block (trunk output 1,536 instead of 3,072
channels) and, for `small-no-mlp`, the missing feed-forward blocks. Keeping the paper's width keeps
the stem, the conv tower and the kept transformer layers the same shape as the published weights,
so they can be initialised from DeepMind's checkpoint
(`enformer.training.finetune.restore_partial(...,
allow_unused_trunk=True)`); only heads (whose input width changes) start fresh. Pass
`channels=768` (or 384) for a narrower variant.
"""

import dataclasses
from typing import Any, Dict, List, Mapping

PAPER = 'paper'


@dataclasses.dataclass(frozen=True)
class Preset:
  """A named configuration: `config` holds `Enformer` constructor arguments."""

  name: str
  description: str
  config: Mapping[str, Any]


PRESETS: Dict[str, Preset] = {
    preset.name: preset
    for preset in [
        Preset(
            'paper',
            'published Enformer: 1536 channels, 11 layers, 8 heads, attention pooling',
            dict(channels=1536, num_transformer_layers=11, num_heads=8, pooling_type='attention'),
        ),
        Preset(
            'notebook',
            'training notebook: 4x narrower (384 channels), 11 layers, 8 heads, max pooling',
            dict(channels=1536 // 4, num_transformer_layers=11, num_heads=8, pooling_type='max'),
        ),
        Preset(
            'small',
            'small Enformer: 1536 channels, 5 layers, no final pointwise block',
            dict(
                channels=1536,
                num_transformer_layers=5,
                num_heads=8,
                pooling_type='attention',
                final_pointwise=False,
            ),
        ),
        Preset(
            'small-no-mlp',
            'small Enformer without transformer MLPs: 1536 channels, 5 layers, no final '
            'pointwise block',
            dict(
                channels=1536,
                num_transformer_layers=5,
                num_heads=8,
                pooling_type='attention',
                final_pointwise=False,
                transformer_mlp=False,
            ),
        ),
        Preset(
            'tiny',
            'CPU tests and demos: 384 channels, 1 layer, 4 heads, all bins kept',
            dict(
                channels=384,
                num_transformer_layers=1,
                num_heads=4,
                pooling_type='attention',
                target_length=None,
            ),
        ),
        Preset(
            'micro',
            'smoke tests: 48 channels, 1 layer, 2 heads, all bins kept',
            dict(
                channels=48,
                num_transformer_layers=1,
                num_heads=2,
                pooling_type='attention',
                target_length=None,
                conv_tower_divisible_by=16,
            ),
        ),
    ]
}


# Fine-tuning selections (`enformer.training.freezing.trainable_variables`,
# `enformer train --freeze`):
# what stays trainable for each choice. Kept here so the CLI lists them without TensorFlow.
FREEZE_CHOICES = ('trunk', 'heads-and-norms', 'none')
FREEZE_HELP = {
    'trunk': 'train only the heads (the whole trunk is frozen)',
    'heads-and-norms': 'train the heads and every LayerNorm/BatchNorm scale and offset',
    'none': 'train everything',
}


def preset_names() -> List[str]:
  return list(PRESETS)


def preset_config(name: str, **overrides: Any) -> Dict[str, Any]:
  """`Enformer` constructor arguments of preset `name`, updated with `overrides`.

  Raises:
    ValueError: unknown preset name.
  """
  if name not in PRESETS:
    raise ValueError(f'Unknown preset {name!r}; choose one of {preset_names()}.')
  config = dict(PRESETS[name].config)
  config.update(overrides)
  return config


def describe_presets() -> str:
  """One line per preset, for command-line help."""
  width = max(len(name) for name in PRESETS)
  return '\n'.join(f'  {name:<{width}}  {p.description}' for name, p in PRESETS.items())
