"""Extra input channels end to end: Basenji2 data with an extra per-base track → get_dataset →
Enformer(input_channels=5) → the training loop. The target depends only on the extra track, so a
model must use it: validation R of the 5-channel model is far above the sequence-only model's."""

import numpy as np
import pytest

from enformer.models import build_model
from enformer.data.basenji import DatasetSettings, get_dataset
from enformer.data.write import BasenjiWriter
from enformer.training import train

LENGTH = 1024
BINS = LENGTH // 128


@pytest.fixture(scope='module')
def conservation_data(tmp_path_factory) -> str:
  """Random DNA; a per-bin 'conservation' level (+ per-base noise); target = 4 × level + 0.2."""
  out = str(tmp_path_factory.mktemp('conservation'))
  rng = np.random.default_rng(0)
  with BasenjiWriter(
      out,
      sequence_length=LENGTH,
      target_length=BINS,
      num_targets=1,
      input_track_names=('conservation',),
  ) as writer:
    for subset, count in (('train', 48), ('valid', 16)):
      for _ in range(count):
        level = rng.uniform(0, 1, BINS)
        extra = np.repeat(level, 128) + 0.05 * rng.standard_normal(LENGTH)
        writer.add(
            subset,
            np.eye(4)[rng.integers(0, 4, LENGTH)],
            (4 * level + 0.2)[:, None],
            input_tracks=extra,
        )
  return out


def validation_r(data: str, run_dir: str, with_extra: bool) -> float:
  def source(subset: str):
    return lambda: get_dataset(
        data, subset, include_input_tracks=with_extra, settings=DatasetSettings(prefetch=None)
    )

  model = build_model('micro', heads={'atac': 1}, input_channels=5 if with_extra else 4)
  result = train(
      run_dir=run_dir,
      model=model,
      train_data={'atac': source('train')},
      valid_data={'atac': source('valid')},
      batch_size=8,
      num_steps=40,
      warmup_steps=0,
      learning_rate=4e-3,
      clip_norm=10.0,
      eval_every=40,
      checkpoint_every=40,
      export_hub=False,
      progress=False,
      seed=0,
  )
  return result.final_pearson_r


@pytest.mark.slow
def test_extra_channel_carries_signal_the_sequence_does_not(conservation_data, tmp_path):
  r_extra = validation_r(conservation_data, str(tmp_path / 'extra'), with_extra=True)
  r_sequence = validation_r(conservation_data, str(tmp_path / 'sequence'), with_extra=False)
  print(
      f'validation Pearson R: one-hot + conservation {r_extra:.3f}, one-hot only '
      f'{r_sequence:.3f}'
  )
  assert r_extra > 0.8
  assert r_sequence < 0.3
  assert r_extra - r_sequence > 0.5
