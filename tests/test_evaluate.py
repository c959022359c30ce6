"""Evaluation: per-track metrics, the gene-level TSS metric, TSV/plot outputs, CLI."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from enformer.evaluation import tracks as evaluate_lib
from enformer.evaluation.tss import expression_at_tss


@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory):
  from enformer.data.synthetic import make_synthetic_dataset

  return make_synthetic_dataset(
      tmp_path_factory.mktemp('eval') / 'data',
      sequence_length=2048,
      num_tracks=3,
      train_size=8,
      valid_size=8,
      test_size=8,
      seed=5,
  )


def test_assay_type():
  assert evaluate_lib.assay_type('CAGE:K562 ENCODE') == 'CAGE'
  assert evaluate_lib.assay_type('DNASE:lung') == 'DNASE'
  assert evaluate_lib.assay_type('CHIP:H3K27ac:liver') == 'CHIP'
  assert evaluate_lib.assay_type('ATAC:T cell') == 'ATAC'
  assert evaluate_lib.assay_type('synthetic') == 'other'


def test_gene_level_metric_by_hand():
  rng = np.random.default_rng(0)
  observed = rng.gamma(2.0, 3.0, size=(30, 4))
  predicted = observed * rng.uniform(0.5, 1.5, size=observed.shape)
  result = evaluate_lib.gene_level_metrics(predicted, observed)
  z = lambda x: (np.log1p(x) - np.log1p(x).mean(0)) / np.log1p(x).std(0)
  zp, zy = z(predicted), z(observed)
  for track in range(4):
    assert result['across_genes'][track] == pytest.approx(
        np.corrcoef(zp[:, track], zy[:, track])[0, 1], abs=1e-9
    )
  for gene in (0, 7):
    assert result['across_tracks'][gene] == pytest.approx(
        np.corrcoef(zp[gene], zy[gene])[0, 1], abs=1e-9
    )
  assert expression_at_tss(np.arange(10.0)[:, None], 0)[0] == 0 + 1
  assert expression_at_tss(np.arange(10.0)[:, None], 5)[0] == 4 + 5 + 6


def test_evaluate_writes_tsv_summary_gene_level_and_plot(synthetic_data, tmp_path):
  from enformer.data.basenji import DatasetSettings, get_dataset

  dataset = get_dataset(synthetic_data, 'test', settings=DatasetSettings(deterministic=True))
  rng = np.random.default_rng(1)
  noise = [0.0, 0.3, 3.0]

  def predict(x):  # A "model" that knows the targets up to track-specific noise.
    target = predict.targets[predict.calls]
    predict.calls += 1
    return {'human': target + rng.normal(0, noise, size=target.shape)}

  predict.targets = [b['target'] for b in dataset.batch(3).as_numpy_iterator()]
  predict.calls = 0

  sequences = pd.read_csv(os.path.join(synthetic_data, 'sequences.bed'), sep='\t', header=None)
  sequences.columns = ['chrom', 'start', 'end', 'subset']
  sequences = sequences[sequences.subset == 'test'].reset_index(drop=True)
  tss = pd.DataFrame(
      {
          'chrom': sequences.chrom,
          'start': sequences.start + 1000,
          'end': sequences.start + 1001,
          'name': [f'g{i}' for i in range(8)],
      }
  )
  tss.loc[len(tss)] = ['chrUn', 5, 6, 'nowhere']
  index = evaluate_lib.index_tss(tss, sequences, num_bins=16)
  assert index.num_tss == 8 and index.num_missing == 1 and len(index.genes) == 8
  assert index.sites[0] == [(0, 1000 // 128)]

  targets = pd.DataFrame(
      {'identifier': ['a', 'b', 'c'], 'description': ['CAGE:x', 'DNASE:y', 'CHIP:H3K4me3:z']}
  )
  result = evaluate_lib.evaluate(
      predict, dataset, 'human', batch_size=3, targets=targets, tss_index=index, progress=False
  )
  r = result.per_track['pearson_r'].to_numpy()
  assert result.num_sequences == 8
  assert r[0] == pytest.approx(1.0) and r[0] > r[1] > r[2]
  paths = evaluate_lib.write_evaluation(result, str(tmp_path / 'out'))
  table = pd.read_csv(paths['per_track'], sep='\t')
  assert list(table.columns) == ['index', 'identifier', 'description', 'assay', 'pearson_r', 'r2']
  assert list(table.assay) == ['CAGE', 'DNASE', 'CHIP']
  summary = json.load(open(paths['summary']))
  assert summary['gene_level']['genes'] == 8 and summary['gene_level']['tss_outside_records'] == 1
  assert summary['pearson_r']['mean'] == pytest.approx(np.mean(r))
  assert len(pd.read_csv(paths['gene_level'], sep='\t')) == 8
  image = tf.io.decode_png(tf.io.read_file(paths['plot']))
  assert image.shape[0] > 200 and float(tf.math.reduce_std(tf.cast(image, tf.float32))) > 1


def test_evaluate_cli_on_a_checkpoint(synthetic_data, tmp_path):
  from enformer.cli import main
  from enformer.enformer import Enformer
  from enformer.testing import MICRO

  config = dict(MICRO, heads={'human': 3})
  model = Enformer(**config)
  model.build_variables()
  prefix = tf.train.Checkpoint(module=model).write(str(tmp_path / 'ckpt' / 'model'))
  out = tmp_path / 'eval'
  config_flags = [
      flag
      for key, value in config.items()
      for flag in ('--model-arg', f'{key}={json.dumps(value)}')
  ]
  code = main(
      [
          'evaluate',
          '--model',
          prefix,
          *config_flags,
          '--data',
          str(synthetic_data),
          '--subset',
          'valid',
          '--out',
          str(out),
      ]
  )
  assert code == 0
  table = pd.read_csv(out / 'per_track.tsv', sep='\t')
  r = table['pearson_r']  # A random model: correlations are defined or NaN (constant output).
  assert len(table) == 3 and (r.between(-1, 1) | r.isna()).all()
  assert (out / 'per_track_by_assay.png').stat().st_size > 1000
  assert (
      main(['evaluate', '--model', prefix, '--data', str(tmp_path / 'missing'), '--out', str(out)])
      == 2
  )


def test_evaluate_to_files_checks_the_head_and_claims_its_files(synthetic_data, tmp_path):
  """The library entry point of `enformer evaluate`: head default and check, targets default,
  the files written and claimed in the output folder (replaced only with `overwrite`)."""
  from enformer.data.basenji import load_info

  bins = load_info(synthetic_data).target_length

  class StandIn:
    heads = {'human': 3}

    def predict_on_batch(self, x):
      return {'human': np.random.default_rng(len(x)).random((len(x), bins, 3))}

  out = tmp_path / 'eval'
  with pytest.raises(ValueError, match='`head`'):
    evaluate_lib.evaluate_to_files(
        StandIn(), synthetic_data, str(out), head='mouse', progress=False
    )
  result, paths = evaluate_lib.evaluate_to_files(
      StandIn(), synthetic_data, str(out), subset='valid', progress=False
  )
  assert result.head == 'human' and set(paths) == {'per_track', 'summary', 'plot'}
  assert sorted(os.path.basename(p) for p in paths.values()) == sorted(
      evaluate_lib.EVALUATION_FILES
  )
  with pytest.raises(FileExistsError):
    evaluate_lib.evaluate_to_files(
        StandIn(), synthetic_data, str(out), subset='valid', progress=False
    )
  evaluate_lib.evaluate_to_files(
      StandIn(), synthetic_data, str(out), subset='valid', progress=False, overwrite=True
  )
