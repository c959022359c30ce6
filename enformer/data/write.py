"""Write the Basenji2 data layout.

One folder per organism:
  statistics.json   num_targets, train_seqs, valid_seqs, test_seqs, seq_length, pool_width, crop_bp,
                    target_length (+ records_per_file, num_input_tracks, input_tracks when present)
  sequences.bed     chrom, start, end, subset — one row per record, in record order within a subset
  targets.txt       the track table (index, genome, identifier, file, clip, scale, sum_stat,
                    description)
  tfrecords/{subset}-{N}.tfr
                    ZLIB-compressed tf.train.Example records, 256 per file:
                    'sequence' = bytes of a bool one-hot [seq_length, 4] (A, C, G, T; N = all False)
                    'target'   = bytes of float16 [target_length, num_targets]
                    'input_tracks' (optional) = bytes of float16 [seq_length, num_input_tracks],
                                 extra per-base inputs such as conservation (see
                                 `INPUT_TRACKS_FEATURE`).

`BasenjiWriter` streams examples into that layout; `write_dataset` and `write_from_fasta` wrap it.

Complete or untouched: on a local disk the writer holds a lock on the folder (`enformer.io.lock`)
and writes the new data set into a hidden staging folder inside it (`.dataset.<host>-<pid>-….tmp`);
only when every record is written does it swap the data set's members (tfrecords/, sequences.bed,
targets.txt, then statistics.json) into place. A run killed midway (kill -9, a full disk) leaves the
previous data set as it was; the next run removes the stale staging folder. Other files in the
folder are never touched.
"""

import json
import os
import posixpath
import shutil
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import kipoiseq
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from enformer.io.atomic import remove_stale_temporaries, temporary_name
from enformer.io.bed import read_sequences_bed
from enformer.io.fasta import FastaStringExtractor
from enformer.io.lock import OutputLock
from enformer.io.targets import read_targets
from enformer.sequence import one_hot_encode

RECORDS_PER_FILE = 256
POOL_WIDTH = 128
SUBSETS = ('train', 'valid', 'test')
INPUT_TRACKS_FEATURE = 'input_tracks'
TARGET_COLUMNS = (
    'index',
    'genome',
    'identifier',
    'file',
    'clip',
    'scale',
    'sum_stat',
    'description',
)
_COMPRESSION = 'ZLIB'
# The data set's members, swapped into place in this order (statistics.json last: it marks a
# complete data set).
DATASET_MEMBERS = ('tfrecords', 'sequences.bed', 'targets.txt', 'statistics.json')
_STAGING = 'dataset'

Interval = Tuple[str, int, int]
ArrayOrString = Union[np.ndarray, str]


def default_targets_table(num_targets: int, genome: int = 0) -> pd.DataFrame:
  """A Basenji-style targets table with placeholder identifiers track0 … track{n-1}."""
  return pd.DataFrame(
      {
          'index': np.arange(num_targets),
          'genome': genome,
          'identifier': [f'track{i}' for i in range(num_targets)],
          'file': '',
          'clip': 32.0,
          'scale': 1.0,
          'sum_stat': 'mean',
          'description': [f'track {i}' for i in range(num_targets)],
      }
  )


def check_output(out_dir: str, overwrite: bool) -> None:
  """FileExistsError when `out_dir` already holds a data set (statistics.json) and not overwrite."""
  statistics_path = posixpath.join(str(out_dir), 'statistics.json')
  if tf.io.gfile.exists(statistics_path) and not overwrite:
    raise FileExistsError(
        f'{out_dir} already holds a data set ({statistics_path}). Pass '
        'overwrite=True to replace it, or choose another folder.'
    )


def _bytes_feature(value: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def encode_example(
    sequence: np.ndarray, target: np.ndarray, input_tracks: Optional[np.ndarray] = None
) -> bytes:
  """Serialises one record in Basenji2 encoding.

  Args:
    sequence: [L, 4] one-hot (any numeric/bool dtype; non-zero = True).
    target: [T, C] values, stored as float16.
    input_tracks: optional [L, E] extra per-base inputs, stored as float16.
  """
  feature = {
      'sequence': _bytes_feature(np.ascontiguousarray(sequence, dtype=bool).tobytes()),
      'target': _bytes_feature(np.ascontiguousarray(target, dtype=np.float16).tobytes()),
  }
  if input_tracks is not None:
    feature[INPUT_TRACKS_FEATURE] = _bytes_feature(
        np.ascontiguousarray(input_tracks, dtype=np.float16).tobytes()
    )
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class BasenjiWriter:
  """Streams (sequence, target) records into a Basenji2-layout folder.

  Usage:
    with BasenjiWriter(out, sequence_length=4096, target_length=32, num_targets=4) as writer:
      writer.add('train', one_hot, target, interval=('chr1', 0, 4096))
  `close()` (or leaving the `with` block without an exception) writes statistics.json,
  sequences.bed and targets.txt. If the block raises, the TFRecord files written so far are closed
  (and complete) but no statistics.json is written, so the folder is not mistaken for a finished
  set.
  """

  def __init__(
      self,
      out_dir: str,
      *,
      sequence_length: int,
      target_length: int,
      num_targets: int,
      pool_width: int = POOL_WIDTH,
      crop_bp: int = 0,
      targets: Optional[Union[pd.DataFrame, str]] = None,
      input_track_names: Sequence[str] = (),
      records_per_file: int = RECORDS_PER_FILE,
      overwrite: bool = False,
      extra_statistics: Optional[Mapping[str, Any]] = None,
      extra_members: Optional[Mapping[str, str]] = None,
  ):
    if sequence_length <= 0 or target_length <= 0 or num_targets <= 0:
      raise ValueError(
          f'sequence_length, target_length and num_targets must be positive, got '
          f'{sequence_length}, {target_length}, {num_targets}.'
      )
    if target_length * pool_width + 2 * crop_bp != sequence_length:
      raise ValueError(
          f'target_length × pool_width + 2 × crop_bp must equal sequence_length: '
          f'{target_length} × {pool_width} + 2 × {crop_bp} != {sequence_length}. Pick crop_bp = '
          '(sequence_length − target_length × pool_width) / 2.'
      )
    self.out_dir = str(out_dir)
    self.sequence_length = sequence_length
    self.target_length, self.num_targets = target_length, num_targets
    self.pool_width, self.crop_bp = pool_width, crop_bp
    self.input_track_names = tuple(input_track_names)
    self.records_per_file = records_per_file
    self.extra_statistics = dict(extra_statistics or {})
    # name → a file or folder prepared elsewhere, moved to out_dir/name with the data set (and
    # removed if the data set is not completed).
    self._extra_members = dict(extra_members or {})
    check_output(self.out_dir, overwrite)
    self._targets = self._targets_table(targets)
    self._lock = self._staging = None
    if '://' in self.out_dir:  # Object stores (gs://…): no rename, written in place.
      self._write_dir = self.out_dir
      tfr_dir = posixpath.join(self.out_dir, 'tfrecords')
      if tf.io.gfile.isdir(tfr_dir):
        for name in tf.io.gfile.listdir(tfr_dir):
          if name.endswith('.tfr'):
            tf.io.gfile.remove(posixpath.join(tfr_dir, name))
    else:
      self._lock = OutputLock(self.out_dir, what=f'data set {self.out_dir}').acquire()
      check_output(self.out_dir, overwrite)  # Again, now that no other writer can be running.
      os.makedirs(self.out_dir, exist_ok=True)
      remove_stale_temporaries(os.path.join(self.out_dir, _STAGING))
      self._staging = self._write_dir = temporary_name(os.path.join(self.out_dir, _STAGING))
    self._tfr_dir = posixpath.join(self._write_dir, 'tfrecords')
    tf.io.gfile.makedirs(self._tfr_dir)
    self._writers: Dict[str, tf.io.TFRecordWriter] = {}
    self._counts: Dict[str, int] = {}
    self._intervals: Dict[str, List[Tuple[str, int, int]]] = {}
    self._closed = False

  def _targets_table(self, targets) -> pd.DataFrame:
    if targets is None:
      return default_targets_table(self.num_targets)
    table = targets if isinstance(targets, pd.DataFrame) else read_targets(targets)
    if len(table) != self.num_targets:
      raise ValueError(
          f'The targets table has {len(table)} rows but records have '
          f'{self.num_targets} targets; they must match (row i = target i).'
      )
    return table

  @property
  def counts(self) -> Dict[str, int]:
    """Records written so far per subset."""
    return dict(self._counts)

  def add(
      self,
      subset: str,
      sequence: ArrayOrString,
      target: np.ndarray,
      *,
      interval: Optional[Interval] = None,
      input_tracks: Optional[np.ndarray] = None,
  ) -> None:
    """Appends one record to `subset`.

    Args:
      subset: 'train', 'valid', 'test' (or any other name without '-').
      sequence: [sequence_length, 4] one-hot or a DNA string of length sequence_length.
      target: [target_length, num_targets].
      interval: (chrom, start, end) of the sequence, written to sequences.bed (defaults to
        ('synthetic', 0, sequence_length) when unknown).
      input_tracks: [sequence_length, E] extra per-base inputs (E = len(input_track_names)).
    """
    if self._closed:
      raise ValueError('This BasenjiWriter is closed; create a new one to write more records.')
    if '-' in subset or not subset:
      raise ValueError(f'Subset names must be non-empty and must not contain "-", got {subset!r}.')
    if isinstance(sequence, str):
      sequence = one_hot_encode(sequence)
    sequence = np.asarray(sequence)
    target = np.asarray(target)
    if sequence.shape != (self.sequence_length, 4):
      raise ValueError(
          f'Record {self._counts.get(subset, 0)} of {subset!r}: sequence has shape '
          f'{sequence.shape}, expected ({self.sequence_length}, 4).'
      )
    if target.shape != (self.target_length, self.num_targets):
      raise ValueError(
          f'Record {self._counts.get(subset, 0)} of {subset!r}: target has shape '
          f'{target.shape}, expected ({self.target_length}, {self.num_targets}).'
      )
    if not np.all(np.isfinite(target)) or np.any(target < 0):
      raise ValueError(
          f'Record {self._counts.get(subset, 0)} of {subset!r}: target has NaN, '
          'infinite or negative values; Basenji targets are non-negative coverage. '
          'Clip or fill them before writing.'
      )
    if np.any(target > np.finfo(np.float16).max):
      raise ValueError(
          f'Record {self._counts.get(subset, 0)} of {subset!r}: target exceeds the '
          'float16 range (65504); apply the track clip/scale first.'
      )
    expected_tracks = len(self.input_track_names)
    if (input_tracks is None) != (expected_tracks == 0):
      raise ValueError(
          f'This writer was created with input_track_names={self.input_track_names}; '
          'pass input_tracks with every record exactly when names are given.'
      )
    if input_tracks is not None:
      input_tracks = np.asarray(input_tracks)
      if input_tracks.ndim == 1:
        input_tracks = input_tracks[:, None]
      if input_tracks.shape != (self.sequence_length, expected_tracks):
        raise ValueError(
            f'input_tracks has shape {input_tracks.shape}, expected '
            f'({self.sequence_length}, {expected_tracks}).'
        )
    count = self._counts.get(subset, 0)
    if count % self.records_per_file == 0:
      if subset in self._writers:
        self._writers[subset].close()
      path = posixpath.join(self._tfr_dir, f'{subset}-{count // self.records_per_file}.tfr')
      self._writers[subset] = tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(_COMPRESSION))
    self._writers[subset].write(encode_example(sequence, target, input_tracks))
    self._counts[subset] = count + 1
    chrom, start, end = interval if interval is not None else ('synthetic', 0, self.sequence_length)
    self._intervals.setdefault(subset, []).append((str(chrom), int(start), int(end)))

  def statistics(self) -> Dict[str, Any]:
    """The statistics.json content for the records written so far."""
    stats = {
        'num_targets': self.num_targets,
        'seq_length': self.sequence_length,
        'pool_width': self.pool_width,
        'crop_bp': self.crop_bp,
        'target_length': self.target_length,
        'records_per_file': self.records_per_file,
    }
    for subset in sorted(set(SUBSETS) | set(self._counts), key=_subset_order):
      stats[f'{subset}_seqs'] = self._counts.get(subset, 0)
    if self.input_track_names:
      stats['num_input_tracks'] = len(self.input_track_names)
      stats['input_tracks'] = list(self.input_track_names)
    stats.update(self.extra_statistics)
    return stats

  def _close_writers(self) -> None:
    for writer in self._writers.values():
      writer.close()
    self._writers = {}

  def close(self) -> str:
    """Closes the TFRecord files and writes statistics.json, sequences.bed, targets.txt."""
    if self._closed:
      return self.out_dir
    self._close_writers()
    rows = [
        (chrom, start, end, subset)
        for subset in sorted(self._intervals, key=_subset_order)
        for chrom, start, end in self._intervals[subset]
    ]
    try:
      with tf.io.gfile.GFile(posixpath.join(self._write_dir, 'sequences.bed'), 'w') as f:
        f.write(''.join(f'{c}\t{s}\t{e}\t{subset}\n' for c, s, e, subset in rows))
      with tf.io.gfile.GFile(posixpath.join(self._write_dir, 'targets.txt'), 'w') as f:
        f.write(self._targets.to_csv(sep='\t', index=False))
      with tf.io.gfile.GFile(posixpath.join(self._write_dir, 'statistics.json'), 'w') as f:
        json.dump(self.statistics(), f, indent=2)
      if self._staging is not None:
        for name, source in self._extra_members.items():
          os.replace(source, os.path.join(self._staging, name))
        swap_dataset(self._staging, self.out_dir, tuple(self._extra_members))
    finally:
      self._closed = True
      self._discard()
    return self.out_dir

  def _discard(self) -> None:
    """Removes the staging folder and extra members (if still there) and releases the lock."""
    if self._staging is not None:
      shutil.rmtree(self._staging, ignore_errors=True)
    for source in self._extra_members.values():
      if os.path.isdir(source):
        shutil.rmtree(source, ignore_errors=True)
      elif os.path.exists(source):
        os.remove(source)
    if self._lock is not None:
      self._lock.release()
      self._lock = None

  def __enter__(self) -> 'BasenjiWriter':
    return self

  def __exit__(self, exc_type, exc, traceback) -> None:
    if exc_type is None:
      self.close()
    else:
      self._close_writers()
      self._closed = True
      self._discard()  # The previous data set stays as it was.


def swap_dataset(staging: str, out_dir: str, extra_members: Sequence[str] = ()) -> None:
  """Moves a complete data set from `staging` into `out_dir`, replacing the previous one's members.

  The previous statistics.json goes first (from then on the folder is not a complete data set)
  and the new one comes last (now it is); the renames in between take milliseconds.
  `extra_members` (names in `staging`, e.g. 'genome') move before statistics.json.
  """
  old_statistics = os.path.join(out_dir, 'statistics.json')
  if os.path.exists(old_statistics):
    os.remove(old_statistics)
  for member in (*extra_members, *DATASET_MEMBERS):
    source, target = os.path.join(staging, member), os.path.join(out_dir, member)
    if os.path.isdir(source):
      trash = None
      if os.path.lexists(target):
        trash = temporary_name(os.path.join(out_dir, _STAGING)) + '.old'
        os.replace(target, trash)
      os.replace(source, target)
      if trash:
        shutil.rmtree(trash, ignore_errors=True)
    elif os.path.exists(source):
      os.replace(source, target)
  shutil.rmtree(staging, ignore_errors=True)


def _subset_order(subset: str) -> Tuple[int, str]:
  return (SUBSETS.index(subset) if subset in SUBSETS else len(SUBSETS), subset)


Example = Union[Tuple[ArrayOrString, np.ndarray], Mapping[str, Any]]


def write_dataset(
    out_dir: str,
    examples: Mapping[str, Iterable[Example]],
    *,
    pool_width: int = POOL_WIDTH,
    crop_bp: int = 0,
    targets: Optional[Union[pd.DataFrame, str]] = None,
    input_track_names: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool = True,
    extra_statistics: Optional[Mapping[str, Any]] = None,
) -> str:
  """Writes the Basenji2 layout from in-memory examples.

  Args:
    out_dir: output folder (local or any tf.io.gfile path).
    examples: subset → iterable of (sequence, target) pairs or dicts with keys 'sequence', 'target'
      and optionally 'interval' (chrom, start, end) and 'input_tracks'. Sequences are [L, 4] one-hot
      or strings; targets [T, C]. Shapes are taken from the first example.
    pool_width, crop_bp: bin width and bp cropped from each side (L = T × pool_width + 2 × crop_bp).
    targets: a targets table (DataFrame or path); default placeholder rows.
    input_track_names: names of the extra per-base input tracks, if examples carry 'input_tracks'.

  Returns:
    out_dir.
  """
  writer = None
  for subset, subset_examples in examples.items():
    for example in tqdm(
        subset_examples, desc=f'writing {subset}', disable=not progress, unit='record'
    ):
      if not isinstance(example, Mapping):
        example = {'sequence': example[0], 'target': example[1]}
      sequence = example['sequence']
      if isinstance(sequence, str):
        sequence = one_hot_encode(sequence)
      target = np.asarray(example['target'])
      if writer is None:
        writer = BasenjiWriter(
            out_dir,
            sequence_length=len(sequence),
            target_length=target.shape[0],
            num_targets=target.shape[1],
            pool_width=pool_width,
            crop_bp=crop_bp,
            targets=targets,
            input_track_names=input_track_names,
            overwrite=overwrite,
            extra_statistics=extra_statistics,
        )
      writer.add(
          subset,
          sequence,
          target,
          interval=example.get('interval'),
          input_tracks=example.get('input_tracks'),
      )
  if writer is None:
    raise ValueError('No examples to write: every subset is empty.')
  return writer.close()


def read_bed_intervals(bed: Union[str, pd.DataFrame]) -> pd.DataFrame:
  """Reads a BED of records: columns chrom, start, end and (optional 4th) subset."""
  if not isinstance(bed, pd.DataFrame):
    return read_sequences_bed(bed, default_subset='train')
  table = bed.copy()
  if 'subset' not in table:
    table['subset'] = 'train'
  return table


def write_from_fasta(
    out_dir: str,
    fasta: str,
    bed: Union[str, pd.DataFrame],
    values: Union[np.ndarray, Callable[[str, int, int], np.ndarray]],
    *,
    pool_width: int = POOL_WIDTH,
    crop_bp: int = 0,
    targets: Optional[Union[pd.DataFrame, str]] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> str:
  """Writes the Basenji2 layout from a FASTA, a BED of records and their targets.

  Args:
    out_dir: output folder (local or any tf.io.gfile path).
    fasta: indexed (or indexable) FASTA; sequences are read with
      `enformer.io.fasta.FastaStringExtractor`, N-padded past chromosome ends.
    bed: records with columns chrom, start, end, subset (BED path or DataFrame); all of equal
      length.
    values: the target values: a [num_records, T, C] array aligned with the BED rows, or a
      function (chrom, start, end) → [T, C].
    targets: a targets table (DataFrame or path) written to targets.txt; default placeholder
      rows (as `write_dataset`).

  Returns:
    out_dir.
  """
  records = read_bed_intervals(bed)
  if not callable(values):
    values = np.asarray(values)
    if len(values) != len(records):
      raise ValueError(
          f'values has {len(values)} rows but the BED has {len(records)} records; '
          'they must be aligned.'
      )
  genome = FastaStringExtractor(fasta)

  def examples(subset_rows):
    for row_index, row in subset_rows.iterrows():
      chrom, start, end = str(row['chrom']), int(row['start']), int(row['end'])
      target = values(chrom, start, end) if callable(values) else values[row_index]
      yield {
          'sequence': genome.extract(kipoiseq.Interval(chrom, start, end)),
          'target': target,
          'interval': (chrom, start, end),
      }

  records = records.reset_index(drop=True)
  grouped = {
      subset: examples(records[records['subset'] == subset])
      for subset in sorted(records['subset'].unique(), key=_subset_order)
  }
  with genome:
    return write_dataset(
        out_dir,
        grouped,
        pool_width=pool_width,
        crop_bp=crop_bp,
        targets=targets,
        overwrite=overwrite,
        progress=progress,
    )
