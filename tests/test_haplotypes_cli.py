"""`enformer predict-haplotypes` on a micro checkpoint: the CLI equals the library, one-line
errors, and a Dask run equals a single process."""

import anndata
import numpy as np
import pytest
import tensorflow as tf

from conftest import model_arg_flags
from enformer.cli import main
from enformer.genes import haplotypes as haplotypes_lib
from enformer.genes.haplotypes import predict_haplotypes
from enformer.testing import random_model
from test_haplotypes_workflow import CONFIG, LENGTH, genome, write_phased_vcf  # noqa: F401


@pytest.fixture(scope='module')
def checkpoint(genome):
  model = random_model(seed=5, **CONFIG)
  return tf.train.Checkpoint(module=model).write(str(genome['folder'] / 'ckpt' / 'enformer'))


def command(checkpoint, genome, out, *extra):
  return [
      'predict-haplotypes',
      '--model',
      checkpoint,
      *model_arg_flags(CONFIG),
      '--sequence-length',
      str(LENGTH),
      '--fasta',
      str(genome['fasta']),
      '--vcf',
      str(genome['vcf']),
      '--gtf',
      str(genome['gtf']),
      '--out',
      str(out),
      '--quiet',
      *extra,
  ]


def test_cli_equals_the_library_and_reports_reuse(checkpoint, genome, tmp_path, capsys):
  assert (
      main(
          command(
              checkpoint,
              genome,
              tmp_path / 'cli',
              '--samples',
              'S2,S1',
              '--tracks',
              '2',
              '0',
              '--tsv',
          )
      )
      == 0
  )
  err = capsys.readouterr().err
  assert 'full-pass equivalents' in err and 'missing allele calls' in err
  data = anndata.read_h5ad(tmp_path / 'cli' / 'haplotypes.h5ad')
  assert list(data.obs['sample']) == ['S2', 'S2', 'S1', 'S1']
  assert list(data.uns['tracks']) == ['t2', 't0']
  expected = predict_haplotypes(
      genome['predictor'],
      genome['fasta'],
      genome['vcf'],
      tmp_path / 'lib',
      gtf=genome['gtf'],
      samples=['S2', 'S1'],
      settings=haplotypes_lib.HaplotypeSettings(tracks=[2, 0]),
      progress=False,
  ).data
  assert list(data.var['track'][:2]) == ['t2', 't0']
  assert list(data.var.index) == list(expected.var.index)
  np.testing.assert_allclose(data.X, expected.X, rtol=1e-6)


def test_cli_errors_are_one_line(checkpoint, genome, tmp_path, capsys):
  def error(*extra, vcf=None):
    args = command(checkpoint, genome, tmp_path / 'x', *extra)
    if vcf is not None:
      args[args.index('--vcf') + 1] = str(vcf)
    assert main(args) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]

  assert error('--samples', 'S1,NOBODY').startswith(
      'enformer predict-haplotypes: error: Sample(s) NOBODY not in VCF'
  )
  assert 'its samples are: S1, S2, S3, S4' in error('--samples', 'NOBODY')
  assert '--per-bin needs --bed' in error('--per-bin')
  chrom, pos, ref, alt, _ = genome['rows'][0]
  unphased = write_phased_vcf(tmp_path / 'u.vcf', [(chrom, pos, ref, alt, ['0/1'])], samples=['U'])
  message = error(vcf=unphased)
  assert 'unphased genotype 0/1' in message and 'order written' in message
  assert not (tmp_path / 'x' / 'haplotypes.h5ad').exists()


@pytest.mark.slow  # Starts a Dask worker process that loads TensorFlow and the model (~20 s).
def test_dask_equals_a_single_process(checkpoint, genome, tmp_path):
  single = command(checkpoint, genome, tmp_path / 'one', '--samples', 'S1,S4')
  assert main(single) == 0
  assert (
      main(command(checkpoint, genome, tmp_path / 'dask', '--samples', 'S1,S4', '--workers', '1'))
      == 0
  )
  one = anndata.read_h5ad(tmp_path / 'one' / 'haplotypes.h5ad')
  dask = anndata.read_h5ad(tmp_path / 'dask' / 'haplotypes.h5ad')
  # A single-threaded worker rounds a few values differently.
  np.testing.assert_allclose(one.X, dask.X, rtol=1e-5, atol=1e-6)
  assert dict(one.uns['work']) == dict(dask.uns['work'])


@pytest.mark.slow  # A CLI process killed with SIGKILL, then resumed (~30 s).
def test_kill_9_and_rerun_gives_identical_files(checkpoint, genome, tmp_path):
  import os
  import signal
  import subprocess
  import sys
  import time

  bed = tmp_path / 'many.bed'
  bed.write_text(
      ''.join(f'1\t{start}\t{start + 100}\tR{start}\n' for start in range(200, 5800, 140))
  )  # 40 regions: 40 chunks.
  args = command(checkpoint, genome, tmp_path / 'killed', '--tsv')
  args[args.index('--gtf') : args.index('--gtf') + 2] = ['--bed', str(bed)]
  process = subprocess.Popen(
      [sys.executable, '-m', 'enformer', *args],
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
  )
  partial = tmp_path / 'killed' / 'haplotypes.h5ad.partial'
  deadline = time.time() + 120
  while time.time() < deadline and len(list(partial.glob('chunk_*.npz'))) < 3:
    time.sleep(0.05)
  os.kill(process.pid, signal.SIGKILL)
  process.wait()
  done = len(list(partial.glob('chunk_*.npz')))
  assert 3 <= done < 40 and not (tmp_path / 'killed' / 'haplotypes.h5ad').exists()
  assert main(args) == 0  # The same command resumes.
  whole = command(checkpoint, genome, tmp_path / 'whole', '--tsv')
  whole[whole.index('--gtf') : whole.index('--gtf') + 2] = ['--bed', str(bed)]
  assert main(whole) == 0
  assert (tmp_path / 'killed' / 'haplotypes.tsv').read_bytes() == (
      tmp_path / 'whole' / 'haplotypes.tsv'
  ).read_bytes()
  killed = anndata.read_h5ad(tmp_path / 'killed' / 'haplotypes.h5ad')
  np.testing.assert_array_equal(
      killed.X, anndata.read_h5ad(tmp_path / 'whole' / 'haplotypes.h5ad').X
  )


def test_cli_indels_skip_reaches_the_library_and_resume_needs_the_same_choice(
    checkpoint, genome, tmp_path, capsys, monkeypatch
):
  args = command(checkpoint, genome, tmp_path / 'out', '--genes', 'EDGE', '--samples', 'S4')
  skip = args + ['--indels', 'skip']

  def killed(*unused_args, **unused_kwargs):
    raise RuntimeError('simulated kill')

  with monkeypatch.context() as patch:  # Killed after the run's record is written.
    patch.setattr(haplotypes_lib, 'haplotype_forward', killed)
    assert main(skip) == 1
  assert (tmp_path / 'out' / 'haplotypes.h5ad.partial' / 'run.json').exists()
  capsys.readouterr()
  assert main(args) == 2  # The default, 'full': refused, naming the setting and the fix.
  message = capsys.readouterr().err.strip().splitlines()[-1]
  assert message.startswith('enformer predict-haplotypes: error: ')
  assert 'changed: indels' in message and '--overwrite' in message
  assert main(skip) == 0  # The same choice resumes.
  err = capsys.readouterr().err
  assert '1 carried indel alleles left out' in err and '0 full passes' in err
  data = anndata.read_h5ad(tmp_path / 'out' / 'haplotypes.h5ad')
  assert data.uns['indels'] == 'skip' and data.uns['vcf_summary']['skipped_indels'] == 1
  assert data.uns['work']['full_passes'] == 0
  with pytest.raises(SystemExit) as exit_status:  # argparse: exit 2 before any model is read.
    main(command(checkpoint, genome, tmp_path / 'x', '--indels', 'drop'))
  assert exit_status.value.code == 2 and "invalid choice: 'drop'" in capsys.readouterr().err
