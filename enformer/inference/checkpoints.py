"""Sonnet checkpoints: resolve a prefix, list a model's variables by checkpoint key, infer the
configuration a checkpoint was written for, and check a checkpoint against a model — one checker,
`compare_with_checkpoint`, used before every restore (`restore_checkpoint` here,
`enformer.training.finetune.restore_partial` for fine-tuning).

Checkpoint keys are object paths as TensorFlow writes them, e.g.
'module/_trunk/_layers/0/_layers/0/w/.ATTRIBUTES/VARIABLE_VALUE' (DeepMind's `sonnet_weights` use
the root `module`; a training run's `tf.train.Checkpoint(model=...)` uses `model`).
"""

import collections
import dataclasses
import glob
import os
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import tensorflow as tf

from enformer import enformer as enformer_lib
from enformer.enformer import Enformer

VARIABLE_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
_STEM_CONV = '_trunk/_layers/0/_layers/0/w'
_MAX_LISTED = 5


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit the model's configuration.

  Attributes:
    prefix: the checkpoint prefix.
    fits: the `Enformer` configuration the checkpoint fits (as far as shapes tell).
    changes: the arguments to change, with the values that fit ({} when shapes cannot tell).
  """

  def __init__(
      self, message: str, prefix: str, fits: Mapping[str, Any], changes: Mapping[str, Any]
  ):
    super().__init__(message)
    self.prefix, self.fits, self.changes = prefix, dict(fits), dict(changes)


class CheckpointReadError(ValueError):
  """A checkpoint's files are truncated or corrupt (the message names the file and the fix)."""


def _unreadable(prefix: str, error: BaseException, part: str) -> CheckpointReadError:
  """The error for a checkpoint whose `part` ('index' or 'data') could not be read."""
  detail = str(getattr(error, 'message', '') or error).strip().splitlines()
  detail = detail[0][:200] if detail else type(error).__name__
  if part == 'index':
    files = f'{prefix}.index'
  else:
    shards = sorted(tf.io.gfile.glob(glob.escape(prefix) + '.data-*'))
    files = ', '.join(shards) if shards else f'{prefix}.data-00000-of-00001'
  return CheckpointReadError(
      f'Checkpoint {prefix} cannot be read: {files} is truncated or corrupt ({detail}). Copy or '
      'download the checkpoint again (a training run: resume from an earlier checkpoint by '
      'deleting this one).'
  )


_READ_ERRORS = (tf.errors.OpError, IndexError)  # IndexError: 'Read less bytes than requested'.


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
      return indices[0][: -len('.index')]
    if indices:
      names = [os.path.basename(i)[: -len('.index')] for i in indices]
      raise ValueError(
          f'{path} holds several checkpoints ({", ".join(names)}) and no '
          f"'checkpoint' file naming the latest; pass one prefix, e.g. "
          f'{os.path.join(path, names[0])}.'
      )
  raise FileNotFoundError(
      f'No checkpoint at {path}: expected a prefix with a .index file or a folder holding one.'
  )


def _is_optimizer_key(key: str) -> bool:
  return (
      key.startswith(('optimizer/', 'save_counter/'))
      or '.OPTIMIZER_SLOT' in key
      or (key == '_CHECKPOINTABLE_OBJECT_GRAPH')
  )


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
  return {
      key: tuple(variable.shape.as_list())
      for key, variable in checkpoint_variables(model, root).items()
  }


def checkpoint_root(shape_map: Mapping[str, Sequence[int]]) -> str:
  """Name the model was saved under (`module` for DeepMind's; e.g. `model` for others)."""
  roots = sorted(
      {
          k[: -len('/' + _STEM_CONV + VARIABLE_SUFFIX)]
          for k in shape_map
          if k.endswith('/' + _STEM_CONV + VARIABLE_SUFFIX)
      }
  )
  if not roots:
    raise ValueError(
        'The checkpoint holds no Enformer (no stem convolution variable '
        f'.../{_STEM_CONV}); is it a checkpoint of this model?'
    )
  return 'module' if 'module' in roots else roots[0]


ShapeMap = Mapping[str, Sequence[int]]


def read_shapes(checkpoint: Union[str, os.PathLike]) -> Dict[str, Tuple[int, ...]]:
  """Checkpoint key → variable shape of every tensor of a checkpoint (folder or prefix)."""
  prefix = checkpoint_prefix(checkpoint)
  try:
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
  except tf.errors.NotFoundError:
    raise
  except _READ_ERRORS as error:
    raise _unreadable(prefix, error, 'index') from None
  return {key: tuple(shape) for key, shape in shapes.items()}


def infer_config(
    checkpoint: Union[str, os.PathLike, ShapeMap], root: Optional[str] = None
) -> Dict[str, Any]:
  """Architecture arguments of `Enformer` that fit a checkpoint (from its variable shapes).

  Infers channels (stem conv [15, C_in, C/2]), input_channels, the conv tower's rounding
  (`conv_tower_divisible_by`, recorded only where it is not 128), num_transformer_layers, num_heads
  (r_w_bias [1, H, 1, 64]), pooling_type, final_pointwise, transformer_mlp and heads.
  target_length cannot be inferred (it has no variables).

  Args:
    checkpoint: a checkpoint folder or prefix, or its key → shape map (`read_shapes`).
    root: name the model is saved under; default found from the stem convolution
      (`checkpoint_root`).
  """
  shape_map = read_shapes(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
  root = root or checkpoint_root(shape_map)

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
  tower = sorted(
      (int(m.group(1)), int(shape_map[m.string][-1]))
      for m in keys(r'_trunk/_layers/1/_layers/(\d+)/_layers/0/_layers/2/w/')
  )
  divisible_by = _tower_rounding(config['channels'], [width for _, width in tower])
  if divisible_by is not None and divisible_by != 128:
    config['conv_tower_divisible_by'] = divisible_by
  config['pooling_type'] = 'attention' if keys(r'_trunk/.*_logit_linear/') else 'max'
  config['final_pointwise'] = bool(keys(r'_trunk/_layers/4/'))
  if layers:
    config['transformer_mlp'] = bool(keys(r'_trunk/_layers/2/_layers/\d+/_layers/1/'))
  heads = {}
  for match in sorted(keys(r'_heads/([^/]+)/_layers/0/b/'), key=lambda m: m.group(1)):
    heads[match.group(1)] = int(shape_map[match.string][0])
  config['heads'] = heads
  return config


def _tower_rounding(channels: int, widths: List[int]) -> Optional[int]:
  """The `conv_tower_divisible_by` whose conv tower widths are `widths` (128 preferred)."""
  for divisible_by in (128, 64, 32, 16, 8, 4, 2, 1):
    try:
      if enformer_lib.conv_tower_filters(channels, divisible_by) == widths:
        return divisible_by
    except ZeroDivisionError:
      continue
  return None


def format_config(config: Mapping[str, Any]) -> str:
  """'channels=384, num_heads=4, ...' for error messages."""
  return ', '.join(f'{k}={dict(v) if isinstance(v, Mapping) else v!r}' for k, v in config.items())


def short_key(key: str) -> str:
  """A checkpoint key without the '/.ATTRIBUTES/VARIABLE_VALUE' suffix."""
  return key[: -len(VARIABLE_SUFFIX)] if key.endswith(VARIABLE_SUFFIX) else key


@dataclasses.dataclass(frozen=True)
class CheckpointComparison:
  """How the variables of a model compare with those of a checkpoint, key by key.

  Keys are checkpoint keys ('<root>/_trunk/.../w/.ATTRIBUTES/VARIABLE_VALUE'). Optimizer state and
  objects outside the model's tree are left out of `stored`.

  Attributes:
    prefix: the checkpoint prefix.
    root: name the model is saved under in the checkpoint (e.g. 'module').
    expected: key → shape of every variable of the model.
    stored: key → shape of every variable of the checkpoint's model tree.
  """

  prefix: str
  root: str
  expected: Mapping[str, Tuple[int, ...]]
  stored: Mapping[str, Tuple[int, ...]]

  def _scoped(self, keys, scope: str) -> List[str]:
    start = f'{self.root}/{scope}'
    return sorted(k for k in keys if k.startswith(start))

  def missing(self, scope: str = '') -> List[str]:
    """Model variables (under `<root>/<scope>`, e.g. scope '_trunk/') absent from the checkpoint."""
    return self._scoped(set(self.expected) - set(self.stored), scope)

  def unexpected(self, scope: str = '') -> List[str]:
    """Checkpoint variables (under `<root>/<scope>`) that the model does not have."""
    return self._scoped(set(self.stored) - set(self.expected), scope)

  def mismatched(self, scope: str = '') -> List[str]:
    """Variables (under `<root>/<scope>`) of both, with different shapes."""
    return self._scoped(
        (k for k in set(self.expected) & set(self.stored) if self.expected[k] != self.stored[k]),
        scope,
    )

  def inferred_config(self) -> Dict[str, Any]:
    """The `Enformer` configuration the checkpoint fits (`infer_config`)."""
    return infer_config(self.stored, self.root)


def compare_with_checkpoint(
    model: Enformer, checkpoint: Union[str, os.PathLike]
) -> CheckpointComparison:
  """Compares the variables of `model` (created here if needed) with a checkpoint's.

  The one checker of the package: `verify_checkpoint` (exact match, before `load_model` restores)
  and `enformer.training.finetune.restore_partial` (trunk and chosen heads) both read it.
  """
  prefix = checkpoint_prefix(checkpoint)
  shape_map = read_shapes(prefix)
  root = checkpoint_root(shape_map)
  stored = {
      k: v for k, v in shape_map.items() if k.startswith(root + '/') and not _is_optimizer_key(k)
  }
  model.build_variables()
  return CheckpointComparison(
      prefix=prefix, root=root, expected=model_variable_shapes(model, root), stored=stored
  )


def verify_checkpoint(model: Enformer, prefix: str) -> str:
  """Checks that a checkpoint holds exactly the variables of `model` with the same shapes.

  Optimizer state and other objects outside the model are ignored.

  Returns:
    The name the model is saved under in the checkpoint (for `tf.train.Checkpoint(**{name: ...})`).

  Raises:
    ValueError: listing missing variables, unexpected variables and shape mismatches (first few of
      each) and the configuration the checkpoint fits.
  """
  comparison = compare_with_checkpoint(model, prefix)
  missing, unexpected = comparison.missing(), comparison.unexpected()
  mismatched = comparison.mismatched()
  if not (missing or unexpected or mismatched):
    return comparison.root
  expected, stored = comparison.expected, comparison.stored

  def listing(title: str, names: List[str], describe: Callable[[str], str]) -> str:
    if not names:
      return ''
    more = f' (and {len(names) - _MAX_LISTED} more)' if len(names) > _MAX_LISTED else ''
    return f'\n  {len(names)} {title}{more}: ' + '; '.join(describe(k) for k in names[:_MAX_LISTED])

  inferred = comparison.inferred_config()
  given = {k: v for k, v in model.config.items() if k in inferred}
  differences = {k: v for k, v in inferred.items() if given.get(k) != v}
  raise CheckpointMismatchError(
      f'Checkpoint {prefix} does not fit Enformer({format_config(given)}):'
      + listing(
          'model variables missing from the checkpoint',
          missing,
          lambda k: f'{short_key(k)} {list(expected[k])}',
      )
      + listing(
          'checkpoint variables the model lacks',
          unexpected,
          lambda k: f'{short_key(k)} {list(stored[k])}',
      )
      + listing(
          'shape mismatches (model vs checkpoint)',
          mismatched,
          lambda k: f'{short_key(k)} {list(expected[k])} vs {list(stored[k])}',
      )
      + f'\n  The checkpoint fits: {format_config(inferred)}'
      + (f'\n  Change: {format_config(differences)}' if differences else ''),
      prefix=prefix,
      fits=inferred,
      changes=differences,
  )


def restore_checkpoint(model: Enformer, path: str) -> str:
  """Verifies then restores a checkpoint (folder or prefix) into `model`; returns the prefix."""
  prefix = checkpoint_prefix(path)
  model.build_variables()
  root = verify_checkpoint(model, prefix)
  try:
    status = tf.train.Checkpoint(**{root: model}).read(prefix)
  except _READ_ERRORS as error:  # The index was readable (verified above): the data is not.
    raise _unreadable(prefix, error, 'data') from None
  status.expect_partial()  # Optimizer state and counters are not restored.
  status.assert_existing_objects_matched()
  return prefix
