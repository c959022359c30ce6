"""One-hot encoding speed: enformer.one_hot_encode vs kipoiseq's one_hot_dna on 393,216 bp.

Usage: python benchmarks/one_hot.py [--repeats 20]
"""

import argparse
import timeit

import numpy as np
from kipoiseq.transforms.functional import one_hot_dna

from enformer import one_hot_encode

LENGTH = 393_216


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--repeats', type=int, default=20)
  args = parser.parse_args()
  sequence = ''.join(np.random.default_rng(0).choice(list('ACGTN'), size=LENGTH))
  one_hot_encode(sequence, neutral_value=0.25)  # Warm the lookup-table cache.
  ours = min(
      timeit.repeat(
          lambda: one_hot_encode(sequence, neutral_value=0.25), number=1, repeat=args.repeats
      )
  )
  theirs = min(timeit.repeat(lambda: one_hot_dna(sequence), number=1, repeat=args.repeats))
  # kipoiseq encodes N as 0.25 by default; compare with the same neutral value.
  same = np.array_equal(one_hot_encode(sequence, neutral_value=0.25), one_hot_dna(sequence))
  print(f'sequence length            {LENGTH:,} bp (best of {args.repeats})')
  print(f'enformer.one_hot_encode    {ours * 1e3:8.2f} ms')
  print(f'kipoiseq one_hot_dna       {theirs * 1e3:8.2f} ms')
  print(f'speed-up (kipoiseq / ours) {theirs / ours:8.1f}x')
  print(f'identical output           {same}')


if __name__ == '__main__':
  main()
