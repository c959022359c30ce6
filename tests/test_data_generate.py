"""Generating a Basenji2 data set from bigWig tracks (enformer make-dataset)."""

import json
import pathlib

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from enformer.cli import main as cli_main
from enformer.data import basenji, generate
from enformer.sequence import one_hot_encode

SIZES = {'chr1': 8192, 'chr2': 4096, 'chr3': 4096}
SEQ_LENGTH = 1024


def _write_bigwig(path, values_by_chrom):
  bw = pyBigWig.open(str(path), 'w')
  bw.addHeader(list(SIZES.items()))
  for chrom, values in values_by_chrom.items():
    bw.addEntries(chrom, 0, values=values.astype(np.float64).tolist(), span=1, step=1)
  bw.close()


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
  root = tmp_path_factory.mktemp('generate')
  rng = np.random.default_rng(0)
  sequences = {c: ''.join(rng.choice(list('ACGT'), n)) for c, n in SIZES.items()}
  # chr1 window 3 ([3072, 4096)) is mostly N.
  sequences['chr1'] = sequences['chr1'][:3072] + 'N' * 900 + sequences['chr1'][3972:]
  fasta = root / 'genome.fa'
  fasta.write_text(''.join(f'>{c}\n{s}\n' for c, s in sequences.items()))
  signal = {c: rng.uniform(0, 10, n).astype(np.float32) for c, n in SIZES.items()}
  conservation = {c: rng.uniform(-2, 2, n).astype(np.float32) for c, n in SIZES.items()}
  _write_bigwig(root / 'a.bw', signal)
  _write_bigwig(root / 'cons.bw', conservation)
  table = pd.DataFrame(
      {
          'index': [0, 1, 2],
          'genome': 0,
          'identifier': ['A_mean', 'A_sum', 'A_med'],
          'file': ['a.bw', str(root / 'a.bw'), 'a.bw'],
          'clip': [32, 500, 32],
          'scale': [2.0, 0.5, 1.0],
          'sum_stat': ['mean', 'sum', 'median'],
          'description': ['mean', 'sum', 'median'],
      }
  )
  table.to_csv(root / 'targets.txt', sep='\t', index=False)
  (root / 'blacklist.bed').write_text('chr1\t5000\t5100\n')
  return dict(
      root=root,
      fasta=fasta,
      sequences=sequences,
      signal=signal,
      conservation=conservation,
      targets=root / 'targets.txt',
      blacklist=root / 'blacklist.bed',
  )


def test_generate_from_bigwigs(inputs, tmp_path):
  out = tmp_path / 'data'
  counts = generate.generate_dataset(
      out,
      inputs['fasta'],
      inputs['targets'],
      sequence_length=SEQ_LENGTH,
      crop_bp=256,
      valid_chroms=['chr2'],
      test_chroms=['chr3'],
      blacklist=inputs['blacklist'],
      max_n_fraction=0.5,
      input_tracks={'conservation': inputs['root'] / 'cons.bw'},
      progress=False,
  )
  # chr1: 8 windows − 1 N-rich − 1 blacklisted; chr2 and chr3: 4 windows each.
  assert counts == {'train': 6, 'valid': 4, 'test': 4, 'skipped_blacklist': 1, 'skipped_n': 1}
  stats = json.loads((out / 'statistics.json').read_text())
  assert stats['target_length'] == 4 and stats['crop_bp'] == 256
  assert stats['input_tracks'] == ['conservation']
  bed = pd.read_csv(out / 'sequences.bed', sep='\t', header=None)
  train_starts = bed[bed[3] == 'train'][1].tolist()
  # 3072 is N-rich; 4096 overlaps the blacklist region 5000-5100.
  assert train_starts == [0, 1024, 2048, 5120, 6144, 7168]

  examples = list(
      basenji.get_dataset(
          str(out),
          'train',
          include_input_tracks=True,
          settings=basenji.DatasetSettings(deterministic=True),
      )
  )
  assert len(examples) == 6
  for example, start in zip(examples, train_starts):
    sequence = example['sequence'].numpy()
    assert sequence.shape == (SEQ_LENGTH, 5)
    np.testing.assert_array_equal(
        sequence[:, :4], one_hot_encode(inputs['sequences']['chr1'][start : start + 1024])
    )
    np.testing.assert_allclose(
        sequence[:, 4], inputs['conservation']['chr1'][start : start + 1024], atol=2e-3, rtol=1e-3
    )
    per_base = inputs['signal']['chr1'][start + 256 : start + 768].reshape(4, 128)
    expected = np.stack(
        [
            np.minimum(per_base.mean(1), 32) * 2,
            np.minimum(per_base.sum(1), 500) * 0.5,
            np.median(per_base, axis=1),
        ],
        axis=1,
    )
    np.testing.assert_allclose(example['target'].numpy(), expected, rtol=2e-3)
  # Without include_input_tracks the one-hot alone comes back.
  plain = next(iter(basenji.get_dataset(str(out), 'valid')))
  assert plain['sequence'].shape == (SEQ_LENGTH, 4)
  with pytest.raises(ValueError, match='no extra input tracks'):
    basenji.get_dataset(str(_no_tracks(tmp_path, inputs)), 'train', include_input_tracks=True)


def _no_tracks(tmp_path, inputs) -> pathlib.Path:
  out = tmp_path / 'plain'
  generate.generate_dataset(
      out,
      inputs['fasta'],
      inputs['targets'],
      sequence_length=SEQ_LENGTH,
      chroms=['chr2'],
      valid_chroms=[],
      test_chroms=[],
      progress=False,
  )
  return out


def test_make_dataset_cli_regions_and_errors(inputs, tmp_path, capsys):
  regions = tmp_path / 'regions.bed'
  regions.write_text('chr2\t1000\t1100\nchr3\t3000\t3050\n')
  out = tmp_path / 'cli'
  code = cli_main(
      [
          'make-dataset',
          'bigwig',
          '--fasta',
          str(inputs['fasta']),
          '--targets',
          str(inputs['targets']),
          '--out',
          str(out),
          '--sequence-length',
          '512',
          '--regions',
          str(regions),
          '--valid-chroms',
          'chr2',
          '--test-chroms',
          'chr3',
      ]
  )
  assert code == 0
  bed = pd.read_csv(out / 'sequences.bed', sep='\t', header=None)
  assert bed.values.tolist() == [['chr2', 794, 1306, 'valid'], ['chr3', 2769, 3281, 'test']]
  code = cli_main(
      [
          'make-dataset',
          'bigwig',
          '--fasta',
          str(inputs['fasta']),
          '--targets',
          str(inputs['targets']),
          '--out',
          str(out),
          '--sequence-length',
          '512',
      ]
  )
  assert code == 2 and 'overwrite' in capsys.readouterr().err
  bad = tmp_path / 'bad_targets.txt'
  pd.read_csv(inputs['targets'], sep='\t').assign(sum_stat='mode').to_csv(
      bad, sep='\t', index=False
  )
  code = cli_main(
      [
          'make-dataset',
          'bigwig',
          '--fasta',
          str(inputs['fasta']),
          '--targets',
          str(bad),
          '--out',
          str(tmp_path / 'x'),
          '--sequence-length',
          '512',
      ]
  )
  assert code == 2 and "Unsupported sum_stat ['mode']" in capsys.readouterr().err


def test_make_dataset_synthetic_cli(tmp_path):
  out = tmp_path / 'syn'
  code = cli_main(
      [
          'make-dataset',
          'synthetic',
          '--out',
          str(out),
          '--sequence-length',
          '1024',
          '--train-size',
          '8',
          '--valid-size',
          '4',
          '--test-size',
          '4',
          '--conservation',
      ]
  )
  assert code == 0
  stats = json.loads((out / 'statistics.json').read_text())
  assert stats['num_targets'] == 5 and stats['input_tracks'] == ['conservation']
  example = next(iter(basenji.get_dataset(str(out), 'test', include_input_tracks=True)))
  assert example['sequence'].shape == (1024, 5) and example['target'].shape == (8, 5)
  assert set(np.unique(example['sequence'].numpy()[:, 4])) <= {0.0, 1.0}


def _targets_for(tmp_path, bigwig) -> pathlib.Path:
  path = tmp_path / 'targets_one.txt'
  pd.DataFrame(
      {'index': [0], 'identifier': ['T0'], 'file': [str(bigwig)], 'description': ['t']}
  ).to_csv(path, sep='\t', index=False)
  return path


def test_bigwig_chromosome_names_must_match_the_fasta(inputs, tmp_path, capsys):
  """A bigWig named scaffold_1… over a chr1… FASTA: an error, not all-zero targets and exit 0."""
  bigwig = tmp_path / 'scaffolds.bw'
  bw = pyBigWig.open(str(bigwig), 'w')
  bw.addHeader([(f'scaffold_{i}', n) for i, n in enumerate(SIZES.values(), 1)])
  for i, n in enumerate(SIZES.values(), 1):
    bw.addEntries(f'scaffold_{i}', 0, values=[1.0] * n, span=1, step=1)
  bw.close()
  out = tmp_path / 'out'
  code = cli_main(
      [
          'make-dataset',
          'bigwig',
          '--fasta',
          str(inputs['fasta']),
          '--targets',
          str(_targets_for(tmp_path, bigwig)),
          '--out',
          str(out),
          '--sequence-length',
          '1024',
          '--valid-chroms',
          'chr2',
          '--test-chroms',
          'chr3',
      ]
  )
  err = capsys.readouterr().err
  assert code != 0 and 'scaffold_1' in err and 'chr1' in err and 'Traceback' not in err, err
  assert not (out / 'statistics.json').exists()

  # '1' ↔ 'chr1' still resolves (bigWig named 1, 2, 3 over the chr FASTA).
  bare = tmp_path / 'bare.bw'
  bw = pyBigWig.open(str(bare), 'w')
  bw.addHeader([(c[3:], n) for c, n in SIZES.items()])
  for c, n in SIZES.items():
    bw.addEntries(c[3:], 0, values=inputs['signal'][c].astype(np.float64).tolist(), span=1, step=1)
  bw.close()
  counts = generate.generate_dataset(
      tmp_path / 'bare',
      inputs['fasta'],
      _targets_for(tmp_path, bare),
      sequence_length=SEQ_LENGTH,
      valid_chroms=['chr2'],
      test_chroms=['chr3'],
      progress=False,
  )
  assert counts['train'] == 7 and counts['valid'] == 4
  example = next(
      iter(
          basenji.get_dataset(
              str(tmp_path / 'bare'), 'valid', settings=basenji.DatasetSettings(deterministic=True)
          )
      )
  )
  expected = inputs['signal']['chr2'][:SEQ_LENGTH].reshape(-1, 128).mean(1)
  np.testing.assert_allclose(example['target'].numpy()[:, 0], expected, rtol=2e-3)


def test_track_zero_in_every_window_is_refused(inputs, tmp_path):
  """A track whose bigWig has no signal over any written window is an error, not a 0 track."""
  empty = tmp_path / 'empty.bw'
  bw = pyBigWig.open(str(empty), 'w')
  bw.addHeader(list(SIZES.items()))
  bw.addEntries('chr1', 0, values=[5.0] * 96, span=1, step=1)  # Only outside the windows (chr3).
  bw.close()
  targets = pd.read_csv(inputs['targets'], sep='\t')
  targets['file'] = str(inputs['root'] / 'a.bw')
  targets.loc[1, 'file'] = str(empty)
  targets.loc[1, 'identifier'] = 'EMPTY'
  with pytest.raises(ValueError, match=r'EMPTY .*empty\.bw.* are 0 in all 4 windows'):
    generate.generate_dataset(
        tmp_path / 'out',
        inputs['fasta'],
        targets,
        sequence_length=1024,
        chroms=['chr3'],
        valid_chroms=[],
        test_chroms=['chr3'],
        stride=1024,
        regions=None,
        progress=False,
    )
  assert not (tmp_path / 'out' / 'statistics.json').exists()


def test_held_out_chromosomes_must_be_in_the_genome(inputs, tmp_path, capsys):
  """The defaults chr8/chr9 are not in a chr1-chr3 FASTA: an error naming them and the flag."""
  code = cli_main(
      [
          'make-dataset',
          'bigwig',
          '--fasta',
          str(inputs['fasta']),
          '--targets',
          str(inputs['targets']),
          '--out',
          str(tmp_path / 'out'),
          '--sequence-length',
          '1024',
      ]
  )
  err = capsys.readouterr().err
  assert code != 0 and "['chr8']" in err and '--valid-chroms' in err, err
  with pytest.raises(ValueError, match=r"Test chromosome\(s\) \['chr9'\] \(`test_chroms`\)"):
    generate.generate_dataset(
        tmp_path / 'out',
        inputs['fasta'],
        inputs['targets'],
        sequence_length=1024,
        valid_chroms=['chr2'],
        progress=False,
    )
  with pytest.raises(
      ValueError,
      match=r"Validation chromosome\(s\) \['chr2'\].*--chroms|"
      r"Validation chromosome\(s\) \['chr2'\]",
  ):
    generate.generate_dataset(
        tmp_path / 'out',
        inputs['fasta'],
        inputs['targets'],
        sequence_length=1024,
        chroms=['chr1'],
        valid_chroms=['chr2'],
        test_chroms=[],
        progress=False,
    )
  # A held-out chromosome shorter than the windows would give an empty subset too.
  with pytest.raises(ValueError, match=r'No window of 8192 bp lies on the validation'):
    generate.generate_dataset(
        tmp_path / 'out',
        inputs['fasta'],
        inputs['targets'],
        sequence_length=8192,
        valid_chroms=['chr2'],
        test_chroms=[],
        progress=False,
    )
  # Named without the 'chr' prefix, a held-out chromosome still goes to its subset.
  counts = generate.generate_dataset(
      tmp_path / 'bare',
      inputs['fasta'],
      inputs['targets'],
      sequence_length=1024,
      valid_chroms=['2'],
      test_chroms=['3'],
      max_n_fraction=0.5,
      progress=False,
  )
  assert counts['valid'] == 4 and counts['test'] == 4 and counts['train'] == 7
  assert not (tmp_path / 'out').exists() or not (tmp_path / 'out' / 'statistics.json').exists()
