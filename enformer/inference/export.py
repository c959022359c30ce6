"""TF-Hub SavedModels out: `export_hub_module`, and reading back what it wrote.

`hub.load(export_dir).model.predict_on_batch(x)` of an export behaves like DeepMind's published
module: x [B, sequence_length, C] float32 is centre-cropped to the length the network sees and
{head: [B, T, N]} comes back. `enformer_config.json` next to `saved_model.pb` records the model
config and both lengths, so `enformer.load_model` rebuilds the Sonnet module too.

The root is also a reusable SavedModel as TF-Hub and Keras users expect: the root itself is
callable (the same function as `.model.predict_on_batch`), so `hub.KerasLayer(export_dir)` works
without `signature=`; it exposes `variables`, `trainable_variables` and `regularization_losses`, so
`hub.KerasLayer(export_dir, trainable=True)` fine-tunes and a GradientTape can train
`loaded.trainable_variables`; the 'serving_default' signature keeps `keras.layers.TFSMLayer`
working. Gradients through the export are the library's attribution gradients: the saved
function's gradient recomputes the forward inside the backward pass (`with_recomputed_gradient`),
so an eager tape keeps no activations and differentiates the same single graph.
"""

import json
import os
from typing import Any, Callable, Dict, Optional, Sequence

import tensorflow as tf

from enformer.enformer import SEQUENCE_LENGTH, Enformer
from enformer.inference.fast import compile_forward
from enformer.inference.predictor import check_crop
from enformer.io.atomic import atomic_directory
from enformer.io.files import parse_json
from enformer.io.outputs import EXPORT_CONFIG, check_export_folder

# Input length of DeepMind's TF-Hub module: twice the 196,608 bp the network sees (centre crop).
HUB_SEQUENCE_LENGTH = 393_216
# Written next to saved_model.pb by export_hub_module: model config and lengths.
CONFIG_FILENAME = EXPORT_CONFIG


class _HubModule(tf.Module):
  """What `hub.load(path).model` is: `predict_on_batch` that centre-crops to the model length."""

  def __init__(
      self, model: Enformer, sequence_length: int, model_sequence_length: int, fast: bool = True
  ):
    super().__init__(name='hub_model')
    self.enformer = model
    trim = (sequence_length - model_sequence_length) // 2
    channels = model.config['input_channels']

    if fast:  # The fused forward's ops, traced into this function (no nested call, no XLA).
      forward = compile_forward(model, model_sequence_length).function.python_function
    else:
      forward = lambda x: model(x, is_training=False)  # The reference op sequence.
    forward = with_recomputed_gradient(forward, model.head_names)

    def predict_on_batch(x: tf.Tensor) -> Dict[str, tf.Tensor]:
      """[B, sequence_length, C] → {head: [B, T, N]} on the centre model_sequence_length bp."""
      return forward(x[:, trim : trim + model_sequence_length])

    self.predict_on_batch = tf.function(
        predict_on_batch,
        autograph=False,
        input_signature=[tf.TensorSpec([None, sequence_length, channels], tf.float32)],
    )


def with_recomputed_gradient(
    forward: Callable[[tf.Tensor], Dict[str, tf.Tensor]], heads: Sequence[str]
) -> Callable[[tf.Tensor], Dict[str, tf.Tensor]]:
  """`forward` (x [B, L, C] → {head: [B, T, N]}, reading model variables) with a gradient that
  runs `forward` again under a tape, inside the backward pass, and differentiates it there.

  Called from a traced function (the export's `predict_on_batch`), the forward pass then keeps
  no activations for the backward pass, and the backward pass is one graph: the forward and its
  gradient together, exactly as the library's attribution (`enformer.interpret`) differentiates
  the model. The gradients through the saved function are therefore the library's (same ops,
  same numbers, same memory), whether the caller's tape is eager or inside a tf.function; without
  this, an eager tape differentiates a forward function that returns every activation the
  backward pass might need. The gradients of the variables read by `forward` come from the same
  recomputation (fine-tuning through the export).
  """
  heads = list(heads)

  @tf.custom_gradient
  def flat_forward(x: tf.Tensor):
    outputs = forward(x)

    def gradient(*upstream: tf.Tensor, variables: Optional[Sequence[tf.Variable]] = None):
      variables = list(variables or [])
      with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        tape.watch(variables)
        recomputed = forward(x)
      ys = [recomputed[head] for head in heads]
      dys = [tf.zeros_like(y) if dy is None else dy for y, dy in zip(ys, upstream)]
      gradients = tape.gradient(
          ys,
          [x] + variables,
          output_gradients=dys,
          unconnected_gradients=tf.UnconnectedGradients.ZERO,
      )
      return gradients[0], gradients[1:]

    return [outputs[head] for head in heads], gradient

  return lambda x: dict(zip(heads, flat_forward(x)))


def export_hub_module(
    model: Enformer,
    out_dir: str,
    sequence_length: int = HUB_SEQUENCE_LENGTH,
    model_sequence_length: Optional[int] = None,
    *,
    fast: bool = True,
    overwrite: bool = False,
) -> str:
  """Saves `model` as a TF-Hub-compatible SavedModel.

  `hub.load(out_dir).model.predict_on_batch(x)` then takes x [B, sequence_length, C] float32,
  centre-crops it to `model_sequence_length` and returns {head: [B, T, N]}, like DeepMind's
  published module (393,216 → 196,608). The loaded root is the same function (`loaded(x)`,
  `hub.KerasLayer(out_dir)`) and has `variables` / `trainable_variables` (fine-tuning with
  `hub.KerasLayer(out_dir, trainable=True)` or a GradientTape). `enformer_config.json` next to
  `saved_model.pb` records the model config and both lengths, so `load_model` rebuilds the Sonnet
  module too.

  Args:
    model: the Enformer (variables must exist: call it once or `model.build_variables()`).
    out_dir: output folder (local or tf.io.gfile path). An existing one that holds files is
      refused unless `overwrite`.
    overwrite: replace an earlier export in `out_dir` (a local folder that holds nothing but
      the entries of an export of this package; anything else there is refused, never lost).
    sequence_length: input length of the exported signature.
    model_sequence_length: length the network sees; default min(sequence_length, 196,608).
    fast: save the fused inference forward of `enformer.inference.fast` (default: same numbers
      within float32 rounding, less time and memory); False: the reference op sequence.

  Returns:
    out_dir.
  """
  if model_sequence_length is None:
    model_sequence_length = min(sequence_length, SEQUENCE_LENGTH)
  model.check_sequence_length(model_sequence_length)
  check_crop(sequence_length, model_sequence_length)
  model.build_variables()  # Variables created in __init__ alone do not make a built model.
  remote = '://' in out_dir
  if remote and tf.io.gfile.exists(os.path.join(out_dir, 'saved_model.pb')) and not overwrite:
    raise FileExistsError(
        f'{out_dir} already holds a SavedModel; pass overwrite=True to '
        'replace it, or choose a new folder.'
    )
  if not remote:
    check_export_folder(out_dir, overwrite)
  hub_module = _HubModule(model, sequence_length, model_sequence_length, fast=fast)
  # A tf.train.Checkpoint root (tf.Module's read-only `variables` properties would not be saved):
  # TF-Hub's reusable SavedModel attributes next to DeepMind's `.model`.
  root = tf.train.Checkpoint()
  root.model = hub_module
  root.__call__ = hub_module.predict_on_batch  # hub.KerasLayer(path) calls the root.
  root.variables = list(model.variables)
  root.trainable_variables = list(model.trainable_variables)
  root.regularization_losses = []
  metadata = dict(
      config=model.config,
      sequence_length=int(sequence_length),
      model_sequence_length=int(model_sequence_length),
      output_length=model.output_length(model_sequence_length),
      heads=model.config['heads'],
  )

  def save(folder: str) -> None:
    tf.saved_model.save(
        root,
        folder,
        signatures={'serving_default': root.model.predict_on_batch},
        # The recomputing gradient of `with_recomputed_gradient` goes with it.
        options=tf.saved_model.SaveOptions(experimental_custom_gradients=True),
    )
    with tf.io.gfile.GFile(os.path.join(folder, CONFIG_FILENAME), 'w') as handle:
      json.dump(metadata, handle, indent=1)

  if not remote:
    # Built beside and renamed when complete (no half-written SavedModel); an earlier export
    # there (checked above) is replaced only then.
    with atomic_directory(out_dir, overwrite=True) as building:
      save(building)
  else:
    save(out_dir)
  return out_dir


class _ExportedModel(tf.Module):
  """Mirrors `_HubModule`'s tracked structure (model → enformer) to restore its variables."""

  def __init__(self, model: Enformer):
    super().__init__()
    self.enformer = model


def read_export_metadata(path: str) -> Optional[Dict[str, Any]]:
  """The `enformer_config.json` of a SavedModel written by `export_hub_module`, or None."""
  config_path = os.path.join(path, CONFIG_FILENAME)
  if not tf.io.gfile.exists(config_path):
    return None
  with tf.io.gfile.GFile(config_path, 'rb') as handle:
    return parse_json(handle.read(), config_path)


def restore_exported_variables(model: Enformer, path: str) -> None:
  """Restores the variables of a SavedModel written by `export_hub_module` into `model`.

  `model` must have the exported configuration (`read_export_metadata(path)['config']`).
  """
  model.build_variables()
  status = tf.train.Checkpoint(model=_ExportedModel(model)).read(
      os.path.join(path, 'variables', 'variables')
  )
  status.expect_partial()
  status.assert_existing_objects_matched()
