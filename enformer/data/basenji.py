"""Read the Basenji2 data layout (and the legacy basenji layout) as `tf.data` pipelines.

Basenji2 layout (what Enformer trains on; `write.py` describes it in full): a folder per organism
with statistics.json, sequences.bed, targets.txt and tfrecords/{subset}-{N}.tfr (ZLIB; 'sequence' =
bool one-hot bytes [L, 4], 'target' = float16 bytes [T, C], optional 'input_tracks' = float16
bytes [L, E]). Files are read in the order of the integer N (valid-10 after valid-9).

Records per file: basenji writes a fixed number per file (an option, default 256; other tools of
the family use other values) and the remainder in the last file, but does not record it. The
count each file must hold is therefore derived, never assumed: the subset total from
statistics.json ({subset}_seqs, else the rows of sequences.bed), and the records per file from
statistics.json's `records_per_file` when present (this package writes it), else counted once in
the first file (its compressed stream is checked to its end). Without any subset total, every
file is counted once. While reading, each file's count is checked at its end.

Legacy basenji layout (e.g. basenji's test data): *.tfrecord files named like
`cage10-train-00000-of-00100.tfrecord`, 'sequence' = uint8 one-hot bytes [L, 4], 'target' =
float_list [T × C]; no statistics.json. It is detected automatically (or pass layout='legacy').

Bad data never surfaces as a bare DataLossError or reads short in silence: truncated or corrupted
files (TensorFlow's reader ends a truncated ZLIB file early without an error, so the per-file
count is what catches it), missing files, records whose byte sizes do not match statistics.json,
and NaN/infinite/negative targets raise an error naming the file, the record index and what was
expected versus found.
"""

import dataclasses
import concurrent.futures
import posixpath
import re
import struct
import zlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from enformer.checks import is_count
from enformer.data import augment as augment_lib
from enformer.data.augment import no_autograph
from enformer.data.sets import DEFAULT_DATA_DIR, ORGANISMS, is_named_set, resolve_path  # noqa: F401
from enformer.data.write import INPUT_TRACKS_FEATURE, POOL_WIDTH
from enformer.io.files import parse_json

# Where get_dataset('human', …) looks (DEFAULT_DATA_DIR, ORGANISMS, is_named_set, resolve_path):
# enformer.data.sets, which imports no TensorFlow (the CLI checks --data with it).
LAYOUTS = ('basenji2', 'legacy')
_COMPRESSION = 'ZLIB'


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a data folder holds.

  Attributes:
    path: the folder.
    layout: 'basenji2' or 'legacy'.
    sequence_length: bp per record (L).
    target_length: bins per record (T).
    num_targets: tracks per bin (C).
    pool_width: bp per bin.
    crop_bp: bp cropped from each side of the sequence before binning.
    num_records: subset → record count (from statistics.json; legacy: counted when read).
    records_per_file: records per TFRecord file when statistics.json states it
      (`records_per_file`, written by this package); 0 = not stated (basenji does not write it),
      see `file_layout`.
    input_track_names: names of the extra per-base input tracks (feature 'input_tracks').
    converted_files: subset → the files a partial `convert-basenji --out-tfr` wrote (the others
      of the source are absent on purpose).
  """

  path: str
  layout: str
  sequence_length: int
  target_length: int
  num_targets: int
  pool_width: int = POOL_WIDTH
  crop_bp: int = 0
  num_records: Mapping[str, int] = dataclasses.field(default_factory=dict)
  records_per_file: int = 0
  input_track_names: Tuple[str, ...] = ()
  converted_files: Mapping[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)

  @property
  def num_input_tracks(self) -> int:
    return len(self.input_track_names)


def file_number(path: str, subset: str) -> int:
  match = re.search(rf'(?:^|[-_.]){re.escape(subset)}-(\d+)', posixpath.basename(path))
  return int(match.group(1)) if match else -1


def tfrecord_files(path: str, subset: str, layout: str = 'basenji2') -> List[str]:
  """The subset's TFRecord files, sorted by their integer file number N (not as strings)."""
  if layout == 'basenji2':
    pattern = posixpath.join(path, 'tfrecords', f'{subset}-*.tfr')
  else:
    pattern = posixpath.join(path, f'*{subset}-*.tfrecord')
  files = [f for f in tf.io.gfile.glob(pattern) if file_number(f, subset) >= 0]
  if not files:
    raise FileNotFoundError(
        f'No TFRecord files match {pattern}. Check the data path and the '
        'subset '
        f'name ({subset!r}; Basenji2 uses train, valid and test).'
    )
  return sorted(files, key=lambda f: file_number(f, subset))


def _first_example(path: str) -> tf.train.Example:
  try:
    record = next(iter(tf.data.TFRecordDataset(path, _COMPRESSION).take(1)))
  except StopIteration:
    raise ValueError(f'{path} holds no records.') from None
  except tf.errors.DataLossError as error:
    raise ValueError(
        f'{path}: record 0 cannot be read ({error.message.strip()}); the file is '
        'corrupted or not a ZLIB-compressed TFRecord file.'
    ) from None
  return tf.train.Example.FromString(record.numpy())


def _read_legacy_params(path: str) -> Dict[str, str]:
  params = {}
  for name in tf.io.gfile.glob(posixpath.join(path, 'params*.txt')):
    with tf.io.gfile.GFile(name) as f:
      for line in f:
        parts = line.split()
        if len(parts) == 2:
          params.setdefault(parts[0], parts[1])
  return params


def load_info(
    path: str,
    layout: Optional[str] = None,
    pool_width: int = POOL_WIDTH,
    num_targets: Optional[int] = None,
) -> DatasetInfo:
  """Reads statistics.json (Basenji2) or inspects the first record (legacy) of a data folder.

  Args:
    path: data folder.
    layout: 'basenji2', 'legacy' or None to detect (statistics.json present → basenji2).
    pool_width, num_targets: legacy only, when no params*.txt says otherwise; num_targets defaults
      to the float_list size / (sequence_length / pool_width).
  """
  if not tf.io.gfile.isdir(path):
    raise FileNotFoundError(f'Data folder {path} does not exist.')
  statistics_path = posixpath.join(path, 'statistics.json')
  if layout is None:
    layout = 'basenji2' if tf.io.gfile.exists(statistics_path) else 'legacy'
  if layout not in LAYOUTS:
    raise ValueError(f'layout must be one of {LAYOUTS} or None (detect), got {layout!r}.')
  if layout == 'basenji2':
    if not tf.io.gfile.exists(statistics_path):
      raise FileNotFoundError(
          f'{statistics_path} not found: a Basenji2 data folder has '
          'statistics.json, sequences.bed, targets.txt and tfrecords/.'
      )
    with tf.io.gfile.GFile(statistics_path, 'rb') as f:
      stats = parse_json(f.read(), statistics_path)
    missing = [k for k in ('seq_length', 'target_length', 'num_targets') if k not in stats]
    if missing:
      raise ValueError(f'{statistics_path} lacks {missing}.')
    counts = {
        key[: -len('_seqs')]: int(value) for key, value in stats.items() if key.endswith('_seqs')
    }
    return DatasetInfo(
        path=path,
        layout=layout,
        sequence_length=int(stats['seq_length']),
        target_length=int(stats['target_length']),
        num_targets=int(stats['num_targets']),
        pool_width=int(stats.get('pool_width', POOL_WIDTH)),
        crop_bp=int(stats.get('crop_bp', 0)),
        num_records=counts,
        records_per_file=int(stats.get('records_per_file', 0)),
        input_track_names=tuple(stats.get('input_tracks', ())),
        converted_files={k: tuple(v) for k, v in stats.get('converted_files', {}).items()},
    )
  files = tf.io.gfile.glob(posixpath.join(path, '*.tfrecord'))
  if not files:
    raise FileNotFoundError(
        f'{path} has neither statistics.json (Basenji2 layout) nor *.tfrecord '
        'files (legacy basenji layout).'
    )
  example = _first_example(sorted(files)[0])
  features = example.features.feature
  if 'sequence' not in features or 'target' not in features:
    raise ValueError(
        f'{sorted(files)[0]}: records lack the features "sequence" and "target" '
        f'(found {sorted(features)}).'
    )
  seq_bytes = len(features['sequence'].bytes_list.value[0])
  if seq_bytes % 4:
    raise ValueError(
        f'{sorted(files)[0]}: sequence has {seq_bytes} bytes, not a [L, 4] uint8 one-hot.'
    )
  sequence_length = seq_bytes // 4
  params = _read_legacy_params(path)
  pool_width = int(params.get('target_pool', pool_width))
  target_size = len(features['target'].float_list.value)
  target_length = int(params.get('target_length', sequence_length // pool_width))
  num_targets = int(params.get('num_targets', num_targets or target_size // target_length))
  if target_length * num_targets != target_size:
    raise ValueError(
        f'{sorted(files)[0]}: target has {target_size} values, which is not '
        f'target_length {target_length} × num_targets {num_targets}. Pass '
        'num_targets/pool_width matching the data.'
    )
  return DatasetInfo(
      path=path,
      layout=layout,
      sequence_length=sequence_length,
      target_length=target_length,
      num_targets=num_targets,
      pool_width=pool_width,
      crop_bp=(sequence_length - target_length * pool_width) // 2,
      records_per_file=0,
  )


def subset_total(info: DatasetInfo, subset: str) -> Tuple[Optional[int], str]:
  """(records in the subset, where that number comes from), or (None, '') when nothing says.

  Basenji2: statistics.json's `{subset}_seqs`, else the subset's rows in sequences.bed.
  """
  if info.layout != 'basenji2':
    return None, ''
  if subset in info.num_records:
    return info.num_records[subset], f'statistics.json: {subset}_seqs = {info.num_records[subset]}'
  bed_path = posixpath.join(info.path, 'sequences.bed')
  if not tf.io.gfile.exists(bed_path):
    return None, ''
  with tf.io.gfile.GFile(bed_path) as f:
    rows = sum(1 for line in f if line.split()[3:4] == [subset])
  if not rows:
    return None, ''
  return rows, f'sequences.bed: {rows} {subset} rows'


_READ_CHUNK = 1 << 22  # compressed bytes read at a time
_MAX_OUTPUT = 1 << 24  # decompressed bytes produced at a time


def count_records(path: str) -> int:
  """Counts the records of a ZLIB-compressed TFRecord file, checking the file to its last byte.

  Decompresses the file in Python (zlib, in bounded chunks) and walks the TFRecord framing
  (8-byte length, 4-byte length CRC, data, 4-byte data CRC). Unlike TensorFlow's reader, which
  ends a truncated ZLIB file early without an error, this detects a compressed stream that stops
  before its end. A 0-byte file counts as 0 records.

  Raises:
    ValueError naming the file and the first record that cannot be read.
  """
  decompressor = zlib.decompressobj()
  header = b''  # bytes of the current record's 12-byte header read so far
  remaining = 0  # bytes of the current record's data + data CRC still to come
  count = 0
  size = 0

  def consume(data: bytes) -> None:
    nonlocal header, remaining, count
    position = 0
    while position < len(data):
      if remaining:
        step = min(remaining, len(data) - position)
        remaining -= step
        position += step
        if not remaining:
          count += 1
        continue
      take = 12 - len(header)
      header += data[position : position + take]
      position += take
      if len(header) == 12:
        remaining = struct.unpack('<Q', header[:8])[0] + 4
        header = b''

  def bad(problem: str) -> ValueError:
    return ValueError(
        f'{path}: record {count} cannot be read ({problem}); the file is truncated '
        f'or corrupted after {count} good records. Re-download or re-generate it.'
    )

  with tf.io.gfile.GFile(path, 'rb') as f:
    while not decompressor.eof:
      chunk = f.read(_READ_CHUNK)
      if not chunk:
        break
      size += len(chunk)
      try:
        data = decompressor.decompress(chunk, _MAX_OUTPUT)
        consume(data)
        while decompressor.unconsumed_tail and not decompressor.eof:
          consume(decompressor.decompress(decompressor.unconsumed_tail, _MAX_OUTPUT))
      except zlib.error as error:
        raise bad(f'zlib: {error}') from None
    if size == 0:
      return 0
    if not decompressor.eof:
      raise bad('the compressed stream ends before its end marker')
    if decompressor.unused_data or f.read(1):
      raise bad('bytes follow the end of the compressed stream')
  if header or remaining:
    raise bad('the last record is incomplete')
  return count


def verify_tfrecords(
    files: Sequence[str],
    expected_counts: Optional[Sequence[int]] = None,
    progress: bool = False,
    threads: int = 4,
) -> List[int]:
  """Counts the records of every file once (`count_records`, `threads` files at a time).

  Raises ValueError naming the file and the record index for truncated/corrupted files, and for
  files whose count differs from `expected_counts` (-1 = any count).
  """
  with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
    counts = list(
        tqdm(
            pool.map(count_records, files),
            total=len(files),
            desc='verifying',
            unit='file',
            disable=not progress,
        )
    )
  if expected_counts is not None:
    for path, count, expected in zip(files, counts, expected_counts):
      if expected >= 0 and count != expected:
        raise ValueError(
            f'{path}: holds {count} records, expected {expected} (from statistics.json).'
        )
  return counts


_COUNTED: Dict[Tuple[str, int, int], int] = {}


def _counted_once(path: str) -> int:
  """`count_records(path)`, remembered per (path, size, modification time) for this process."""
  stat = tf.io.gfile.stat(path)
  key = (path, stat.length, stat.mtime_nsec)
  if key not in _COUNTED:
    _COUNTED[key] = count_records(path)
  return _COUNTED[key]


@dataclasses.dataclass(frozen=True)
class FileLayout:
  """How a subset's records are spread over its TFRecord files.

  Attributes:
    files: the subset's files in integer order.
    counts: records each file must hold (same order).
    records_per_file: records in every file but the last ones (0 when counted file by file).
    basis: where the counts come from, for error messages.
  """

  files: Tuple[str, ...]
  counts: Tuple[int, ...]
  records_per_file: int
  basis: str


def file_layout(info: DatasetInfo, subset: str, progress: bool = False) -> FileLayout:
  """Records each file of `subset` must hold, derived from the data, never assumed.

  - Subset total T: statistics.json `{subset}_seqs`, else the rows of sequences.bed.
  - Records per file k: statistics.json `records_per_file`; else T for a single file; else
    counted in the first file (`count_records`, one file read once).
  - File N must hold clip(T − k·N, 0, k) records (the last file holds the remainder; trailing
    files may be empty). Missing files (a gap in N, or fewer files than T needs) are an error.
  - Without a subset total (or for the legacy layout), every file is counted once
    (`verify_tfrecords`), which also checks each file to its end.
  """
  files = tfrecord_files(info.path, subset, info.layout)
  total, source = subset_total(info, subset)
  if total is None:
    counts = verify_tfrecords(files, progress=progress)
    where = (
        'legacy layout'
        if info.layout == 'legacy'
        else f'statistics.json has no {subset}_seqs and sequences.bed no {subset} rows'
    )
    return FileLayout(tuple(files), tuple(counts), 0, f'counted once: {where}')
  numbers = [file_number(f, subset) for f in files]
  partial = subset in info.converted_files
  if not partial and numbers != list(range(len(files))):
    missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
    raise FileNotFoundError(
        f'{info.path}/tfrecords lacks {[f"{subset}-{n}.tfr" for n in missing[:5]]} '
        f'({len(missing)} missing of {subset}-0 … {subset}-{max(numbers)}.tfr). Re-download or '
        're-generate the missing files.'
    )
  per_file = info.records_per_file
  if per_file:
    basis = f'{source}, records_per_file = {per_file}'
  elif len(files) == 1:
    per_file, basis = total, source
  else:
    per_file = _counted_once(files[0])
    basis = f'{source}, {per_file} records per file as in {posixpath.basename(files[0])}'
  if not partial and per_file * len(files) < total:
    needed = -(-total // per_file) if per_file else 'more'
    raise ValueError(
        f'{info.path}: {len(files)} {subset} files of {per_file} records hold at most '
        f'{per_file * len(files)} records, but {source} ({needed} files needed at '
        f'{per_file} per file). Files are missing, or {posixpath.basename(files[0])} holds fewer '
        'records than the other files (truncated?). Pass verify=True to count every file.'
    )
  counts = tuple(int(np.clip(total - per_file * n, 0, per_file)) for n in numbers)
  return FileLayout(tuple(files), counts, per_file, basis)


def subset_file_counts(info: DatasetInfo, subset: str) -> Dict[str, int]:
  """TFRecord file → records it must hold (see `file_layout`), in file order."""
  layout = file_layout(info, subset)
  return dict(zip(layout.files, layout.counts))


def _message(*parts) -> tf.Tensor:
  """Joins Python strings and scalar tensors into one string tensor (no quoting)."""
  strings = []
  for part in parts:
    if isinstance(part, str):
      strings.append(part)
    elif part.dtype == tf.string:
      strings.append(part)
    else:
      strings.append(tf.strings.as_string(part))
  return tf.strings.join(strings)


def _require(condition: tf.Tensor, message_fn: Callable[[], tf.Tensor]) -> tf.Tensor:
  """Raises InvalidArgumentError with message_fn() when `condition` is false; returns a bool.

  The message is only built on failure (inside the false branch), so checks cost little per record.
  """

  def fail():
    with tf.control_dependencies([tf.debugging.Assert(condition, [message_fn()], summarize=1)]):
      return tf.identity(condition)

  return tf.cond(condition, lambda: tf.constant(True), fail)


def _read_file(
    filename: tf.Tensor, expected: tf.Tensor, basis: str = 'statistics.json'
) -> tf.data.Dataset:
  """Records of one file as (filename, index, record); checks the count at the end of the file.

  A truncated or corrupted file stops early (TensorFlow's reader raises DataLossError, caught
  here, or ends a truncated ZLIB stream without an error), so the count check names the file and
  the first record that could not be read. `expected` < 0 skips the check; `basis` says where
  the expected count comes from.
  """
  records = tf.data.TFRecordDataset(filename, _COMPRESSION).ignore_errors()
  records = records.map(no_autograph(lambda r: (tf.constant(False), r)))
  end_marker = tf.data.Dataset.from_tensors((tf.constant(True), tf.constant(b'')))

  def message(index):
    problem = tf.where(
        index < expected,
        _message(
            '; record ',
            index,
            ' is truncated or corrupted (DataLossError or '
            'a compressed stream that ends early). Re-download or re-generate '
            'this file.',
        ),
        _message('; the file has more records than the data set description says.'),
    )
    return _message(
        'Bad data file ',
        filename,
        ': could read ',
        index,
        ' records but expects ',
        expected,
        f' ({basis})',
        problem,
    )

  def check(index, element):
    is_end = element[0]
    ok = tf.logical_or(expected < 0, tf.equal(index, expected))
    return tf.cond(
        is_end,
        lambda: tf.logical_not(_require(ok, lambda: message(index))),
        lambda: tf.constant(True),
    )

  return (
      records.concatenate(end_marker)
      .enumerate()
      .filter(no_autograph(check))
      .map(no_autograph(lambda index, element: (filename, index, element[1])))
  )


def _make_decoder(info: DatasetInfo, include_input_tracks: bool, check_values: bool):
  """Returns a function (filename, index, serialized) → {'sequence', 'target'} float32."""
  sequence_length, target_length = info.sequence_length, info.target_length
  num_targets = info.num_targets
  num_input = info.num_input_tracks
  legacy = info.layout == 'legacy'
  features = {'sequence': tf.io.FixedLenFeature([], tf.string)}
  if legacy:
    features['target'] = tf.io.VarLenFeature(tf.float32)
  else:
    features['target'] = tf.io.FixedLenFeature([], tf.string)
  if include_input_tracks:
    features[INPUT_TRACKS_FEATURE] = tf.io.FixedLenFeature([], tf.string)

  def size_check(filename, index, name, found, expected, shape):
    unit = 'values' if name == 'target' and legacy else 'bytes'
    source = 'the first record' if legacy else 'statistics.json'
    return _require(
        tf.equal(found, expected),
        lambda: _message(
            'Bad record in ',
            filename,
            ': record ',
            index,
            f' has feature {name} of ',
            found,
            f' {unit}, expected {expected} ({shape} per {source}). The file does not match the '
            'data set description.',
        ),
    )

  def decode(filename, index, serialized):
    parsed = tf.io.parse_single_example(serialized, features)
    checks = [
        size_check(
            filename,
            index,
            'sequence',
            tf.strings.length(parsed['sequence']),
            sequence_length * 4,
            f'{"uint8" if legacy else "bool"} one-hot [{sequence_length}, 4]',
        )
    ]
    if legacy:
      target_values = parsed['target'].values
      checks.append(
          size_check(
              filename,
              index,
              'target',
              tf.size(target_values),
              target_length * num_targets,
              f'float [{target_length} × {num_targets}]',
          )
      )
    else:
      checks.append(
          size_check(
              filename,
              index,
              'target',
              tf.strings.length(parsed['target']),
              target_length * num_targets * 2,
              f'float16 [{target_length}, {num_targets}]',
          )
      )
    if include_input_tracks:
      checks.append(
          size_check(
              filename,
              index,
              INPUT_TRACKS_FEATURE,
              tf.strings.length(parsed[INPUT_TRACKS_FEATURE]),
              sequence_length * num_input * 2,
              f'float16 [{sequence_length}, {num_input}]',
          )
      )
    with tf.control_dependencies(checks):
      sequence = tf.io.decode_raw(parsed['sequence'], tf.uint8 if legacy else tf.bool)
      sequence = tf.cast(tf.reshape(sequence, [sequence_length, 4]), tf.float32)
      if legacy:
        target = tf.reshape(target_values, [target_length, num_targets])
      else:
        target = tf.cast(
            tf.reshape(
                tf.io.decode_raw(parsed['target'], tf.float16), [target_length, num_targets]
            ),
            tf.float32,
        )
      if include_input_tracks:
        extra = tf.io.decode_raw(parsed[INPUT_TRACKS_FEATURE], tf.float16)
        extra = tf.cast(tf.reshape(extra, [sequence_length, num_input]), tf.float32)
        sequence = tf.concat([sequence, extra], axis=-1)
    if check_values:
      finite = tf.reduce_all(tf.math.is_finite(target))
      minimum = tf.reduce_min(target)
      valid = _require(
          tf.logical_and(finite, minimum >= 0),
          lambda: _message(
              'Bad record in ',
              filename,
              ': record ',
              index,
              ' has a target with NaN/infinite or negative values (all finite: ',
              tf.where(finite, 'yes', 'no'),
              ', minimum ',
              minimum,
              '); expected finite values ≥ 0. Fix the data or pass check_values=False.',
          ),
      )
      with tf.control_dependencies([valid]):
        target = tf.identity(target)
    return {'sequence': sequence, 'target': target}

  return decode


def read_file_records(
    info: DatasetInfo,
    filename: str,
    *,
    include_input_tracks: bool = False,
    check_values: bool = True,
    expected_count: int = -1,
    basis: str = 'statistics.json',
) -> tf.data.Dataset:
  """Decoded records of one TFRecord file, in file order, with the same checks as `get_dataset`.

  `expected_count` (≥ 0, e.g. from `file_layout`) makes a file holding another number of records
  an error; `basis` says where that number comes from. Elements are
  {'sequence': float32 [L, 4 (+E)], 'target': float32 [T, C]}.
  """
  decoder = _make_decoder(info, include_input_tracks, check_values)
  records = _read_file(tf.constant(filename), tf.constant(expected_count, tf.int64), basis)
  return records.map(no_autograph(decoder))


_SHARD_POLICIES = {
    'file': tf.data.experimental.AutoShardPolicy.FILE,
    'data': tf.data.experimental.AutoShardPolicy.DATA,
    'off': tf.data.experimental.AutoShardPolicy.OFF,
}


@dataclasses.dataclass(frozen=True)
class DatasetSettings:
  """How `get_dataset` reads a subset: shuffling, augmentation, parallelism, checks.

  What names the data (folder, subset, layout, length, batch size) is passed to `get_dataset`
  directly; these are the input-pipeline choices. Build it once and pass it as `settings=`;
  `dataclasses.replace(settings, seed=2)` makes a variant of it. Values are checked when it is
  built.

  Attributes:
    shuffle: False, True (buffer 256) or a buffer size; file order is shuffled too, and records
      of `num_parallel_reads` files are interleaved. False reads the records in file order (the
      files by their integer N, then the records within each file) as basenji does, so record i
      is the subset's row i of sequences.bed, whatever `deterministic` says.
    repeat: False, True (forever) or a number of epochs.
    augment: False, True (Augmentation(): ±3 bp shift, reverse complement) or an Augmentation.
      Keep it off for validation and test.
    seed: seed for shuffling and augmentation (None = random each run).
    deterministic: keep element order and augmentation reproducible across runs (parallel reads
      and calls return results in order); always on without `shuffle`.
    drop_remainder: with `batch_size`, drop the last batch when it is smaller.
    num_parallel_reads: files read concurrently when shuffling (interleave cycle length); without
      `shuffle` files are read one after the other.
    num_parallel_calls: parallel decode/augment calls (or tf.data.AUTOTUNE).
    prefetch: batches to prefetch (tf.data.AUTOTUNE by default; None or 0 = no prefetch).
    check_values: fail on NaN/infinite/negative targets.
    verify: count the records of every file once first (`verify_tfrecords`: exact file/record
      errors before training). Without it, each file's count is checked as its last record is
      read, against the counts of `file_layout` (which reads at most the first file once).
    auto_shard: how `strategy.experimental_distribute_dataset` splits the data across workers:
      'file' (each worker reads whole files; a subset with a single file falls back to 'data'),
      'data' (every worker reads everything and keeps its share) or 'off'.
    options: extra tf.data.Options merged into the defaults (auto-sharding, determinism).
  """

  shuffle: Union[bool, int] = False
  repeat: Union[bool, int] = False
  augment: Union[bool, augment_lib.Augmentation] = False
  seed: Optional[int] = None
  deterministic: bool = False
  drop_remainder: bool = False
  num_parallel_reads: int = 4
  num_parallel_calls: int = 4
  prefetch: Optional[int] = tf.data.AUTOTUNE
  check_values: bool = True
  verify: bool = False
  auto_shard: str = 'file'
  options: Optional[tf.data.Options] = dataclasses.field(default=None, hash=False)

  def __post_init__(self):
    if self.auto_shard not in _SHARD_POLICIES:
      raise ValueError(
          f'DatasetSettings.auto_shard must be one of {sorted(_SHARD_POLICIES)}, '
          f'got {self.auto_shard!r}.'
      )
    for name, count in (('shuffle', 'a buffer size'), ('repeat', 'a number of epochs')):
      value = getattr(self, name)
      if not (isinstance(value, bool) or is_count(value)):
        raise ValueError(
            f'DatasetSettings.{name} must be False, True or {count} (an integer '
            f'≥ 0), got {value!r}.'
        )
    if not isinstance(self.augment, (bool, augment_lib.Augmentation)):
      raise ValueError(
          f'DatasetSettings.augment must be False, True or an '
          f'enformer.data.augment.Augmentation, got {self.augment!r}.'
      )
    if self.seed is not None and not (
        isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool)
    ):
      raise ValueError(
          f'DatasetSettings.seed must be None (random each run) or an integer, got '
          f'{self.seed!r}.'
      )
    for name in ('num_parallel_reads', 'num_parallel_calls'):
      value = getattr(self, name)
      if not ((is_count(value) and value >= 1) or value == tf.data.AUTOTUNE):
        raise ValueError(
            f'DatasetSettings.{name} must be at least 1 (or tf.data.AUTOTUNE), got {value!r}.'
        )
    if self.prefetch is not None and not (
        is_count(self.prefetch) or self.prefetch == tf.data.AUTOTUNE
    ):
      raise ValueError(
          f'DatasetSettings.prefetch must be a number of batches ≥ 0, '
          f'tf.data.AUTOTUNE or None, got {self.prefetch!r}.'
      )
    if self.options is not None and not isinstance(self.options, tf.data.Options):
      raise ValueError(
          f'DatasetSettings.options must be a tf.data.Options or None, got '
          f'{type(self.options).__name__}.'
      )


def get_dataset(
    organism_or_path: str,
    subset: str,
    *,
    data_dir: Optional[str] = None,
    layout: Optional[str] = None,
    sequence_length: Optional[int] = None,
    num_targets: Optional[int] = None,
    include_input_tracks: bool = False,
    batch_size: Optional[int] = None,
    settings: DatasetSettings = DatasetSettings(),
    input_context: Optional[tf.distribute.InputContext] = None,
) -> tf.data.Dataset:
  """A `tf.data.Dataset` of {'sequence': float32 [L, 4], 'target': float32 [T, C]}.

  Args:
    organism_or_path: 'human' or 'mouse' (read from `data_dir`, default $ENFORMER_DATA_DIR or
      gs://basenji_barnyard/data) or a data folder (local or any tf.io.gfile path such as gs://).
    subset: 'train', 'valid' or 'test'.
    layout: 'basenji2', 'legacy' or None (detect).
    sequence_length: if given, must equal the data's sequence length (a guard for converted data).
    num_targets: legacy layout only, when it cannot be inferred.
    include_input_tracks: concatenate the extra per-base input tracks (feature 'input_tracks',
      float16 [L, E]) to the one-hot → 'sequence' [L, 4 + E], for `Enformer(input_channels=4 + E)`.
    batch_size: batch examples ([B, L, 4], [B, T, C]); None keeps single examples.
    settings: the input-pipeline choices (shuffling, augmentation, seed, parallelism, checks,
      auto-sharding); `DatasetSettings()` reads the records once, in file order, unaugmented.
    input_context: from `strategy.distribute_datasets_from_function`: this pipeline reads only
      its share of the files (of the records when there are fewer files than pipelines) and
      auto-sharding is turned off.

  Returns:
    The dataset. The data description is available as `load_info(path)`.
  """
  if not isinstance(settings, DatasetSettings):
    raise TypeError(
        f'settings must be an enformer.data.basenji.DatasetSettings, got '
        f'{type(settings).__name__}.'
    )
  shuffle, augment, seed = settings.shuffle, settings.augment, settings.seed
  num_parallel_reads, num_parallel_calls = settings.num_parallel_reads, settings.num_parallel_calls
  auto_shard = settings.auto_shard
  path = resolve_path(organism_or_path, data_dir)
  info = load_info(path, layout, num_targets=num_targets)
  if sequence_length is not None and sequence_length != info.sequence_length:
    raise ValueError(
        f'{path} holds {info.sequence_length} bp sequences, but '
        f'sequence_length={sequence_length} was requested. Point to the data '
        'converted to that length (`enformer convert-basenji`) or drop '
        'sequence_length.'
    )
  if include_input_tracks and not info.num_input_tracks:
    raise ValueError(
        f'{path} has no extra input tracks (statistics.json lacks "input_tracks"); '
        'set include_input_tracks=False.'
    )
  layout = file_layout(info, subset, progress=settings.verify)
  files, expected = list(layout.files), list(layout.counts)
  if settings.verify and layout.records_per_file:
    verify_tfrecords(files, expected, progress=True)
  if seed is None and (shuffle or augment):
    seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
  if augment is True:
    augment = augment_lib.Augmentation()

  expected_table = tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(tf.constant(files), tf.constant(expected, tf.int64)),
      default_value=-1,
  )
  shard_records = False
  if input_context is not None and input_context.num_input_pipelines > 1:
    pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(files) >= pipelines:
      files, expected = files[pipeline_id::pipelines], expected[pipeline_id::pipelines]
    else:
      shard_records = True
    auto_shard = 'off'
  # Unshuffled reads keep file order (files by N, then records within a file) whatever
  # `deterministic` says: record i is row i of the subset in sequences.bed.
  deterministic = settings.deterministic or not shuffle
  dataset = tf.data.Dataset.from_tensor_slices(files)

  def read(filename):
    return _read_file(filename, expected_table.lookup(filename), layout.basis)

  if shuffle:
    if not shard_records:  # Record sharding needs the same file order in every pipeline.
      dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        no_autograph(read),
        cycle_length=num_parallel_reads,
        num_parallel_calls=num_parallel_reads,
        deterministic=deterministic,
    )
  else:
    # One file after the other (an interleave would alternate).
    dataset = dataset.flat_map(no_autograph(read))
  if shard_records:
    dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  if shuffle:
    buffer = 256 if shuffle is True else int(shuffle)
    dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
  if settings.repeat:
    dataset = dataset.repeat(None if settings.repeat is True else int(settings.repeat))
  decode = _make_decoder(info, include_input_tracks, settings.check_values)
  if augment:
    # Decode and augment in one parallel map; seeds are drawn in record order first.
    dataset = augment_lib.with_seeds(dataset, seed).map(
        no_autograph(
            lambda record, example_seed: augment_lib.augment_example(
                decode(*record), example_seed, augment
            )
        ),
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )
  else:
    dataset = dataset.map(
        no_autograph(decode), num_parallel_calls=num_parallel_calls, deterministic=deterministic
    )
  if batch_size:
    dataset = dataset.batch(
        batch_size,
        drop_remainder=settings.drop_remainder,
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )
  if settings.prefetch:
    dataset = dataset.prefetch(settings.prefetch)
  return dataset.with_options(_options(deterministic, auto_shard, len(files), settings.options))


def _options(
    deterministic: bool, auto_shard: str, num_files: int, extra: Optional[tf.data.Options]
) -> tf.data.Options:
  if auto_shard == 'file' and num_files < 2:
    auto_shard = 'data'  # FILE sharding needs at least one file per worker.
  options = tf.data.Options()
  options.deterministic = deterministic
  options.experimental_distribute.auto_shard_policy = _SHARD_POLICIES[auto_shard]
  if extra is not None:
    options = options.merge(extra)
  return options


def get_zipped_dataset(
    subset: str,
    organisms: Sequence[str] = ORGANISMS,
    *,
    data_dir: Optional[str] = None,
    paths: Optional[Mapping[str, str]] = None,
    settings: DatasetSettings = DatasetSettings(repeat=True),
    **kwargs: Any,
) -> tf.data.Dataset:
  """Human and mouse data zipped for alternating training: elements {organism: example}.

  Each organism's dataset is built with `get_dataset(..., settings=settings, **kwargs)` (`kwargs`:
  the data keywords, e.g. `batch_size`). The default settings repeat forever, so the smaller
  organism does not end the zip. `paths` maps organism → folder when the data is not under
  `data_dir/{organism}`.
  """
  paths = dict(paths or {})
  datasets = {
      organism: get_dataset(
          paths.get(organism, organism), subset, data_dir=data_dir, settings=settings, **kwargs
      )
      for organism in organisms
  }
  return tf.data.Dataset.zip(datasets)
