"""Basenji2 data: synthetic genome, writer, reader, augmentation, bad-data errors, legacy layout."""

import json
import pathlib
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from conftest import shared_path
from enformer.data import augment, basenji, synthetic, write
from enformer.sequence import one_hot_encode

SEQ_LENGTH = 2048


@pytest.fixture(scope='module')
def genome(tmp_path_factory) -> synthetic.SyntheticGenome:
  return synthetic.make_synthetic_genome(tmp_path_factory.mktemp('genome'), seed=3)


@pytest.fixture(scope='module')
def dataset_dir(tmp_path_factory, genome) -> pathlib.Path:
  return synthetic.make_synthetic_dataset(
      tmp_path_factory.mktemp('data'),
      genome=genome,
      sequence_length=SEQ_LENGTH,
      train_size=300,
      valid_size=20,
      test_size=10,
      seed=3,
  )


def test_synthetic_genome_is_deterministic_and_tracks_follow_motifs(genome, tmp_path):
  again = synthetic.make_synthetic_genome(tmp_path, seed=3)
  assert again.fasta.read_bytes() == genome.fasta.read_bytes()
  pd.testing.assert_frame_equal(again.motif_sites, genome.motif_sites)
  other = synthetic.make_synthetic_genome(tmp_path / 'other', seed=4)
  assert other.fasta.read_bytes() != genome.fasta.read_bytes()

  # Every planted site carries its motif on the stated strand.
  import pyfaidx

  fasta = pyfaidx.Fasta(str(genome.fasta))
  for site in genome.motif_sites.head(50).itertuples():
    dna = str(fasta[site.chrom][site.start : site.end]).upper()
    consensus = genome.motifs[site.motif]
    expected = consensus if site.strand == '+' else synthetic.reverse_complement(consensus)
    assert dna == expected

  # Track 0 responds to CTCF only: its signal is high at CTCF sites and at baseline at SP1 sites.
  sites = genome.motif_sites
  centre = lambda s: (s.start + s.end) // 2
  ctcf = [
      genome.signal(s.chrom, centre(s), centre(s) + 1)[0]
      for s in sites[sites.motif == 'CTCF'].head(20).itertuples()
  ]
  sp1 = [
      genome.signal(s.chrom, centre(s), centre(s) + 1)[0]
      for s in sites[sites.motif == 'SP1'].head(20).itertuples()
  ]
  assert np.min(np.array(ctcf)[:, 0]) > 2.0
  assert np.median(np.array(sp1)[:, 0]) < 0.5
  assert np.min(np.array(sp1)[:, 1]) > 2.0

  # The bigWigs hold the same per-base signal and the targets table points at them.
  import pyBigWig

  with pyBigWig.open(str(genome.bigwigs[2])) as bw:
    np.testing.assert_allclose(
        bw.values('chr2', 1000, 3000), genome.signal('chr2', 1000, 3000)[:, 2], rtol=1e-6
    )
  table = pd.read_csv(genome.targets, sep='\t')
  assert list(table.columns) == list(write.TARGET_COLUMNS)
  assert table['file'].tolist() == [str(p) for p in genome.bigwigs]


def test_synthetic_dataset_roundtrip(genome, dataset_dir):
  stats = json.loads((dataset_dir / 'statistics.json').read_text())
  assert stats['train_seqs'] == 300 and stats['valid_seqs'] == 20 and stats['test_seqs'] == 10
  assert stats['seq_length'] == SEQ_LENGTH and stats['target_length'] == SEQ_LENGTH // 128
  files = basenji.tfrecord_files(str(dataset_dir), 'train')
  assert [pathlib.Path(f).name for f in files] == ['train-0.tfr', 'train-1.tfr']

  bed = pd.read_csv(
      dataset_dir / 'sequences.bed',
      sep='\t',
      header=None,
      names=['chrom', 'start', 'end', 'subset'],
  )
  assert bed['subset'].tolist() == ['train'] * 300 + ['valid'] * 20 + ['test'] * 10
  assert set(bed[bed.subset == 'valid'].chrom) == {'chr3'}
  assert set(bed[bed.subset == 'test'].chrom) == {'chr4'}
  assert not set(bed[bed.subset == 'train'].chrom) & {'chr3', 'chr4'}

  examples = list(
      basenji.get_dataset(
          str(dataset_dir), 'valid', settings=basenji.DatasetSettings(deterministic=True)
      )
  )
  assert len(examples) == 20
  valid_bed = bed[bed.subset == 'valid'].reset_index(drop=True)
  for i in (0, 7, 19):
    chrom, start, end = valid_bed.loc[i, ['chrom', 'start', 'end']]
    np.testing.assert_array_equal(
        examples[i]['sequence'].numpy(), one_hot_encode(genome.sequence(chrom, start, end))
    )
    np.testing.assert_allclose(
        examples[i]['target'].numpy(), genome.binned_signal(chrom, start, end), rtol=2e-3, atol=2e-3
    )
    assert examples[i]['sequence'].dtype == tf.float32


def test_get_dataset_batching_shuffle_determinism(dataset_dir):
  kwargs = dict(
      batch_size=16,
      settings=basenji.DatasetSettings(shuffle=64, augment=True, seed=7, deterministic=True),
  )
  first = [b['sequence'].numpy() for b in basenji.get_dataset(str(dataset_dir), 'train', **kwargs)]
  second = [b['sequence'].numpy() for b in basenji.get_dataset(str(dataset_dir), 'train', **kwargs)]
  assert [b.shape for b in first] == [(16, SEQ_LENGTH, 4)] * 18 + [(12, SEQ_LENGTH, 4)]
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  plain = np.concatenate(
      [
          b['sequence'].numpy()
          for b in basenji.get_dataset(
              str(dataset_dir),
              'train',
              batch_size=16,
              settings=basenji.DatasetSettings(deterministic=True),
          )
      ]
  )
  assert not np.array_equal(np.concatenate(first), plain)

  repeated = basenji.get_dataset(
      str(dataset_dir),
      'test',
      batch_size=4,
      settings=basenji.DatasetSettings(repeat=3, drop_remainder=True),
  )
  assert sum(1 for _ in repeated) == 30 // 4


def test_sharding_across_workers(dataset_dir):
  from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

  policy = lambda ds: ds.options().experimental_distribute.auto_shard_policy
  assert (
      policy(basenji.get_dataset(str(dataset_dir), 'train'))
      == tf.data.experimental.AutoShardPolicy.FILE
  )
  # One file cannot be split by file: fall back to sharding records.
  assert (
      policy(basenji.get_dataset(str(dataset_dir), 'valid'))
      == tf.data.experimental.AutoShardPolicy.DATA
  )

  # What MultiWorkerMirroredStrategy applies to each of 2 workers: whole files, disjoint, even
  # with shuffling and augmentation.
  def worker_targets(**kwargs):
    dataset = basenji.get_dataset(
        str(dataset_dir), 'train', settings=basenji.DatasetSettings(**kwargs)
    )
    return [
        np.stack([e['target'].numpy() for e in _AutoShardDataset(dataset, 2, i)]) for i in range(2)
    ]

  for kwargs in ({}, dict(shuffle=True, augment=True, seed=1)):
    first, second = worker_targets(**kwargs)
    assert (len(first), len(second)) == (256, 44)
    assert not {t.tobytes() for t in first} & {t.tobytes() for t in second}

  # distribute_datasets_from_function: explicit shards by input context.
  counts = [
      sum(
          1
          for _ in basenji.get_dataset(
              str(dataset_dir), name, input_context=tf.distribute.InputContext(2, i, 2)
          )
      )
      for name in ('train', 'test')
      for i in range(2)
  ]
  assert counts == [256, 44, 5, 5]


def test_zipped_human_mouse(dataset_dir, tmp_path):
  zipped = basenji.get_zipped_dataset(
      'valid',
      paths={'human': str(dataset_dir), 'mouse': str(dataset_dir)},
      batch_size=8,
      settings=basenji.DatasetSettings(repeat=True, deterministic=True),
  )
  batches = list(zipped.take(5))  # valid has 20 records: repeats until taken.
  assert set(batches[0]) == {'human', 'mouse'}
  assert batches[4]['mouse']['target'].shape == (8, SEQ_LENGTH // 128, 4)


def test_write_dataset_from_examples_and_fasta(tmp_path, genome):
  rng = np.random.default_rng(0)
  examples = [
      (
          one_hot_encode(''.join(rng.choice(list('ACGTN'), 256))),
          rng.uniform(0, 5, (2, 3)).astype(np.float32),
      )
      for _ in range(5)
  ]
  out = write.write_dataset(
      tmp_path / 'mem', {'train': examples, 'valid': examples[:2]}, progress=False
  )
  read = list(
      basenji.get_dataset(out, 'train', settings=basenji.DatasetSettings(deterministic=True))
  )
  assert len(read) == 5
  for (sequence, target), got in zip(examples, read):
    np.testing.assert_array_equal(got['sequence'].numpy(), sequence)
    np.testing.assert_allclose(got['target'].numpy(), target, rtol=1e-3)
  with pytest.raises(FileExistsError, match='overwrite'):
    write.write_dataset(tmp_path / 'mem', {'train': examples}, progress=False)

  bed = pd.DataFrame(
      {
          'chrom': ['chr1', 'chr1', 'chr4'],
          'start': [-100, 5000, 99_900],
          'end': [924, 6024, 100_924],
          'subset': ['train', 'train', 'test'],
      }
  )
  targets = np.stack(
      [
          genome.binned_signal(c, s, e, 128)
          for c, s, e in bed[['chrom', 'start', 'end']].itertuples(index=False)
      ]
  )
  out = write.write_from_fasta(tmp_path / 'fa', genome.fasta, bed, targets, progress=False)
  test = list(basenji.get_dataset(out, 'test'))
  assert len(test) == 1
  sequence = test[0]['sequence'].numpy()
  assert sequence[100:].sum() == 0 and sequence[:100].sum() == 100  # N past the chromosome end
  first = next(
      iter(basenji.get_dataset(out, 'train', settings=basenji.DatasetSettings(deterministic=True)))
  )
  assert first['sequence'].numpy()[:100].sum() == 0  # N before position 0


def test_augmentation_reverse_complement_and_shift():
  rng = np.random.default_rng(1)
  sequence = tf.constant(np.eye(4, dtype=np.float32)[rng.integers(0, 4, 512)])
  target = tf.constant(rng.uniform(size=(4, 3)).astype(np.float32))
  rc_sequence, rc_target = augment.reverse_complement(sequence, target)
  np.testing.assert_array_equal(rc_target.numpy(), target.numpy()[::-1])
  np.testing.assert_array_equal(rc_sequence.numpy()[0], sequence.numpy()[-1][::-1])
  back_sequence, back_target = augment.reverse_complement(rc_sequence, rc_target)
  np.testing.assert_array_equal(back_sequence.numpy(), sequence.numpy())
  np.testing.assert_array_equal(back_target.numpy(), target.numpy())

  for shift in (3, -2, 0):
    shifted = augment.stochastic_shift(sequence, shift, pad_value=0.25).numpy()
    if shift > 0:
      np.testing.assert_array_equal(shifted[shift:], sequence.numpy()[:-shift])
      assert np.all(shifted[:shift] == 0.25)
    elif shift < 0:
      np.testing.assert_array_equal(shifted[:shift], sequence.numpy()[-shift:])
      assert np.all(shifted[shift:] == 0.25)
    else:
      np.testing.assert_array_equal(shifted, sequence.numpy())

  # Per-example augmentation is seedable and finds an alignment within ±3 bp of the original.
  example = {'sequence': sequence, 'target': target}
  outputs = [augment.augment_example(example, tf.constant([5, i])) for i in range(12)]
  again = [augment.augment_example(example, tf.constant([5, i])) for i in range(12)]
  flips = 0
  for out, out2 in zip(outputs, again):
    np.testing.assert_array_equal(out['sequence'].numpy(), out2['sequence'].numpy())
    flipped = not np.array_equal(out['target'].numpy(), target.numpy())
    flips += flipped
    seq = out['sequence'].numpy()
    if flipped:
      seq = seq[::-1, ::-1]
    matches = [
        s for s in range(-3, 4) if np.array_equal(seq[3:-3], sequence.numpy()[3 - s : 512 - 3 - s])
    ]
    assert matches, 'augmented sequence does not align with the original within ±3 bp'
  assert 0 < flips < 12

  # augment_dataset: reproducible per seed, new augmentations on every epoch of a repeat.
  dataset = tf.data.Dataset.from_tensors(example).repeat(8)
  runs = [
      [e['sequence'].numpy() for e in augment.augment_dataset(dataset, seed=s)] for s in (9, 9, 10)
  ]
  for a, b in zip(runs[0], runs[1]):
    np.testing.assert_array_equal(a, b)
  assert len({r.tobytes() for r in runs[0]}) > 2
  assert any(not np.array_equal(a, c) for a, c in zip(runs[0], runs[2]))


def _corrupt_copy(dataset_dir: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
  copy = tmp_path / 'copy'
  shutil.copytree(dataset_dir, copy, ignore=shutil.ignore_patterns('genome'))
  return copy


def test_truncated_file_names_file_and_record(dataset_dir, tmp_path):
  copy = _corrupt_copy(dataset_dir, tmp_path)
  path = copy / 'tfrecords' / 'train-1.tfr'
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(tf.errors.InvalidArgumentError, match=r'train-1\.tfr.*expects 44') as error:
    for _ in basenji.get_dataset(str(copy), 'train'):
      pass
  assert 'DataLossError' in str(error.value) and 'record' in str(error.value)
  with pytest.raises(ValueError, match=r'train-1\.tfr: record \d+ cannot be read'):
    basenji.get_dataset(str(copy), 'train', settings=basenji.DatasetSettings(verify=True))


def test_size_mismatch_and_bad_targets(dataset_dir, tmp_path):
  copy = _corrupt_copy(dataset_dir, tmp_path)
  stats = json.loads((copy / 'statistics.json').read_text())
  stats['num_targets'] = 5
  (copy / 'statistics.json').write_text(json.dumps(stats))
  with pytest.raises(
      tf.errors.InvalidArgumentError,
      match=r'valid-0\.tfr: record 0 has feature target of 128 bytes, expected '
      r'160 \(float16 \[16, 5\]',
  ):
    next(
        iter(
            basenji.get_dataset(
                str(copy), 'valid', settings=basenji.DatasetSettings(deterministic=True)
            )
        )
    )

  bad = tmp_path / 'bad'
  target = np.ones((2, 3), np.float32)
  good = (np.eye(4)[np.zeros(256, int)], target)
  write.write_dataset(bad, {'train': [good, good]}, progress=False)
  writer_path = bad / 'tfrecords' / 'train-0.tfr'
  with tf.io.TFRecordWriter(str(writer_path), tf.io.TFRecordOptions('ZLIB')) as w:
    w.write(write.encode_example(*good))
    broken = target.copy()
    broken[1, 2] = np.nan
    w.write(write.encode_example(good[0], broken))
  with pytest.raises(
      tf.errors.InvalidArgumentError, match=r'train-0\.tfr: record 1 has a target with NaN'
  ):
    list(
        basenji.get_dataset(str(bad), 'train', settings=basenji.DatasetSettings(deterministic=True))
    )
  with pytest.raises(ValueError, match='NaN'):
    write.write_dataset(tmp_path / 'nan', {'train': [(good[0], broken)]}, progress=False)


def test_legacy_basenji_layout():
  folder = shared_path('data', 'basenji_cage')
  info = basenji.load_info(str(folder))
  assert info.layout == 'legacy'
  assert (info.sequence_length, info.target_length, info.num_targets) == (262_144, 2048, 10)
  files = basenji.tfrecord_files(str(folder), 'train', 'legacy')
  assert [pathlib.Path(f).name for f in files] == [
      'cage10-train-00000-of-00100.tfrecord',
      'cage10-train-00001-of-00100.tfrecord',
  ]
  examples = list(
      basenji.get_dataset(
          str(folder), 'train', settings=basenji.DatasetSettings(deterministic=True)
      )
  )
  assert len(examples) == 20
  sequence, target = examples[0]['sequence'].numpy(), examples[0]['target'].numpy()
  assert sequence.shape == (262_144, 4) and target.shape == (2048, 10)
  # Decoded sequence: the raw uint8 bytes of record 0, one base per row.
  raw = next(iter(tf.data.TFRecordDataset(files[0], 'ZLIB')))
  feature = tf.train.Example.FromString(raw.numpy()).features.feature
  expected = np.frombuffer(feature['sequence'].bytes_list.value[0], np.uint8).reshape(-1, 4)
  np.testing.assert_array_equal(sequence, expected)
  assert set(np.unique(sequence.sum(axis=1))) <= {0.0, 1.0}
  assert sequence.sum() > 0.99 * 262_144
  np.testing.assert_allclose(target.ravel(), feature['target'].float_list.value)
  assert np.all(target >= 0) and target.max() > 0
