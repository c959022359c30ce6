"""Region predictions on disk: HDF5 (written incrementally) or npz, with coordinates and
track names.

`PredictionWriter` writes what `enformer.inference.regions` predicts; `read_predictions` reads
either format back into numpy arrays.
"""

import os
from typing import Dict, Sequence

import h5py
import numpy as np

from enformer.io import atomic
from enformer.io.targets import track_identifiers, track_labels
from enformer.sequence import NEUTRAL_VALUE


class PredictionWriter:
  """Writes RegionPredictions one by one to HDF5 (incrementally) or npz (at close).

  The file is written under a temporary name and renamed to `path` by `close()`, so a killed run
  leaves no unreadable file under the final name; `abort()` (e.g. on a full disk) removes it.

  Layout (HDF5 datasets, or npz arrays of the same names):
    predictions [R, bins, T] float32; bin_start [R, bins] int64 (0-based genomic start of each
    bin, bins are `bin_size` bp); chrom, name [R] str; region_start, region_end, input_start,
    input_end [R] int64; track_index [T] int; track_identifier, track_description [T] str.
    Attributes (HDF5 attrs; npz: arrays): head, bin_size, sequence_length, model, extra_tracks
    (';'-separated bigWigs of the model's extra input channels, '' for a one-hot-only model),
    neutral_value (the one-hot value of N).
  """

  def __init__(
      self,
      path: str,
      num_regions: int,
      num_bins: int,
      track_indices: Sequence[int],
      *,
      targets=None,
      head: str = 'human',
      sequence_length: int = 0,
      model: str = '',
      extra_tracks: Sequence[str] = (),
      neutral_value: float = NEUTRAL_VALUE,
      bin_size: int = 128,
  ):
    self.path = path
    self.format = 'npz' if path.endswith('.npz') else 'h5'
    atomic.remove_stale_temporaries(path)
    self._temporary = atomic.temporary_name(path)
    self.expected_bytes = num_regions * num_bins * (4 * len(track_indices) + 8)  # Uncompressed.
    self._count = 0
    self._num_regions = num_regions
    self._meta = dict(
        track_index=np.asarray(track_indices, dtype=np.int64),
        track_identifier=np.asarray(track_identifiers(targets, track_indices), dtype=object),
        track_description=np.asarray(track_labels(targets, track_indices), dtype=object),
    )
    self._attrs = dict(
        head=head,
        bin_size=bin_size,
        sequence_length=sequence_length,
        model=model,
        extra_tracks=';'.join(os.fspath(t) for t in extra_tracks),
        neutral_value=float(neutral_value),
    )
    self._rows: Dict[str, list] = {
        k: [] for k in ('chrom', 'name', 'region_start', 'region_end', 'input_start', 'input_end')
    }
    shape = (num_regions, num_bins, len(track_indices))
    if self.format == 'h5':
      self._file = h5py.File(self._temporary, 'w')
      self._predictions = self._file.create_dataset(
          'predictions',
          shape=shape,
          maxshape=(None, *shape[1:]),
          dtype='float32',
          compression='gzip',
          chunks=(1, num_bins, max(1, min(len(track_indices), 1024))),
      )
      self._bin_start = self._file.create_dataset(
          'bin_start', shape=shape[:2], maxshape=(None, num_bins), dtype='int64'
      )
    else:
      self._predictions = np.zeros(shape, np.float32)
      self._bin_start = np.zeros(shape[:2], np.int64)

  def add(self, prediction) -> None:
    """Appends one `enformer.inference.regions.RegionPrediction`."""
    i = self._count
    self._predictions[i] = prediction.values
    self._bin_start[i] = prediction.bin_starts
    rows = self._rows
    rows['chrom'].append(prediction.region.chrom)
    rows['name'].append(prediction.name)
    rows['region_start'].append(prediction.region.start)
    rows['region_end'].append(prediction.region.end)
    rows['input_start'].append(prediction.input_interval.start)
    rows['input_end'].append(prediction.input_interval.end)
    self._count += 1

  def abort(self) -> None:
    """Discards the file (nothing is left under either name)."""
    if self.format == 'h5':
      try:
        self._file.close()
      except Exception:  # pylint: disable=broad-except  # A full disk may fail the close.
        pass
    try:
      os.remove(self._temporary)
    except OSError:
      pass

  def close(self) -> None:
    """Writes the metadata and renames the file into place; after an interruption keeps the
    regions predicted so far (attribute `complete` = 0)."""
    try:
      self._write_metadata()
      atomic.fsync_file(self._temporary)
      os.replace(self._temporary, self.path)
    except Exception as error:
      self.abort()
      if atomic.is_disk_full(error):
        raise atomic.disk_full_error(self.path, needed=self.expected_bytes) from error
      raise

  def _write_metadata(self) -> None:
    self._attrs['complete'] = int(self._count == self._num_regions)
    columns = {
        k: np.asarray(v, dtype=object if k in ('chrom', 'name') else np.int64)
        for k, v in self._rows.items()
    }
    if self.format == 'h5':
      strings = h5py.string_dtype()
      for key, value in {**columns, **self._meta}.items():
        self._file.create_dataset(key, data=value, dtype=strings if value.dtype == object else None)
      self._predictions.resize(self._count, axis=0)
      self._bin_start.resize(self._count, axis=0)
      self._file.attrs.update(self._attrs)
      self._file.close()
    else:
      self._predictions = self._predictions[: self._count]
      self._bin_start = self._bin_start[: self._count]
      arrays = {
          k: (v.astype(str) if v.dtype == object else v)
          for k, v in {**columns, **self._meta}.items()
      }
      np.savez_compressed(
          self._temporary,
          predictions=self._predictions,
          bin_start=self._bin_start,
          **arrays,
          **{k: np.asarray(v) for k, v in self._attrs.items()},
      )


def read_predictions(path: str) -> Dict[str, object]:
  """Reads a file written by PredictionWriter into a dict of numpy arrays (strings as str)."""
  if path.endswith('.npz'):
    with np.load(path, allow_pickle=False) as data:
      result = {k: data[k] for k in data.files}
    for key in (
        'head',
        'model',
        'bin_size',
        'sequence_length',
        'complete',
        'extra_tracks',
        'neutral_value',
    ):
      if key in result:  # extra_tracks: absent from files written before it existed.
        result[key] = result[key].item()
    return result
  with h5py.File(path, 'r') as handle:
    result = {}
    for key, dataset in handle.items():
      value = dataset[()]
      if dataset.dtype.kind == 'O':
        value = np.asarray([v.decode() if isinstance(v, bytes) else v for v in value])
      result[key] = value
    result.update({k: (v.item() if hasattr(v, 'item') else v) for k, v in handle.attrs.items()})
  return result
