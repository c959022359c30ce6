"""Outputs and the values that shape them: --out / --overwrite never lose the user's files, and
--shifts, --n-value and --sequence-length never give a silently wrong result.

The rule for --out and --overwrite in every subcommand: an existing output is refused unless
--overwrite (or resumed where the command resumes), and --overwrite removes only what the same
command wrote before (recorded in the folder's manifest, `enformer.io.outputs`), never other files.
"""

import json
import os

import pytest

from conftest import write_random_fasta
from enformer.cli import main
from enformer.io import outputs
from enformer.testing import MICRO

LENGTH = 2048
CONFIG = dict(MICRO, pooling_type='max', heads={'human': 3})
CHROM_SIZES = {'chr1': 12_000, 'chr2': 6_000}


def _one_line_error(capsys, command: str) -> str:
  err = capsys.readouterr().err.strip()
  assert err.startswith(f'enformer {command}: error: ') and '\n' not in err, err
  assert 'Traceback' not in err
  return err


def _write_genome(path) -> str:
  return write_random_fasta(path, CHROM_SIZES)


@pytest.fixture(scope='module')
def saved_model(tmp_path_factory):
  """A tiny random Enformer exported with the package's own `export_hub_module` (2,048 bp)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from enformer import Enformer  # pylint: disable=import-outside-toplevel
  from enformer.inference import export_hub_module  # pylint: disable=import-outside-toplevel

  tf.random.set_seed(0)
  model = Enformer(**CONFIG)
  model.build_variables()
  folder = tmp_path_factory.mktemp('model') / 'saved'
  return export_hub_module(model, str(folder), sequence_length=LENGTH, model_sequence_length=LENGTH)


@pytest.fixture(scope='module')
def predictor(saved_model):
  from enformer import load_model  # pylint: disable=import-outside-toplevel

  return load_model(saved_model)


def _project(tmp_path, saved_model):
  """proj/ holding the user's FASTA and a copy of the model, as in the report."""
  import shutil  # pylint: disable=import-outside-toplevel

  project = tmp_path / 'proj'
  project.mkdir()
  fasta = _write_genome(project / 'genome.fa')
  shutil.copytree(saved_model, project / 'model')
  return project, fasta, _files(project)


def _files(folder) -> set:
  """The files under `folder` (relative paths) but the hidden ones, such as the manifest."""
  return {
      os.path.relpath(os.path.join(root, name), folder)
      for root, _, names in os.walk(folder)
      for name in names
      if not name.startswith('.')
  }


# --------------------------------------------------------------------------- the manifest


def test_output_folder_removes_only_its_own_files(tmp_path):
  folder = tmp_path / 'out'
  folder.mkdir()
  (folder / 'genome.fa').write_text('>chr1\nACGT\n')
  with pytest.raises(FileExistsError, match='genome.fa'):
    outputs.OutputFolder(folder, 'predict')
  first = outputs.OutputFolder(folder, 'predict', overwrite=True)
  for name in ('predictions.h5', '0000_a.png'):
    with open(first.claim(name), 'w') as handle:
      handle.write('x')
  other = outputs.OutputFolder(folder, 'attribute', overwrite=True)
  with open(other.claim('logo.png'), 'w') as handle:
    handle.write('x')
  # A second predict run: predict's earlier files go, the user's file and attribute's stay.
  second = outputs.OutputFolder(folder, 'predict', overwrite=True)
  assert sorted(os.listdir(folder)) == ['.enformer-outputs.json', 'genome.fa', 'logo.png']
  assert outputs.read_manifest(folder) == {'attribute': ['logo.png'], 'predict': []}
  # Names it did not write are never replaced: the user's file, another command's output.
  for name, owner in (('genome.fa', 'not an output of this command'), ('logo.png', 'attribute')):
    with pytest.raises(FileExistsError, match=owner):
      second.claim(name)
  assert (folder / 'genome.fa').read_text() == '>chr1\nACGT\n'
  with pytest.raises(ValueError, match='not a name inside'):
    second.claim('../elsewhere.txt')


def test_output_folder_ignores_a_malformed_manifest(tmp_path):
  folder = tmp_path / 'out'
  folder.mkdir()
  (folder / 'data.txt').write_text('mine')
  (folder / outputs.MANIFEST).write_text('{"outputs": {"predict": ["data.txt", "../x"]')
  outputs.OutputFolder(folder, 'predict', overwrite=True)  # Unreadable: nothing is known as its.
  assert (folder / 'data.txt').read_text() == 'mine'


def _subcommands(parser, name=''):
  """(name, parser) of every leaf subcommand ('make-dataset synthetic')."""
  import argparse  # pylint: disable=import-outside-toplevel

  children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # pylint: disable=protected-access
  if not children:
    yield name.strip(), parser
    return
  for child, subparser in children[0].choices.items():
    yield from _subcommands(subparser, f'{name} {child}')


def test_every_out_has_overwrite():
  """One rule: a subcommand that writes --out refuses a used one unless --overwrite."""
  from enformer.cli import build_parser  # pylint: disable=import-outside-toplevel

  with_out = {}
  for name, parser in _subcommands(build_parser()):
    options = {option for action in parser._actions for option in action.option_strings}  # pylint: disable=protected-access
    if '--out' in options:
      with_out[name] = '--overwrite' in options
  assert {'predict', 'attribute', 'evaluate', 'export', 'score-variants'} <= set(with_out)
  assert all(with_out.values()), with_out  # Before: evaluate and export had no --overwrite.


# --------------------------------------------------------------------------- predict, attribute


def test_predict_overwrite_keeps_the_users_files(saved_model, tmp_path, capsys):
  project, fasta, before = _project(tmp_path, saved_model)
  args = [
      'predict',
      '--model',
      str(project / 'model'),
      '--fasta',
      fasta,
      '--quiet',
      '--out',
      str(project),
  ]
  assert main(args + ['--region', 'chr1:3,001-4,000']) == 2
  assert 'already holds files' in _one_line_error(capsys, 'predict')
  assert main(args + ['--region', 'chr1:3,001-4,000', '--overwrite']) == 0
  first = _files(project)
  assert before <= first and 'predictions.h5' in first
  assert '0000_chr1_3_001-4_000.png' in first
  # Again with another region: the first run's PNG goes, the user's files stay.
  assert main(args + ['--region', 'chr2:2,001-3,000', '--overwrite']) == 0
  second = _files(project)
  assert before <= second and '0000_chr2_2_001-3_000.png' in second
  assert '0000_chr1_3_001-4_000.png' not in second
  # A file of the user's under an output's name is never replaced.
  os.remove(project / 'predictions.h5')
  manifest = project / outputs.MANIFEST
  manifest.write_text(json.dumps({'outputs': {}}))  # As if predict had not written anything.
  (project / 'predictions.h5').write_text('my notes')
  assert main(args + ['--region', 'chr2:2,001-3,000', '--overwrite']) == 2
  assert 'not an output of this command' in _one_line_error(capsys, 'predict')
  assert (project / 'predictions.h5').read_text() == 'my notes'


@pytest.mark.slow
def test_attribute_overwrite_keeps_the_users_files(saved_model, tmp_path, capsys):
  project, fasta, before = _project(tmp_path, saved_model)
  args = [
      'attribute',
      '--model',
      str(project / 'model'),
      '--fasta',
      fasta,
      '--region',
      'chr1:3,001-4,000',
      '--tracks',
      '0',
      '--quiet',
      '--out',
      str(project),
  ]
  assert main(args) == 2
  assert 'already holds files' in _one_line_error(capsys, 'attribute')
  assert main(args + ['--overwrite']) == 0
  written = _files(project)
  assert before <= written
  assert {'attribution.npz', 'grad_scores.bw', 'tracks.png', 'logo.png'} <= written
  assert main(args + ['--overwrite']) == 0  # Its own earlier outputs are replaced.
  assert _files(project) == written


# --------------------------------------------------------------------------- evaluate, export


@pytest.mark.slow
def test_evaluate_refuses_a_used_out_and_overwrites_only_its_files(saved_model, tmp_path, capsys):
  from enformer.data.synthetic import make_synthetic_dataset  # pylint: disable=import-outside-toplevel

  data = make_synthetic_dataset(
      tmp_path / 'data',
      sequence_length=LENGTH,
      num_tracks=3,
      train_size=2,
      valid_size=2,
      test_size=2,
      seed=3,
  )
  out = tmp_path / 'eval'
  args = [
      'evaluate',
      '--model',
      saved_model,
      '--data',
      str(data),
      '--subset',
      'test',
      '--quiet',
      '--out',
      str(out),
  ]
  assert main(args) == 0
  written = _files(out)
  assert {'per_track.tsv', 'summary.json', 'per_track_by_assay.png'} <= written
  (out / 'notes.txt').write_text('mine')
  assert main(args) == 2  # Before: overwritten silently.
  assert 'already holds files' in _one_line_error(capsys, 'evaluate')
  assert main(args + ['--overwrite']) == 0
  assert _files(out) == written | {'notes.txt'}
  assert sorted(outputs.read_manifest(out)['evaluate']) == sorted(written)


@pytest.mark.slow
def test_export_refuses_a_used_out_and_overwrites_only_an_export(saved_model, tmp_path, capsys):
  out = tmp_path / 'export'
  out.mkdir()
  (out / 'genome.fa').write_text('>chr1\nACGT\n')
  args = ['export', '--model', saved_model, '--out', str(out)]
  assert main(args) == 2  # Before: the SavedModel was written beside the user's file.
  assert 'already holds files' in _one_line_error(capsys, 'export')
  assert main(args + ['--overwrite']) == 2  # Replacing the folder would lose genome.fa.
  assert 'not a SavedModel written by this package' in _one_line_error(capsys, 'export')
  assert os.listdir(out) == ['genome.fa']
  # An earlier export is replaced with --overwrite (before: no --overwrite, always refused).
  import shutil  # pylint: disable=import-outside-toplevel

  shutil.copytree(saved_model, tmp_path / 'again')
  again = ['export', '--model', saved_model, '--out', str(tmp_path / 'again')]
  assert main(again) == 2
  assert '--overwrite' in _one_line_error(capsys, 'export')
  assert main(again + ['--overwrite', '--hub-length', str(2 * LENGTH)]) == 0
  config = json.loads((tmp_path / 'again' / 'enformer_config.json').read_text())
  assert config['sequence_length'] == 2 * LENGTH


def test_demo_overwrite_removes_only_the_demos_files(tmp_path, monkeypatch):
  from enformer.demo import run as demo_run  # pylint: disable=import-outside-toplevel

  out = tmp_path / 'demo'
  (out / 'train').mkdir(parents=True)
  (out / demo_run.STATE_FILE).write_text('{}')
  (out / 'train' / 'config.json').write_text('{}')
  (out / 'my_notes.txt').write_text('mine')

  class Stop(Exception):
    pass

  def stop(*args, **kwargs):
    raise Stop()

  monkeypatch.setattr(demo_run, '_Steps', stop)  # Only the cleaning runs.
  with pytest.raises(Stop):
    demo_run.run_demo(out, quick=True, overwrite=True, log=lambda line: None)
  assert sorted(os.listdir(out)) == ['my_notes.txt']


# --------------------------------------------------------------------------- score-variants


@pytest.fixture
def variant_inputs(tmp_path):
  from enformer.io.fasta import FastaStringExtractor  # pylint: disable=import-outside-toplevel

  fasta = _write_genome(tmp_path / 'genome.fa')
  with FastaStringExtractor(fasta) as extractor:
    import kipoiseq  # pylint: disable=import-outside-toplevel

    refs = {
        pos: extractor.extract(kipoiseq.Interval('chr1', pos - 1, pos)) for pos in (5_000, 6_000)
    }
  path = tmp_path / 'variants.vcf'
  with open(path, 'w') as handle:
    handle.write('##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n')
    for pos, ref in refs.items():
      alt = 'C' if ref != 'C' else 'G'
      handle.write(f'chr1\t{pos}\tv{pos}\t{ref}\t{alt}\t.\tPASS\t.\n')
  return fasta, str(path)


def test_shifts_that_move_the_variant_out_of_the_window_are_refused(
    predictor, variant_inputs, tmp_path, capsys
):
  from enformer.io.fasta import FastaStringExtractor  # pylint: disable=import-outside-toplevel
  from enformer.variants import VariantScorer  # pylint: disable=import-outside-toplevel

  fasta, vcf = variant_inputs
  with FastaStringExtractor(fasta) as extractor:
    # The variant sits at index L/2 - 1 - shift of its window: [-L/2, L/2 - 1] keeps it inside.
    VariantScorer(predictor, extractor, shifts=(-LENGTH // 2, 0, LENGTH // 2 - 1))
    for shifts in ((LENGTH // 2,), (0, -LENGTH // 2 - 1), (5 * LENGTH,)):
      with pytest.raises(ValueError, match='out of its 2,048 bp window'):
        VariantScorer(predictor, extractor, shifts=shifts)
  saved = predictor.source.split(' ', 1)[1]
  assert (
      main(
          [
              'score-variants',
              '--model',
              saved,
              '--fasta',
              fasta,
              '--vcf',
              vcf,
              '--quiet',
              '--shifts',
              str(LENGTH // 2),
              '--out',
              str(tmp_path / 'scores.h5'),
          ]
      )
      == 2
  )
  assert 'out of its 2,048 bp window' in _one_line_error(capsys, 'score-variants')
  assert not os.path.exists(tmp_path / 'scores.h5')


@pytest.mark.slow
def test_score_variants_out_folder(saved_model, variant_inputs, tmp_path, capsys):
  fasta, vcf = variant_inputs
  args = ['score-variants', '--model', saved_model, '--fasta', fasta, '--vcf', vcf, '--quiet']
  folder = tmp_path / 'results'
  assert main(args + ['--out', str(folder) + os.sep]) == 0  # A new folder, as others take.
  assert os.path.isfile(folder / 'scores.h5')
  capsys.readouterr()
  assert main(args + ['--out', str(folder)]) == 2  # An existing folder: its scores.h5 is done.
  err = _one_line_error(capsys, 'score-variants')
  assert 'scores.h5 already exists' in err and '--overwrite' in err
  assert main(args + ['--out', str(folder), '--overwrite']) == 0


# --------------------------------------------------------------------------- --n-value


@pytest.mark.parametrize('value', ['nan', 'inf', '-inf', '-1', '2', 'x'])
def test_n_value_outside_0_1_is_refused(value, capsys):
  common = ['--model', 'm', '--fasta', 'f.fa', '--out', 'o', f'--n-value={value}']
  for args in (
      ['predict', '--region', 'chr1:1-10'],
      ['attribute', '--region', 'chr1:1-10', '--tracks', '0'],
      ['score-variants', '--vcf', 'v.vcf'],
  ):
    with pytest.raises(SystemExit) as raised:  # Before: nan, inf, -1 and 2 were taken.
      main(args + common)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert 'argument --n-value: must be a finite number in [0, 1]' in err


def test_n_value_library_checks(predictor, tmp_path):
  from enformer.inference.regions import predict_to_files  # pylint: disable=import-outside-toplevel
  from enformer.io.bed import parse_region  # pylint: disable=import-outside-toplevel
  from enformer.sequence import check_neutral_value, one_hot_encode  # pylint: disable=import-outside-toplevel

  assert check_neutral_value(0) == 0.0 and check_neutral_value(0.25) == 0.25
  for value in (float('nan'), float('inf'), -1, 2, 'a'):
    with pytest.raises(ValueError, match=r'in \[0, 1\]'):
      check_neutral_value(value)
    with pytest.raises(ValueError, match=r'in \[0, 1\]'):
      one_hot_encode('ACGTN', neutral_value=value)
  fasta = _write_genome(tmp_path / 'genome.fa')
  with pytest.raises(ValueError, match=r'in \[0, 1\]'):
    predict_to_files(
        predictor,
        fasta,
        [parse_region('chr1:3,001-4,000')],
        str(tmp_path / 'o'),
        neutral_value=float('nan'),
        progress=False,
    )
  assert not os.path.exists(tmp_path / 'o')


def test_observed_tracks_are_resolved_by_the_library(predictor, tmp_path):
  """`PredictionOutputs.observed` takes track selectors: resolved with the targets table, they
  must be among the chosen `tracks` and, with none chosen, are the plotted tracks."""
  import pyBigWig  # pylint: disable=import-outside-toplevel
  from enformer.inference.regions import PredictionOutputs, predict_to_files  # pylint: disable=import-outside-toplevel
  from enformer.io.bed import parse_region  # pylint: disable=import-outside-toplevel
  from enformer.io.targets import parse_track_files  # pylint: disable=import-outside-toplevel

  assert parse_track_files(['5=a.bw', 'CAGE:x=b.bw']) == {'5': 'a.bw', 'CAGE:x': 'b.bw'}
  with pytest.raises(ValueError, match='`observed` takes TRACK=BIGWIG'):
    parse_track_files(['a.bw'])
  fasta = _write_genome(tmp_path / 'genome.fa')
  observed = str(tmp_path / 'observed.bw')
  bw = pyBigWig.open(observed, 'w')
  bw.addHeader(list(CHROM_SIZES.items()))
  bw.addEntries(['chr1'], [0], ends=[CHROM_SIZES['chr1']], values=[2.0])
  bw.close()
  regions = [parse_region('chr1:3,001-4,000')]
  outputs = PredictionOutputs(bigwig=False, max_plots=1, observed={'1': observed})
  with pytest.raises(ValueError, match='`observed` tracks \\[1\\] are not among `tracks`'):
    predict_to_files(
        predictor, fasta, regions, str(tmp_path / 'a'), tracks=[0], outputs=outputs, progress=False
    )
  summary = predict_to_files(
      predictor, fasta, regions, str(tmp_path / 'b'), outputs=outputs, progress=False
  )
  assert summary['plotted_tracks'] == [1] and len(summary['plots']) == 1


# --------------------------------------------------------------------------- --sequence-length


def test_sequence_length_with_a_saved_model(saved_model, tmp_path, capsys):
  from enformer import load_model  # pylint: disable=import-outside-toplevel

  assert load_model(saved_model, sequence_length=LENGTH).sequence_length == LENGTH
  with pytest.raises(ValueError, match='defines its own input length'):
    load_model(saved_model, sequence_length=2 * LENGTH)
  fasta = _write_genome(tmp_path / 'genome.fa')
  assert (
      main(
          [
              'predict',
              '--model',
              saved_model,
              '--fasta',
              fasta,
              '--region',
              'chr1:3,001-4,000',
              '--sequence-length',
              str(2 * LENGTH),
              '--quiet',
              '--out',
              str(tmp_path / 'out'),
          ]
      )
      == 2
  )
  err = _one_line_error(capsys, 'predict')
  assert 'takes 2,048 bp inputs' in err and 'defines its own input length' in err
