"""The package's import graph: no cycles, the library never imports enformer.cli, imports at the
top.

Read with `ast` from the source files (nothing is imported), so the test is fast and names every
offending module and line.
"""

import ast
import collections
import pathlib
from typing import Dict, List, Set, Tuple

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'enformer'
ROOT = PACKAGE.name
CLI = f'{ROOT}.cli'


def _modules() -> Dict[str, pathlib.Path]:
  """Dotted module name → file, for every .py file of the package (packages by __init__.py)."""
  modules = {}
  for path in sorted(PACKAGE.rglob('*.py')):
    name = '.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    modules[name[: -len('.__init__')] if name.endswith('.__init__') else name] = path
  return modules


def _resolve(target: str, modules: Dict[str, pathlib.Path]) -> str:
  """The module of `target` ('enformer.io.fasta.FastaStringExtractor' → 'enformer.io.fasta')."""
  while target and target not in modules:
    target = target.rsplit('.', 1)[0] if '.' in target else ''
  return target


def import_graph() -> Tuple[Dict[str, Set[str]], List[Tuple[str, int, str]]]:
  """(module → internal modules it imports, [(module, line, statement)] of imports in functions).

  `from a.b import c` counts as importing a.b and, when c is a module, a.b.c; relative imports are
  resolved. Imports inside functions or classes are listed whatever they import.
  """
  modules = _modules()
  edges: Dict[str, Set[str]] = collections.defaultdict(set)
  nested = []
  for name, path in modules.items():
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
      if not isinstance(node, (ast.Import, ast.ImportFrom)):
        continue
      if id(node) not in top_level:
        nested.append((name, node.lineno, ast.unparse(node)))
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      else:
        base = node.module or ''
        if node.level:
          parts = package.split('.')[: len(package.split('.')) - node.level + 1]
          base = '.'.join(parts + ([base] if base else []))
        targets = [base] + [f'{base}.{alias.name}' for alias in node.names]
      for target in targets:
        module = _resolve(target, modules)
        if module and module not in (name, ROOT):
          edges[name].add(module)
  return edges, nested


def import_cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
  """Strongly connected components of more than one module (Tarjan), each sorted."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  on_stack: Set[str] = set()
  cycles = []

  def visit(v: str) -> None:
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        cycles.append(sorted(component))

  for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
    if v not in index:
      visit(v)
  return cycles


def test_no_import_cycle():
  edges, _ = import_graph()
  cycles = import_cycles(edges)
  assert not cycles, 'Import cycles (break them by moving the shared part down a layer): ' + (
      '; '.join(' <-> '.join(c) for c in cycles)
  )


def test_library_never_imports_the_cli():
  edges, _ = import_graph()
  upward = sorted(
      f'{a} -> {b}'
      for a, targets in edges.items()
      for b in targets
      if (b == CLI or b.startswith(CLI + '.'))
      and not (a == CLI or a.startswith(CLI + '.'))
      and a != f'{ROOT}.__main__'
  )
  assert not upward, (
      'Library modules importing enformer.cli (move what they need into the '
      'library and let the CLI call it): ' + '; '.join(upward)
  )


def test_imports_at_the_top_outside_the_cli():
  _, nested = import_graph()
  offending = [
      f'{name}:{line}: {statement}'
      for name, line, statement in nested
      if not (name == CLI or name.startswith(CLI + '.'))
  ]
  assert not offending, (
      'Imports inside functions (only enformer/cli may defer imports, to keep '
      '`enformer --help` fast): ' + '; '.join(offending)
  )


def test_the_checks_see_cycles_and_upward_imports():
  """The graph functions find what they must (a check that cannot fail proves nothing)."""
  assert import_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
  assert import_cycles({'a': {'b'}, 'b': set()}) == []
  edges, _ = import_graph()
  assert f'{ROOT}.enformer' in edges[f'{ROOT}.inference.fast']  # A real edge is seen.
  assert any(b.startswith(CLI) for b in edges[f'{ROOT}.__main__'])


# Workflow packages build on the layers below them (io, inference, evaluation, ...); only other
# workflows, the demo, the CLI and the top-level package may import them.
WORKFLOWS = (f'{ROOT}.variants', f'{ROOT}.genes')
WORKFLOW_USERS = (f'{ROOT}.genes', f'{ROOT}.demo', CLI, f'{ROOT}.__main__')


def test_lower_layers_never_import_workflow_packages():
  edges, _ = import_graph()
  within = lambda module, packages: any(module == p or module.startswith(p + '.') for p in packages)
  upward = sorted(
      f'{a} -> {b}'
      for a, targets in edges.items()
      for b in targets
      if within(b, WORKFLOWS) and not within(a, WORKFLOWS + WORKFLOW_USERS)
  )
  assert not upward, 'Lower layers importing a workflow package: ' + '; '.join(upward)
