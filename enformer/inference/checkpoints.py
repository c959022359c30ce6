"""Sonnet checkpoints: resolve a prefix, list a model's variables by checkpoint key, infer the
configuration a checkpoint was written for, and check a checkpoint against a model — one checker,
`compare_with_checkpoint`, used before every restore (`restore_checkpoint` here,
`enformer.training.finetune.restore_partial` for fine-tuning).

Checkpoint keys are object paths as TensorFlow writes them, e.g.
'module/_trunk/_layers/0/_layers/0/w/.ATTRIBUTES/VARIABLE_VALUE' (DeepMind's `sonnet_weights` use
the root `module`; a training run's `tf.train.Checkpoint(model=...)` uses `model`).
"""

import collections
import os
import re
from typing import Any, Callable, Dict, List, Mapping, Tuple

import tensorflow as tf

from enformer.enformer import Enformer

VARIABLE_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
_STEM_CONV = '_trunk/_layers/0/_layers/0/w'
_MAX_LISTED = 5


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
        variables[child_path + VARIABLE_SUFFIX] = child
      else:
        queue.append((child, child_path))
  return variables


def model_variable_shapes(model: Enformer, root: str = 'module') -> Dict[str, Tuple[int, ...]]:
  """Checkpoint key → shape of every variable of `tf.train.Checkpoint(**{root: model})`."""
  return {key: tuple(variable.shape.as_list())
          for key, variable in checkpoint_variables(model, root).items()}


def checkpoint_root(shape_map: Mapping[str, List[int]]) -> str:
  """Name the model was saved under (`module` for DeepMind's; e.g. `model` for others)."""
  roots = sorted({k[:-len('/' + _STEM_CONV + VARIABLE_SUFFIX)] for k in shape_map
                  if k.endswith('/' + _STEM_CONV + VARIABLE_SUFFIX)})
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

  stem = shape_map[f'{root}/{_STEM_CONV}{VARIABLE_SUFFIX}']
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
    return key[:-len(VARIABLE_SUFFIX)] if key.endswith(VARIABLE_SUFFIX) else key

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


def looks_like_checkpoint(path: str) -> bool:
  """True when `path` is a checkpoint prefix (with .index) or a folder holding one."""
  if tf.io.gfile.exists(path + '.index'):
    return True
  return tf.io.gfile.isdir(path) and bool(
      tf.io.gfile.exists(os.path.join(path, 'checkpoint'))
      or tf.io.gfile.glob(os.path.join(path, '*.index')))
