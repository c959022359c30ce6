"""Regenerating a data set over an existing one: complete or untouched, never a mix.

A run killed (kill -9) or failing midway used to leave the old statistics.json beside partial new
files; now the new data set is written beside the old one and swapped in when complete.
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from enformer.data import basenji, generate, synthetic

ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'CUDA_VISIBLE_DEVICES': ''}
SYNTHETIC = [
    '--sequence-length',
    '1024',
    '--num-tracks',
    '2',
    '--train-size',
    '24',
    '--valid-size',
    '4',
    '--test-size',
    '4',
]

# Runs the CLI with BasenjiWriter.add patched to kill the process (SIGKILL) at record N.
_KILL_AT = textwrap.dedent("""
    import os, signal, sys
    from enformer.data import write
    add, count = write.BasenjiWriter.add, [0]
    def killing_add(self, *args, **kwargs):
      add(self, *args, **kwargs)
      count[0] += 1
      if count[0] == int(os.environ['KILL_AT_RECORD']):
        os.kill(os.getpid(), signal.SIGKILL)
    write.BasenjiWriter.add = killing_add
    from enformer.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _snapshot(folder: pathlib.Path) -> dict:
  """relative path → sha256 of every file under folder."""
  return {
      str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
      for p in sorted(folder.rglob('*'))
      if p.is_file()
  }


def _records(folder: pathlib.Path, subset: str) -> np.ndarray:
  settings = basenji.DatasetSettings(deterministic=True)
  return np.stack(
      [e['target'].numpy() for e in basenji.get_dataset(str(folder), subset, settings=settings)]
  )


@pytest.mark.slow
def test_kill_9_while_regenerating_keeps_the_previous_synthetic_data_set(tmp_path):
  out = tmp_path / 'syn'
  synthetic.make_synthetic_dataset(
      out, sequence_length=1024, num_tracks=2, train_size=24, valid_size=4, test_size=4, seed=0
  )
  before, targets = _snapshot(out), _records(out, 'train')
  command = [
      sys.executable,
      '-c',
      _KILL_AT,
      'make-dataset',
      'synthetic',
      '--out',
      str(out),
      *SYNTHETIC,
      '--seed',
      '5',
      '--overwrite',
  ]
  killed = subprocess.run(
      command, env={**ENV, 'KILL_AT_RECORD': '10'}, capture_output=True, text=True, timeout=600
  )
  assert killed.returncode == -9, killed.stderr[-2000:]
  # The staging folders of the killed run are hidden; the data set and its genome are untouched.
  hidden = [p.name for p in out.iterdir() if p.name.startswith('.')]
  assert hidden and all(name.startswith(('.dataset.', '.genome.')) for name in hidden), hidden
  assert {k: v for k, v in _snapshot(out).items() if not k.startswith('.')} == before
  np.testing.assert_array_equal(_records(out, 'train'), targets)
  # The next run completes, replaces both and leaves no staging folder behind.
  done = subprocess.run(
      command, env={**ENV, 'KILL_AT_RECORD': '0'}, capture_output=True, text=True, timeout=600
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert not [p for p in out.iterdir() if p.name.startswith('.')]
  assert json.loads((out / 'statistics.json').read_text())['seed'] == 5
  assert json.loads((out / 'genome' / 'synthetic.json').read_text())['seed'] == 5
  assert pd.read_csv(out / 'genome' / 'targets.txt', sep='\t')['file'].tolist() == [
      str(out / 'genome' / f'track{t}.bw') for t in range(2)
  ]
  assert not np.array_equal(_records(out, 'train'), targets)


def test_failed_bigwig_regeneration_keeps_the_previous_data_set(tmp_path):
  rng = np.random.default_rng(0)
  sizes = {'chr1': 4096, 'chr2': 2048}
  fasta = tmp_path / 'genome.fa'
  fasta.write_text(
      ''.join(f'>{c}\n{"".join(rng.choice(list("ACGT"), n))}\n' for c, n in sizes.items())
  )

  def bigwig(name, value_of):
    path = tmp_path / name
    bw = pyBigWig.open(str(path), 'w')
    bw.addHeader(list(sizes.items()))
    for chrom, n in sizes.items():
      bw.addEntries(chrom, 0, values=[value_of(chrom)] * n, span=1, step=1)
    bw.close()
    return path

  good = pd.DataFrame(
      {'identifier': ['a'], 'file': [str(bigwig('a.bw', lambda c: 3.0))], 'description': ['a']}
  )
  out = tmp_path / 'data'
  (out / 'notes.txt').parent.mkdir()
  (out / 'notes.txt').write_text('my notes')  # Not part of the data set: never touched.
  generate.generate_dataset(
      out, fasta, good, sequence_length=1024, valid_chroms=['chr2'], test_chroms=[], progress=False
  )
  before = _snapshot(out)
  # The second track is 0 on chr1 and chr2 alike: refused after every window was written.
  bad = pd.concat(
      [
          good,
          pd.DataFrame(
              {
                  'identifier': ['zero'],
                  'description': ['z'],
                  'file': [str(bigwig('z.bw', lambda c: 0.0))],
              }
          ),
      ]
  )
  with pytest.raises(ValueError, match='zero'):
    generate.generate_dataset(
        out,
        fasta,
        bad,
        sequence_length=1024,
        valid_chroms=['chr2'],
        test_chroms=[],
        overwrite=True,
        progress=False,
    )
  assert _snapshot(out) == before
  assert not [p for p in out.iterdir() if p.name.startswith('.')]
  generate.generate_dataset(
      out,
      fasta,
      bad.iloc[:1],
      sequence_length=512,
      valid_chroms=['chr2'],
      test_chroms=[],
      overwrite=True,
      progress=False,
  )
  assert json.loads((out / 'statistics.json').read_text())['seq_length'] == 512
  assert (out / 'notes.txt').read_text() == 'my notes'
  assert len(list((out / 'tfrecords').iterdir())) == 2  # train-0, valid-0: no file of the old set.
