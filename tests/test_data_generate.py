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
  table = pd.DataFrame({'index': [0, 1, 2], 'genome': 0, 'identifier': ['A_mean', 'A_sum', 'A_med'],
                        'file': ['a.bw', str(root / 'a.bw'), 'a.bw'], 'clip': [32, 500, 32],
                        'scale': [2.0, 0.5, 1.0], 'sum_stat': ['mean', 'sum', 'median'],
                        'description': ['mean', 'sum', 'median']})
  table.to_csv(root / 'targets.txt', sep='\t', index=False)
  (root / 'blacklist.bed').write_text('chr1\t5000\t5100\n')
  return dict(root=root, fasta=fasta, sequences=sequences, signal=signal,
              conservation=conservation, targets=root / 'targets.txt',
              blacklist=root / 'blacklist.bed')


def test_generate_from_bigwigs(inputs, tmp_path):
  out = tmp_path / 'data'
  counts = generate.generate_dataset(out, inputs['fasta'], inputs['targets'], sequence_length=SEQ_LENGTH,
                                     crop_bp=256, valid_chroms=['chr2'], test_chroms=['chr3'],
                                     blacklist=inputs['blacklist'], max_n_fraction=0.5,
                                     input_tracks={'conservation': inputs['root'] / 'cons.bw'},
                                     progress=False)
  # chr1: 8 windows − 1 N-rich − 1 blacklisted; chr2 and chr3: 4 windows each.
  assert counts == {'train': 6, 'valid': 4, 'test': 4, 'skipped_blacklist': 1, 'skipped_n': 1}
  stats = json.loads((out / 'statistics.json').read_text())
  assert stats['target_length'] == 4 and stats['crop_bp'] == 256
  assert stats['input_tracks'] == ['conservation']
  bed = pd.read_csv(out / 'sequences.bed', sep='\t', header=None)
  train_starts = bed[bed[3] == 'train'][1].tolist()
  # 3072 is N-rich; 4096 overlaps the blacklist region 5000-5100.
  assert train_starts == [0, 1024, 2048, 5120, 6144, 7168]

  examples = list(basenji.get_dataset(str(out), 'train', deterministic=True,
                                      include_input_tracks=True))
  assert len(examples) == 6
  for example, start in zip(examples, train_starts):
    sequence = example['sequence'].numpy()
    assert sequence.shape == (SEQ_LENGTH, 5)
    np.testing.assert_array_equal(sequence[:, :4],
                                  one_hot_encode(inputs['sequences']['chr1'][start:start + 1024]))
    np.testing.assert_allclose(sequence[:, 4], inputs['conservation']['chr1'][start:start + 1024],
                               atol=2e-3, rtol=1e-3)
    per_base = inputs['signal']['chr1'][start + 256:start + 768].reshape(4, 128)
    expected = np.stack([np.minimum(per_base.mean(1), 32) * 2, np.minimum(per_base.sum(1), 500) *
                         0.5, np.median(per_base, axis=1)], axis=1)
    np.testing.assert_allclose(example['target'].numpy(), expected, rtol=2e-3)
  # Without include_input_tracks the one-hot alone comes back.
  plain = next(iter(basenji.get_dataset(str(out), 'valid')))
  assert plain['sequence'].shape == (SEQ_LENGTH, 4)
  with pytest.raises(ValueError, match='no extra input tracks'):
    basenji.get_dataset(str(_no_tracks(tmp_path, inputs)), 'train', include_input_tracks=True)


def _no_tracks(tmp_path, inputs) -> pathlib.Path:
  out = tmp_path / 'plain'
  generate.generate_dataset(out, inputs['fasta'], inputs['targets'], sequence_length=SEQ_LENGTH,
                            chroms=['chr2'], valid_chroms=[], test_chroms=[], progress=False)
  return out


def test_make_dataset_cli_regions_and_errors(inputs, tmp_path, capsys):
  regions = tmp_path / 'regions.bed'
  regions.write_text('chr2\t1000\t1100\nchr3\t3000\t3050\n')
  out = tmp_path / 'cli'
  code = cli_main(['make-dataset', 'bigwig', '--fasta', str(inputs['fasta']), '--targets',
                   str(inputs['targets']), '--out', str(out), '--seq-length', '512', '--regions',
                   str(regions), '--valid-chroms', 'chr2', '--test-chroms', 'chr3'])
  assert code == 0
  bed = pd.read_csv(out / 'sequences.bed', sep='\t', header=None)
  assert bed.values.tolist() == [['chr2', 794, 1306, 'valid'], ['chr3', 2769, 3281, 'test']]
  code = cli_main(['make-dataset', 'bigwig', '--fasta', str(inputs['fasta']), '--targets',
                   str(inputs['targets']), '--out', str(out), '--seq-length', '512'])
  assert code == 2 and 'overwrite' in capsys.readouterr().err
  bad = tmp_path / 'bad_targets.txt'
  pd.read_csv(inputs['targets'], sep='\t').assign(sum_stat='mode').to_csv(bad, sep='\t',
                                                                          index=False)
  code = cli_main(['make-dataset', 'bigwig', '--fasta', str(inputs['fasta']), '--targets',
                   str(bad), '--out', str(tmp_path / 'x'), '--seq-length', '512'])
  assert code == 2 and "Unsupported sum_stat ['mode']" in capsys.readouterr().err


def test_make_dataset_synthetic_cli(tmp_path):
  out = tmp_path / 'syn'
  code = cli_main(['make-dataset', 'synthetic', '--out', str(out), '--seq-length', '1024',
                   '--train-size', '8', '--valid-size', '4', '--test-size', '4', '--conservation'])
  assert code == 0
  stats = json.loads((out / 'statistics.json').read_text())
  assert stats['num_targets'] == 5 and stats['input_tracks'] == ['conservation']
  example = next(iter(basenji.get_dataset(str(out), 'test', include_input_tracks=True)))
  assert example['sequence'].shape == (1024, 5) and example['target'].shape == (8, 5)
  assert set(np.unique(example['sequence'].numpy()[:, 4])) <= {0.0, 1.0}
