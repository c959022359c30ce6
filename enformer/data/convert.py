"""Convert Basenji2 records to longer input contexts (the GENA-LM workflow).

Basenji2 TFRecords store only the one-hot sequence, not its coordinates. The coordinates are in
sequences.bed: the rows of a subset, in order, are that subset's records, and rows
N × 256 … N × 256 + 255 belong to file {subset}-N.tfr. For each record this module

  1. recovers its interval from sequences.bed,
  2. extends it around its centre to `sequence_length` bp using the genome FASTA (N-padded past
     chromosome ends; no record is dropped),
  3. VERIFIES that the FASTA sequence of the original interval equals the record's one-hot. The
     base mismatch rate (over positions that are not N in either) is reported; above
     `max_mismatch_rate` conversion stops, because the FASTA is most likely a different assembly
     than the data (e.g. mm39 instead of mm10, hg19 instead of hg38),
  4. writes HDF5 (per record: sequence string, target, coordinates) or TFRecords in Basenji2
     encoding (bool one-hot bytes + float16 target bytes) that `get_dataset(out, subset,
     sequence_length=sequence_length)` reads.

Files of a subset are converted in parallel processes with a progress bar.

A TFRecord output folder is complete or untouched: new files go to a hidden staging folder inside
it (`.convert-{subset}-{L}.partial/`, where an interrupted run resumes) and are swapped in with
the new statistics.json (written last) once every file of the run is converted. A run killed
midway leaves the previous data set as it was, never its statistics.json beside new files.
"""

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import posixpath
import shutil
from typing import List, Optional, Sequence

import numpy as np
import pandas as pd
import h5py
import kipoiseq
import tensorflow as tf
from tqdm.auto import tqdm

from enformer.data import basenji
from enformer.data.basenji import file_layout, file_number, load_info
from enformer.data.write import encode_example
from enformer.io.bed import read_sequences_bed
from enformer.io.fasta import FastaStringExtractor
from enformer.io.lock import OutputLock
from enformer.sequence import one_hot_encode

from enformer.io.files import parse_json

DEFAULT_MAX_MISMATCH_RATE = 0.01
# Records checked before the mismatch rate may stop a conversion (a few records of a wrong
# assembly already give a rate near 0.75; a few N-rich records should not trigger it).
MIN_RECORDS_BEFORE_STOP = 4


@dataclasses.dataclass
class ConversionResult:
  """Summary of one converted TFRecord file."""

  source: str
  output: str
  records: int
  compared_bases: int
  mismatched_bases: int
  mismatched_records: int

  @property
  def mismatch_rate(self) -> float:
    return self.mismatched_bases / max(self.compared_bases, 1)


def subset_intervals(base_path: str, subset: str) -> pd.DataFrame:
  """sequences.bed rows of one subset, in record order, with their file and in-file index.

  Returns:
    DataFrame with columns chrom, start, end, record (index within the subset), file_number
    (N of {subset}-N.tfr) and index_in_file.
  """
  info = load_info(base_path, 'basenji2')
  bed_path = posixpath.join(base_path, 'sequences.bed')
  if not tf.io.gfile.exists(bed_path):
    raise FileNotFoundError(
        f'{bed_path} not found: record coordinates come from sequences.bed '
        'of the Basenji2 data folder.'
    )
  with tf.io.gfile.GFile(bed_path) as f:
    table = read_sequences_bed(f)
  rows = table[table['subset'] == subset].reset_index(drop=True).drop(columns='subset')
  if rows.empty:
    raise ValueError(
        f'{bed_path} has no rows for subset {subset!r} (subsets: '
        f'{sorted(table["subset"].unique())}).'
    )
  expected = info.num_records.get(subset)
  if expected is not None and expected != len(rows):
    raise ValueError(
        f'{bed_path} has {len(rows)} {subset} rows but statistics.json says '
        f'{subset}_seqs = {expected}; the folder is inconsistent.'
    )
  layout = file_layout(info, subset)
  if sum(layout.counts) != len(rows):
    raise ValueError(
        f'{bed_path} has {len(rows)} {subset} rows but the {subset} files hold '
        f'{sum(layout.counts)} records ({layout.basis}); the folder is inconsistent.'
    )
  rows['record'] = np.arange(len(rows))
  rows['file_number'] = np.repeat([file_number(f, subset) for f in layout.files], layout.counts)
  rows['index_in_file'] = np.concatenate([np.arange(c) for c in layout.counts])
  return rows


def extend_interval(start: int, end: int, length: int) -> tuple:
  """[start, end) resized to `length` bp around its centre (centre = (start + end) // 2)."""
  centre = (start + end) // 2
  new_start = centre - length // 2
  return new_start, new_start + length


def _mismatches(record_one_hot: np.ndarray, genome_one_hot: np.ndarray) -> tuple:
  """(compared bases, mismatched bases): rows that are not N (all-zero) in both."""
  known = (record_one_hot.sum(axis=1) > 0) & (genome_one_hot.sum(axis=1) > 0)
  differ = np.any(record_one_hot != genome_one_hot, axis=1) & known
  return int(known.sum()), int(differ.sum())


def _check_mismatch_rate(
    tfr_file: str,
    fasta: str,
    records: int,
    compared: int,
    mismatched: int,
    max_mismatch_rate: float,
) -> None:
  if mismatched > max_mismatch_rate * compared:
    raise ValueError(
        f'{tfr_file}: {mismatched} of {compared} bases ({mismatched / compared:.1%}) in the first '
        f'{records} records differ from {fasta} at the sequences.bed coordinates (allowed '
        f'{max_mismatch_rate:.1%}). The FASTA is probably a different assembly than the data '
        '(e.g. mm39 instead of mm10, or hg19 instead of hg38): use the assembly the data was '
        'built from.'
    )


def convert_file(
    base_path: str,
    subset: str,
    tfr_file: str,
    fasta: str,
    sequence_length: int,
    *,
    out_hdf5: Optional[str] = None,
    out_tfr: Optional[str] = None,
    max_mismatch_rate: float = DEFAULT_MAX_MISMATCH_RATE,
    progress_queue=None,
) -> ConversionResult:
  """Converts one TFRecord file of a Basenji2 subset (see the module docstring).

  Args:
    base_path: Basenji2 data folder (statistics.json, sequences.bed, tfrecords/).
    subset: 'train', 'valid' or 'test'.
    tfr_file: one of the subset's files ({subset}-N.tfr).
    fasta: genome FASTA of the data's assembly.
    sequence_length: output sequence length L (bp, centred on the original interval).
    out_hdf5: HDF5 file to write, or
    out_tfr: TFRecord file to write (Basenji2 encoding with [L, 4] sequences).
    max_mismatch_rate: stop when the running base mismatch rate exceeds this.
    progress_queue: optional multiprocessing queue receiving 1 per converted record.

  Returns:
    ConversionResult.
  """
  if (out_hdf5 is None) == (out_tfr is None):
    raise ValueError('Pass exactly one of out_hdf5 and out_tfr.')
  info = basenji.load_info(base_path, 'basenji2')
  if sequence_length < info.sequence_length:
    raise ValueError(
        f'sequence_length {sequence_length} is shorter than the records '
        f'({info.sequence_length} bp); conversion extends records to a longer '
        'context.'
    )
  number = basenji.file_number(tfr_file, subset)
  if number < 0:
    raise ValueError(
        f'{tfr_file} is not named {subset}-N.tfr, so its rows in sequences.bed cannot be found.'
    )
  intervals = subset_intervals(base_path, subset)
  rows = intervals[intervals['file_number'] == number].reset_index(drop=True)
  # subset_intervals assigned the rows to files by `file_layout`, so this file must hold them all.
  records = basenji.read_file_records(
      info, tfr_file, expected_count=len(rows), basis='its rows in sequences.bed'
  )

  extractor = FastaStringExtractor(fasta)
  compared = mismatched = mismatched_records = count = 0
  output = out_hdf5 or out_tfr
  tmp_output = output + '.partial'
  h5 = writer = None
  if out_hdf5:
    h5 = h5py.File(tmp_output, 'w')
    n = len(rows)
    sequences = h5.create_dataset(
        'sequence', (n,), dtype=f'S{sequence_length}', compression='gzip', chunks=(1,)
    )
    targets = h5.create_dataset(
        'target',
        (n, info.target_length, info.num_targets),
        dtype=np.float16,
        compression='gzip',
        chunks=(1, info.target_length, info.num_targets),
    )
    coordinates = {
        name: h5.create_dataset(name, (n,), dtype=np.int64)
        for name in ('start', 'end', 'bed_start', 'bed_end', 'record', 'mismatches')
    }
    chroms = h5.create_dataset('chrom', (n,), dtype=h5py.string_dtype())
  else:
    writer = tf.io.TFRecordWriter(tmp_output, tf.io.TFRecordOptions('ZLIB'))
  try:
    for index, example in enumerate(records.as_numpy_iterator()):
      if index >= len(rows):
        raise ValueError(
            f'{tfr_file} holds more records than sequences.bed lists for it '
            f'({len(rows)}); the folder is inconsistent.'
        )
      row = rows.iloc[index]
      chrom, bed_start, bed_end = str(row['chrom']), int(row['start']), int(row['end'])
      if bed_end - bed_start != info.sequence_length:
        raise ValueError(
            f'sequences.bed row {int(row["record"])} of {subset} spans '
            f'{bed_end - bed_start} bp, but records have {info.sequence_length} bp.'
        )
      start, end = extend_interval(bed_start, bed_end, sequence_length)
      sequence = extractor.extract(kipoiseq.Interval(chrom, start, end))
      offset = bed_start - start
      one_hot = one_hot_encode(sequence)
      n_compared, n_mismatched = _mismatches(
          example['sequence'], one_hot[offset : offset + info.sequence_length]
      )
      compared += n_compared
      mismatched += n_mismatched
      mismatched_records += n_mismatched > 0
      count += 1
      if count >= MIN_RECORDS_BEFORE_STOP or count == len(rows):
        _check_mismatch_rate(tfr_file, fasta, count, compared, mismatched, max_mismatch_rate)
      if h5 is not None:
        sequences[index] = sequence.encode('ascii')
        targets[index] = example['target'].astype(np.float16)
        for name, value in (
            ('start', start),
            ('end', end),
            ('bed_start', bed_start),
            ('bed_end', bed_end),
            ('record', int(row['record'])),
            ('mismatches', n_mismatched),
        ):
          coordinates[name][index] = value
        chroms[index] = chrom
      else:
        writer.write(encode_example(one_hot, example['target']))
      if progress_queue is not None:
        progress_queue.put(1)
    if count != len(rows):
      raise ValueError(
          f'{tfr_file} holds {count} records but sequences.bed lists {len(rows)} for '
          'it; the folder is inconsistent.'
      )
    if h5 is not None:
      h5.attrs.update(
          dict(
              subset=subset,
              source=tfr_file,
              fasta=str(fasta),
              sequence_length=sequence_length,
              original_length=info.sequence_length,
              compared_bases=compared,
              mismatched_bases=mismatched,
              mismatch_rate=mismatched / max(compared, 1),
          )
      )
  except BaseException:
    if h5 is not None:
      h5.close()
    if writer is not None:
      writer.close()
    if os.path.exists(tmp_output):
      os.remove(tmp_output)
    raise
  finally:
    extractor.close()
  if h5 is not None:
    h5.close()
  else:
    writer.close()
  os.replace(tmp_output, output)
  return ConversionResult(
      source=tfr_file,
      output=output,
      records=count,
      compared_bases=compared,
      mismatched_bases=mismatched,
      mismatched_records=mismatched_records,
  )


def _existing_length(out_dir: str) -> Optional[int]:
  """seq_length of the data set in out_dir (None: no complete data set there)."""
  path = os.path.join(out_dir, 'statistics.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f).get('seq_length')


def _write_tfr_layout(
    base_path: str,
    out_dir: str,
    subset: str,
    sequence_length: int,
    converted: Sequence[str],
    write_dir: Optional[str] = None,
) -> None:
  """statistics.json, sequences.bed (extended coordinates) and targets.txt of a TFRecord output.

  Counts of the subset are those of the source, and records_per_file states the source's (file N
  still holds rows N × k …), so get_dataset can check each converted file; other subsets already
  converted into out_dir (at the same sequence length) are kept. The files are written into
  `write_dir` (default out_dir).
  """
  info = load_info(base_path, 'basenji2')
  source_layout = file_layout(info, subset)
  source_path = posixpath.join(base_path, 'statistics.json')
  with tf.io.gfile.GFile(source_path, 'rb') as f:
    source_stats = parse_json(f.read(), source_path)
  stats_path = posixpath.join(out_dir, 'statistics.json')
  stats, compatible = dict(source_stats), False
  if tf.io.gfile.exists(stats_path):
    with tf.io.gfile.GFile(stats_path, 'rb') as f:
      existing = parse_json(f.read(), stats_path)
    if existing.get('seq_length') == sequence_length:
      stats, compatible = existing, True
  stats.update(
      seq_length=sequence_length,
      crop_bp=(sequence_length - info.target_length * info.pool_width) // 2,
      records_per_file=source_layout.records_per_file or max(source_layout.counts),
  )
  stats[f'{subset}_seqs'] = sum(source_layout.counts)
  files = dict(stats.get('converted_files', {}))
  files[subset] = sorted({*files.get(subset, []), *(posixpath.basename(c) for c in converted)})
  stats['converted_files'] = files
  write_dir = write_dir or out_dir
  with tf.io.gfile.GFile(posixpath.join(write_dir, 'statistics.json'), 'w') as f:
    json.dump(stats, f, indent=2)

  rows = subset_intervals(base_path, subset)
  starts, ends = extend_interval(rows['start'].to_numpy(), rows['end'].to_numpy(), sequence_length)
  new = pd.DataFrame({'chrom': rows['chrom'], 'start': starts, 'end': ends, 'subset': subset})
  bed_path = posixpath.join(out_dir, 'sequences.bed')
  if tf.io.gfile.exists(bed_path) and compatible:
    with tf.io.gfile.GFile(bed_path) as f:
      old = read_sequences_bed(f)
    new = pd.concat([old[old['subset'] != subset], new])
  with tf.io.gfile.GFile(posixpath.join(write_dir, 'sequences.bed'), 'w') as f:
    f.write(new.to_csv(sep='\t', header=False, index=False))
  targets = posixpath.join(base_path, 'targets.txt')
  if tf.io.gfile.exists(targets):
    tf.io.gfile.copy(targets, posixpath.join(write_dir, 'targets.txt'), overwrite=True)


def _swap_converted(staging: str, out_dir: str, replace_all: bool) -> None:
  """Moves the staged TFRecord files and layout into out_dir; statistics.json last.

  replace_all: the previous data set has another sequence length: its files all go.
  """
  old_statistics = os.path.join(out_dir, 'statistics.json')
  if os.path.exists(old_statistics):
    os.remove(old_statistics)  # From here on out_dir is not a complete data set ...
  tfr_dir = os.path.join(out_dir, 'tfrecords')
  if replace_all and os.path.isdir(tfr_dir):
    shutil.rmtree(tfr_dir)
  os.makedirs(tfr_dir, exist_ok=True)
  staged_tfr = os.path.join(staging, 'tfrecords')
  for name in sorted(os.listdir(staged_tfr)):
    os.replace(os.path.join(staged_tfr, name), os.path.join(tfr_dir, name))
  for name in ('sequences.bed', 'targets.txt', 'statistics.json'):  # ... until this last rename.
    if os.path.exists(os.path.join(staging, name)):
      os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
  shutil.rmtree(staging, ignore_errors=True)


def _worker(kwargs, queue):
  return convert_file(**kwargs, progress_queue=queue)


def convert_basenji(
    base_path: str,
    subset: str,
    fasta: str,
    sequence_length: int,
    *,
    tfr_files: Optional[Sequence[str]] = None,
    out_hdf5: Optional[str] = None,
    out_tfr: Optional[str] = None,
    processes: int = 2,
    max_mismatch_rate: float = DEFAULT_MAX_MISMATCH_RATE,
    overwrite: bool = False,
    progress: bool = True,
) -> List[ConversionResult]:
  """Converts a Basenji2 subset (or some of its files) to `sequence_length` bp inputs.

  Outputs:
    out_hdf5: with a single file in `tfr_files`, that HDF5 file; otherwise a folder receiving
      {subset}-{N}.h5 per TFRecord file. Datasets: sequence [n] (ASCII, L bp), target [n, T, C]
      float16, chrom, start, end (extended interval; may run past chromosome ends, N-padded),
      bed_start, bed_end (original interval), record (index in the subset), mismatches; attributes
      mismatch_rate etc.
    out_tfr: a folder in Basenji2 layout (statistics.json with seq_length = L, sequences.bed with
      the extended intervals, targets.txt, tfrecords/{subset}-{N}.tfr), readable by
      `get_dataset(out_tfr, subset, sequence_length=L)`.

  Files are converted in `processes` worker processes (spawned; each converts whole files).
  Existing outputs are skipped unless `overwrite`, so an interrupted run resumes.

  Returns:
    One ConversionResult per converted file (skipped files are not listed).
  """
  if (out_hdf5 is None) == (out_tfr is None):
    raise ValueError('Pass exactly one of `out_hdf5` and `out_tfr`.')
  if not os.path.exists(fasta):
    raise FileNotFoundError(f'Genome FASTA {fasta} does not exist.')
  info = basenji.load_info(base_path, 'basenji2')
  counts = basenji.subset_file_counts(info, subset)
  if tfr_files:
    resolved = []
    for name in tfr_files:
      match = [f for f in counts if f == name or posixpath.basename(f) == posixpath.basename(name)]
      if not match:
        raise FileNotFoundError(
            f'{name} is not a {subset} file of {base_path} (files: '
            f'{[posixpath.basename(f) for f in list(counts)[:4]]} …).'
        )
      resolved.append(match[0])
    files = resolved
  else:
    files = list(counts)

  lock = staging = None
  if out_tfr:
    lock = OutputLock(out_tfr, what=f'TFRecord output {out_tfr}').acquire()
  try:
    if out_tfr:
      staging = os.path.join(out_tfr, f'.convert-{subset}-{sequence_length}.partial')
      if overwrite:
        shutil.rmtree(staging, ignore_errors=True)
      os.makedirs(os.path.join(staging, 'tfrecords'), exist_ok=True)
    results = _convert_files(
        base_path,
        subset,
        fasta,
        sequence_length,
        files,
        counts,
        out_hdf5,
        out_tfr,
        staging,
        tfr_files,
        processes,
        max_mismatch_rate,
        overwrite,
        progress,
    )
    if out_tfr:
      replace_all = _existing_length(out_tfr) not in (None, sequence_length)
      _write_tfr_layout(base_path, out_tfr, subset, sequence_length, files, write_dir=staging)
      _swap_converted(staging, out_tfr, replace_all)
  finally:
    if lock is not None:
      lock.release()
  return sorted(results, key=lambda r: basenji.file_number(r.source, subset))


def _convert_files(
    base_path,
    subset,
    fasta,
    sequence_length,
    files,
    counts,
    out_hdf5,
    out_tfr,
    staging,
    tfr_files,
    processes,
    max_mismatch_rate,
    overwrite,
    progress,
) -> List[ConversionResult]:
  """Converts the files that need it (see convert_basenji); TFRecord outputs go to `staging`."""
  compatible = out_tfr and _existing_length(out_tfr) == sequence_length
  jobs = []
  for source in files:
    name = posixpath.basename(source).rsplit('.', 1)[0]
    if out_tfr:
      target = os.path.join(staging, 'tfrecords', f'{name}.tfr')
      if os.path.exists(target):
        continue  # Converted by an interrupted run of this conversion.
      if (
          compatible
          and not overwrite
          and os.path.exists(os.path.join(out_tfr, 'tfrecords', f'{name}.tfr'))
      ):
        continue
    elif len(files) == 1 and tfr_files:
      os.makedirs(os.path.dirname(os.path.abspath(out_hdf5)), exist_ok=True)
      target = out_hdf5
    else:
      os.makedirs(out_hdf5, exist_ok=True)
      target = os.path.join(out_hdf5, f'{name}.h5')
    if os.path.exists(target) and not overwrite:
      continue
    jobs.append(
        dict(
            base_path=base_path,
            subset=subset,
            tfr_file=source,
            fasta=fasta,
            sequence_length=sequence_length,
            out_hdf5=target if out_hdf5 else None,
            out_tfr=target if out_tfr else None,
            max_mismatch_rate=max_mismatch_rate,
        )
    )

  total = sum(max(counts[j['tfr_file']], 0) for j in jobs)
  results = []
  with tqdm(
      total=total or None, desc=f'convert {subset}', unit='record', disable=not progress
  ) as bar:
    if processes <= 1 or len(jobs) <= 1:
      for job in jobs:
        result = convert_file(**job)
        bar.update(result.records)
        results.append(result)
    else:
      # Spawned workers import TensorFlow with this module: keep their start-up chatter quiet.
      os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
      context = multiprocessing.get_context('spawn')
      with context.Manager() as manager:
        queue = manager.Queue()
        with concurrent.futures.ProcessPoolExecutor(
            min(processes, len(jobs)), mp_context=context
        ) as pool:
          futures = [pool.submit(_worker, job, queue) for job in jobs]
          pending = set(futures)
          try:
            while pending:
              done, pending = concurrent.futures.wait(pending, timeout=0.5)
              while not queue.empty():
                bar.update(queue.get())
              for future in done:
                results.append(future.result())
          except BaseException:
            for future in pending:
              future.cancel()
            raise
          while not queue.empty():
            bar.update(queue.get())
  return results
