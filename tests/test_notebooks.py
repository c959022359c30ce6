"""The colab notebooks run top to bottom (nbclient) on the artifacts of `enformer demo --quick`.

The parameters cell of each notebook (tagged `parameters`) is replaced by one pointing at the demo's
small model, synthetic genome, VCF, targets and Basenji2 data: no network.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import demo_results

pytestmark = pytest.mark.slow  # The demo, notebooks, Dask clusters or several processes.

COLAB = pathlib.Path(__file__).resolve().parent.parent / 'colab'
NOTEBOOKS = ('enformer-usage.ipynb', 'enformer-training.ipynb')


@pytest.fixture(scope='module')
def kernel_env(tmp_path_factory):
  """A `python3` kernel spec running this interpreter (found first through JUPYTER_PATH)."""
  root = tmp_path_factory.mktemp('jupyter')
  spec_dir = root / 'kernels' / 'python3'
  spec_dir.mkdir(parents=True)
  (spec_dir / 'kernel.json').write_text(
      json.dumps(
          {
              'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
              'display_name': 'Python 3',
              'language': 'python',
          }
      )
  )
  saved = {k: os.environ.get(k) for k in ('JUPYTER_PATH', 'TF_CPP_MIN_LOG_LEVEL', 'MPLBACKEND')}
  os.environ['JUPYTER_PATH'] = str(root)
  os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
  os.environ.pop('MPLBACKEND', None)  # The notebooks draw inline.
  yield root
  for key, value in saved.items():
    if value is None:
      os.environ.pop(key, None)
    else:
      os.environ[key] = value


def _run(path: pathlib.Path, parameters: dict, cwd: pathlib.Path) -> nbformat.NotebookNode:
  notebook = nbformat.read(path, as_version=4)
  cells = [c for c in notebook.cells if 'parameters' in c.metadata.get('tags', [])]
  assert len(cells) == 1, f'{path.name} needs exactly one cell tagged "parameters"'
  cells[0].source = '\n'.join(f'{key} = {value!r}' for key, value in parameters.items())
  client = NotebookClient(
      notebook, kernel_name='python3', timeout=600, resources={'metadata': {'path': str(cwd)}}
  )
  client.execute()
  return notebook


def _outputs(notebook, output_type=None):
  return [
      o
      for c in notebook.cells
      if c.cell_type == 'code'
      for o in c.get('outputs', [])
      if output_type is None or o.output_type == output_type
  ]


def _text(notebook) -> str:
  parts = []
  for output in _outputs(notebook):
    parts.append(output.get('text', ''))
    parts.append(output.get('data', {}).get('text/plain', ''))
  return '\n'.join(parts)


def test_notebooks_are_valid_and_parameterised():
  for name in NOTEBOOKS:
    notebook = nbformat.read(COLAB / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == 'python3'
    parameters = [c for c in notebook.cells if 'parameters' in c.metadata.get('tags', [])]
    assert len(parameters) == 1
    assert not _outputs(notebook), f'{name} is committed with outputs'
  usage = nbformat.read(COLAB / 'enformer-usage.ipynb', as_version=4)
  source = [c for c in usage.cells if 'parameters' in c.metadata.get('tags', [])][0].source
  assert 'https://tfhub.dev/deepmind/enformer/1' in source and 'clinvar' in source
  training = nbformat.read(COLAB / 'enformer-training.ipynb', as_version=4)
  source = [c for c in training.cells if 'parameters' in c.metadata.get('tags', [])][0].source
  assert 'gs://basenji_barnyard/data' in source and "PRESET = 'notebook'" in source


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_setup_cell_installs_the_checkout_or_asks_for_the_repository(name, tmp_path, monkeypatch):
  """The set-up cell: nothing when installed; the checkout inside the repo; else asks for a URL."""
  notebook = nbformat.read(COLAB / name, as_version=4)
  setup = [c.source for c in notebook.cells if c.cell_type == 'code' and 'REPOSITORY =' in c.source]
  assert len(setup) == 1, f'{name} needs one set-up cell defining REPOSITORY'
  installs = []
  monkeypatch.setattr(subprocess, 'check_call', lambda argv: installs.append(argv))
  monkeypatch.chdir(COLAB)
  exec(setup[0], {})  # pylint: disable=exec-used
  assert not installs  # enformer is importable here: nothing to install.

  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(
      importlib.util,
      'find_spec',
      lambda module, *a: (None if module == 'enformer' else real_find_spec(module, *a)),
  )
  exec(setup[0], {})  # pylint: disable=exec-used
  assert installs == [[sys.executable, '-m', 'pip', 'install', '--quiet', str(COLAB.parent)]]
  monkeypatch.chdir(tmp_path)  # Outside a checkout: REPOSITORY must be edited first.
  with pytest.raises(RuntimeError, match='set REPOSITORY'):
    exec(setup[0], {})  # pylint: disable=exec-used
  assert len(installs) == 1


def test_usage_notebook_on_demo_artifacts(quick_demo, kernel_env, tmp_path):
  results = demo_results(quick_demo)
  genome = results['genome']['human']
  predict_region = results['predict']['region']
  hit = next(
      line.split('\t')
      for line in (quick_demo / 'variants' / 'motif_variants.vcf').read_text().splitlines()
      if line.startswith('chr') and 'CLASS=hit' in line
  )
  attribute = results['attribute']
  first_bin, last_bin = (int(b) for b in attribute['bins'].split('-'))
  notebook = _run(
      COLAB / 'enformer-usage.ipynb',
      dict(
          MODEL=results['export']['path'],
          MODEL_ARGS={},
          FASTA=genome['fasta'],
          FASTA_URL='',
          VCF=results['variants']['vcf'],
          VCF_URL='',
          TARGETS=genome['targets'],
          TRANSFORM=results['variants']['transform'],
          ALLOW_PICKLE=False,
          DOWNLOAD=False,
          HEAD='human',
          INTERVAL=predict_region,
          PLOT_TRACKS={f'track {t}': t for t in range(4)},
          CONTRIBUTION_INTERVAL=attribute['region'],
          CONTRIBUTION_TRACKS=[0],
          CONTRIBUTION_BINS=list(range(first_bin, last_bin + 1)),
          CONTRIBUTION_CLIP=None,
          VARIANT=(hit[0], int(hit[1]), hit[3], hit[4], hit[2]),
          VARIANT_TRACKS={'track 0': 0, 'track 2': 2},
          NUM_VCF_VARIANTS=5,
          NUM_PCS=3,
      ),
      tmp_path,
  )
  images = _outputs(notebook, 'display_data')
  # tracks, contributions, logo, variant
  assert sum('image/png' in o.get('data', {}) for o in images) >= 4
  text = _text(notebook)
  assert 'Predictor(SavedModel' in text
  assert 'PC2' in text and 'PC3' not in text  # NUM_PCS = 3 components
  assert not _outputs(notebook, 'error')


def test_training_notebook_on_demo_artifacts(quick_demo, kernel_env, tmp_path):
  results = demo_results(quick_demo)
  trained = results['train']
  notebook = _run(
      COLAB / 'enformer-training.ipynb',
      dict(
          DATA_DIR=str(quick_demo / 'data'),
          ORGANISMS=['human', 'mouse'],
          PRESET='notebook',
          MODEL_ARGS={'num_transformer_layers': 1, 'target_length': None},
          RUN_DIR=str(tmp_path / 'run'),
          NUM_STEPS=4,
          BATCH_SIZE=2,
          WARMUP_STEPS=2,
          LEARNING_RATE=5e-4,
          EVAL_BATCHES=2,
          CHECKPOINT=trained['best_checkpoint'],
          CHECKPOINT_MODEL_ARGS=trained['model_config'],
          CHECKPOINT_SEQUENCE_LENGTH=results['export']['model_sequence_length'],
          HUB_MODEL=results['export']['path'],
      ),
      tmp_path,
  )
  text = _text(notebook)
  assert '4 steps' in text
  assert 'human: mean Pearson R' in text and 'mouse: mean Pearson R' in text
  assert 'max |checkpoint - hub|' in text
  assert (tmp_path / 'run' / 'checkpoints').exists()
