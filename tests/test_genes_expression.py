"""Expression per gene (enformer.genes.predict, `enformer predict --gtf`): TSS-centred windows,
per-TSS rows, expression.h5 / .tsv / .h5ad."""

import anndata
import h5py
import kipoiseq
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from conftest import model_arg_flags, write_random_fasta
from enformer.cli import main
from enformer.genes import gene_expression
from enformer.genes.predict import predict_gene_expression
from enformer.inference import Predictor
from enformer.io.fasta import FastaStringExtractor
from enformer.testing import MICRO, random_model
from test_genes_annotation import TWO_STRAND_GENES, write_gtf

LENGTH = 2048
CONFIG = dict(MICRO, target_length=8, heads={'human': 3})


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  folder = tmp_path_factory.mktemp('genes_expression')
  fasta = write_random_fasta(folder / 'g.fa', {'chr1': 8000, 'chr2': 3000})
  gtf = write_gtf(folder / 'g.gtf', TWO_STRAND_GENES)
  model = random_model(seed=3, **CONFIG)
  return folder, fasta, gtf, model


def direct(model, fasta, chrom, centre):
  """[8, 3] predictions of the window centred on 0-based `centre` and its output start."""
  interval = kipoiseq.Interval(chrom, centre, centre + 1).resize(LENGTH)
  with FastaStringExtractor(fasta) as extractor:
    x = extractor.extract_one_hot(interval)[np.newaxis]
  values = model(x, is_training=False)['human'].numpy()[0]
  return values, interval.start + (LENGTH - 8 * 128) // 2


def test_expression_per_gene_and_per_tss(setup, tmp_path):
  _, fasta, gtf, model = setup
  predictor = Predictor.from_module(model, LENGTH)
  out = tmp_path / 'out'
  result = predict_gene_expression(predictor, fasta, gtf, out, tsv=True, progress=False)
  assert list(result.rows['gene_id']) == ['PLUS', 'MINUS', 'END']
  assert list(result.rows['tss']) == [4000, 3700, 2998]
  values, start = direct(model, fasta, 'chr1', 4000)  # PLUS: TSSs 4000 and 4300, summed.
  expected = gene_expression(values, start, [4000, 4300])
  np.testing.assert_allclose(
      result.expression[0], expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max()
  )
  with h5py.File(out / 'expression.h5') as h5:
    assert [g.decode() for g in h5['gene_id'][:]] == ['PLUS', 'MINUS', 'END']
    assert h5['expression'].shape == (3, 3)
    np.testing.assert_array_equal(h5['expression'][:], result.expression)
  adata = anndata.read_h5ad(out / 'expression.h5ad')
  assert list(adata.obs_names) == ['PLUS', 'MINUS', 'END'] and adata.n_vars == 3
  assert list(adata.obs['gene_name']) == ['PLUSNAME', 'MINUSNAME', 'ENDNAME']
  np.testing.assert_array_equal(adata.X, result.expression)
  assert len(pd.read_csv(out / 'expression.tsv', sep='\t')) == 9

  per_tss = predict_gene_expression(
      predictor, fasta, gtf, None, genes=['PLUS'], per_tss=True, progress=False
  )
  assert list(per_tss.rows['tss']) == [4000, 4300]
  values, start = direct(model, fasta, 'chr1', 4300)
  np.testing.assert_allclose(
      per_tss.expression[1],
      gene_expression(values, start, [4300]),
      rtol=1e-4,
      atol=1e-5 * np.abs(values).max(),
  )
  assert list(per_tss.to_anndata().obs_names) == ['PLUS:4000', 'PLUS:4300']


def test_predict_gtf_cli(setup, tmp_path, capsys):
  folder, fasta, gtf, model = setup
  prefix = tf.train.Checkpoint(module=model).write(str(folder / 'ckpt' / 'enformer'))
  out = tmp_path / 'cli'
  assert (
      main(
          [
              'predict',
              '--model',
              prefix,
              *model_arg_flags(CONFIG),
              '--sequence-length',
              str(LENGTH),
              '--fasta',
              fasta,
              '--gtf',
              str(gtf),
              '--genes',
              'MINUS,ENDNAME',
              '--tsv',
              '--out',
              str(out),
              '--quiet',
          ]
      )
      == 0
  )
  assert 'Expression of 2 genes x 3 tracks' in capsys.readouterr().out
  assert anndata.read_h5ad(out / 'expression.h5ad').n_obs == 2
  assert (out / 'expression.tsv').exists()
