"""Basenji2 folders with any number of records per file: counts derived, never assumed; truncated,
short, corrupted and missing files are errors naming the file (and the record), with or without
per-subset counts in statistics.json."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from enformer.data import basenji, write

SEQ_LENGTH = 128  # one 128 bp bin per record: the files stay tiny


def _write_folder(
    folder: pathlib.Path, records_per_file: int, num_records: int, empty_last: str = ''
) -> pathlib.Path:
  """A valid folder as basenji writes it: no records_per_file in statistics.json.

  Record i has target [[i // 64, i % 64]] (exact in float16). empty_last: '' (none), 'zlib' (a
  ZLIB TFRecord file with no records) or 'bytes' (a 0-byte file) after the last full file.
  """
  rng = np.random.default_rng(records_per_file)
  with write.BasenjiWriter(
      str(folder),
      sequence_length=SEQ_LENGTH,
      target_length=1,
      num_targets=2,
      records_per_file=records_per_file,
  ) as writer:
    for i in range(num_records):
      sequence = np.eye(4)[rng.integers(0, 4, SEQ_LENGTH)]
      writer.add(
          'valid',
          sequence,
          np.array([[i // 64, i % 64]], np.float32),
          interval=('chr1', i * SEQ_LENGTH, (i + 1) * SEQ_LENGTH),
      )
  stats_path = folder / 'statistics.json'
  stats = json.loads(stats_path.read_text())
  del stats['records_per_file']
  stats_path.write_text(json.dumps(stats))
  if empty_last:
    last = folder / 'tfrecords' / f'valid-{-(-num_records // records_per_file)}.tfr'
    if empty_last == 'zlib':
      tf.io.TFRecordWriter(str(last), tf.io.TFRecordOptions('ZLIB')).close()
    else:
      last.write_bytes(b'')
  return folder


def _indices(folder: pathlib.Path, **kwargs) -> list:
  settings = basenji.DatasetSettings(deterministic=True, **kwargs)
  targets = [
      e['target'].numpy() for e in basenji.get_dataset(str(folder), 'valid', settings=settings)
  ]
  return [int(t[0, 0]) * 64 + int(t[0, 1]) for t in targets]


@pytest.mark.parametrize(
    'records_per_file, num_records, empty_last',
    [(1, 12, ''), (2, 24, 'zlib'), (32, 357, ''), (256, 2819, 'bytes')],
)
def test_any_records_per_file_reads_every_record_in_integer_order(
    tmp_path, records_per_file, num_records, empty_last
):
  folder = _write_folder(tmp_path / 'data', records_per_file, num_records, empty_last)
  files = [pathlib.Path(f).name for f in basenji.tfrecord_files(str(folder), 'valid')]
  assert len(files) > 10 and files[9:11] == ['valid-9.tfr', 'valid-10.tfr']
  layout = basenji.file_layout(basenji.load_info(str(folder)), 'valid')
  full, rest = divmod(num_records, records_per_file)
  assert layout.records_per_file == records_per_file
  assert list(layout.counts) == [records_per_file] * full + ([rest] if rest else []) + (
      [0] if empty_last else []
  )
  # File order is integer order: record i comes i-th (one parallel read keeps file order).
  assert _indices(folder, num_parallel_reads=1) == list(range(num_records))
  assert sorted(_indices(folder)) == list(range(num_records))
  assert basenji.verify_tfrecords(basenji.tfrecord_files(str(folder), 'valid')) == list(
      layout.counts
  )


@pytest.fixture
def two_per_file(tmp_path) -> pathlib.Path:
  return _write_folder(tmp_path / 'data', 2, 23)


def _drop_subset_counts(folder: pathlib.Path, bed: bool) -> None:
  stats_path = folder / 'statistics.json'
  stats = {k: v for k, v in json.loads(stats_path.read_text()).items() if not k.endswith('_seqs')}
  stats_path.write_text(json.dumps(stats))
  if not bed:
    (folder / 'sequences.bed').unlink()


def test_short_file_is_named_with_its_first_missing_record(two_per_file):
  path = two_per_file / 'tfrecords' / 'valid-5.tfr'
  first = next(iter(tf.data.TFRecordDataset(str(path), 'ZLIB'))).numpy()
  with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions('ZLIB')) as writer:
    writer.write(first)  # a well-formed file that lost its second record
  for drop in (False, True):  # the subset total from statistics.json, then from sequences.bed
    if drop:
      _drop_subset_counts(two_per_file, bed=True)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r'valid-5\.tfr: could read 1 records but expects 2 \((statistics\.'
        r'json: valid_seqs = 23|sequences\.bed: 23 valid rows), 2 records per file '
        r'as in valid-0\.tfr\); record 1 is truncated or corrupted',
    ):
      _indices(two_per_file)


@pytest.mark.parametrize('counts', ['statistics', 'bed', 'none'])
def test_truncated_file_is_an_error_with_or_without_subset_counts(tmp_path, counts):
  folder = _write_folder(tmp_path / 'data', 32, 357)
  if counts != 'statistics':
    _drop_subset_counts(folder, bed=counts == 'bed')
  path = folder / 'tfrecords' / 'valid-7.tfr'
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  # TensorFlow's reader stops early (with a DataLossError or, for some cuts, silently).
  assert sum(1 for _ in tf.data.TFRecordDataset(str(path), 'ZLIB').ignore_errors()) < 32
  if counts == 'none':  # nothing says how many records: every file is checked to its end first
    with pytest.raises(
        ValueError,
        match=r'valid-7\.tfr: record \d+ cannot be read \(the '
        r'compressed stream ends before its end marker\)',
    ):
      basenji.get_dataset(str(folder), 'valid')
  else:
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r'valid-7\.tfr: could read \d+ records but expects 32 .*record \d+ is truncated',
    ):
      _indices(folder)
  with pytest.raises(ValueError, match=r'valid-7\.tfr: record \d+ cannot be read'):
    basenji.get_dataset(str(folder), 'valid', settings=basenji.DatasetSettings(verify=True))


def test_corrupted_first_file_missing_and_extra_files(two_per_file, tmp_path):
  # The first file is the one counted to learn the records per file: checked to its end.
  first = two_per_file / 'tfrecords' / 'valid-0.tfr'
  data = bytearray(first.read_bytes())
  good = bytes(data)
  data[len(data) // 2] ^= 0xFF
  first.write_bytes(bytes(data))
  with pytest.raises(ValueError, match=r'valid-0\.tfr: record \d+ cannot be read \(zlib'):
    basenji.get_dataset(str(two_per_file), 'valid')
  first.write_bytes(good)

  (two_per_file / 'tfrecords' / 'valid-3.tfr').rename(tmp_path / 'valid-3.tfr')
  with pytest.raises(FileNotFoundError, match=r"lacks \['valid-3\.tfr'\]"):
    basenji.get_dataset(str(two_per_file), 'valid')
  (tmp_path / 'valid-3.tfr').rename(two_per_file / 'tfrecords' / 'valid-3.tfr')

  (two_per_file / 'tfrecords' / 'valid-11.tfr').unlink()
  with pytest.raises(
      ValueError,
      match=r'11 valid files of 2 records hold at most 22 records, but '
      r'statistics\.json: valid_seqs = 23',
  ):
    basenji.get_dataset(str(two_per_file), 'valid')
