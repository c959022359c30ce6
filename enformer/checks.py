"""Value checks shared by the library's settings objects."""

from typing import Any

import numpy as np


def is_count(value: Any) -> bool:
  """A non-negative int (Python or NumPy, not a bool)."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0
