"""DeepMind's usage-notebook conventions on request: the one-hot value of N (`neutral_value`,
`--n-value`) and the placement of insertions and deletions (the notebook's, by default)."""

import kipoiseq
import numpy as np
import pytest
import tensorflow as tf

from enformer import Enformer, one_hot_encode
from enformer.cli import build_parser
from enformer.io import vcf as vcf_io
from enformer.inference import Predictor
from enformer.io.fasta import FastaStringExtractor
from enformer.inference.regions import model_inputs
from enformer.testing import MICRO
from enformer.variants import VariantScorer, site_sequences
from enformer.variants.scoring import VariantSeqExtractor

# chr1 of the toy genome (100 bp); the windows below are 16 bp.
GENOME = (
    'TGGTACAACGTATGCCGCCTATATAGGTTATTCCCAAGGTTCATACGTCTTTTCTGCAATACAGTACATCGAACAAGAGCACACTTCA'
    'TGGCGATTTCAT'
)
LENGTH = 16


@pytest.fixture(scope='module')
def fasta(tmp_path_factory) -> FastaStringExtractor:
  path = tmp_path_factory.mktemp('genome') / 'toy.fa'
  path.write_text(f'>chr1\n{GENOME}\n')
  return FastaStringExtractor(path)


def sequences(fasta, pos, ref, alt, **kwargs):
  site = vcf_io.VariantSite((kipoiseq.Variant('chr1', pos, ref, alt),), 'chr1')
  return site_sequences(VariantSeqExtractor(reference_sequence=fasta), site, LENGTH, **kwargs)


def notebook_sequences(fasta, pos, ref, alt):
  """DeepMind's enformer-usage.ipynb, `variant_centered_sequences`, verbatim in substance."""
  variant = kipoiseq.Variant('chr1', pos, ref, alt)
  seq_extractor = kipoiseq.extractors.VariantSeqExtractor(reference_sequence=fasta)
  interval = kipoiseq.Interval('chr1', variant.pos, variant.pos).resize(LENGTH)
  center = interval.center() - interval.start
  return [
      seq_extractor.extract(interval, [], anchor=center),
      seq_extractor.extract(interval, [variant], anchor=center),
  ]


def test_indels_are_placed_as_in_the_usage_notebook(fasta):
  # chr1:46 C (window chr1:39-54 = GTTCATAC|GTCTTTTC, the variant is its 8th base).
  assert GENOME[45] == 'C'
  insertion = sequences(fasta, 46, 'C', 'CGG')
  assert insertion == [
      'GTTCATACGTCTTTTC',
      'GTTCATACGGGTCTTT',
  ]  # Left flank kept, 'TC' pushed out at the right end.
  deletion = sequences(fasta, 46, 'CGT', 'C')
  assert deletion == [
      'GTTCATACGTCTTTTC',
      'GTTCATACCTTTTCTG',
  ]  # 'GT' removed, 'TG' pulled in at the right end.
  assert insertion == notebook_sequences(fasta, 46, 'C', 'CGG')
  assert deletion == notebook_sequences(fasta, 46, 'CGT', 'C')
  # Within the first L/2 bp the notebook's anchor lies right of the variant: the left part moves.
  assert sequences(fasta, 5, 'A', 'AGG') == ['NNNTGGTACAACGTAT', 'NTGGTAGGCAACGTAT']
  assert sequences(fasta, 5, 'A', 'AGG') == notebook_sequences(fasta, 5, 'A', 'AGG')
  # The previous rule, anchored at the variant, stays available.
  assert sequences(fasta, 46, 'C', 'CGG', indel_anchor='variant')[1] == 'TCATACGGGTCTTTTC'
  assert sequences(fasta, 46, 'CGT', 'C', indel_anchor='variant') == deletion
  with pytest.raises(ValueError, match='indel_anchor must be one of'):
    sequences(fasta, 46, 'C', 'CGG', indel_anchor='centre')


class RecordingPredictor:
  """Stand-in with `predict_on_batch` that records its inputs; one 16 bp bin, 1 track."""

  sequence_length = LENGTH
  heads = {'human': 1}

  def __init__(self):
    self.inputs = []

  def predict_on_batch(self, x):
    self.inputs.append(np.asarray(x))
    return {'human': np.asarray(x).sum(axis=(1, 2))[:, None, None].astype(np.float32)}


def test_neutral_value_reaches_every_input(fasta):
  np.testing.assert_array_equal(one_hot_encode('ACN', neutral_value=0.25)[2], [0.25] * 4)
  np.testing.assert_array_equal(one_hot_encode('ACN')[2], [0] * 4)
  # Prediction inputs: the padding past the chromosome end (and N) as the chosen value.
  interval = kipoiseq.Interval('chr1', 92, 92 + LENGTH)  # 8 bp past the end of chr1.
  for value in (0.0, 0.25):
    x = model_inputs(fasta, [interval], neutral_value=value)[0]
    np.testing.assert_array_equal(x[8:], value)
    np.testing.assert_array_equal(x[:8].sum(axis=1), 1)
  # Variant scoring: a variant 4 bp from the end of chr1, ref and alt windows padded with 0.25.
  predictor = RecordingPredictor()
  site = vcf_io.VariantSite((kipoiseq.Variant('chr1', 96, GENOME[95], 'G'),), 'chr1')
  sad, _ = VariantScorer(predictor, fasta, neutral_value=0.25).score_sites([site])
  batch = predictor.inputs[0]
  assert batch.shape == (2, LENGTH, 4)
  np.testing.assert_array_equal(batch[:, -4:], 0.25)  # chr1 ends 4 bp before the window does.
  assert sad[0, 0] == 0  # An SNV keeps the sum of the one-hot.


@pytest.mark.parametrize('command', ['predict', 'score-variants', 'attribute'])
def test_n_value_flag(command):
  required = {
      'predict': ['--region', 'chr1:1-10'],
      'score-variants': ['--vcf', 'v.vcf'],
      'attribute': ['--region', 'chr1:1-10', '--tracks', '0'],
  }[command]
  argv = [command, '--model', 'm', '--fasta', 'g.fa', '--out', 'o', *required]
  parser = build_parser()
  assert parser.parse_args(argv).n_value == 0.0
  assert parser.parse_args(argv + ['--n-value', '0.25']).n_value == 0.25


def test_incremental_scoring_with_the_notebook_n_value(fasta):
  """Incremental SNV scoring equals full passes with N = 0.25, and the N value changes SAD."""
  tf.random.set_seed(5)
  model = Enformer(**dict(MICRO, heads={'human': 4}))
  predictor = Predictor.from_module(model, 4096)
  site = vcf_io.VariantSite((kipoiseq.Variant('chr1', 60, GENOME[59], 'G'),), 'chr1')
  scores = {}
  for value in (0.0, 0.25):
    incremental = VariantScorer(predictor, fasta, neutral_value=value)
    assert incremental.incremental is not None
    full = VariantScorer(predictor, fasta, neutral_value=value, incremental=False)
    scores[value], _ = incremental.score_sites([site])
    expected, _ = full.score_sites([site])
    np.testing.assert_allclose(scores[value], expected, atol=1e-3 * np.abs(expected).max())
  assert np.abs(scores[0.25] - scores[0.0]).max() > 1e-2 * np.abs(scores[0.0]).max()
