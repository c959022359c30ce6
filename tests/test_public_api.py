"""The public API: top-level names, DeepMind's module names, what the README's examples import."""

import ast
import importlib
import inspect
import pathlib
import re

import pytest

import enformer

README = pathlib.Path(__file__).resolve().parent.parent / 'README.md'


def test_published_model_constants_and_top_level_names():
  assert (enformer.SEQUENCE_LENGTH, enformer.BIN_SIZE, enformer.TARGET_LENGTH) == (
      196_608,
      128,
      896,
  )
  from enformer import enformer as enformer_module  # pylint: disable=import-outside-toplevel

  assert enformer.Enformer is enformer_module.Enformer
  assert enformer.one_hot_encode('ACGTN').tolist() == [
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
      [0, 0, 0, 0],
  ]
  for name in enformer.__all__:  # Every advertised name resolves (lazily).
    assert getattr(enformer, name) is not None, name
  with pytest.raises(AttributeError):
    getattr(enformer, 'no_such_name')


def test_deepmind_module_names():
  """The names DeepMind's code and notebooks take from their `enformer` module."""
  # pylint: disable-next=import-outside-toplevel
  from enformer.enformer import (
      BIN_SIZE,
      SEQUENCE_LENGTH,
      TARGET_LENGTH,
      Enformer,
      Residual,
      Sequential,
      SoftmaxPooling1D,
      TargetLengthCrop1D,
      accepts_is_training,
      exponential_linspace_int,
      gelu,
  )

  assert (SEQUENCE_LENGTH, BIN_SIZE, TARGET_LENGTH) == (196_608, 128, 896)
  assert exponential_linspace_int(768, 1536, 6, divisible_by=128) == [
      768,
      896,
      1024,
      1152,
      1280,
      1536,
  ]
  assert callable(gelu) and callable(accepts_is_training)
  for module in (Enformer, Residual, Sequential, SoftmaxPooling1D, TargetLengthCrop1D):
    assert isinstance(module, type)
  from enformer import attention_module  # pylint: disable=import-outside-toplevel

  assert callable(attention_module.positional_features_all)


def test_interpretation_names_sit_together():
  """`target_mask` beside `contribution_input_grad`, as the README uses them."""
  # pylint: disable-next=import-outside-toplevel
  from enformer.interpret import (
      contribution_input_grad,
      enhancer_gene_link_scores,
      in_silico_mutagenesis,
      pool_contributions,
      target_mask,
  )

  assert enformer.contribution_input_grad is contribution_input_grad
  assert enformer.target_mask is target_mask
  assert enformer.in_silico_mutagenesis is in_silico_mutagenesis
  assert callable(pool_contributions) and callable(enhancer_gene_link_scores)
  mask = target_mask(4, 3, bins='1-2', tracks=[0])
  assert mask.shape == (4, 3) and mask.sum() == 2


def _readme_python() -> str:
  return '\n'.join(re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S))


def test_readme_examples_import_what_exists():
  """Every `import` / `from ... import` of the README's Python examples, and every
  `enformer.<name>` they use, resolves."""
  if not README.exists():
    pytest.skip('README.md not found')
  code = _readme_python()
  tree = ast.parse(code)
  imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
  checked = 0
  for node in imports:
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split('.')[0] == 'enformer':
          importlib.import_module(alias.name)
          checked += 1
    elif node.module and node.module.split('.')[0] == 'enformer':
      module = importlib.import_module(node.module)
      for alias in node.names:
        assert (
            hasattr(module, alias.name)
            or importlib.util.find_spec(f'{node.module}.{alias.name}') is not None
        ), f'from {node.module} import {alias.name}'
        checked += 1
  for name in sorted(set(re.findall(r'\benformer\.([A-Za-z_]\w*)', code))):
    assert hasattr(enformer, name), f'enformer.{name} (README example)'
    checked += 1
  assert checked >= 5  # The README has examples; an empty extraction would prove nothing.


def test_sequence_length_is_the_only_spelling(tmp_path):
  """The library says `sequence_length`; there is no other spelling to keep."""
  from enformer.data import basenji  # pylint: disable=import-outside-toplevel
  from enformer.data.write import BasenjiWriter  # pylint: disable=import-outside-toplevel
  from enformer.data.synthetic import make_synthetic_dataset  # pylint: disable=import-outside-toplevel

  for function in (BasenjiWriter, make_synthetic_dataset, basenji.get_dataset):
    assert 'seq_length' not in inspect.signature(function).parameters, function
  with pytest.raises(TypeError, match='seq_length'):
    BasenjiWriter(str(tmp_path / 'a'), seq_length=256, target_length=2, num_targets=1)
  with pytest.raises(TypeError, match='sequence_length'):
    BasenjiWriter(str(tmp_path / 'c'), target_length=2, num_targets=1)


_OFF_VOCABULARY = {
    'output',
    'output_dir',
    'out_path',
    'out_file',
    'fasta_path',
    'fasta_file',
    'genome_fasta',
    'force',
    'export_dir',
    'targets_table',
}


def _public_functions():
  """(file:line name, ast.FunctionDef) of every public function and public class's method."""
  root = pathlib.Path(enformer.__file__).resolve().parent

  def visit(node, prefix, where):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, ast.FunctionDef):
        if not child.name.startswith('_') or child.name == '__init__':
          yield f'{where}:{child.lineno} {prefix}{child.name}', child
      elif isinstance(child, ast.ClassDef) and not child.name.startswith('_'):
        yield from visit(child, f'{child.name}.', where)

  for path in sorted(root.rglob('*.py')):
    if 'cli' not in path.relative_to(root).parts[:1]:
      yield from visit(ast.parse(path.read_text()), '', path.relative_to(root))


def test_one_argument_vocabulary():
  """`fasta`, `out` (a file), `out_dir` (a folder), `overwrite`; keyword-only options past the
  first few arguments of a wide signature."""
  for name, function in _public_functions():
    args = function.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    described = re.search(r'^\s*out: (.*)$', ast.get_docstring(function) or '', re.M)
    if 'out' in names and described:  # A folder only is `out_dir`.
      text = re.split(r'[;.]', described.group(1).lower())[0]  # Its first clause.
      assert 'folder' not in text or 'file' in text or 'path' in text, f'{name}: {text}'
    assert not names & _OFF_VOCABULARY, f'{name}: {sorted(names & _OFF_VOCABULARY)}'
    positional = [a.arg for a in args.posonlyargs + args.args if a.arg not in ('self', 'cls')]
    assert (
        len(positional) + len(args.kwonlyargs) <= 8 or len(positional) <= 6
    ), f'{name}: {len(positional)} positional parameters; make the options keyword-only'
