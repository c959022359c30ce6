"""Session fixture shared by test_demo.py and test_notebooks.py: `enformer demo --quick` once.

Imported by both modules; the demo is resumable, so a second instantiation of the fixture (if
pytest makes one per module) only re-reads the finished steps and rewrites the report.
"""

import json
import pathlib

import pytest


@pytest.fixture(scope='session')
def quick_demo(tmp_path_factory) -> pathlib.Path:
  """Folder of a finished `enformer demo --quick` run (run through the CLI, as users do)."""
  from enformer.cli import main
  out = tmp_path_factory.getbasetemp() / 'enformer_demo_quick'
  assert main(['demo', '--out', str(out), '--quick']) == 0
  return out


def demo_results(out: pathlib.Path) -> dict:
  """Step name → recorded results of the demo in `out` (from demo.json)."""
  state = json.loads((out / 'demo.json').read_text())
  return {name: step['results'] for name, step in state['steps'].items()}
