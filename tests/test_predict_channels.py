"""Models with extra input channels (one-hot + a per-base conservation bigWig) through prediction
and attribution: `enformer predict --extra-track`, `enformer attribute --extra-track`, the library
(`enformer.inference.regions.model_inputs`, `enformer.interpret`) and agreement with the training
data
written by `enformer.data.generate` (same values, same alignment, float16 rounding)."""

import os

import kipoiseq
import matplotlib.image
import numpy as np
import pandas as pd
import pyBigWig
import pytest
import tensorflow as tf

from conftest import model_arg_flags
from enformer import Enformer, Predictor, one_hot_encode
from enformer.inference import regions as predict
from enformer.io.predictions import read_predictions
from enformer import interpret as attribution
from enformer.cli import main
from enformer.data.basenji import DatasetSettings, get_dataset
from enformer.data.generate import generate_dataset
from enformer.io.bigwig import write_bigwig
from enformer.io.fasta import FastaStringExtractor
from enformer.testing import MICRO

LENGTH = 4_096
BINS = LENGTH // 128
HEADS = {'atac': 2}
CHROM_SIZES = {'chr1': 6_000, 'chr2': 8_192}
GAP = (1_000, 1_500)  # chr1 positions without conservation data (→ 0).
CONFIG = dict(MICRO, heads=HEADS, input_channels=5)
CONFIG_FLAGS = [
    *model_arg_flags({k: v for k, v in CONFIG.items() if k != 'input_channels'}),
    '--sequence-length',
    str(LENGTH),
]
REGION = 'chr1:4,001-5,000'  # Input chr1:2,452-6,548 runs past the chromosome end (N-padded).


def _conservation_bigwig(path: str, seed: int, scale: float) -> str:
  """Per-base values in [0, scale) on both chromosomes, except the chr1 GAP (no data)."""
  rng = np.random.default_rng(seed)
  blocks = []
  for chrom, size in CHROM_SIZES.items():
    values = scale * rng.random(size)
    if chrom == 'chr1':
      blocks += [(chrom, 0, values[: GAP[0]]), (chrom, GAP[1], values[GAP[1] :])]
    else:
      blocks.append((chrom, 0, values))
  write_bigwig(path, CHROM_SIZES, blocks, bin_size=1)
  return path


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  """FASTA, two different conservation bigWigs and an observed 128-bp coverage bigWig."""
  folder = tmp_path_factory.mktemp('channels')
  rng = np.random.default_rng(0)
  fasta = folder / 'genome.fa'
  with open(fasta, 'w') as handle:
    for name, size in CHROM_SIZES.items():
      sequence = ''.join(rng.choice(list('ACGT'), size))
      handle.write(
          f'>{name}\n' + '\n'.join(sequence[i : i + 60] for i in range(0, size, 60)) + '\n'
      )
  observed = str(folder / 'observed.bw')
  write_bigwig(
      observed,
      CHROM_SIZES,
      [(c, 0, rng.gamma(2.0, 1.0, s // 128)) for c, s in CHROM_SIZES.items()],
      bin_size=128,
  )
  return dict(
      fasta=str(fasta),
      observed=observed,
      conservation=_conservation_bigwig(str(folder / 'conservation.bw'), 1, 3.0),
      shuffled=_conservation_bigwig(str(folder / 'conservation_other.bw'), 2, 3.0),
  )


@pytest.fixture(scope='module')
def model():
  """Random weights; batch-norm moving averages set by one training-mode pass on one-hot +
  conservation-like inputs (well-scaled outputs, no overflow)."""
  tf.random.set_seed(3)
  rng = np.random.default_rng(3)
  model = Enformer(**CONFIG)
  x = np.concatenate(
      [np.eye(4)[rng.integers(0, 4, (4, LENGTH))], 3.0 * rng.random((4, LENGTH, 1))], axis=-1
  ).astype(np.float32)
  model(x, is_training=True)
  return model


@pytest.fixture(scope='module')
def checkpoint(model, tmp_path_factory):
  folder = tmp_path_factory.mktemp('ckpt')
  return tf.train.Checkpoint(module=model).write(str(folder / 'enformer'))


@pytest.fixture(scope='module')
def predictor(model):
  return Predictor.from_module(model, LENGTH)


def expected_input(fasta: str, bigwig: str, chrom: str, start: int, end: int) -> np.ndarray:
  """[end - start, 5] written out independently: one-hot + pyBigWig values (NaN/outside → 0),
  rounded to float16 as the training data stores them."""
  with FastaStringExtractor(fasta) as extractor:
    one_hot = one_hot_encode(extractor.extract(kipoiseq.Interval(chrom, start, end)))
  extra = np.zeros(end - start, np.float32)
  with pyBigWig.open(bigwig) as bw:
    lo, hi = max(start, 0), min(end, bw.chroms()[chrom])
    extra[lo - start : hi - start] = np.nan_to_num(bw.values(chrom, lo, hi, numpy=True))
  extra = extra.astype(np.float16).astype(np.float32)
  return np.concatenate([one_hot, extra[:, None]], axis=1)


def test_model_inputs_match_the_training_data(files, tmp_path):
  """model_inputs == the 'sequence' [L, 5] that generate_dataset + get_dataset give for training."""
  out = str(tmp_path / 'data')
  targets = pd.DataFrame(
      {
          'index': [0],
          'identifier': ['obs'],
          'file': [files['observed']],
          'description': ['observed'],
      }
  )
  generate_dataset(
      out,
      files['fasta'],
      targets,
      sequence_length=LENGTH,
      chroms=['chr2'],
      valid_chroms=(),
      test_chroms=(),
      input_tracks={'conservation': files['conservation']},
      progress=False,
  )
  records = list(
      get_dataset(
          out,
          'train',
          include_input_tracks=True,
          settings=DatasetSettings(deterministic=True, prefetch=None),
      )
  )
  assert len(records) == 2
  with FastaStringExtractor(files['fasta']) as extractor:
    intervals = [kipoiseq.Interval('chr2', i * LENGTH, (i + 1) * LENGTH) for i in range(2)]
    x = predict.model_inputs(extractor, intervals, [files['conservation']])
  assert x.shape == (2, LENGTH, 5)
  for i, record in enumerate(records):
    np.testing.assert_array_equal(x[i], record['sequence'].numpy())
  assert np.ptp(x[..., 4]) > 1.0  # The extra channel carries the track, not zeros.


def test_read_extra_tracks_missing_values_are_zero(files):
  interval = kipoiseq.Interval('chr1', GAP[0] - 100, GAP[1] + 100)
  values = predict.read_extra_tracks([files['conservation']], interval)
  assert values.shape == (GAP[1] - GAP[0] + 200, 1)
  assert np.all(values[100:-100] == 0) and np.all(values[:100] > 0) and np.all(values[-100:] > 0)
  past_end = predict.read_extra_tracks(
      [files['conservation']], kipoiseq.Interval('1', 5_900, 6_100)
  )  # 'chr' resolved.
  assert np.all(past_end[100:] == 0) and np.all(past_end[:100] > 0)
  np.testing.assert_array_equal(
      past_end[:, 0],
      expected_input(files['fasta'], files['conservation'], 'chr1', 5_900, 6_100)[:, 4],
  )


@pytest.mark.slow
def test_cli_predict_extra_track(model, checkpoint, files, tmp_path, capsys):
  outputs = {}
  for name in ('conservation', 'shuffled'):
    out = str(tmp_path / name)
    assert (
        main(
            [
                'predict',
                '--model',
                checkpoint,
                *CONFIG_FLAGS,
                '--fasta',
                files['fasta'],
                '--region',
                REGION,
                '--head',
                'atac',
                '--extra-track',
                files[name],
                '--observed',
                f'0={files["observed"]}',
                '--format',
                'npz',
                '--out',
                out,
            ]
        )
        == 0
    )
    outputs[name] = read_predictions(os.path.join(out, 'predictions.npz'))
  capsys.readouterr()
  result = outputs['conservation']
  assert result['predictions'].shape == (1, BINS, 2)
  assert result['input_start'][0] == 2_452 and result['input_end'][0] == 2_452 + LENGTH
  assert result['extra_tracks'] == files['conservation']
  # The exact input (one-hot + conservation, N-padded past chr1's end) reaches the model.
  x = expected_input(files['fasta'], files['conservation'], 'chr1', 2_452, 2_452 + LENGTH)
  direct = model(x[np.newaxis], is_training=False)['atac'].numpy()[0]
  np.testing.assert_allclose(result['predictions'][0], direct, rtol=1e-4, atol=1e-5)
  # Another conservation track changes the prediction: the extra channel is fed.
  change = np.abs(outputs['shuffled']['predictions'] - result['predictions']).max()
  assert change > 0.05 * np.abs(result['predictions']).max()
  png = [f for f in os.listdir(tmp_path / 'conservation') if f.endswith('.png')]
  assert len(png) == 1  # Predicted track 0 with the observed bigWig and its log2 Pearson r.
  assert matplotlib.image.imread(str(tmp_path / 'conservation' / png[0])).shape[0] > 100


def test_channel_mismatch_errors(model, checkpoint, predictor, files, tmp_path, capsys):
  common = [
      'predict',
      '--model',
      checkpoint,
      *CONFIG_FLAGS,
      '--fasta',
      files['fasta'],
      '--region',
      REGION,
      '--head',
      'atac',
      '--out',
      str(tmp_path / 'out'),
  ]
  assert main(common) == 2  # input_channels read from the checkpoint's stem convolution.
  assert (
      'model expects 5 input channels (4 one-hot + 1 extra) but 0 extra track(s) were given: '
      'pass 1 bigWig as --extra-track'
  ) in capsys.readouterr().err
  assert (
      main([*common, '--extra-track', files['conservation'], '--extra-track', files['shuffled']])
      == 2
  )
  assert 'but 2 extra track(s) were given' in capsys.readouterr().err
  assert (
      main([*common, '--extra-track', files['conservation'], '--model-arg', 'input_channels=4'])
      == 2
  )
  assert 'pass no --extra-track' in capsys.readouterr().err
  assert main([*common, '--extra-track', str(tmp_path / 'missing.bw')]) == 2
  assert 'missing.bw does not exist' in capsys.readouterr().err
  assert not os.path.exists(tmp_path / 'out')  # Nothing written before the inputs are checked.
  with (
      FastaStringExtractor(files['fasta']) as extractor,
      pytest.raises(ValueError, match='expects 5 input channels'),
  ):
    predict.predict_region(predictor, extractor, kipoiseq.Interval('chr2', 0, 1000), head='atac')
  one_hot_only = Predictor.from_module(Enformer(**{**CONFIG, 'input_channels': 4}), LENGTH)
  with pytest.raises(ValueError, match='pass no `extra_tracks`'):
    predict.check_extra_tracks(one_hot_only.input_channels, [files['conservation']])


@pytest.mark.slow
def test_attribution_of_a_five_channel_model(predictor, files):
  x = expected_input(files['fasta'], files['conservation'], 'chr2', 2_000, 2_000 + LENGTH)
  mask = attribution.target_mask(BINS, 2, [15, 16], [0])
  with tf.GradientTape() as tape:
    xt = tf.constant(x[np.newaxis])
    tape.watch(xt)
    target = tf.reduce_sum(predictor.model(xt, is_training=False)['atac'] * mask) / mask.sum()
  grad_x = (tape.gradient(target, xt) * xt).numpy()[0]  # [L, 5]
  scores = attribution.contribution_input_grad(predictor, x, mask, head='atac')
  extra = attribution.extra_channel_contributions(predictor, x, mask, head='atac')
  # Attribution differentiates the fused forward of enformer.inference.fast: other float32 rounding.
  np.testing.assert_allclose(
      scores, grad_x[:, :4].sum(1), rtol=0, atol=1e-4 * np.abs(grad_x[:, :4].sum(1)).max()
  )
  np.testing.assert_allclose(extra, grad_x[:, 4:], rtol=0, atol=1e-4 * np.abs(grad_x[:, 4:]).max())
  assert np.abs(extra).max() > 0  # The conservation channel influences the target.

  # ISM mutates bases only; the extra channel keeps its value.
  window = (15 * 128 + 10, 15 * 128 + 14)
  ism = attribution.in_silico_mutagenesis(
      predictor, x, mask, window=window, head='atac', progress=False
  )
  assert ism.shape == (4, 4)
  assert np.count_nonzero(ism) == 12  # 3 substitutions per base, 0 at the reference.
  mutant = x.copy()
  position = window[0] + 1
  base = int(np.argmax(x[position, :4] == 0))
  mutant[position, :4] = np.eye(4)[base]
  reference_target = attribution.target_prediction(predictor, x, mask, head='atac')
  mutant_target = attribution.target_prediction(predictor, mutant, mask, head='atac')
  np.testing.assert_allclose(ism[1, base], mutant_target - reference_target, rtol=1e-3, atol=1e-6)

  # Enhancer–gene links, also through a differentiable SavedModel-like object (no Enformer
  # config: output_shape runs it once on an all-zero input of the model's 5 channels).
  class HubLike:  # pylint: disable=too-few-public-methods
    """`hub.load(...)`-style root: .model.predict_on_batch is a tf.function."""

    def __init__(self, predict_fn):
      self.model = tf.Module()
      self.model.predict_on_batch = predict_fn

  hub_like = HubLike(predictor._predict_fn)  # pylint: disable=protected-access
  assert attribution.output_shape(hub_like, LENGTH, 'atac', input_channels=5) == (BINS, 2)
  tss_mask = attribution.target_mask(BINS, 2, [15, 16, 17], [0])  # TSS bin 16 ± 1.
  for target_model in (predictor, hub_like):
    contributions, links = attribution.enhancer_gene_link_scores(
        target_model,
        x,
        'chr2',
        2_000,
        tss=2_000 + LENGTH // 2,
        head='atac',
        tracks=[0],
        enhancers=[('chr2', 2_500, 2_700, 'e1'), ('chr1', 0, 10, 'other')],
        window=500,
    )
    # The hub-like object differentiates the predictor's fused forward: other rounding.
    expected = attribution.contribution_input_grad(predictor, x, tss_mask, head='atac')
    np.testing.assert_allclose(contributions, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert links[0].score == pytest.approx(
        np.abs(contributions[2_350 - 2_000 : 2_850 - 2_000]).sum(), rel=1e-5
    )
    assert np.isnan(links[1].score)  # Another chromosome.


@pytest.mark.slow
def test_cli_attribute_extra_track(checkpoint, files, tmp_path, capsys):
  out = str(tmp_path / 'attr')
  assert (
      main(
          [
              'attribute',
              '--model',
              checkpoint,
              *CONFIG_FLAGS,
              '--fasta',
              files['fasta'],
              '--region',
              'chr2:3,001-4,000',
              '--head',
              'atac',
              '--tracks',
              '0,1',
              '--extra-track',
              files['conservation'],
              '--out',
              out,
              '--quiet',
          ]
      )
      == 0
  )
  capsys.readouterr()
  with np.load(os.path.join(out, 'attribution.npz')) as data:
    assert data['scores'].shape == (LENGTH,) and data['extra_scores'].shape == (LENGTH, 1)
    assert data['extra_inputs'].shape == (LENGTH, 1) and np.abs(data['extra_scores']).max() > 0
    start = int(data['start'])
    expected = expected_input(files['fasta'], files['conservation'], 'chr2', start, start + LENGTH)
    np.testing.assert_array_equal(data['extra_inputs'][:, 0], expected[:, 4])
    assert data['sequence_index'].shape == (LENGTH,)
  for name in ('tracks.png', 'logo.png', 'grad_scores.bw'):
    assert os.path.exists(os.path.join(out, name))


@pytest.mark.slow
def test_five_channel_model_exports_and_predicts_from_the_saved_model(
    model, files, tmp_path, capsys
):
  """`enformer export` of a 5-channel model, then `enformer predict --extra-track` from it."""
  from enformer.inference import export_hub_module

  export = export_hub_module(model, str(tmp_path / 'hub'), sequence_length=LENGTH)
  out = str(tmp_path / 'from_hub')
  assert (
      main(
          [
              'predict',
              '--model',
              export,
              '--fasta',
              files['fasta'],
              '--region',
              REGION,
              '--head',
              'atac',
              '--extra-track',
              files['conservation'],
              '--format',
              'npz',
              '--out',
              out,
          ]
      )
      == 0
  )
  capsys.readouterr()
  result = read_predictions(os.path.join(out, 'predictions.npz'))
  x = expected_input(files['fasta'], files['conservation'], 'chr1', 2_452, 2_452 + LENGTH)
  direct = model(x[np.newaxis], is_training=False)['atac'].numpy()[0]
  np.testing.assert_allclose(result['predictions'][0], direct, rtol=1e-4, atol=1e-5)


def test_cli_score_variants_extra_track(model, checkpoint, files, tmp_path, capsys):
  """`enformer score-variants --extra-track`: ref and alt see the conservation channel."""
  import h5py  # pylint: disable=import-outside-toplevel

  pos = 4_001  # 1-based, on chr2; kipoiseq's window centred on it is 0-based [1,953, 6,049).
  with FastaStringExtractor(files['fasta']) as extractor:
    ref = extractor.extract(kipoiseq.Interval('chr2', pos - 1, pos)).upper()
  alt = 'A' if ref != 'A' else 'C'
  vcf = tmp_path / 'snv.vcf'
  vcf.write_text(
      '##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n'
      f'chr2\t{pos}\tsnv1\t{ref}\t{alt}\t.\t.\t.\n'
  )
  common = [
      'score-variants',
      '--model',
      checkpoint,
      *CONFIG_FLAGS,
      '--fasta',
      files['fasta'],
      '--vcf',
      str(vcf),
      '--head',
      'atac',
      '--quiet',
  ]
  assert main([*common, '--out', str(tmp_path / 'none.h5')]) == 2  # The channel is needed.
  assert 'pass 1 bigWig as --extra-track' in capsys.readouterr().err
  out = tmp_path / 'scores.h5'
  assert main([*common, '--extra-track', files['conservation'], '--out', str(out)]) == 0
  capsys.readouterr()
  with h5py.File(out, 'r') as f:
    sad = f['SAD'][:].astype(np.float32)  # [1, 2]
  start = pos - LENGTH // 2
  x_ref = expected_input(files['fasta'], files['conservation'], 'chr2', start, start + LENGTH)
  x_alt = x_ref.copy()
  x_alt[pos - 1 - start, :4] = np.eye(4)['ACGT'.index(alt)]
  means = [
      model(x[np.newaxis], is_training=False)['atac'].numpy()[0].mean(0) for x in (x_ref, x_alt)
  ]
  np.testing.assert_allclose(
      sad[0], means[1] - means[0], rtol=1e-2, atol=1e-3 * np.abs(means[0]).max()
  )
  assert np.abs(means[1] - means[0]).max() > 0


def test_load_model_reads_input_channels_from_the_checkpoint(model, checkpoint):
  """The library, not only the command line, builds a 5-channel model from a bare checkpoint."""
  from enformer.inference import load_model

  config = {k: v for k, v in CONFIG.items() if k != 'input_channels'}
  predictor = load_model(checkpoint, sequence_length=LENGTH, **config)
  assert predictor.input_channels == 5
  x = np.random.default_rng(1).random((1, LENGTH, 5)).astype(np.float32)
  np.testing.assert_allclose(
      predictor.predict_on_batch(x)['atac'],
      model(x, is_training=False)['atac'].numpy(),
      rtol=1e-4,
      atol=1e-5,
  )
