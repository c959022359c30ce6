"""`Predictor`: inference on one-hot sequences of a fixed length, whatever the model came from.

`predict_on_batch(x [B, L, C]) -> {head: [B, T, N] numpy}` in graph mode; inputs longer than the
network's window are centre-cropped to it (393,216 → 196,608 bp for DeepMind's TF-Hub module).
Build one with `Predictor.from_module(model)` or `enformer.load_model(...)`.
"""

from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np
import tensorflow as tf

from enformer.enformer import BIN_SIZE, SEQUENCE_LENGTH, Enformer
from enformer.inference.fast import compile_forward
from enformer.interpret.gradients import contribution_input_grad


def check_crop(sequence_length: int, model_sequence_length: int) -> None:
  if sequence_length < model_sequence_length or (sequence_length - model_sequence_length) % 2:
    raise ValueError(
        f'sequence_length ({sequence_length:,}) must be model_sequence_length '
        f'({model_sequence_length:,}) plus an even number of bp of context to crop away.'
    )


class Predictor:
  """Inference on one-hot sequences of a fixed length, whatever the model came from.

  Attributes:
    sequence_length: input length in bp that `predict_on_batch` expects.
    heads: head name → number of tracks.
    output_length: output bins per sequence.
    input_channels: depth of the input (4 for one-hot DNA).
    model: the `Enformer` module when available (checkpoints, `from_module`, SavedModels written
      by `export_hub_module`), else None (e.g. DeepMind's TF-Hub module).
    model_sequence_length: input length the network itself sees; `predict_on_batch` centre-crops
      inputs of `sequence_length` to it (393,216 → 196,608 for the published hub module).
    source: where the model was loaded from.
    precision: compute precision of inference, 'float32' or 'bfloat16' (see `from_module`).
  """

  def __init__(
      self,
      predict_fn: Callable[[tf.Tensor], Mapping[str, tf.Tensor]],
      *,
      sequence_length: int,
      heads: Mapping[str, int],
      output_length: int,
      input_channels: int = 4,
      model: Optional[Enformer] = None,
      model_sequence_length: Optional[int] = None,
      source: str = '',
      differentiable: Any = None,
      precision: str = 'float32',
  ):
    """Wraps `predict_fn(x [B, sequence_length, input_channels] float32) -> {head: [B, T, N]}`.

    Use `from_module` or `load_model` rather than this constructor. `differentiable` is the object
    attributions differentiate through when `model` is None (e.g. a `hub.load` root).
    """
    self._predict_fn = predict_fn
    self.sequence_length = int(sequence_length)
    self.heads = dict(heads)
    self.output_length = int(output_length)
    self.input_channels = int(input_channels)
    self.model = model
    self.model_sequence_length = int(model_sequence_length or sequence_length)
    self.source = source
    self.precision = precision
    self._differentiable = differentiable

  @classmethod
  def from_module(
      cls,
      model: Enformer,
      sequence_length: Optional[int] = None,
      model_sequence_length: Optional[int] = None,
      *,
      fast: bool = True,
      precision: str = 'float32',
  ) -> 'Predictor':
    """Predictor over an in-memory `Enformer` (inference in a batch-polymorphic tf.function).

    Args:
      model: the module (its variables are used as they are; nothing is copied).
      sequence_length: input length in bp; default 196,608 (SEQUENCE_LENGTH).
      model_sequence_length: length the network sees (inputs are centre-cropped to it);
        default sequence_length.
      fast: run the fused inference forward of `enformer.inference.fast.compile_forward`
        (same variables,
        equal within 1e-5 relative, less time and memory); False: `model(x, is_training=False)`.
      precision: 'float32', or 'bfloat16' (fast path only: matmuls and convolutions in bfloat16
        with float32 batch-norm folding, layer-norm statistics, softmax and outputs; about 2x
        faster on CPUs with AVX-512 BF16 and on GPUs/TPUs; see docs/performance.md for its
        accuracy).
    """
    sequence_length = int(sequence_length or SEQUENCE_LENGTH)
    model_sequence_length = int(model_sequence_length or sequence_length)
    check_crop(sequence_length, model_sequence_length)
    model.check_sequence_length(model_sequence_length)
    channels = model.config['input_channels']
    trim = (sequence_length - model_sequence_length) // 2

    if precision != 'float32' and not fast:
      raise ValueError(
          f'precision={precision!r} needs the fast path (fast=True); the reference '
          'op sequence runs in float32.'
      )
    forward = (
        compile_forward(model, model_sequence_length, precision=precision).function
        if fast
        else None
    )

    @tf.function(
        input_signature=[tf.TensorSpec([None, sequence_length, channels], tf.float32)],
        autograph=False,
    )
    def predict(x: tf.Tensor) -> Dict[str, tf.Tensor]:
      x = x[:, trim : trim + model_sequence_length]
      return forward(x) if forward is not None else model(x, is_training=False)

    return cls(
        predict,
        sequence_length=sequence_length,
        heads=model.config['heads'],
        output_length=model.output_length(model_sequence_length),
        input_channels=channels,
        model=model,
        model_sequence_length=model_sequence_length,
        source=f'module {model.name}',
        precision=precision,
    )

  @property
  def bin_size(self) -> int:
    return BIN_SIZE

  def check_inputs(self, inputs: np.ndarray) -> None:
    shape = tuple(np.shape(inputs))
    if len(shape) == 3 and shape[0] == 0:
      raise ValueError(
          'The batch is empty (0 sequences): pass at least one sequence, shape '
          f'[batch ≥ 1, {self.sequence_length:,}, {self.input_channels}].'
      )
    expected = (self.sequence_length, self.input_channels)
    if len(shape) != 3 or shape[1:] != expected:
      hint = ' Add a batch axis, e.g. x[np.newaxis].' if shape == expected else ''
      raise ValueError(
          f'Expected inputs of shape [batch, {self.sequence_length:,}, {self.input_channels}] '
          f'(one-hot sequence of the length this model takes), got {list(shape)}.{hint} Resize '
          'genomic intervals to the input length around their centre '
          '(enformer.inference.regions does).'
      )

  def predict_on_batch(self, inputs) -> Dict[str, np.ndarray]:
    """Predictions for a batch of one-hot sequences.

    Args:
      inputs: [B, sequence_length, input_channels] numpy (float, bool or int one-hot).

    Returns:
      Dict head → float32 numpy [B, output_length, tracks].
    """
    self.check_inputs(inputs)
    x = tf.convert_to_tensor(np.asarray(inputs, dtype=np.float32))
    return {head: value.numpy() for head, value in self._predict_fn(x).items()}

  def contribution_input_grad(
      self, sequence_one_hot: np.ndarray, target_mask: np.ndarray, head: str = 'human'
  ) -> np.ndarray:
    """Gradient × input contribution of each base (see `enformer.interpret.gradients`).

    Args:
      sequence_one_hot: [sequence_length, 4] one-hot sequence.
      target_mask: [output_length, tracks of `head`] weights of the predictions to explain.
      head: output head.

    Returns:
      float32 [sequence_length]; bases outside the model's centre window (cropped before the
      network) contribute exactly 0.
    """
    sequence_one_hot = np.asarray(sequence_one_hot, dtype=np.float32)
    if sequence_one_hot.shape != (self.sequence_length, self.input_channels):
      raise ValueError(
          f'sequence_one_hot must have shape [{self.sequence_length}, '
          f'{self.input_channels}], got {list(sequence_one_hot.shape)}.'
      )
    if self.model is None:
      target = self._differentiable if self._differentiable is not None else self
      return contribution_input_grad(target, sequence_one_hot, target_mask, head=head)
    trim = (self.sequence_length - self.model_sequence_length) // 2
    cropped = sequence_one_hot[trim : trim + self.model_sequence_length]
    scores = contribution_input_grad(self.model, cropped, target_mask, head=head)
    return np.pad(scores, (trim, self.sequence_length - self.model_sequence_length - trim))

  def __repr__(self) -> str:
    heads = ', '.join(f'{k}: {v}' for k, v in self.heads.items())
    return (
        f'Predictor({self.source or "?"}: [B, {self.sequence_length:,}, '
        f'{self.input_channels}] → {self.output_length} bins × {{{heads}}})'
    )
