"""Record order of Basenji2 folders, and one --overwrite rule for every `make-dataset` kind.

Unshuffled reads give the records in file order (files by their integer number N, then records
within a file), as basenji's own reader does: `evaluate --tss` maps record i to row i of
sequences.bed. `make-dataset` refuses a folder that holds a complete data set unless --overwrite,
and --overwrite replaces only the data set's own files.
"""

import hashlib
import json
import os
import pathlib

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import tensorflow as tf

from enformer.cli import main as cli_main
from enformer.data import basenji, write

from enformer.testing import MICRO, random_model

ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'CUDA_VISIBLE_DEVICES': ''}


def _write_marked(
    out: pathlib.Path,
    counts,
    records_per_file: int,
    sequence_length: int = 128,
    state_records_per_file: bool = True,
) -> pathlib.Path:
  """A Basenji2 folder whose record i of each subset has target [[i // 1000, i % 1000]]."""
  with write.BasenjiWriter(
      str(out),
      sequence_length=sequence_length,
      target_length=sequence_length // 128,
      num_targets=2,
      records_per_file=records_per_file,
  ) as writer:
    for subset, count in counts.items():
      for i in range(count):
        target = np.tile([[i // 1000, i % 1000]], (sequence_length // 128, 1))
        writer.add(
            subset,
            np.eye(4)[np.arange(sequence_length) % 4],
            target,
            interval=('chr1', i * sequence_length, (i + 1) * sequence_length),
        )
  if not state_records_per_file:  # As basenji writes it: the reader counts the first file.
    stats = json.loads((out / 'statistics.json').read_text())
    del stats['records_per_file']
    (out / 'statistics.json').write_text(json.dumps(stats))
  return out


def _markers(dataset, batched: bool = False) -> list:
  """The records' markers in the order `dataset` yields them (batched here to read fast)."""
  batches = dataset if batched else dataset.batch(512)
  return [
      int(m)
      for b in batches.as_numpy_iterator()
      for m in b['target'][:, 0, 0] * 1000 + b['target'][:, 0, 1]
  ]


@pytest.mark.parametrize(
    'records_per_file, count, stated',
    [(1, 12, True), (2, 23, False), (256, 10 * 256 + 7, True), (256, 10 * 256 + 7, False)],
)
def test_unshuffled_reads_are_in_file_order(tmp_path, records_per_file, count, stated):
  """`stated`: statistics.json gives records_per_file (this package), or not (basenji)."""
  data = _write_marked(
      tmp_path / 'd', {'valid': count}, records_per_file, state_records_per_file=stated
  )
  files = sorted(os.listdir(data / 'tfrecords'))
  assert len(files) > 10 and 'valid-10.tfr' in files  # valid-10 sorts before valid-2 as text.
  for deterministic in (True, False):
    dataset = basenji.get_dataset(
        str(data), 'valid', settings=basenji.DatasetSettings(deterministic=deterministic)
    )
    assert _markers(dataset) == list(range(count)), deterministic
  batched = basenji.get_dataset(
      str(data), 'valid', batch_size=5, settings=basenji.DatasetSettings(num_parallel_reads=8)
  )
  assert _markers(batched, batched=True) == list(range(count))
  if count > 256:
    return
  twice = basenji.get_dataset(str(data), 'valid', settings=basenji.DatasetSettings(repeat=2))
  assert _markers(twice) == list(range(count)) * 2
  # Shuffled training reads may interleave files, but still read every record once.
  shuffled = _markers(
      basenji.get_dataset(
          str(data), 'valid', settings=basenji.DatasetSettings(shuffle=True, seed=1)
      )
  )
  assert sorted(shuffled) == list(range(count))


def test_evaluate_tss_on_many_files_equals_one_file(tmp_path):
  """`enformer evaluate --tss` reads the TSS bins of record i from row i of sequences.bed."""
  length, bins, count, tracks = 1024, 8, 23, 2
  rng = np.random.default_rng(0)
  sequences = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (count, length))]
  targets = rng.gamma(1.0, 2.0, (count, bins, tracks))
  folders = {}
  for name, per_file in (('many', 2), ('one', 256)):
    with write.BasenjiWriter(
        str(tmp_path / name),
        sequence_length=length,
        target_length=bins,
        num_targets=tracks,
        records_per_file=per_file,
    ) as writer:
      for i in range(count):
        writer.add(
            'test', sequences[i], targets[i], interval=('chr1', i * length, (i + 1) * length)
        )
    folders[name] = tmp_path / name
  assert len(os.listdir(folders['many'] / 'tfrecords')) == 12
  # One TSS per record, each in another bin; gene i lies in record i.
  tss = tmp_path / 'tss.bed'
  tss.write_text(
      ''.join(
          f'chr1\t{i * length + (i % bins) * 128 + 5}\t'
          f'{i * length + (i % bins) * 128 + 6}\tg{i}\n'
          for i in range(count)
      )
  )
  config = dict(MICRO, pooling_type='max', heads={'human': tracks})
  model = random_model(0, calibration_length=length, **config)
  prefix = tf.train.Checkpoint(module=model).write(str(tmp_path / 'ckpt' / 'model'))
  model_args = [
      a for key, value in config.items() for a in ('--model-arg', f'{key}={json.dumps(value)}')
  ]
  tables = {}
  for name, folder in folders.items():
    out = tmp_path / f'eval_{name}'
    code = cli_main(
        [
            'evaluate',
            '--model',
            prefix,
            *model_args,
            '--data',
            str(folder),
            '--subset',
            'test',
            '--tss',
            str(tss),
            '--out',
            str(out),
            '--quiet',
        ]
    )
    assert code == 0
    tables[name] = (
        pd.read_csv(out / 'gene_level.tsv', sep='\t'),
        pd.read_csv(out / 'per_track.tsv', sep='\t'),
    )
  for many, one in zip(tables['many'], tables['one']):
    assert list(many.columns) == list(one.columns)
    for column in many.columns:
      if many[column].dtype.kind == 'f':
        np.testing.assert_allclose(many[column], one[column], rtol=1e-5, atol=1e-6, err_msg=column)
      else:
        assert many[column].tolist() == one[column].tolist()


def _snapshot(folder: pathlib.Path) -> dict:
  """relative path → sha256 of every file under folder."""
  return {
      str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
      for p in sorted(folder.rglob('*'))
      if p.is_file()
  }


def _bigwig_inputs(folder: pathlib.Path) -> list:
  """make-dataset bigwig arguments over a 3-chromosome FASTA and one bigWig (without --out)."""
  folder.mkdir()
  rng = np.random.default_rng(0)
  sizes = {'chr1': 4096, 'chr2': 2048, 'chr3': 2048}
  fasta = folder / 'genome.fa'
  fasta.write_text(
      ''.join(f'>{c}\n{"".join(rng.choice(list("ACGT"), n))}\n' for c, n in sizes.items())
  )
  bigwig = pyBigWig.open(str(folder / 'a.bw'), 'w')
  bigwig.addHeader(list(sizes.items()))
  for chrom, n in sizes.items():
    bigwig.addEntries(chrom, 0, values=rng.uniform(0, 3, n).tolist(), span=1, step=1)
  bigwig.close()
  targets = folder / 'targets.txt'
  pd.DataFrame({'identifier': ['a'], 'file': [str(folder / 'a.bw')], 'description': ['a']}).to_csv(
      targets, sep='\t', index=False
  )
  return [
      'bigwig',
      '--fasta',
      str(fasta),
      '--targets',
      str(targets),
      '--sequence-length',
      '1024',
      '--valid-chroms',
      'chr2',
      '--test-chroms',
      'chr3',
  ]


@pytest.mark.parametrize('kind', ['synthetic', 'bigwig'])
def test_make_dataset_refuses_a_data_set_unless_overwrite(tmp_path, capsys, kind):
  if kind == 'synthetic':
    command = [
        'synthetic',
        '--sequence-length',
        '1024',
        '--num-tracks',
        '2',
        '--train-size',
        '2',
        '--valid-size',
        '1',
        '--test-size',
        '1',
        '--quiet',
    ]
    changed = ['--seed', '3']
  else:
    command = _bigwig_inputs(tmp_path / 'inputs')
    changed = ['--stride', '512']
  out = tmp_path / 'out'
  (out / 'mine').mkdir(parents=True)  # The user's own files in the output folder.
  (out / 'notes.txt').write_text('my notes')
  (out / 'mine' / 'a.txt').write_text('mine')
  user = _snapshot(out)
  assert cli_main(['make-dataset', *command, '--out', str(out)]) == 0
  stats = json.loads((out / 'statistics.json').read_text())
  before = _snapshot(out)
  capsys.readouterr()
  # A complete data set is refused, with one line that says what to do; nothing changes.
  assert cli_main(['make-dataset', *command, *changed, '--out', str(out)]) == 2
  error = capsys.readouterr().err
  assert error.count('\n') == 1 and error.startswith('enformer make-dataset: error: '), error
  assert f'--out {out} already holds a data set' in error and '--overwrite' in error, error
  assert _snapshot(out) == before
  # --overwrite replaces the data set and only it: the user's files stay.
  assert cli_main(['make-dataset', *command, *changed, '--out', str(out), '--overwrite']) == 0
  new_stats = json.loads((out / 'statistics.json').read_text())
  assert new_stats != stats
  after = _snapshot(out)
  assert {k: v for k, v in after.items() if k in user} == user
  assert not [p for p in out.iterdir() if p.name.startswith('.')]
  if kind == 'synthetic':
    assert new_stats['seed'] == 3
    assert json.loads((out / 'genome' / 'synthetic.json').read_text())['seed'] == 3
  else:
    assert new_stats['train_seqs'] > stats['train_seqs']
  records = basenji.get_dataset(str(out), 'train')
  assert len(list(records.batch(64).as_numpy_iterator())) >= 1


def test_make_dataset_synthetic_keeps_a_genome_folder_of_the_user(tmp_path, capsys):
  """The synthetic data set writes OUT/genome: a folder of that name that is not one is kept."""
  out = tmp_path / 'out'
  (out / 'genome').mkdir(parents=True)
  (out / 'genome' / 'hg38.fa').write_text('>chr1\nACGT\n')
  for extra in ([], ['--overwrite']):
    code = cli_main(
        [
            'make-dataset',
            'synthetic',
            '--sequence-length',
            '1024',
            '--train-size',
            '2',
            '--valid-size',
            '1',
            '--test-size',
            '1',
            '--out',
            str(out),
            '--quiet',
            *extra,
        ]
    )
    error = capsys.readouterr().err
    assert code == 2 and 'is not a synthetic genome' in error and error.count('\n') == 1, error
  assert sorted(p.name for p in out.rglob('*')) == ['genome', 'hg38.fa']
  assert (out / 'genome' / 'hg38.fa').read_text() == '>chr1\nACGT\n'
