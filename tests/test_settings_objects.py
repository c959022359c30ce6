"""The settings objects of the widest signatures: `DatasetSettings` (get_dataset),
`PredictionOutputs` (predict_to_files) and `HaplotypeSettings` (predict_haplotypes).

Each checks its values when built, with an error naming the field and what to pass, and its
`dataclasses.replace` variants change what the function does.
"""

import dataclasses
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import enformer
from enformer.data import augment, basenji, write
from enformer.inference.predictor import Predictor
from enformer.inference.regions import PredictionOutputs, predict_to_files
from enformer.io.bed import parse_region
from enformer.testing import MICRO, random_model

from conftest import write_random_fasta

RECORDS = 24
LENGTH = 1024  # bp of the micro model's input: 8 bins of 128 bp.


@pytest.fixture(scope='module')
def marked_data(tmp_path_factory) -> str:
  """A Basenji2 folder of 24 'train' records in 6 files; record i has target [[i]]."""
  out = tmp_path_factory.mktemp('marked') / 'data'
  with write.BasenjiWriter(
      str(out), sequence_length=128, target_length=1, num_targets=1, records_per_file=4
  ) as writer:
    for i in range(RECORDS):
      writer.add(
          'train',
          np.eye(4)[np.arange(128) % 4],
          np.full((1, 1), i),
          interval=('chr1', i * 128, (i + 1) * 128),
      )
  return str(out)


def _order(dataset: tf.data.Dataset) -> list:
  """Record markers in the order `dataset` yields them."""
  return [int(example['target'][0, 0]) for example in dataset]


@pytest.mark.parametrize(
    'field, value, fix',
    [
        ('auto_shard', 'files', r"one of \['data', 'file', 'off'\], got 'files'"),
        ('shuffle', -1, 'False, True or a buffer size'),
        ('repeat', 'twice', 'False, True or a number of epochs'),
        ('augment', 'yes', 'False, True or an enformer.data.augment.Augmentation'),
        ('seed', 1.5, 'None \\(random each run\\) or an integer'),
        ('num_parallel_reads', 0, r'at least 1 \(or tf.data.AUTOTUNE\)'),
        ('num_parallel_calls', -7, r'at least 1 \(or tf.data.AUTOTUNE\)'),
        ('prefetch', -5, 'a number of batches ≥ 0, tf.data.AUTOTUNE or None'),
        ('options', {'deterministic': True}, 'a tf.data.Options or None'),
    ],
)
def test_dataset_settings_errors_name_the_field_and_the_fix(field, value, fix):
  with pytest.raises(ValueError, match=rf'DatasetSettings\.{field} must be {fix}'):
    basenji.DatasetSettings(**{field: value})
  with pytest.raises(ValueError, match=rf'DatasetSettings\.{field} must be'):
    dataclasses.replace(basenji.DatasetSettings(), **{field: value})


def test_dataset_settings_accept_what_get_dataset_takes():
  settings = basenji.DatasetSettings(
      shuffle=64,
      repeat=2,
      augment=augment.Augmentation(),
      seed=-3,
      num_parallel_calls=tf.data.AUTOTUNE,
      prefetch=0,
      options=tf.data.Options(),
  )
  assert hash(settings) == hash(dataclasses.replace(settings))
  assert enformer.DatasetSettings is basenji.DatasetSettings


def test_get_dataset_follows_its_settings(marked_data):
  with pytest.raises(TypeError, match='settings must be an enformer.data.basenji.DatasetSettings'):
    basenji.get_dataset(marked_data, 'train', settings={'shuffle': True})
  with pytest.raises(TypeError, match='shuffle'):
    basenji.get_dataset(marked_data, 'train', shuffle=True)  # pylint: disable=unexpected-keyword-arg

  in_order = basenji.DatasetSettings()
  assert _order(basenji.get_dataset(marked_data, 'train', settings=in_order)) == list(
      range(RECORDS)
  )
  shuffled = dataclasses.replace(in_order, shuffle=RECORDS, seed=1, deterministic=True)
  first = _order(basenji.get_dataset(marked_data, 'train', settings=shuffled))
  assert first == _order(basenji.get_dataset(marked_data, 'train', settings=shuffled))
  assert sorted(first) == list(range(RECORDS)) and first != list(range(RECORDS))
  reseeded = _order(
      basenji.get_dataset(marked_data, 'train', settings=dataclasses.replace(shuffled, seed=2))
  )
  assert sorted(reseeded) == list(range(RECORDS)) and reseeded != first

  batches = basenji.get_dataset(
      marked_data,
      'train',
      batch_size=5,
      settings=dataclasses.replace(in_order, repeat=2, drop_remainder=True),
  )
  assert [int(b['target'].shape[0]) for b in batches] == [5] * (2 * RECORDS // 5)
  optimized = tf.data.Options()
  optimized.experimental_optimization.map_parallelization = False
  dataset = basenji.get_dataset(
      marked_data,
      'train',
      settings=dataclasses.replace(in_order, auto_shard='off', options=optimized),
  )
  assert dataset.options().experimental_distribute.auto_shard_policy == (
      tf.data.experimental.AutoShardPolicy.OFF
  )
  assert dataset.options().experimental_optimization.map_parallelization is False


@pytest.mark.parametrize(
    'field, value, fix',
    [
        ('output_format', 'bw', "'h5' or 'npz', got 'bw'"),
        ('max_plots', -1, r'a number of regions ≥ 0 \(0: no PNGs\)'),
        ('plot_tracks', (0, -2), r'track indices \(integers ≥ 0\), got \[-2\]'),
        (
            'observed',
            {-1: 'a.bw', 'DNase': 'b.bw', ' ': 'c.bw'},
            r'tracks \(indices ≥ 0, identifiers or descriptions\) to bigWig paths; got the keys '
            r"\[-1, ' '\]",
        ),
    ],
)
def test_prediction_outputs_errors_name_the_field_and_the_fix(field, value, fix):
  message = rf'PredictionOutputs\.{field} (must be|maps) {fix}'
  with pytest.raises(ValueError, match=message):
    PredictionOutputs(**{field: value})
  with pytest.raises(ValueError, match=message):
    dataclasses.replace(PredictionOutputs(), **{field: value})


@pytest.fixture(scope='module')
def micro_predictor():
  return Predictor.from_module(
      random_model(0, **dict(MICRO, heads={'human': 3}), calibration_length=LENGTH), LENGTH
  )


def test_predict_to_files_writes_what_its_outputs_say(micro_predictor, tmp_path):
  fasta = write_random_fasta(tmp_path / 'genome.fa', {'chr1': 4 * LENGTH})
  regions = [parse_region('chr1:1,001-1,500'), parse_region('chr1:2,001-2,600')]
  base = PredictionOutputs(max_plots=0)
  assert base.observed == {} and enformer.PredictionOutputs is PredictionOutputs

  def files(out: str, outputs: PredictionOutputs) -> set:
    predict_to_files(
        micro_predictor,
        fasta,
        regions,
        str(tmp_path / out),
        tracks=[0, 2],
        outputs=outputs,
        progress=False,
    )
    return {p.name for p in pathlib.Path(tmp_path / out).iterdir() if not p.name.startswith('.')}

  assert files('default', base) == {'predictions.h5', 'human_0_track_0.bw', 'human_2_track_2.bw'}
  variant = dataclasses.replace(
      base, output_format='npz', bigwig=False, bedgraph=True, plot_tracks=[2]
  )
  assert variant.plot_tracks == (2,)
  assert files('variant', variant) == {'predictions.npz', 'human_2_track_2.bedGraph'}
  with pytest.raises(ValueError, match=r'Tracks \[1\] are plotted but not among the predicted'):
    files('missing', dataclasses.replace(base, plot_tracks=[1]))
  assert not os.path.exists(tmp_path / 'missing')
  with pytest.raises(TypeError, match='outputs must be an enformer.inference.regions.Prediction'):
    predict_to_files(
        micro_predictor, fasta, regions, str(tmp_path / 'kw'), outputs={'max_plots': 0}
    )
  with pytest.raises(TypeError, match='max_plots'):
    predict_to_files(micro_predictor, fasta, regions, str(tmp_path / 'kw'), max_plots=0)  # pylint: disable=unexpected-keyword-arg
  assert not os.path.exists(tmp_path / 'kw')


@pytest.mark.parametrize(
    'field, value, fix',
    [
        ('gene_stat', 'mean', r"one of \('sum', 'max'\), got 'mean'"),
        ('indels', 'drop', "'full'"),
        ('batch_size', 0, 'a number of haplotypes ≥ 1, got 0'),
        ('tracks', '0', 'a sequence of track indices or names'),
    ],
)
def test_haplotype_settings_errors_name_the_field_and_the_fix(field, value, fix):
  from enformer.genes import haplotypes  # pylint: disable=import-outside-toplevel

  with pytest.raises(ValueError, match=rf'HaplotypeSettings\.{field} must be {fix}'):
    haplotypes.HaplotypeSettings(**{field: value})
  with pytest.raises(ValueError, match=rf'HaplotypeSettings\.{field} must be'):
    dataclasses.replace(haplotypes.HaplotypeSettings(), **{field: value})


def test_haplotype_settings_are_what_predict_haplotypes_takes(tmp_path):
  import enformer.genes  # pylint: disable=import-outside-toplevel
  from enformer.genes import haplotypes  # pylint: disable=import-outside-toplevel

  settings = haplotypes.HaplotypeSettings(tracks=[2, 0], batch_size=np.int64(8), neutral_value=0)
  assert settings.tracks == (2, 0) and settings.neutral_value == 0.0
  assert hash(settings) == hash(dataclasses.replace(settings))
  assert enformer.genes.HaplotypeSettings is haplotypes.HaplotypeSettings
  window = settings.window_settings('g.fa', 'v.vcf', ['S1'], [2, 0])
  assert window.fasta == os.path.abspath('g.fa') and window.tracks == (2, 0)
  assert window.batch_size == 8 and window.indels == 'full'
  with pytest.raises(TypeError, match='settings must be an enformer.genes.HaplotypeSettings'):
    haplotypes.predict_haplotypes(
        None, 'g.fa', 'v.vcf', tmp_path, gtf='g.gtf', settings={'tsv': True}
    )
  with pytest.raises(TypeError, match='tsv'):
    haplotypes.predict_haplotypes(None, 'g.fa', 'v.vcf', tmp_path, gtf='g.gtf', tsv=True)  # pylint: disable=unexpected-keyword-arg
