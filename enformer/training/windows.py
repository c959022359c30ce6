"""Shorter training windows cut from long records (e.g. 16 kb out of legacy 262 kb Basenji records).

A record {'sequence': [L, C], 'target': [T, N]} whose T bins of `bin_size` bp cover the centre of
the sequence (L − T · bin_size bp of flank split evenly, 0 for legacy Basenji data) gives windows
{'sequence': [W, C], 'target': [W / bin_size, N]}: the bases under W / bin_size consecutive
target bins and those bins. Random windows (training) start at a uniformly drawn bin; the centre
window (evaluation) is fixed. A small model then trains on real data in minutes on a CPU.
"""

from typing import Optional

import tensorflow as tf

from enformer.data.augment import no_autograph
from enformer.enformer import BIN_SIZE


def cut_windows(
    dataset: tf.data.Dataset,
    window: int,
    *,
    random: bool,
    seed: Optional[int] = None,
    bin_size: int = BIN_SIZE,
) -> tf.data.Dataset:
  """Maps records to bin-aligned windows of `window` bp (see the module docstring).

  Args:
    dataset: single examples with static shapes 'sequence' [L, C] and 'target' [T, N].
    window: window length in bp, a multiple of `bin_size`, at most T · bin_size.
    random: a random window per example (True) or the centre window (False).
    seed: op seed of the random window starts.
    bin_size: bp per target bin.

  Returns:
    The dataset of windows {'sequence': [window, C], 'target': [window / bin_size, N]}.
  """
  spec = dataset.element_spec
  length, channels = spec['sequence'].shape
  num_bins, num_tracks = spec['target'].shape
  if None in (length, num_bins):
    raise ValueError('cut_windows needs static sequence and target lengths.')
  if window <= 0 or window % bin_size:
    raise ValueError(f'The window must be a positive multiple of {bin_size} bp, got {window}.')
  bins = window // bin_size
  if bins > num_bins:
    raise ValueError(
        f'A {window:,} bp window needs {bins} target bins; the records have '
        f'{num_bins} ({num_bins * bin_size:,} bp). Choose a shorter window.'
    )
  flank = length - num_bins * bin_size
  if flank < 0 or flank % 2:
    raise ValueError(f'{num_bins} bins of {bin_size} bp do not sit centred in {length} bp.')
  offset = flank // 2

  def cut(example, start_bin):
    begin = offset + start_bin * bin_size
    sequence = example['sequence'][begin : begin + window]
    target = example['target'][start_bin : start_bin + bins]
    sequence.set_shape([window, channels])
    target.set_shape([bins, num_tracks])
    return {**example, 'sequence': sequence, 'target': target}

  if random:
    return dataset.map(
        no_autograph(
            lambda e: cut(
                e, tf.random.uniform([], 0, num_bins - bins + 1, dtype=tf.int32, seed=seed)
            )
        )
    )
  return dataset.map(no_autograph(lambda e: cut(e, (num_bins - bins) // 2)))
