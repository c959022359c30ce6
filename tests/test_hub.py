"""Tests of enformer.inference: Predictor, export_hub_module round trip, checkpoint restore and
checks."""

import json

import numpy as np
import pytest
import tensorflow as tf
import sonnet as snt
import tensorflow_hub as hub

from conftest import SMALL_REFERENCE_CONFIG, SMALL_REFERENCE_LENGTH, shared_path
from enformer import Enformer, Predictor, export_hub_module, load_model
from enformer import inference as enformer_hub
from enformer.enformer import BatchNorm
from enformer.testing import MICRO, random_model, random_one_hot

TINY = dict(MICRO, heads={'human': 7, 'mouse': 3})
MODEL_LENGTH = 8_192
EXPORT_LENGTH = 16_384


def crop(x: np.ndarray, length: int) -> np.ndarray:
  trim = (x.shape[1] - length) // 2
  return x[:, trim : trim + length]


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-5) -> None:
  scale = np.abs(expected).max()
  assert np.abs(actual - expected).max() <= rtol * scale, np.abs(actual - expected).max() / scale


@pytest.fixture(scope='module')
def tiny_model():
  tf.random.set_seed(3)
  model = Enformer(**TINY)
  model.build_variables()
  # Move the batch-norm statistics and zero-initialised weights off their defaults so that a
  # restore that silently kept initial values would be visible.
  for variable in model.variables:
    if variable.dtype.is_floating:
      variable.assign(variable + tf.random.normal(variable.shape, stddev=0.02))
  for module in model.submodules:
    if isinstance(module, BatchNorm):
      for variable in [v for v in module.moving_variance.variables if v.dtype.is_floating]:
        variable.assign(tf.random.uniform(variable.shape, 0.5, 1.5))
  return model


@pytest.fixture(scope='module')
def exported(tiny_model, tmp_path_factory):
  path = str(tmp_path_factory.mktemp('export') / 'tiny_hub')
  export_hub_module(
      tiny_model, path, sequence_length=EXPORT_LENGTH, model_sequence_length=MODEL_LENGTH
  )
  return path


def test_predictor_from_module(tiny_model):
  predictor = Predictor.from_module(tiny_model, sequence_length=MODEL_LENGTH)
  assert (predictor.sequence_length, predictor.output_length) == (MODEL_LENGTH, 64)
  assert predictor.heads == {'human': 7, 'mouse': 3} and predictor.model is tiny_model
  x = random_one_hot(3, MODEL_LENGTH)
  expected = tiny_model(x, is_training=False)
  for batch in (x, x[:1].astype(bool)):  # Batch-size polymorphic; bool one-hot accepted.
    outputs = predictor.predict_on_batch(batch)
    assert outputs['human'].shape == (len(batch), 64, 7)
    assert_close(outputs['mouse'], expected['mouse'].numpy()[: len(batch)])
  with pytest.raises(ValueError, match='Add a batch axis'):
    predictor.predict_on_batch(x[0])
  with pytest.raises(ValueError, match=r'\[batch, 8,192, 4\]'):
    predictor.predict_on_batch(random_one_hot(1, 4096))


@pytest.mark.slow
def test_export_round_trip_with_hub_load(tiny_model, exported):
  loaded = hub.load(exported)
  x = random_one_hot(2, EXPORT_LENGTH, seed=1)
  outputs = loaded.model.predict_on_batch(tf.constant(x))
  expected = tiny_model(crop(x, MODEL_LENGTH), is_training=False)
  assert set(outputs) == {'human', 'mouse'}
  for head in outputs:
    assert_close(outputs[head].numpy(), expected[head].numpy())
  metadata = json.load(open(f'{exported}/{enformer_hub.CONFIG_FILENAME}'))
  assert metadata['sequence_length'] == EXPORT_LENGTH
  assert metadata['model_sequence_length'] == MODEL_LENGTH
  assert Enformer(**metadata['config']).config == tiny_model.config
  with pytest.raises(FileExistsError):
    export_hub_module(
        tiny_model, exported, sequence_length=EXPORT_LENGTH, model_sequence_length=MODEL_LENGTH
    )


@pytest.mark.slow
def test_export_round_trip_with_load_model(tiny_model, exported):
  predictor = load_model(exported)
  assert (predictor.sequence_length, predictor.model_sequence_length) == (
      EXPORT_LENGTH,
      MODEL_LENGTH,
  )
  assert predictor.heads == {'human': 7, 'mouse': 3} and predictor.output_length == 64
  assert predictor.model is not None and predictor.model is not tiny_model
  x = random_one_hot(2, EXPORT_LENGTH, seed=2)
  outputs = predictor.predict_on_batch(x)
  expected = tiny_model(crop(x, MODEL_LENGTH), is_training=False)
  for head in outputs:
    assert_close(outputs[head], expected[head].numpy())


@pytest.fixture(scope='module')
def plain_predictor(exported, tmp_path_factory):
  """load_model on a copy of the export without our config file (like DeepMind's hub module)."""
  copy = tmp_path_factory.mktemp('plain') / 'plain_hub'
  tf.io.gfile.makedirs(str(copy / 'variables'))
  for name in tf.io.gfile.listdir(exported):
    if name not in (enformer_hub.CONFIG_FILENAME, 'variables', 'assets', 'fingerprint.pb'):
      tf.io.gfile.copy(f'{exported}/{name}', str(copy / name))
  for name in tf.io.gfile.listdir(f'{exported}/variables'):
    tf.io.gfile.copy(f'{exported}/variables/{name}', str(copy / 'variables' / name))
  return load_model(str(copy))


def test_load_generic_saved_model_from_signature(tiny_model, plain_predictor):
  """Without our config file, lengths and heads come from the signature."""
  predictor = plain_predictor
  assert predictor.model is None
  assert (predictor.sequence_length, predictor.output_length) == (EXPORT_LENGTH, 64)
  assert predictor.heads == {'human': 7, 'mouse': 3}
  x = random_one_hot(1, EXPORT_LENGTH, seed=4)
  expected = tiny_model(crop(x, MODEL_LENGTH), is_training=False)
  assert_close(predictor.predict_on_batch(x)['human'], expected['human'].numpy())
  with pytest.raises(ValueError, match='cannot apply'):
    load_model(predictor.source.split()[-1], channels=768)


def test_export_rejects_bad_crop(tiny_model, tmp_path):
  with pytest.raises(ValueError, match='even number'):
    export_hub_module(
        tiny_model,
        str(tmp_path / 'x'),
        sequence_length=MODEL_LENGTH + 1,
        model_sequence_length=MODEL_LENGTH,
    )


@pytest.mark.slow
def test_load_reference_checkpoint_reproduces_io(reference_small_io):
  checkpoint = shared_path('reference', 'small', 'checkpoint')
  # The folder resolves to its prefix (the mismatch tests below load the folder form).
  assert enformer_hub.checkpoint_prefix(str(checkpoint)) == str(checkpoint / 'enformer')
  predictor = load_model(
      str(checkpoint / 'enformer'), sequence_length=SMALL_REFERENCE_LENGTH, **SMALL_REFERENCE_CONFIG
  )
  assert 'enformer' in predictor.source and predictor.output_length == 896
  outputs = predictor.predict_on_batch(reference_small_io['one_hot'])
  for head in ('human', 'mouse'):
    assert_close(outputs[head][..., ::10], reference_small_io[f'{head}_every10th_track'], 1e-4)
    assert_close(outputs[head].mean(axis=1), reference_small_io[f'{head}_mean_over_bins'], 1e-4)


@pytest.mark.parametrize(
    'override, expected',
    [
        (
            dict(num_transformer_layers=3),
            r'(?s)missing from the checkpoint.*transformer.*num_transformer_layers=2',
        ),
        (
            dict(channels=768),
            r'(?s)shape mismatches.*\[15, 4, 384\] vs \[15, 4, 192\].*channels=384',
        ),
        (dict(num_transformer_layers=1), r'checkpoint variables the model lacks'),
        (
            dict(heads={'human': 5313}),
            r"(?s)lacks.*_heads/mouse.*heads=\{'human': 5313, 'mouse': 1643\}",
        ),
    ],
)
def test_checkpoint_mismatch_is_reported(override, expected):
  checkpoint = shared_path('reference', 'small', 'checkpoint')
  with pytest.raises(ValueError, match=expected) as error:
    load_model(
        str(checkpoint),
        sequence_length=SMALL_REFERENCE_LENGTH,
        **{**SMALL_REFERENCE_CONFIG, **override},
    )
  assert 'The checkpoint fits: channels=384' in str(error.value)
  assert 'num_heads=4' in str(error.value)


def test_infer_config_from_reference_checkpoint():
  prefix = enformer_hub.checkpoint_prefix(str(shared_path('reference', 'small', 'checkpoint')))
  shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  config = enformer_hub.infer_config(shapes)
  assert config == dict(
      channels=384,
      input_channels=4,
      num_transformer_layers=2,
      num_heads=4,
      pooling_type='attention',
      final_pointwise=True,
      transformer_mlp=True,
      heads={'human': 5313, 'mouse': 1643},
  )


def test_checkpoint_with_optimizer_state_under_another_name(tmp_path):
  """Training checkpoints (model under 'model', plus optimizer slots and a step) restore too."""
  model = Enformer(**TINY)
  optimizer = snt.optimizers.Adam(1e-3)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model(random_one_hot(1, 1024), is_training=True)['human'])
  optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
  step = tf.Variable(5, dtype=tf.int64)
  prefix = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step).write(
      str(tmp_path / 'train' / 'ckpt-1')
  )
  predictor = load_model(str(tmp_path / 'train'), sequence_length=MODEL_LENGTH, **TINY)
  assert prefix in predictor.source
  x = random_one_hot(1, MODEL_LENGTH, seed=5)
  assert_close(predictor.predict_on_batch(x)['human'], model(x, is_training=False)['human'].numpy())


def test_missing_paths_and_unreachable_handles(tmp_path):
  with pytest.raises(FileNotFoundError, match='neither a SavedModel'):
    load_model(str(tmp_path / 'nothing'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(FileNotFoundError):
    load_model(str(tmp_path / 'empty'))
  with pytest.raises(ValueError, match='TFHUB_CACHE_DIR'):
    load_model('https://tfhub.invalid/deepmind/enformer/1')
  with pytest.raises(ValueError, match='only apply to checkpoints'):
    load_model('https://tfhub.dev/deepmind/enformer/1', channels=384)


@pytest.mark.slow
def test_contribution_input_grad_through_predictors(tiny_model, exported, plain_predictor):
  from enformer import interpret as attribution

  x = random_one_hot(1, EXPORT_LENGTH, seed=6)[0]
  mask = np.zeros([64, 7], np.float32)
  mask[30:34, 2] = 1
  expected = attribution.contribution_input_grad(
      tiny_model, crop(x[np.newaxis], MODEL_LENGTH)[0], mask, head='human'
  )
  with_module = load_model(exported).contribution_input_grad(x, mask, head='human')
  trim = (EXPORT_LENGTH - MODEL_LENGTH) // 2
  assert with_module.shape == (EXPORT_LENGTH,)
  assert not with_module[:trim].any() and not with_module[trim + MODEL_LENGTH :].any()
  assert_close(with_module[trim : trim + MODEL_LENGTH], expected, 1e-4)
  # Through the SavedModel's own function (no Sonnet module), like DeepMind's hub module.
  assert_close(
      plain_predictor.contribution_input_grad(x, mask, head='human')[trim : trim + MODEL_LENGTH],
      expected,
      1e-4,
  )


@pytest.mark.slow
def test_fast_false_is_honoured_by_export_and_attribution(tmp_path):
  """export_hub_module(fast=False) saves the reference op sequence and contribution_input_grad
  (fast=False) differentiates it; both equal the fast path within float32 rounding."""
  import tensorflow_hub as hub
  from enformer.interpret import contribution_input_grad

  model = random_model(seed=31, **MICRO)
  enformer_hub.export_hub_module(model, str(tmp_path / 'plain'), 2048 + 256, 2048, fast=False)
  loaded = hub.load(str(tmp_path / 'plain'))
  ops = {
      op.type
      for f in loaded.model.predict_on_batch.concrete_functions
      for op in f.graph.get_operations()
  }
  assert 'MapWhile' not in ops and 'While' not in ops  # No per-head / per-chunk loops.
  x = random_one_hot(1, 2048 + 256, seed=32)
  expected = model(x[:, 128:-128], is_training=False)['human'].numpy()
  outputs = loaded.model.predict_on_batch(x)['human'].numpy()
  assert np.abs(outputs - expected).max() <= 1e-5 * np.abs(expected).max()
  mask = np.zeros((16, 5313), np.float32)
  mask[6:10, :5] = 1
  reference = contribution_input_grad(model, x[0, 128:-128], mask, fast=False)
  fused = contribution_input_grad(model, x[0, 128:-128], mask)
  assert np.abs(fused - reference).max() <= 1e-4 * np.abs(reference).max()
