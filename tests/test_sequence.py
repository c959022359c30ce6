"""One-hot encoding and reverse complement."""

import numpy as np
import pytest

from enformer import (
    one_hot_encode,
    one_hot_encode_batch,
    reverse_complement,
    reverse_complement_one_hot,
)


def reference_one_hot(sequence: str, neutral_value: float = 0.0) -> np.ndarray:
  """The published algorithm (ASCII lookup table) for uppercase ACGTN."""
  table = np.zeros((256, 4), dtype=np.float32)
  table[np.frombuffer(b'ACGT', np.uint8)] = np.eye(4, dtype=np.float32)
  table[ord('N')] = neutral_value
  return table[np.frombuffer(sequence.encode('ascii'), np.uint8)]


@pytest.mark.parametrize('neutral_value', [0.0, 0.25])
def test_matches_reference_for_uppercase(neutral_value):
  rng = np.random.default_rng(0)
  sequence = ''.join(rng.choice(list('ACGTN'), size=10_000))
  np.testing.assert_array_equal(
      one_hot_encode(sequence, neutral_value=neutral_value),
      reference_one_hot(sequence, neutral_value),
  )


def test_lowercase_encodes_like_uppercase():
  np.testing.assert_array_equal(one_hot_encode('acgtnACGTN'), one_hot_encode('ACGTNACGTN'))


def test_iupac_codes_are_neutral():
  encoded = one_hot_encode('RYSWKMBDHVN', neutral_value=0.25)
  np.testing.assert_array_equal(encoded, np.full((11, 4), 0.25, np.float32))


def test_dtype_and_shape():
  encoded = one_hot_encode('ACGT', dtype=np.bool_)
  assert encoded.dtype == np.bool_ and encoded.shape == (4, 4)
  assert one_hot_encode('').shape == (0, 4)


def test_non_ascii_is_a_clear_error():
  with pytest.raises(ValueError, match="non-ASCII character 'É' at position 2"):
    one_hot_encode('ACÉGT')


def test_non_nucleotide_is_a_clear_error():
  with pytest.raises(ValueError, match="'>' at position 0"):
    one_hot_encode('>chr1 ACGT')


def test_batch():
  batch = one_hot_encode_batch(['ACGT', 'TTNA'])
  assert batch.shape == (2, 4, 4)
  np.testing.assert_array_equal(batch[1], one_hot_encode('TTNA'))
  with pytest.raises(ValueError, match='equal lengths'):
    one_hot_encode_batch(['ACGT', 'ACG'])


def test_reverse_complement_string():
  assert reverse_complement('AACGTN') == 'NACGTT'
  assert reverse_complement('acgR') == 'Ycgt'


def test_reverse_complement_one_hot_matches_string():
  rng = np.random.default_rng(1)
  sequence = ''.join(rng.choice(list('ACGTN'), size=1000))
  np.testing.assert_array_equal(
      reverse_complement_one_hot(one_hot_encode(sequence)),
      one_hot_encode(reverse_complement(sequence)),
  )
  batch = one_hot_encode_batch([sequence, sequence[::-1]])
  np.testing.assert_array_equal(
      reverse_complement_one_hot(reverse_complement_one_hot(batch)), batch
  )
  with pytest.raises(ValueError, match='4 channels'):
    reverse_complement_one_hot(np.zeros((10, 5)))
