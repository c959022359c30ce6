"""GENA-LM style conversion of Basenji2 records to a longer context (enformer convert-basenji)."""

import json
import pathlib

import h5py
import numpy as np
import pandas as pd
import pytest

from enformer.cli import main as cli_main
from enformer.data import basenji, convert, synthetic, write

SEQ_LENGTH = 512
LONG = 1024


@pytest.fixture(scope='module')
def genome(tmp_path_factory):
  sizes = {'chr1': 40_000, 'chr2': 30_000}
  return synthetic.make_synthetic_genome(
      tmp_path_factory.mktemp('conv_genome'), chrom_sizes=sizes, seed=11
  )


@pytest.fixture(scope='module')
def source(tmp_path_factory, genome) -> pathlib.Path:
  """A Basenji2 folder with 300 train records (2 files) and 3 valid records at chromosome ends."""
  rng = np.random.default_rng(0)
  starts = rng.integers(0, 39_000 - SEQ_LENGTH, 300)
  bed = pd.DataFrame(
      {'chrom': 'chr1', 'start': starts, 'end': starts + SEQ_LENGTH, 'subset': 'train'}
  )
  ends = pd.DataFrame(
      {
          'chrom': ['chr2', 'chr2', 'chr1'],
          'start': [0, 30_000 - SEQ_LENGTH, 100],
          'end': [SEQ_LENGTH, 30_000, 100 + SEQ_LENGTH],
          'subset': 'valid',
      }
  )
  bed = pd.concat([bed, ends], ignore_index=True)
  targets = np.stack(
      [
          genome.binned_signal(c, s, e)
          for c, s, e in bed[['chrom', 'start', 'end']].itertuples(index=False)
      ]
  )
  return pathlib.Path(
      write.write_from_fasta(
          tmp_path_factory.mktemp('conv_src') / 'data', genome.fasta, bed, targets, progress=False
      )
  )


def test_subset_intervals_map_rows_to_files(source):
  rows = convert.subset_intervals(str(source), 'train')
  assert len(rows) == 300
  assert rows['file_number'].tolist() == [0] * 256 + [1] * 44
  assert rows.loc[257, 'index_in_file'] == 1


@pytest.mark.slow
def test_convert_to_tfrecords_readable_by_get_dataset(source, genome, tmp_path):
  out = tmp_path / 'long'
  results = convert.convert_basenji(
      str(source), 'train', str(genome.fasta), LONG, out_tfr=str(out), processes=2, progress=False
  )
  assert [r.records for r in results] == [256, 44]
  assert all(r.mismatch_rate == 0 for r in results)
  stats = json.loads((out / 'statistics.json').read_text())
  assert stats['seq_length'] == LONG and stats['crop_bp'] == (LONG - SEQ_LENGTH) // 2
  ordered = basenji.DatasetSettings(deterministic=True)
  long_examples = list(
      basenji.get_dataset(str(out), 'train', sequence_length=LONG, settings=ordered)
  )
  short_examples = list(basenji.get_dataset(str(source), 'train', settings=ordered))
  assert len(long_examples) == 300
  lo = (LONG - SEQ_LENGTH) // 2
  for i in (0, 255, 256, 299):
    np.testing.assert_array_equal(
        long_examples[i]['sequence'].numpy()[lo : lo + SEQ_LENGTH],
        short_examples[i]['sequence'].numpy(),
    )
    np.testing.assert_array_equal(
        long_examples[i]['target'].numpy(), short_examples[i]['target'].numpy()
    )
  bed = pd.read_csv(out / 'sequences.bed', sep='\t', header=None)
  assert (bed[2] - bed[1] == LONG).all()
  with pytest.raises(ValueError, match='sequence_length=512'):
    basenji.get_dataset(str(out), 'train', sequence_length=SEQ_LENGTH)


def test_convert_to_hdf5_pads_chromosome_ends(source, genome, tmp_path):
  out = tmp_path / 'valid.h5'
  code = cli_main(
      [
          'convert-basenji',
          '--base-path',
          str(source),
          '--subset',
          'valid',
          '--fasta',
          str(genome.fasta),
          '--tfr',
          'valid-0.tfr',
          '--sequence-length',
          str(LONG),
          '--out-hdf5',
          str(out),
      ]
  )
  assert code == 0
  with h5py.File(out) as h5:
    assert h5['sequence'].shape == (3,) and h5['target'].shape == (3, SEQ_LENGTH // 128, 4)
    first = h5['sequence'][0].decode()
    assert len(first) == LONG and first.startswith('N' * 256) and 'N' not in first[256:]
    second = h5['sequence'][1].decode()
    assert second.endswith('N' * 256)
    assert h5['start'][0] == -256 and h5['end'][1] == 30_000 + 256
    assert h5['start'][2] == -156 and first != h5['sequence'][2].decode()
    assert h5.attrs['mismatch_rate'] == 0
    assert first[256 : 256 + SEQ_LENGTH] == genome.sequence('chr2', 0, SEQ_LENGTH)
    np.testing.assert_allclose(
        h5['target'][0], genome.binned_signal('chr2', 0, SEQ_LENGTH), rtol=2e-3, atol=2e-3
    )
    assert h5['chrom'][0].decode() == 'chr2'


def test_wrong_assembly_stops_with_clear_message(source, tmp_path, capsys):
  other = synthetic.make_synthetic_genome(
      tmp_path / 'other', chrom_sizes={'chr1': 40_000, 'chr2': 30_000}, seed=12
  )
  with pytest.raises(ValueError, match='probably a different assembly'):
    convert.convert_basenji(
        str(source),
        'train',
        str(other.fasta),
        LONG,
        out_hdf5=str(tmp_path / 'h'),
        tfr_files=['train-1.tfr'],
        processes=1,
        progress=False,
    )
  assert not list((tmp_path / 'h').glob('*.h5'))
  code = cli_main(
      [
          'convert-basenji',
          '--base-path',
          str(source),
          '--subset',
          'valid',
          '--fasta',
          str(other.fasta),
          '--sequence-length',
          str(LONG),
          '--out-tfr',
          str(tmp_path / 't'),
      ]
  )
  assert code == 2
  assert 'mm39 instead of mm10' in capsys.readouterr().err


def test_interrupted_reconversion_keeps_the_previous_output_and_resumes(
    source, genome, tmp_path, monkeypatch
):
  """Killed while converting over an existing output: the old data set stays whole; a rerun
  resumes from the files it finished and swaps the new data set in."""
  out = tmp_path / 'long'
  convert.convert_basenji(
      str(source), 'train', str(genome.fasta), LONG, out_tfr=str(out), processes=1, progress=False
  )
  before = {p.name: p.read_bytes() for p in (out / 'tfrecords').iterdir()}
  before_stats = (out / 'statistics.json').read_text()
  original, calls = convert.convert_file, []

  def killed_at_second_file(*args, **kwargs):
    calls.append(kwargs['tfr_file'])
    if len(calls) == 2:
      raise KeyboardInterrupt  # Stands in for kill -9: nothing of the run is cleaned up.
    return original(*args, **kwargs)

  monkeypatch.setattr(convert, 'convert_file', killed_at_second_file)
  with pytest.raises(KeyboardInterrupt):
    convert.convert_basenji(
        str(source), 'train', str(genome.fasta), 768, out_tfr=str(out), processes=1, progress=False
    )
  assert (out / 'statistics.json').read_text() == before_stats
  assert {p.name: p.read_bytes() for p in (out / 'tfrecords').iterdir()} == before
  assert len(list(basenji.get_dataset(str(out), 'train', sequence_length=LONG))) == 300
  monkeypatch.setattr(convert, 'convert_file', original)
  results = convert.convert_basenji(
      str(source), 'train', str(genome.fasta), 768, out_tfr=str(out), processes=1, progress=False
  )
  assert [r.records for r in results] == [44]  # File 0 came from the interrupted run.
  assert json.loads((out / 'statistics.json').read_text())['seq_length'] == 768
  examples = list(
      basenji.get_dataset(
          str(out),
          'train',
          sequence_length=768,
          settings=basenji.DatasetSettings(deterministic=True),
      )
  )
  assert len(examples) == 300 and examples[0]['sequence'].shape == (768, 4)
  assert not [p for p in out.iterdir() if p.name.startswith('.')]
