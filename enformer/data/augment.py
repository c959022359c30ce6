"""Training augmentation for (sequence, target) examples: stochastic shift and reverse complement.

Enformer and Basenji train with two per-example augmentations:
  * a stochastic shift of the input by up to ±3 bp (smaller than a 128 bp bin, so the target is
    kept);
  * reverse complement of the input, with the target reversed along its bins axis.

Both are applied per example with stateless random ops from a per-example seed, so a given seed
always gives the same augmentation regardless of how many parallel calls run.
Augmentation is for training only;
`get_dataset` leaves it off unless asked.

Padding: a shift by s > 0 moves the sequence right by s positions, filling the first s positions
with `pad_value` and dropping the last s; s < 0 moves it left, filling the end. The default
`pad_value=0` writes all-zero rows — the package's encoding of N — so padded bases look like
unknown sequence. Basenji's original code pads with 0.25 (a uniform base); pass `pad_value=0.25` to
reproduce it.

Strand-specific tracks: reverse complement only reverses the bins axis; it does not swap + and −
strand tracks (Enformer's training does not either).
"""

import dataclasses
from typing import Dict, Optional

import tensorflow as tf

NUM_NUCLEOTIDES = 4

# For the functions the data pipelines map: tf.data traces them as written, without AutoGraph's
# rewrite of every function they call. They branch on Python values only (and on tensors through
# tf.cond), so the graphs are the same; building a training pipeline's functions takes ~0.3 s of
# CPU instead of ~2 s.
no_autograph = tf.autograph.experimental.do_not_convert


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """Per-example augmentation settings.

  Attributes:
    max_shift: shifts are drawn uniformly from [-max_shift, max_shift] (0 disables shifting).
    reverse_complement: reverse complement half of the examples (and reverse their targets).
    pad_value: value written into the positions a shift uncovers (0 = N; Basenji uses 0.25).
  """

  max_shift: int = 3
  reverse_complement: bool = True
  pad_value: float = 0.0

  def __post_init__(self):
    if self.max_shift < 0:
      raise ValueError(f'max_shift must be ≥ 0, got {self.max_shift}.')


def stochastic_shift(sequence: tf.Tensor, shift, pad_value: float = 0.0) -> tf.Tensor:
  """Shifts a sequence along positions: out[i + shift] = sequence[i].

  Args:
    sequence: [L, C] one-hot (plus optional extra input channels).
    shift: scalar int; positive moves the sequence right (pads the start), negative moves it left
      (pads the end). |shift| must be < L.
    pad_value: value of the uncovered positions (every channel).

  Returns:
    [L, C] tensor of the same dtype.
  """
  sequence = tf.convert_to_tensor(sequence)
  shift = tf.cast(shift, tf.int32)
  length = tf.shape(sequence)[0]
  magnitude = tf.abs(shift)
  pad = tf.fill([magnitude, tf.shape(sequence)[1]], tf.cast(pad_value, sequence.dtype))
  right = tf.concat([pad, sequence[: length - magnitude]], axis=0)
  left = tf.concat([sequence[magnitude:], pad], axis=0)
  shifted = tf.cond(shift >= 0, lambda: right, lambda: left)
  return tf.ensure_shape(shifted, sequence.shape)


def reverse_complement(sequence: tf.Tensor, target: Optional[tf.Tensor] = None):
  """Reverse complement of a one-hot sequence [L, 4 (+E)] and its target [T, C] reversed along bins.

  The first 4 channels (A, C, G, T) are reversed along positions and channels (A↔T, C↔G); extra
  input channels (e.g. conservation) are only reversed along positions. Returns (sequence, target),
  or only the sequence when `target` is None. Applying it twice is the identity.
  """
  sequence = tf.convert_to_tensor(sequence)
  nucleotides = tf.reverse(sequence[:, :NUM_NUCLEOTIDES], axis=[0, 1])
  extra = tf.reverse(sequence[:, NUM_NUCLEOTIDES:], axis=[0])
  sequence_rc = tf.concat([nucleotides, extra], axis=1)
  if target is None:
    return sequence_rc
  return sequence_rc, tf.reverse(target, axis=[0])


def augment_example(
    example: Dict[str, tf.Tensor], seed: tf.Tensor, augmentation: Augmentation = Augmentation()
) -> Dict[str, tf.Tensor]:
  """Applies a random shift and (with probability 1/2) reverse complement to one example.

  Args:
    example: {'sequence': [L, 4 (+E)], 'target': [T, C], ...}; other keys pass through.
    seed: int [2] stateless seed; equal seeds give equal augmentations.
    augmentation: settings.

  Returns:
    The augmented example (same keys, shapes and dtypes).
  """
  seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
  sequence, target = example['sequence'], example['target']
  if augmentation.max_shift:
    shift = tf.random.stateless_uniform(
        [],
        seeds[0],
        minval=-augmentation.max_shift,
        maxval=augmentation.max_shift + 1,
        dtype=tf.int32,
    )
    sequence = stochastic_shift(sequence, shift, augmentation.pad_value)
  if augmentation.reverse_complement:
    flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
    sequence, target = tf.cond(
        flip, lambda: reverse_complement(sequence, target), lambda: (sequence, target)
    )
  return {**example, 'sequence': sequence, 'target': target}


def with_seeds(dataset: tf.data.Dataset, seed: int) -> tf.data.Dataset:
  """Pairs every element with a per-example seed: elements become (element, int64 [2]).

  The k-th element of an iteration gets the k-th draw of a random stream seeded by `seed` (a
  stateful draw in a sequential map), so runs are reproducible and every epoch of a repeated
  dataset gets new seeds. Dataset.enumerate would do, but it adds a range source that tf.data's
  auto-sharding by FILE cannot shard.
  """

  def draw(*element):
    element = element[0] if len(element) == 1 else element
    return element, tf.random.uniform([2], maxval=2**62, dtype=tf.int64, seed=seed)

  return dataset.map(no_autograph(draw))


def augment_dataset(
    dataset: tf.data.Dataset,
    augmentation: Augmentation = Augmentation(),
    seed: int = 0,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    deterministic: Optional[bool] = None,
) -> tf.data.Dataset:
  """Maps `augment_example` over an unbatched dataset of examples.

  Example k (in dataset order) uses the k-th draw of a random stream seeded by `seed`, so a
  repeated dataset gets new augmentations each epoch and a rerun with the same seed (and the same
  element order, i.e. deterministic reading) gets the same ones.
  """
  return with_seeds(dataset, seed).map(
      no_autograph(
          lambda example, example_seed: augment_example(example, example_seed, augmentation)
      ),
      num_parallel_calls=num_parallel_calls,
      deterministic=deterministic,
  )
