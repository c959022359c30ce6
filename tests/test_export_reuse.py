"""An exported SavedModel used as TF-Hub and Keras users do: the callable root in
`hub.KerasLayer(path)` (no signature=), `keras.layers.TFSMLayer`, `variables` /
`trainable_variables` for fine-tuning (`hub.KerasLayer(path, trainable=True)`, a GradientTape),
and gradients through the export as exact as the library's attribution."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from enformer import export_hub_module, interpret
from enformer.inference import fast
from enformer.testing import MICRO, random_model, random_one_hot

CONFIG = dict(MICRO, heads={'human': 5, 'mouse': 2})
MODEL_LENGTH = 2048
EXPORT_LENGTH = 4096
BINS = MODEL_LENGTH // 128


@pytest.fixture(scope='module')
def model():
  return random_model(seed=11, **CONFIG)


@pytest.fixture(scope='module')
def exported(model, tmp_path_factory) -> str:
  path = str(tmp_path_factory.mktemp('export') / 'hub')
  export_hub_module(model, path, sequence_length=EXPORT_LENGTH, model_sequence_length=MODEL_LENGTH)
  return path


def test_root_is_callable_and_exposes_variables(model, exported):
  loaded = tf.saved_model.load(exported)
  x = tf.constant(random_one_hot(2, EXPORT_LENGTH, seed=1))
  by_root, by_model = loaded(x), loaded.model.predict_on_batch(x)
  for head in ('human', 'mouse'):
    np.testing.assert_array_equal(by_root[head].numpy(), by_model[head].numpy())
  assert [v.shape for v in loaded.trainable_variables] == [
      v.shape for v in model.trainable_variables
  ]
  assert len(loaded.variables) == len(model.variables) > len(loaded.trainable_variables)
  for restored, original in zip(loaded.variables, model.variables):
    np.testing.assert_array_equal(restored.numpy(), original.numpy())
  assert list(loaded.regularization_losses) == []


@pytest.mark.slow
def test_hub_keras_layer_without_signature_and_tfsm_layer(exported):
  x = random_one_hot(2, EXPORT_LENGTH, seed=2)
  loaded = tf.saved_model.load(exported)  # Held: a dropped root takes its variables with it.
  expected = loaded.model.predict_on_batch(tf.constant(x))['human'].numpy()
  inputs = tf_keras.Input([EXPORT_LENGTH, 4])
  layer = hub.KerasLayer(exported, output_key='human')  # No signature=: the root is called.
  keras_model = tf_keras.Model(inputs, layer(inputs))
  np.testing.assert_allclose(keras_model.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)
  assert not layer.trainable_weights and layer.non_trainable_weights  # Frozen by default.
  tfsm = keras.layers.TFSMLayer(exported, call_endpoint='serving_default')
  np.testing.assert_allclose(tfsm(x)['human'].numpy(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_fine_tuning_through_the_saved_model(model, exported):
  x = random_one_hot(4, EXPORT_LENGTH, seed=3)
  target = np.random.default_rng(4).uniform(0, 2, (4, BINS, 5)).astype(np.float32)
  # hub.KerasLayer(path, trainable=True) in a tf_keras model: the loss goes down.
  layer = hub.KerasLayer(exported, trainable=True, output_key='human')
  inputs = tf_keras.Input([EXPORT_LENGTH, 4])
  keras_model = tf_keras.Model(inputs, layer(inputs))
  assert len(layer.trainable_weights) == len(model.trainable_variables)
  keras_model.compile(tf_keras.optimizers.Adam(1e-3), loss='mse')
  losses = keras_model.fit(x, target, batch_size=4, epochs=4, verbose=0).history['loss']
  assert losses[-1] < 0.9 * losses[0], losses
  # A GradientTape over the loaded object's trainable_variables reaches every human-head path.
  loaded = tf.saved_model.load(exported)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean((loaded(tf.constant(x))['human'] - target) ** 2)
  gradients = tape.gradient(loss, loaded.trainable_variables)
  used = [g for g, v in zip(gradients, loaded.trainable_variables) if 'mouse' not in v.name]
  assert used and all(g is not None and np.isfinite(g.numpy()).all() for g in used)
  assert sum(float(tf.reduce_sum(tf.abs(g))) > 0 for g in used) == len(used)


@pytest.mark.slow
def test_gradient_through_export_is_as_exact_as_the_library(model, exported):
  """Gradient × input through the SavedModel vs the float64 evaluation of the same math."""
  x = random_one_hot(1, MODEL_LENGTH, seed=5)[0]
  mask = interpret.target_mask(BINS, 5, range(BINS // 2 - 2, BINS // 2 + 2), [0, 3])
  pad = (EXPORT_LENGTH - MODEL_LENGTH) // 2

  def gradient_times_input(forward, inputs, dtype):
    xt = tf.constant(inputs[np.newaxis], dtype)
    with tf.GradientTape() as tape:
      tape.watch(xt)
      score = tf.reduce_sum(forward(xt)['human'] * tf.constant(mask, dtype)) / mask.sum()
    return (tape.gradient(score, xt) * xt).numpy()[0].sum(-1)

  exact = gradient_times_input(
      tf.function(
          lambda t: fast.fast_heads(model, fast.fast_trunk(model, t), ['human']), autograph=False
      ),
      x,
      tf.float64,
  )
  library = interpret.contribution_input_grad(model, x, mask)
  loaded = tf.saved_model.load(exported)
  through_export = gradient_times_input(loaded, np.pad(x, [(pad, pad), (0, 0)]), tf.float32)
  assert not through_export[:pad].any() and not through_export[pad + MODEL_LENGTH :].any()
  scale = np.abs(exact).max()
  library_error = np.abs(library - exact).max() / scale
  export_error = np.abs(through_export[pad : pad + MODEL_LENGTH] - exact).max() / scale
  assert library_error < 1e-4
  assert export_error <= max(1.25 * library_error, 1e-6), (export_error, library_error)
