"""Where a Basenji2 data set named 'human' or 'mouse' lives (no TensorFlow imported).

`get_dataset('human', ...)` and `enformer train --data human` read the named sets under
$ENFORMER_DATA_DIR (default: DeepMind's public bucket) unless a local folder of that name exists.
"""

import os
import posixpath
from typing import Optional

# Where get_dataset('human', …) looks: DeepMind's public bucket unless ENFORMER_DATA_DIR is set.
DEFAULT_DATA_DIR = 'gs://basenji_barnyard/data'
ORGANISMS = ('human', 'mouse')


def is_named_set(organism_or_path: str) -> bool:
  """Whether a data argument names a set under $ENFORMER_DATA_DIR ('human' or 'mouse' with no
  local folder of that name) rather than a folder path."""
  organism_or_path = os.fspath(organism_or_path)
  return organism_or_path in ORGANISMS and not os.path.isdir(organism_or_path)


def resolve_path(organism_or_path: str, data_dir: Optional[str] = None) -> str:
  """'human'/'mouse' → {data_dir}/{organism} (data_dir defaults to $ENFORMER_DATA_DIR or
  gs://basenji_barnyard/data); anything else is taken as a folder path."""
  organism_or_path = os.fspath(organism_or_path)
  if is_named_set(organism_or_path):
    base = data_dir or os.environ.get('ENFORMER_DATA_DIR', DEFAULT_DATA_DIR)
    return posixpath.join(str(base), organism_or_path)
  return organism_or_path.rstrip('/')
