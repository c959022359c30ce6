"""Published weights in, TF-Hub SavedModels out: `load_model`, `export_hub_module`, `Predictor`.

`load_model` takes any of
  * a TF-Hub handle or URL (`https://tfhub.dev/deepmind/enformer/1`), downloaded into
    `$TFHUB_CACHE_DIR` by tensorflow_hub;
  * a local SavedModel folder (DeepMind's downloaded hub module, or one written by
    `export_hub_module`): `hub.load(path).model.predict_on_batch(x)`;
  * a Sonnet checkpoint written with `tf.train.Checkpoint(module=model)` (DeepMind's
    `sonnet_weights`), as a folder or a prefix, on local disk or any `tf.io.gfile` path (gs://).
and returns a `Predictor`: `predict_on_batch(x [B, L, C]) -> {head: [B, T, N] numpy}` in graph mode.

Checkpoints are verified variable by variable before restoring, so a wrong configuration never
silently leaves random weights: the error lists the offending names and shapes and the
configuration the checkpoint was written for.
"""

import collections
import json
import os
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf

from enformer.enformer import BIN_SIZE, SEQUENCE_LENGTH, Enformer

# Input length of DeepMind's TF-Hub module: twice the 196,608 bp the network sees (centre crop).
HUB_SEQUENCE_LENGTH = 393_216
# Written next to saved_model.pb by export_hub_module: model config and lengths.
CONFIG_FILENAME = 'enformer_config.json'
_VARIABLE_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
_STEM_CONV = '_trunk/_layers/0/_layers/0/w'
_MAX_LISTED = 5


# --------------------------------------------------------------------------- Predictor

def _check_crop(sequence_length: int, model_sequence_length: int) -> None:
  if sequence_length < model_sequence_length or (sequence_length - model_sequence_length) % 2:
    raise ValueError(
        f'sequence_length ({sequence_length:,}) must be model_sequence_length '
        f'({model_sequence_length:,}) plus an even number of bp of context to crop away.')


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
  """

  def __init__(self,
               predict_fn: Callable[[tf.Tensor], Mapping[str, tf.Tensor]],
               *,
               sequence_length: int,
               heads: Mapping[str, int],
               output_length: int,
               input_channels: int = 4,
               model: Optional[Enformer] = None,
               model_sequence_length: Optional[int] = None,
               source: str = '',
               differentiable: Any = None):
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
    self._differentiable = differentiable

  @classmethod
  def from_module(cls, model: Enformer, sequence_length: Optional[int] = None,
                  model_sequence_length: Optional[int] = None, *,
                  fast: bool = True) -> 'Predictor':
    """Predictor over an in-memory `Enformer` (inference in a batch-polymorphic tf.function).

    Args:
      model: the module (its variables are used as they are; nothing is copied).
      sequence_length: input length in bp; default 196,608 (SEQUENCE_LENGTH).
      model_sequence_length: length the network sees (inputs are centre-cropped to it);
        default sequence_length.
      fast: run the fused inference forward of `enformer.fast.compile_forward` (same variables,
        equal within 1e-5 relative, less time and memory); False: `model(x, is_training=False)`.
    """
    sequence_length = int(sequence_length or SEQUENCE_LENGTH)
    model_sequence_length = int(model_sequence_length or sequence_length)
    _check_crop(sequence_length, model_sequence_length)
    model.check_sequence_length(model_sequence_length)
    channels = model.config['input_channels']
    trim = (sequence_length - model_sequence_length) // 2

    forward = None
    if fast:
      from enformer.fast import compile_forward  # pylint: disable=import-outside-toplevel
      forward = compile_forward(model, model_sequence_length).function

    @tf.function(input_signature=[tf.TensorSpec([None, sequence_length, channels], tf.float32)])
    def predict(x: tf.Tensor) -> Dict[str, tf.Tensor]:
      x = x[:, trim:trim + model_sequence_length]
      return forward(x) if forward is not None else model(x, is_training=False)

    return cls(predict, sequence_length=sequence_length, heads=model.config['heads'],
               output_length=model.output_length(model_sequence_length), input_channels=channels,
               model=model, model_sequence_length=model_sequence_length,
               source=f'module {model.name}')

  @property
  def bin_size(self) -> int:
    return BIN_SIZE

  def check_inputs(self, inputs: np.ndarray) -> None:
    shape = tuple(np.shape(inputs))
    expected = (self.sequence_length, self.input_channels)
    if len(shape) != 3 or shape[1:] != expected:
      hint = ' Add a batch axis, e.g. x[np.newaxis].' if shape == expected else ''
      raise ValueError(
          f'Expected inputs of shape [batch, {self.sequence_length:,}, {self.input_channels}] '
          f'(one-hot sequence of the length this model takes), got {list(shape)}.{hint} Resize '
          'genomic intervals to the input length around their centre (enformer.predict does).')

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

  def contribution_input_grad(self, sequence_one_hot: np.ndarray, target_mask: np.ndarray,
                              head: str = 'human') -> np.ndarray:
    """Gradient × input contribution of each base (see enformer.attribution).

    Args:
      sequence_one_hot: [sequence_length, 4] one-hot sequence.
      target_mask: [output_length, tracks of `head`] weights of the predictions to explain.
      head: output head.

    Returns:
      float32 [sequence_length]; bases outside the model's centre window (cropped before the
      network) contribute exactly 0.
    """
    from enformer import attribution
    sequence_one_hot = np.asarray(sequence_one_hot, dtype=np.float32)
    if sequence_one_hot.shape != (self.sequence_length, self.input_channels):
      raise ValueError(f'sequence_one_hot must have shape [{self.sequence_length}, '
                       f'{self.input_channels}], got {list(sequence_one_hot.shape)}.')
    if self.model is None:
      target = self._differentiable if self._differentiable is not None else self
      return attribution.contribution_input_grad(target, sequence_one_hot, target_mask, head=head)
    trim = (self.sequence_length - self.model_sequence_length) // 2
    cropped = sequence_one_hot[trim:trim + self.model_sequence_length]
    scores = attribution.contribution_input_grad(self.model, cropped, target_mask, head=head)
    return np.pad(scores, (trim, self.sequence_length - self.model_sequence_length - trim))

  def __repr__(self) -> str:
    heads = ', '.join(f'{k}: {v}' for k, v in self.heads.items())
    return (f'Predictor({self.source or "?"}: [B, {self.sequence_length:,}, '
            f'{self.input_channels}] → {self.output_length} bins × {{{heads}}})')


# --------------------------------------------------------------------------- export

class _HubModule(tf.Module):
  """What `hub.load(path).model` is: `predict_on_batch` that centre-crops to the model length."""

  def __init__(self, model: Enformer, sequence_length: int, model_sequence_length: int):
    super().__init__(name='hub_model')
    self.enformer = model
    trim = (sequence_length - model_sequence_length) // 2
    channels = model.config['input_channels']

    from enformer.fast import compile_forward  # pylint: disable=import-outside-toplevel
    forward = compile_forward(model, model_sequence_length).function  # Plain graph, no XLA.

    def predict_on_batch(x: tf.Tensor) -> Dict[str, tf.Tensor]:
      """[B, sequence_length, C] → {head: [B, T, N]} on the centre model_sequence_length bp."""
      return forward(x[:, trim:trim + model_sequence_length])

    self.predict_on_batch = tf.function(
        predict_on_batch,
        input_signature=[tf.TensorSpec([None, sequence_length, channels], tf.float32)])


def export_hub_module(model: Enformer, export_dir: str, sequence_length: int = HUB_SEQUENCE_LENGTH,
                      model_sequence_length: Optional[int] = None) -> str:
  """Saves `model` as a TF-Hub-compatible SavedModel.

  `hub.load(export_dir).model.predict_on_batch(x)` then takes x [B, sequence_length, C] float32,
  centre-crops it to `model_sequence_length` and returns {head: [B, T, N]}, like DeepMind's
  published module (393,216 → 196,608). `enformer_config.json` next to `saved_model.pb` records
  the model config and both lengths, so `load_model` rebuilds the Sonnet module too.

  Args:
    model: the Enformer (variables must exist: call it once or `model.build_variables()`).
    export_dir: output folder (local or tf.io.gfile path); must not already hold a SavedModel.
    sequence_length: input length of the exported signature.
    model_sequence_length: length the network sees; default min(sequence_length, 196,608).

  Returns:
    export_dir.
  """
  if model_sequence_length is None:
    model_sequence_length = min(sequence_length, SEQUENCE_LENGTH)
  model.check_sequence_length(model_sequence_length)
  _check_crop(sequence_length, model_sequence_length)
  model.build_variables()  # Variables created in __init__ alone do not make a built model.
  if tf.io.gfile.exists(os.path.join(export_dir, 'saved_model.pb')):
    raise FileExistsError(f'{export_dir} already holds a SavedModel; choose a new folder.')
  root = tf.Module()
  root.model = _HubModule(model, sequence_length, model_sequence_length)
  tf.saved_model.save(root, export_dir,
                      signatures={'serving_default': root.model.predict_on_batch})
  metadata = dict(config=model.config, sequence_length=int(sequence_length),
                  model_sequence_length=int(model_sequence_length),
                  output_length=model.output_length(model_sequence_length),
                  heads=model.config['heads'])
  with tf.io.gfile.GFile(os.path.join(export_dir, CONFIG_FILENAME), 'w') as handle:
    json.dump(metadata, handle, indent=1)
  return export_dir


# --------------------------------------------------------------------------- checkpoints

def checkpoint_prefix(path: str) -> str:
  """Resolves a checkpoint folder or prefix to the prefix that `Checkpoint.read` takes."""
  path = os.fspath(path)
  if tf.io.gfile.exists(path + '.index'):
    return path
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest:
      return latest
    indices = sorted(tf.io.gfile.glob(os.path.join(path, '*.index')))
    if len(indices) == 1:
      return indices[0][:-len('.index')]
    if indices:
      names = [os.path.basename(i)[:-len('.index')] for i in indices]
      raise ValueError(f'{path} holds several checkpoints ({", ".join(names)}) and no '
                       f"'checkpoint' file naming the latest; pass one prefix, e.g. "
                       f'{os.path.join(path, names[0])}.')
  raise FileNotFoundError(f'No checkpoint at {path}: expected a prefix with a .index file or a '
                          'folder holding one.')


def _is_optimizer_key(key: str) -> bool:
  return key.startswith(('optimizer/', 'save_counter/')) or '.OPTIMIZER_SLOT' in key or (
      key == '_CHECKPOINTABLE_OBJECT_GRAPH')


def checkpoint_variables(module: tf.Module, root: str = 'module') -> Dict[str, tf.Variable]:
  """Maps each variable of `module` to its key in `tf.train.Checkpoint(**{root: module})`.

  Keys are object paths as TensorFlow writes them (breadth-first, first path wins), e.g.
  'module/_trunk/_layers/0/_layers/0/w/.ATTRIBUTES/VARIABLE_VALUE'. Variables must exist
  (call `model.build_variables()` first).
  """
  checkpoint_root = tf.train.Checkpoint(**{root: module})
  view = tf.train.TrackableView(checkpoint_root)
  queue = collections.deque([(checkpoint_root, '')])
  seen = {id(checkpoint_root)}
  variables = {}
  while queue:
    obj, path = queue.popleft()
    for name, child in view.children(obj).items():
      if id(child) in seen:
        continue
      seen.add(id(child))
      child_path = f'{path}/{name}' if path else name
      if isinstance(child, tf.Variable):
        variables[child_path + _VARIABLE_SUFFIX] = child
      else:
        queue.append((child, child_path))
  return variables


def model_variable_shapes(model: Enformer, root: str = 'module') -> Dict[str, Tuple[int, ...]]:
  """Checkpoint key → shape of every variable of `tf.train.Checkpoint(**{root: model})`."""
  return {key: tuple(variable.shape.as_list())
          for key, variable in checkpoint_variables(model, root).items()}


def checkpoint_root(shape_map: Mapping[str, List[int]]) -> str:
  """Name the model was saved under (`module` for DeepMind's; e.g. `model` for others)."""
  roots = sorted({k[:-len('/' + _STEM_CONV + _VARIABLE_SUFFIX)] for k in shape_map
                  if k.endswith('/' + _STEM_CONV + _VARIABLE_SUFFIX)})
  if not roots:
    raise ValueError('The checkpoint holds no Enformer (no stem convolution variable '
                     f'.../{_STEM_CONV}); is it a checkpoint of this model?')
  return 'module' if 'module' in roots else roots[0]


def infer_config(shape_map: Mapping[str, List[int]], root: str = 'module') -> Dict[str, Any]:
  """Architecture arguments of `Enformer` that fit a checkpoint (from its variable shapes).

  Infers channels (stem conv [15, C_in, C/2]), input_channels, num_transformer_layers, num_heads
  (r_w_bias [1, H, 1, 64]), pooling_type, final_pointwise, transformer_mlp and heads.
  target_length cannot be inferred (it has no variables).
  """
  def keys(pattern: str) -> List[re.Match]:
    regex = re.compile(re.escape(root + '/') + pattern)
    return [m for m in (regex.match(k) for k in shape_map) if m]

  stem = shape_map[f'{root}/{_STEM_CONV}{_VARIABLE_SUFFIX}']
  config: Dict[str, Any] = dict(channels=2 * int(stem[2]), input_channels=int(stem[1]))
  layers = {int(m.group(1)) for m in keys(r'_trunk/_layers/2/_layers/(\d+)/')}
  config['num_transformer_layers'] = len(layers)
  biases = keys(r'_trunk/_layers/2/_layers/\d+/.*_r_w_bias/')
  if biases:
    config['num_heads'] = int(shape_map[biases[0].string][1])
  config['pooling_type'] = 'attention' if keys(r'_trunk/.*_logit_linear/') else 'max'
  config['final_pointwise'] = bool(keys(r'_trunk/_layers/4/'))
  if layers:
    config['transformer_mlp'] = bool(keys(r'_trunk/_layers/2/_layers/\d+/_layers/1/'))
  heads = {}
  for match in sorted(keys(r'_heads/([^/]+)/_layers/0/b/'), key=lambda m: m.group(1)):
    heads[match.group(1)] = int(shape_map[match.string][0])
  config['heads'] = heads
  return config


def _format_config(config: Mapping[str, Any]) -> str:
  return ', '.join(f'{k}={dict(v) if isinstance(v, Mapping) else v!r}' for k, v in config.items())


def verify_checkpoint(model: Enformer, prefix: str) -> str:
  """Checks that a checkpoint holds exactly the variables of `model` with the same shapes.

  Optimizer state and other objects outside the model are ignored.

  Returns:
    The name the model is saved under in the checkpoint (for `tf.train.Checkpoint(**{name: ...})`).

  Raises:
    ValueError: listing missing variables, unexpected variables and shape mismatches (first few of
      each) and the configuration the checkpoint fits.
  """
  shape_map = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  root = checkpoint_root(shape_map)
  stored = {k: tuple(v) for k, v in shape_map.items()
            if k.startswith(root + '/') and not _is_optimizer_key(k)}
  expected = model_variable_shapes(model, root)
  missing = sorted(set(expected) - set(stored))
  unexpected = sorted(set(stored) - set(expected))
  mismatched = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
  if not (missing or unexpected or mismatched):
    return root

  def short(key: str) -> str:
    return key[:-len(_VARIABLE_SUFFIX)] if key.endswith(_VARIABLE_SUFFIX) else key

  def listing(title: str, names: List[str], describe: Callable[[str], str]) -> str:
    if not names:
      return ''
    more = f' (and {len(names) - _MAX_LISTED} more)' if len(names) > _MAX_LISTED else ''
    return (f'\n  {len(names)} {title}{more}: '
            + '; '.join(describe(k) for k in names[:_MAX_LISTED]))

  inferred = infer_config(shape_map, root)
  given = {k: v for k, v in model.config.items() if k in inferred}
  differences = {k: v for k, v in inferred.items() if given.get(k) != v}
  raise ValueError(
      f'Checkpoint {prefix} does not fit Enformer({_format_config(given)}):'
      + listing('model variables missing from the checkpoint', missing,
                lambda k: f'{short(k)} {list(expected[k])}')
      + listing('checkpoint variables the model lacks', unexpected,
                lambda k: f'{short(k)} {list(stored[k])}')
      + listing('shape mismatches (model vs checkpoint)', mismatched,
                lambda k: f'{short(k)} {list(expected[k])} vs {list(stored[k])}')
      + f'\n  The checkpoint fits: {_format_config(inferred)}'
      + (f'\n  Change: {_format_config(differences)}' if differences else ''))


def restore_checkpoint(model: Enformer, path: str) -> str:
  """Verifies then restores a checkpoint (folder or prefix) into `model`; returns the prefix."""
  prefix = checkpoint_prefix(path)
  model.build_variables()
  root = verify_checkpoint(model, prefix)
  status = tf.train.Checkpoint(**{root: model}).read(prefix)
  status.expect_partial()  # Optimizer state and counters are not restored.
  status.assert_existing_objects_matched()
  return prefix


def _load_checkpoint(path: str, sequence_length: Optional[int], config: Dict[str, Any],
                     fast: bool = True) -> Predictor:
  model = Enformer(**config)
  prefix = restore_checkpoint(model, path)
  predictor = Predictor.from_module(model, sequence_length, fast=fast)
  predictor.source = f'checkpoint {prefix}'
  return predictor


# --------------------------------------------------------------------------- SavedModels / hub

def _read_export_metadata(path: str) -> Optional[Dict[str, Any]]:
  config_path = os.path.join(path, CONFIG_FILENAME)
  if not tf.io.gfile.exists(config_path):
    return None
  with tf.io.gfile.GFile(config_path) as handle:
    return json.load(handle)


def _signature_shapes(predict_fn) -> Tuple[tf.TensorShape, Dict[str, tf.TensorShape]]:
  """(input shape, {head: output shape}) of a restored predict_on_batch tf.function."""
  concrete = predict_fn.concrete_functions[0] if hasattr(
      predict_fn, 'concrete_functions') else predict_fn.get_concrete_function()
  args, _ = concrete.structured_input_signature
  outputs = concrete.structured_outputs
  return args[0].shape, {k: v.shape for k, v in outputs.items()}


def _is_url(handle: str) -> bool:
  return bool(re.match(r'^(https?|gs|s3)://', handle))


def _hub_load(handle: str):
  import tensorflow_hub as hub
  try:
    return hub.load(handle)
  except Exception as error:  # Network, cache and format errors alike: one clear message.
    reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
    raise ValueError(
        f'Could not load the TF-Hub model {handle!r} ({type(error).__name__}: {reason}). '
        'Offline? Download the module once where there is internet and either pass its local '
        'folder (the one holding saved_model.pb) or set TFHUB_CACHE_DIR to the cache folder that '
        'holds it.') from None


def _load_saved_model(handle: str, config: Dict[str, Any], fast: bool = True) -> Predictor:
  metadata = None if _is_url(handle) and not handle.startswith('gs://') else (
      _read_export_metadata(handle))
  if metadata is not None:
    # Written by export_hub_module: rebuild the Sonnet module from the stored config and restore
    # the SavedModel's variables into it (one copy of the weights; `model` available).
    model = Enformer(**{**metadata['config'], **config})
    model.build_variables()
    status = tf.train.Checkpoint(model=_Holder(model)).read(
        os.path.join(handle, 'variables', 'variables'))
    status.expect_partial()
    status.assert_existing_objects_matched()
    predictor = Predictor.from_module(model, metadata['sequence_length'],
                                      metadata['model_sequence_length'], fast=fast)
    predictor.source = f'SavedModel {handle}'
    return predictor
  if config:
    raise ValueError(f'{handle} is a SavedModel without {CONFIG_FILENAME}: its architecture is '
                     f'fixed, so config arguments ({", ".join(config)}) cannot apply.')
  loaded = _hub_load(handle)
  predict_fn = getattr(getattr(loaded, 'model', None), 'predict_on_batch', None)
  if predict_fn is None:
    raise ValueError(f'{handle} is a SavedModel without model.predict_on_batch: not an Enformer '
                     'TF-Hub module (export one with enformer.export_hub_module).')
  input_shape, output_shapes = _signature_shapes(predict_fn)
  heads = {k: int(s[-1]) for k, s in output_shapes.items()}
  output_length = {int(s[1]) for s in output_shapes.values() if s[1] is not None}
  if len(output_length) != 1 or input_shape[1] is None:
    raise ValueError(f'Cannot tell the input length and output bins of {handle} from its '
                     f'signature (input {input_shape}, outputs {output_shapes}).')
  sequence_length = int(input_shape[1])
  return Predictor(predict_fn, sequence_length=sequence_length, heads=heads,
                   output_length=output_length.pop(), input_channels=int(input_shape[2]),
                   model=None, model_sequence_length=min(sequence_length, SEQUENCE_LENGTH),
                   source=f'TF-Hub module {handle}', differentiable=loaded)


class _Holder(tf.Module):
  """Mirrors `_HubModule`'s tracked structure (model → enformer) to restore its variables."""

  def __init__(self, model: Enformer):
    super().__init__()
    self.enformer = model


def _looks_like_checkpoint(path: str) -> bool:
  if tf.io.gfile.exists(path + '.index'):
    return True
  return tf.io.gfile.isdir(path) and bool(
      tf.io.gfile.exists(os.path.join(path, 'checkpoint'))
      or tf.io.gfile.glob(os.path.join(path, '*.index')))


# --------------------------------------------------------------------------- training run folders

# The layout `enformer.training` writes (see enformer.training.checkpointing).
RUN_CONFIG = 'config.json'
RUN_CHECKPOINTS = 'checkpoints'
RUN_BEST_CHECKPOINT = os.path.join('best', 'checkpoint', 'model')
RUN_BEST_HUB = os.path.join('best', 'hub')
RUN_CHOICES = ('best', 'latest')


def parse_run_folder(source: str) -> Optional[Tuple[str, str]]:
  """(run folder, 'best' or 'latest') when `source` names a training run folder, else None.

  A run folder holds the config.json that `enformer train` writes. `RUN` and `RUN:best` choose
  its best model by validation, `RUN:latest` its latest checkpoint.

  Raises:
    ValueError: `:best`/`:latest` after something that is not a run folder.
  """
  source = os.fspath(source)
  folder, choice = source, 'best'
  for suffix in RUN_CHOICES:
    if source.endswith(':' + suffix) and not tf.io.gfile.exists(source):
      folder, choice = source[:-len(suffix) - 1], suffix
  if tf.io.gfile.exists(os.path.join(folder, RUN_CONFIG)):
    return folder, choice
  if folder != source:
    raise ValueError(f'{source}: ":{choice}" chooses a checkpoint of a training run folder (one '
                     f'with {RUN_CONFIG}, written by enformer train), and {folder} is not one.')
  return None


def _run_sequence_length(folder: str, record: Mapping[str, Any]) -> Optional[int]:
  """Input length a run trained on: its export's, else its data's statistics.json."""
  metadata = _read_export_metadata(os.path.join(folder, RUN_BEST_HUB))
  if metadata is not None:
    return int(metadata['model_sequence_length'])
  for data in (record.get('train', {}).get('data') or {}).values():
    path = os.path.join(str(data), 'statistics.json')
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as handle:
        return int(json.load(handle)['seq_length'])
  return None


def resolve_run_folder(folder: str, choice: str = 'best'
                       ) -> Tuple[str, Dict[str, Any], Optional[int]]:
  """(checkpoint prefix, Enformer config, training input length or None) of a run folder.

  Args:
    folder: a run folder of `enformer train` (config.json, checkpoints/, best/).
    choice: 'best' (the best model by validation) or 'latest' (the latest checkpoint).
  """
  if choice not in RUN_CHOICES:
    raise ValueError(f'Choose the best or latest checkpoint of a run folder, got {choice!r}.')
  with tf.io.gfile.GFile(os.path.join(folder, RUN_CONFIG)) as handle:
    record = json.load(handle)
  if 'model_config' not in record:
    raise ValueError(f'{os.path.join(folder, RUN_CONFIG)} has no model_config: not a run folder '
                     'of enformer train.')
  if choice == 'best':
    prefix = os.path.join(folder, RUN_BEST_CHECKPOINT)
    if not tf.io.gfile.exists(prefix + '.index'):
      raise FileNotFoundError(f'{folder} has no best model yet (validation has not run); use '
                              f'{folder}:latest for its latest checkpoint.')
  else:
    prefix = tf.train.latest_checkpoint(os.path.join(folder, RUN_CHECKPOINTS))
    if prefix is None:
      raise FileNotFoundError(f'{folder} has no checkpoint yet (in {RUN_CHECKPOINTS}/).')
  return prefix, dict(record['model_config']), _run_sequence_length(folder, record)


def checkpoint_input_channels(source: str) -> Optional[int]:
  """Input depth of a checkpoint or run folder (4 + extra tracks); None for other sources."""
  source = os.fspath(source)
  if _is_url(source) and not source.startswith('gs://'):
    return None
  try:
    run = parse_run_folder(source)
    if run is not None:
      return int(resolve_run_folder(*run)[1].get('input_channels', 4))
    if not _looks_like_checkpoint(source):
      return None
    shape_map = tf.train.load_checkpoint(checkpoint_prefix(source)).get_variable_to_shape_map()
    return int(infer_config(shape_map, checkpoint_root(shape_map))['input_channels'])
  except (FileNotFoundError, ValueError, tf.errors.OpError):
    return None  # Not readable here; load_model explains.


# --------------------------------------------------------------------------- loading

def load_model(handle_or_path: str, sequence_length: Optional[int] = None, *,
               fast: bool = True, **config: Any) -> Predictor:
  """Loads Enformer from a TF-Hub handle, a SavedModel, a checkpoint or a training run folder.

  Args:
    handle_or_path: `https://tfhub.dev/deepmind/enformer/1` (or another hub URL), a local or
      gfile SavedModel folder, a checkpoint folder / prefix (local or gs://), or a run folder of
      `enformer train`: `RUN` or `RUN:best` (its best model), `RUN:latest` (latest checkpoint).
    sequence_length: checkpoints only: input length of the predictor (default 196,608; run
      folders: the length they trained on). SavedModels define their own (393,216 for
      DeepMind's module).
    fast: when the Sonnet module is available (checkpoints, exports of this package), predict
      with the fused forward of `enformer.fast` (equal within 1e-5 relative); False: the
      reference op sequence. DeepMind's hub module always runs its own saved graph.
    **config: checkpoints: `Enformer` constructor arguments (default: the published full-size
      model); run folders and SavedModels written by `export_hub_module`: overrides of their
      stored config.

  Returns:
    A Predictor.

  Raises:
    ValueError: unreachable handle, or a checkpoint that does not fit `config` (the message says
      which config would fit).
    FileNotFoundError: a local path that does not exist.
  """
  handle = os.fspath(handle_or_path)
  local = not _is_url(handle)
  run = parse_run_folder(handle) if local or handle.startswith('gs://') else None
  if run is not None:
    prefix, run_config, run_length = resolve_run_folder(*run)
    predictor = _load_checkpoint(prefix, sequence_length or run_length,
                                 {**run_config, **config}, fast)
    predictor.source = f'run {run[0]} ({run[1]}: {prefix})'
    return predictor
  if local or handle.startswith('gs://'):
    if tf.io.gfile.exists(os.path.join(handle, 'saved_model.pb')):
      return _load_saved_model(handle, config, fast)
    if _looks_like_checkpoint(handle):
      return _load_checkpoint(handle, sequence_length, config, fast)
    if local:
      raise FileNotFoundError(
          f'{handle} is neither a SavedModel folder (with saved_model.pb) nor a checkpoint '
          '(prefix with .index, or a folder holding one). For TF-Hub pass the handle URL, e.g. '
          'https://tfhub.dev/deepmind/enformer/1.')
  if config or sequence_length:
    raise ValueError('Model config arguments only apply to checkpoints; a TF-Hub module defines '
                     'its own architecture and input length.')
  return _load_saved_model(handle, {})
