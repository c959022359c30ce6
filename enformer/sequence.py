"""DNA sequence encoding: one-hot (vectorised lookup table) and reverse complement.

The N convention (`neutral_value`, `--n-value` on the command line): N and other non-ACGT letters
encode as `neutral_value` in each of the 4 channels. 0 (all-zero rows, the default) is what
DeepMind's enformer.py, its README and the Basenji2 training data use; 0.25 is kipoiseq's
`one_hot_dna` default, used by DeepMind's usage notebook (enformer-usage.ipynb), so windows that
reach a chromosome end or an assembly gap reproduce the notebook's numbers only with 0.25.
"""

import functools
import math
from typing import Sequence, Tuple, Union

import numpy as np

# Channels of a one-hot sequence, in order; models with extra input tracks put them after these.
BASES = 'ACGT'
NUM_NUCLEOTIDES = len(BASES)
# IUPAC nucleotide codes (and gap characters) that are not A/C/G/T: encoded as the neutral value.
# The neutral value of DeepMind's enformer.py / Basenji2 data (default) and of the usage notebook.
NEUTRAL_VALUE = 0.0
NOTEBOOK_NEUTRAL_VALUE = 0.25
IUPAC_AMBIGUOUS = 'NRYSWKMBDHVU-.'
# Largest float16 value: targets and extra input tracks are stored as float16 in the Basenji2
# layout, so values are clipped to ±FLOAT16_MAX when written and when encoded for inference.
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65,504
_COMPLEMENT = str.maketrans('ACGTRYSWKMBDHVNacgtryswkmbdhvn', 'TGCAYRSWMKVHDBNtgcayrswmkvhdbn')


def _ascii_codes(sequence: Union[str, bytes]) -> np.ndarray:
  if isinstance(sequence, (bytes, bytearray, memoryview)):
    return np.frombuffer(bytes(sequence), dtype=np.uint8)  # Bytes are ASCII codes already.
  if not isinstance(sequence, str):
    raise TypeError(
        f'one_hot_encode takes a DNA string (str or bytes), got '
        f'{type(sequence).__name__}; for several sequences use one_hot_encode_batch.'
    )
  try:
    return np.frombuffer(sequence.encode('ascii'), dtype=np.uint8)
  except UnicodeEncodeError as error:
    raise ValueError(
        f'Sequence contains a non-ASCII character {sequence[error.start]!r} at position '
        f'{error.start}; DNA must be written with the letters A, C, G, T (or IUPAC codes such as '
        'N). Check the input file encoding.'
    ) from None


def check_neutral_value(neutral_value: float) -> float:
  """Returns `neutral_value` as a float; ValueError unless it is a finite number in [0, 1].

  N is encoded as this value in each of the 4 channels: 0 (DeepMind's enformer.py, Basenji2) or
  0.25 (the usage notebook, kipoiseq). NaN or infinity would make every prediction NaN, and
  values outside [0, 1] are no base frequency.
  """
  try:
    value = float(neutral_value)
  except (TypeError, ValueError):
    raise ValueError(
        f'The one-hot value of N must be a number in [0, 1] (0, or 0.25 as '
        f"DeepMind's usage notebook), got {neutral_value!r}."
    ) from None
  if not math.isfinite(value) or not 0 <= value <= 1:
    raise ValueError(
        f'The one-hot value of N must be a finite number in [0, 1] (0, or 0.25 as '
        f"DeepMind's usage notebook), got {neutral_value!r}."
    )
  return value


@functools.lru_cache(maxsize=16)
def _lookup_table(
    alphabet: str, neutral_alphabet: str, neutral_value: float, dtype: np.dtype
) -> Tuple[np.ndarray, np.ndarray]:
  """Returns (table [256, len(alphabet)], valid [256] bool) indexed by ASCII code."""
  table = np.zeros((256, len(alphabet)), dtype=dtype)
  valid = np.zeros(256, dtype=bool)
  neutral = ''.join(sorted(set(neutral_alphabet + IUPAC_AMBIGUOUS) - set(alphabet.upper())))
  neutral_codes = _ascii_codes(neutral.upper() + neutral.lower())
  table[neutral_codes] = neutral_value
  valid[neutral_codes] = True
  for case in (alphabet.upper(), alphabet.lower()):
    table[_ascii_codes(case)] = np.eye(len(alphabet), dtype=dtype)
    valid[_ascii_codes(case)] = True
  table.flags.writeable = False
  return table, valid


def one_hot_encode(
    sequence: Union[str, bytes],
    alphabet: str = BASES,
    neutral_alphabet: str = 'N',
    neutral_value: float = NEUTRAL_VALUE,
    dtype=np.float32,
) -> np.ndarray:
  """One-hot encodes a DNA string (str, or ASCII bytes): [len(sequence), len(alphabet)].

  Lowercase (soft-masked) letters encode like uppercase; `neutral_alphabet` and the other IUPAC
  ambiguity codes (R, Y, S, W, K, M, B, D, H, V, U) and gaps encode as `neutral_value` in every
  column: 0 (default) as DeepMind's enformer.py and the Basenji2 data, 0.25 as kipoiseq and
  DeepMind's usage notebook. Any other character raises ValueError.
  """
  table, valid = _lookup_table(
      alphabet, neutral_alphabet, check_neutral_value(neutral_value), np.dtype(dtype)
  )
  codes = _ascii_codes(sequence)
  is_valid = np.take(valid, codes)  # np.take is ~10x faster than fancy indexing here.
  if not is_valid.all():
    position = int(np.argmin(is_valid))
    raise ValueError(
        f'Sequence contains {chr(codes[position])!r} at position {position}, which is not a '
        f'nucleotide ({alphabet}, IUPAC codes or N). Pass only sequence lines (no FASTA header '
        'or numbers).'
    )
  return np.take(table, codes, axis=0)


def one_hot_encode_batch(sequences: Sequence[str], **kwargs) -> np.ndarray:
  """One-hot encodes equal-length strings: [len(sequences), L, 4]."""
  lengths = {len(s) for s in sequences}
  if len(lengths) > 1:
    raise ValueError(
        f'Sequences in a batch must have equal lengths, got lengths '
        f'{sorted(lengths)}. Resize the intervals to a common length first.'
    )
  if not sequences:
    raise ValueError('one_hot_encode_batch needs at least one sequence.')
  return np.stack([one_hot_encode(s, **kwargs) for s in sequences])


def reverse_complement(sequence: str) -> str:
  """Reverse complement of a DNA string; case and IUPAC codes are preserved (N → N)."""
  return sequence.translate(_COMPLEMENT)[::-1]


def reverse_complement_one_hot(one_hot: np.ndarray) -> np.ndarray:
  """Reverse complement of one-hot arrays [..., L, 4] in A, C, G, T order.

  Reversing the channel order swaps A↔T and C↔G; all-zero (N) rows stay all-zero.
  """
  if one_hot.shape[-1] != 4:
    raise ValueError(
        f'Expected one-hot arrays with 4 channels (A, C, G, T) in the last axis, '
        f'got shape {one_hot.shape}.'
    )
  return one_hot[..., ::-1, ::-1]
