"""Training on real data: legacy Basenji CAGE records (../shared/data/basenji_cage) through
`enformer.training.train`, on 4,096 bp windows (`enformer.training.windows.cut_windows`).

The longer run with the Pearson curve is benchmarks/train_basenji_cage.py.
"""

import numpy as np
import pytest
import tensorflow as tf

from conftest import shared_path

WINDOW = 4096


def _records():
  from enformer.data import basenji

  path = str(shared_path('data', 'basenji_cage'))
  return path, basenji.load_info(path, 'legacy')


def test_cut_windows_align_sequence_and_bins():
  from enformer.data import basenji
  from enformer.training.windows import cut_windows

  path, info = _records()
  records = basenji.get_dataset(
      path, 'train', layout='legacy', settings=basenji.DatasetSettings(deterministic=True)
  ).take(2)
  full = list(records.as_numpy_iterator())
  centre = list(cut_windows(records, WINDOW, random=False).as_numpy_iterator())
  bins = WINDOW // 128
  start = (info.target_length - bins) // 2
  for record, window in zip(full, centre):
    assert window['sequence'].shape == (WINDOW, 4) and window['target'].shape == (bins, 10)
    np.testing.assert_array_equal(
        window['sequence'], record['sequence'][start * 128 : start * 128 + WINDOW]
    )
    np.testing.assert_array_equal(window['target'], record['target'][start : start + bins])
  randoms = list(cut_windows(records.repeat(4), WINDOW, random=True, seed=1).as_numpy_iterator())
  assert len({w['target'].tobytes() for w in randoms}) > 2  # Different positions.
  with pytest.raises(ValueError, match='multiple of 128'):
    cut_windows(records, 1000, random=False)
  with pytest.raises(ValueError, match='Choose a shorter window'):
    cut_windows(records, info.sequence_length * 2, random=False)


@pytest.mark.slow
def test_a_few_steps_on_basenji_cage_lower_the_loss(tmp_path):
  """Six steps on the same 2 real windows: the training loss goes down."""
  from enformer.data import basenji
  from enformer.training import train
  from enformer.training.windows import cut_windows

  path, info = _records()
  records = basenji.get_dataset(
      path, 'train', layout='legacy', settings=basenji.DatasetSettings(deterministic=True)
  ).take(2)
  windows = cut_windows(records, WINDOW, random=False).cache()
  result = train(
      run_dir=str(tmp_path / 'run'),
      preset='micro',
      model_args={'heads': {'cage': info.num_targets}},
      train_data={'cage': windows},
      batch_size=2,
      num_steps=6,
      learning_rate=2e-3,
      warmup_steps=1,
      shuffle_buffer=0,
      checkpoint_every=6,
      export_hub=False,
      progress=False,
      seed=0,
  )
  losses = [loss for _, _, loss, _ in result.losses]
  print('\ntraining loss per step on 2 basenji_cage windows:', np.round(losses, 4))
  assert len(losses) == 6 and all(np.isfinite(losses))
  assert losses[-1] < 0.8 * losses[0], losses
  assert tf.train.latest_checkpoint(str(tmp_path / 'run' / 'checkpoints')).endswith('ckpt-6')
