"""Bad input data as one clear error: `DataError` (a ValueError) naming the file and record.

`get_dataset` checks records inside the tf.data pipeline (counts per file, finite non-negative
targets) with `tf.debugging.Assert`, so a failed check surfaces wherever the data set is iterated
as a TensorFlow `InvalidArgumentError` whose first line reads "assertion failed: [Bad record in
FILE: record N has ...]" under a traceback of TensorFlow internals. `data_errors()` wraps an
iteration and re-raises such failures as `DataError` with just that message; other TensorFlow
errors pass through unchanged.

    with data_errors('training data of head human (data/human)'):
      batch = next(iterator)
"""

import contextlib
import re
from typing import Iterator, Optional

import tensorflow as tf

_ASSERTION = re.compile(r'assertion failed: \[(.*?)\]\s*(?:\[\[|\n|$)', re.S)


class DataError(ValueError):
  """A record of the input data is unusable (NaN/infinite/negative target, truncated file, ...)."""


def assertion_message(error: BaseException) -> Optional[str]:
  """The message of a failed `tf.debugging.Assert` inside `error` (None: not such a failure)."""
  if not isinstance(error, tf.errors.InvalidArgumentError):
    return None
  match = _ASSERTION.search(error.message or '')
  if match is None:
    return None
  return ' '.join(match.group(1).split())


@contextlib.contextmanager
def data_errors(what: str = '') -> Iterator[None]:
  """Re-raises failed data checks of the wrapped iteration as DataError (see module docstring).

  Args:
    what: the data being read, added to the message when it does not already name a file
      (e.g. "validation data of head human (data/human)").
  """
  try:
    yield
  except tf.errors.InvalidArgumentError as error:
    message = assertion_message(error)
    if message is None:
      raise
    if what and what not in message:
      message = f'{message.rstrip(".")} (reading {what}).'
    raise DataError(message) from None
