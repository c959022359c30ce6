"""`enformer score-genes` and `merge-scores` of its shards, on a micro model: incremental ==
full passes, --rc, one-line errors."""

import h5py
import numpy as np
import pytest
import tensorflow as tf

from conftest import model_arg_flags
from enformer.cli import main
from enformer.testing import MICRO, random_model
from test_genes_pipeline import inputs  # noqa: F401  (fixture)
from test_genes_annotation import gtf_line, write_gtf

LENGTH = 2048
CONFIG = dict(MICRO, target_length=8, heads={'human': 3})


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
  model = random_model(seed=2, **CONFIG)
  folder = tmp_path_factory.mktemp('genes_cli')
  return tf.train.Checkpoint(module=model).write(str(folder / 'ckpt' / 'enformer'))


def command(checkpoint, paths, out, *extra):
  fasta, vcf, gtf = paths
  return [
      'score-genes',
      '--model',
      checkpoint,
      *model_arg_flags(CONFIG),
      '--sequence-length',
      str(LENGTH),
      '--fasta',
      str(fasta),
      '--vcf',
      str(vcf),
      '--gtf',
      str(gtf),
      '--out',
      str(out),
      '--chunk-size',
      '2',
      '--quiet',
      *extra,
  ]


@pytest.mark.slow  # Five CLI runs of a micro model (~14 s).
def test_score_genes_cli_incremental_equals_full_passes_and_shards_merge(
    checkpoint, inputs, tmp_path
):
  background = str(tmp_path / 'bg.npz')
  assert (
      main(
          command(checkpoint, inputs, tmp_path / 'inc.h5', '--tsv', '--fit-background', background)
      )
      == 0
  )
  assert (
      main(
          command(
              checkpoint,
              inputs,
              tmp_path / 'full.h5',
              '--no-incremental',
              '--background',
              background,
          )
      )
      == 0
  )
  for k in (1, 2):
    assert main(command(checkpoint, inputs, tmp_path / f's{k}.h5', '--shard', f'{k}/2')) == 0
  assert (
      main(
          [
              'merge-scores',
              str(tmp_path / 'merged.h5'),
              str(tmp_path / 's2.h5'),
              str(tmp_path / 's1.h5'),
          ]
      )
      == 0
  )
  with (
      h5py.File(tmp_path / 'inc.h5') as a,
      h5py.File(tmp_path / 'full.h5') as b,
      h5py.File(tmp_path / 'merged.h5') as m,
  ):
    assert len(a['si']) == 11 and a['SED'].shape == (11, 3)
    ref = b['REF'][:].astype(np.float32)
    np.testing.assert_allclose(
        a['REF'][:].astype(np.float32), ref, rtol=2e-3, atol=1e-3 * np.abs(ref).max()
    )
    assert np.abs(a['SED'][:]).max() > 0  # The model sees the SNVs.
    quantiles = b['SED_quantile'][:]  # Its own background: |quantiles| spread over [0, 1].
    assert np.abs(quantiles).max() == 1 and np.all(quantiles * b['SED'][:] >= 0)
    for name in ('si', 'gene', 'SED', 'logSED'):
      np.testing.assert_array_equal(a[name][:], m[name][:])
  assert (tmp_path / 'inc.tsv').exists()


def test_score_genes_cli_errors_are_one_line(checkpoint, inputs, tmp_path, capsys):
  fasta, vcf, _ = inputs
  other = write_gtf(tmp_path / 'x.gtf', [gtf_line('chrX', 'gene', 1, 9, '+', 'G')])
  out = tmp_path / 'x.h5'
  assert main(command(checkpoint, (fasta, vcf, other), out)) == 2
  error = capsys.readouterr().err.strip().splitlines()[-1]
  assert error.startswith('enformer score-genes: error: No chromosome of GTF')
  assert main(command(checkpoint, inputs, out, '--genes', 'NOPE')) == 2
  assert 'not in' in capsys.readouterr().err
  assert main(command(checkpoint, inputs, out, '--shard', '1/2', '--tsv')) == 2
  assert 'merge-scores' in capsys.readouterr().err
