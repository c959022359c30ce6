"""`enformer demo`: the workflows end to end, offline, on a synthetic genome with planted motifs.

`run_demo(out_dir)` runs these steps, each writing into its own folder of `out_dir`:

  genome     synthetic genomes (`enformer.data.synthetic`): FASTA with several chromosomes,
             planted motif sites (BED) and signal tracks (bigWig) that respond to the motifs
             (human: 4 tracks; mouse: 2 tracks that respond like human tracks 0-1)
  data       Basenji2-layout data sets (train / valid / test split by chromosome)
  train      an Enformer of preset 'tiny' (with max pooling; --quick: the same blocks 8x
             narrower, 48 channels) trained with `enformer.training.train` (deterministic:
             the same seed gives the same model on one machine), human and mouse batches
             alternating (checkpoints,
             best-by-validation model, TensorBoard logs). Human tracks 0-1 and both mouse tracks
             respond to the GC-rich CTCF and SP1 motifs, which random DNA hardly ever nearly
             matches: the network learns them within ~100 steps. Human tracks 2-3 respond mainly
             to AP1 and CREB, whose near matches (1-2 mismatches) occur by chance several times as
             often as the planted sites: they must be learned exactly and come later (hundreds of
             steps), so the human mean Pearson R of a short run is lower than the mouse one.
  export     the best checkpoint as a TF-Hub-compatible SavedModel (`enformer.export_hub_module`):
             like DeepMind's module it takes twice the input length and centre-crops it
  evaluate   per-track Pearson R on the held-out test chromosome, against a shuffled-label
             baseline (the same predictions correlated with targets permuted over sequences and
             bins)
  predict    `enformer predict` on a test-chromosome region: predictions, bigWigs, track plot
  attribute  `enformer attribute`: gradient × input of a predicted peak, plots, and how often the
             top-scoring bases fall inside planted motifs
  variants   a VCF of SNVs that destroy planted motifs ("hit") and SNVs far from any motif
             ("miss"), scored with `enformer.variants.score_vcf` (sad.h5 with SAD and SAR); a
             z-score/PCA transform fitted on them
  genes      a GTF of genes on planted motifs of the test chromosome; `score-genes` of the
             variants (sed.h5, quantiles against the far-from-motif variants) and `predict --gtf`
             (expression per gene vs the observed signal) (`enformer.demo.genes`)
  motifs     `enformer motifs` on the planted sites of the held-out chromosomes: TF-MoDISco
             patterns and their TOMTOM matches in JASPAR (`enformer.demo.motifs`)
  haplotypes `enformer predict-haplotypes --gtf`: a phased VCF of four samples carrying the
             motif-destroying variants (0|0, 0|1, 1|0, 1|1) at genes on their sites
             (`enformer.demo.haplotypes`)
  report     index.html linking every file and plot, with the key numbers and timings

Steps are resumable: a finished step records its results in `demo.json` and is skipped when
run again while its outputs exist; a step that ran again makes the following steps run again.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import kipoiseq
import numpy as np
import pandas as pd
import pyfaidx
from sklearn.metrics import roc_auc_score

from enformer.data import synthetic
from enformer.data.basenji import DatasetSettings, get_dataset
from enformer.demo.genes import genes_step
from enformer.demo.haplotypes import haplotypes_step
from enformer.demo.motifs import motifs_step
from enformer.demo.report import key_numbers, write_demo_report
from enformer.inference import export_hub_module, load_model
from enformer.interpret.workflow import attribute_to_files
from enformer.io.outputs import remove_entries
from enformer.io.targets import read_targets
from enformer.inference.regions import PredictionOutputs, predict_to_files
from enformer.plots.demo import plot_hit_vs_miss, plot_pearson_per_track
from enformer.training import metrics
from enformer.training.loop import train
from enformer.variants import ScoreTransform, ScoringSettings, score_vcf

PathLike = Union[str, os.PathLike]
STATE_FILE = 'demo.json'
REPORT_FILE = 'index.html'
# Everything the demo writes into its folder: the state, the report and one folder per step.
STEP_FOLDERS = (
    'genome',
    'data',
    'train',
    'export',
    'evaluate',
    'predict',
    'attribute',
    'variants',
    'genes',
    'motifs',
    'haplotypes',
)
DEFAULT_OUT_DIR = 'enformer_demo'
ORGANISMS = ('human', 'mouse')


MODEL_PRESET = 'tiny'
# Max pooling (as in DeepMind's training notebook) instead of the preset's attention pooling: when
# the demo was tuned, a training step of the tiny model with attention pooling took ~5x longer on
# CPU (its pooling-logit weight gradient was slow; SoftmaxPooling1D now computes it as a 2-D
# matmul, about 4x faster). Trained for the same 120 steps on the quick data, both reached the
# same test Pearson R; the demo's step counts and timings are measured with max pooling.
DEFAULT_MODEL_ARGS: Dict[str, Any] = {'pooling_type': 'max'}


@dataclasses.dataclass(frozen=True)
class DemoSettings:
  """Sizes of one demo mode (`FULL` or `QUICK`).

  Attributes:
    sequence_length: bp per training record (the network's input length; multiple of 128).
    chrom_sizes: organism → chromosome → length of the synthetic genome.
    num_tracks: organism → signal tracks.
    train_size, valid_size, test_size: records per subset and organism.
    num_steps, batch_size, warmup_steps, learning_rate: training.
    eval_every: steps between validations (the best model by validation is kept).
    checkpoint_every: steps between checkpoints, from which an interrupted training resumes
      (deterministic training retraces its step at each).
    variants_per_class: SNVs that destroy motifs, and as many far from motifs.
    model_args: `Enformer` arguments overriding preset `MODEL_PRESET` (default: max pooling,
      see `DEFAULT_MODEL_ARGS`).
  """

  name: str
  sequence_length: int
  chrom_sizes: Dict[str, Dict[str, int]]
  num_tracks: Dict[str, int]
  train_size: int
  valid_size: int
  test_size: int
  num_steps: int
  batch_size: int
  warmup_steps: int
  learning_rate: float
  eval_every: int
  checkpoint_every: int
  variants_per_class: int
  model_args: Dict[str, Any] = dataclasses.field(default_factory=lambda: dict(DEFAULT_MODEL_ARGS))

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


FULL = DemoSettings(
    name='full',
    sequence_length=2048,
    chrom_sizes={
        'human': {'chr1': 200_000, 'chr2': 180_000, 'chr3': 60_000, 'chr4': 100_000},
        'mouse': {'chr1': 150_000, 'chr2': 100_000, 'chr3': 40_000, 'chr4': 60_000},
    },
    num_tracks={'human': 4, 'mouse': 2},
    train_size=1024,
    valid_size=32,
    test_size=96,
    num_steps=1000,
    batch_size=16,
    warmup_steps=50,
    learning_rate=2e-3,
    eval_every=250,
    checkpoint_every=250,
    variants_per_class=24,
)

# --quick: 1,024 bp inputs (8 bins) and the tiny model's blocks at 48 channels (conv tower in
# multiples of 16; 1/12 of its training step) at twice the learning rate. The CTCF/SP1 tracks are
# learned; the AP1/CREB ones usually need more (see the module docstring).
QUICK_MODEL_ARGS: Dict[str, Any] = dict(
    DEFAULT_MODEL_ARGS, channels=48, num_heads=2, conv_tower_divisible_by=16
)
QUICK = DemoSettings(
    name='quick',
    sequence_length=1024,
    chrom_sizes={
        'human': {'chr1': 100_000, 'chr2': 100_000, 'chr3': 30_000, 'chr4': 60_000},
        'mouse': {'chr1': 60_000, 'chr2': 60_000, 'chr3': 20_000, 'chr4': 30_000},
    },
    num_tracks={'human': 4, 'mouse': 2},
    train_size=256,
    valid_size=16,
    test_size=64,
    num_steps=500,
    batch_size=8,
    warmup_steps=50,
    learning_rate=4e-3,
    eval_every=250,
    checkpoint_every=500,
    variants_per_class=10,
    model_args=dict(QUICK_MODEL_ARGS),
)

TEST_CHROM = 'chr4'  # The synthetic data sets hold chr4 out as the test subset.


# --------------------------------------------------------------------------- step bookkeeping


@dataclasses.dataclass
class StepRecord:
  """One finished step: its outputs (paths relative to the demo folder), numbers and time."""

  name: str
  outputs: List[str]
  results: Dict[str, Any]
  seconds: float
  reused: bool = False


class _Steps:
  """Runs steps in order, reusing finished ones (see module docstring)."""

  def __init__(
      self, out_dir: pathlib.Path, settings: DemoSettings, seed: int, log: Callable[[str], None]
  ):
    self.out_dir = out_dir
    self.log = log
    self.path = out_dir / STATE_FILE
    self.state: Dict[str, Any] = {'settings': settings.to_dict(), 'seed': seed, 'steps': {}}
    if self.path.exists():
      previous = json.loads(self.path.read_text())
      if previous.get('settings') != self.state['settings'] or previous.get('seed') != seed:
        mode = previous.get('settings', {}).get('name', '?')
        raise ValueError(
            f'{out_dir} holds a demo made with other settings (mode {mode!r}, seed '
            f'{previous.get("seed")}); pass --overwrite to redo it, or choose another --out.'
        )
      self.state['steps'] = previous.get('steps', {})
    self.records: Dict[str, StepRecord] = {}
    self._upstream_ran = False

  def _save(self) -> None:
    tmp = self.path.with_suffix('.tmp')
    tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True, default=_json_default))
    os.replace(tmp, self.path)

  def run(
      self,
      name: str,
      folder: str,
      function: Callable[[pathlib.Path, bool], Tuple[Dict[str, Any], List[pathlib.Path]]],
  ) -> StepRecord:
    """Runs `function(step_dir, fresh) -> (results, output paths)` unless already done.

    `fresh` is True when an earlier step ran again in this call: the step folder is emptied
    first, since its old contents were made from other inputs. Otherwise a half-finished step
    keeps its folder so that it can resume (training continues from its last checkpoint).
    """
    step_dir = self.out_dir / folder
    done = self.state['steps'].get(name)
    if (
        done
        and not self._upstream_ran
        and all((self.out_dir / p).exists() for p in done['outputs'])
    ):
      record = StepRecord(name, done['outputs'], done['results'], done['seconds'], reused=True)
      self.log(f'[{name}] done before ({done["seconds"]:.0f} s then); reusing {folder}/')
      self.records[name] = record
      return record
    if self._upstream_ran and step_dir.exists():
      shutil.rmtree(step_dir)
    step_dir.mkdir(parents=True, exist_ok=True)
    self.log(f'[{name}] ...')
    began = time.perf_counter()
    results, outputs = function(step_dir, self._upstream_ran)
    seconds = time.perf_counter() - began
    relative = [os.path.relpath(p, self.out_dir) for p in outputs]
    missing = [p for p in relative if not (self.out_dir / p).exists()]
    if missing:
      raise RuntimeError(f'Step {name} did not write {missing}.')
    self.state['steps'][name] = {'outputs': relative, 'results': results, 'seconds': seconds}
    self._save()
    self._upstream_ran = True
    record = StepRecord(name, relative, results, seconds)
    self.records[name] = record
    self.log(f'[{name}] {seconds:.1f} s')
    return record


def _json_default(value):
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.floating,)):
    return float(value)
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, pathlib.Path):
    return str(value)
  raise TypeError(f'{type(value).__name__} is not JSON serialisable')


def _command(argv: Sequence[Any]) -> str:
  return 'enformer ' + ' '.join(str(a) for a in argv)


# --------------------------------------------------------------------------- the steps


def _genome_step(settings: DemoSettings, seed: int):
  def step(step_dir: pathlib.Path, fresh: bool):
    results, outputs = {}, []
    for offset, organism in enumerate(ORGANISMS):
      genome = synthetic.make_synthetic_genome(
          step_dir / organism,
          chrom_sizes=settings.chrom_sizes[organism],
          num_tracks=settings.num_tracks[organism],
          seed=seed + 101 * offset,
      )
      results[organism] = dict(
          fasta=genome.fasta,
          motif_sites=genome.motif_sites_bed,
          targets=genome.targets,
          bigwigs=genome.bigwigs,
          num_sites=len(genome.motif_sites),
          motifs=genome.motifs,
          chrom_sizes=genome.chrom_sizes,
          track_weights={
              str(k): {m: float(w) for m, w in row.items() if w}
              for k, row in genome.track_weights.iterrows()
          },
      )
      outputs += [genome.fasta, genome.motif_sites_bed, genome.targets, *genome.bigwigs]
    return _stringify(results), outputs

  return step


def _data_step(settings: DemoSettings, seed: int, genomes: Dict[str, Any], progress: bool):
  def step(step_dir: pathlib.Path, fresh: bool):
    results, outputs = {}, []
    for offset, organism in enumerate(ORGANISMS):
      genome = synthetic.make_synthetic_genome(
          pathlib.Path(genomes[organism]['fasta']).parent,
          chrom_sizes=settings.chrom_sizes[organism],
          num_tracks=settings.num_tracks[organism],
          seed=seed + 101 * offset,
          overwrite=False,
      )
      path = synthetic.make_synthetic_dataset(
          step_dir / organism,
          genome=genome,
          sequence_length=settings.sequence_length,
          train_size=settings.train_size,
          valid_size=settings.valid_size,
          test_size=settings.test_size,
          seed=seed + 101 * offset,
          overwrite=True,
          progress=progress,
      )
      results[organism] = dict(
          path=path,
          records={
              'train': settings.train_size,
              'valid': settings.valid_size,
              'test': settings.test_size,
          },
      )
      outputs += [path / 'statistics.json', path / 'sequences.bed', path / 'targets.txt']
    return _stringify(results), outputs

  return step


def _train_step(settings: DemoSettings, seed: int, data: Dict[str, Any], progress: bool):
  def step(step_dir: pathlib.Path, fresh: bool):
    result = train(
        run_dir=str(step_dir),
        preset=MODEL_PRESET,
        model_args=dict(settings.model_args),
        data={organism: data[organism]['path'] for organism in ORGANISMS},
        batch_size=settings.batch_size,
        num_steps=settings.num_steps,
        warmup_steps=settings.warmup_steps,
        learning_rate=settings.learning_rate,
        eval_every=settings.eval_every,
        checkpoint_every=settings.checkpoint_every,
        keep_checkpoints=2,
        seed=seed,
        export_hub=False,
        progress=progress,
        deterministic=True,
    )
    best = result.best or {}
    best_prefix = step_dir / 'best' / 'checkpoint' / 'model'
    config = json.loads((step_dir / 'config.json').read_text())
    results = dict(
        steps=result.step,
        steps_per_second=result.steps_per_second,
        resumed_from=result.resumed_from,
        strategy=result.strategy,
        validation=result.validation,
        best_step=best.get('step'),
        best_score=best.get('score'),
        best_checkpoint=best_prefix,
        model_config=config['model_config'],
        final_losses={
            head: [record[2] for record in result.losses if record[1] == head][-1:]
            for head in ORGANISMS
        },
    )
    outputs = [step_dir / 'config.json', pathlib.Path(str(best_prefix) + '.index')]
    return _stringify(results), outputs

  return step


def _export_step(settings: DemoSettings, trained: Dict[str, Any]):
  def step(step_dir: pathlib.Path, fresh: bool):
    export_dir = step_dir / 'enformer_model'
    if export_dir.exists():  # A half-written export from an interrupted run.
      shutil.rmtree(export_dir)
    predictor = load_model(
        trained['best_checkpoint'],
        sequence_length=settings.sequence_length,
        **trained['model_config'],
    )
    export_hub_module(
        predictor.model,
        str(export_dir),
        sequence_length=2 * settings.sequence_length,
        model_sequence_length=settings.sequence_length,
    )
    results = dict(
        path=export_dir,
        sequence_length=2 * settings.sequence_length,
        model_sequence_length=settings.sequence_length,
        heads=predictor.heads,
        output_length=predictor.output_length,
        parameters=int(sum(np.prod(v.shape) for v in predictor.model.variables)),
    )
    return _stringify(results), [export_dir / 'saved_model.pb']

  return step


def _evaluate_step(settings: DemoSettings, seed: int, data: Dict[str, Any], model_path: str):
  def step(step_dir: pathlib.Path, fresh: bool):

    predictor = load_model(model_path)
    pad = (predictor.sequence_length - settings.sequence_length) // 2
    rng = np.random.default_rng(seed)
    results, outputs, tables = {}, [], {}
    for organism in ORGANISMS:
      predictions, targets = [], []
      for batch in get_dataset(
          data[organism]['path'], 'test', batch_size=8, settings=DatasetSettings(deterministic=True)
      ):
        sequence = np.pad(batch['sequence'].numpy(), ((0, 0), (pad, pad), (0, 0)))  # N context
        predictions.append(predictor.predict_on_batch(sequence)[organism])
        targets.append(batch['target'].numpy())
      predictions = np.concatenate(predictions)  # [S, T, N]
      targets = np.concatenate(targets)
      num_tracks = targets.shape[-1]
      flat_predictions = predictions.reshape(-1, num_tracks)
      flat_targets = targets.reshape(-1, num_tracks)
      learned = metrics.TrackCorrelation(num_tracks)
      learned.update_from_values(flat_targets, flat_predictions)
      # Shuffled-label baseline: the same predictions against targets whose (sequence, bin)
      # positions are permuted, i.e. a model that knows the track values but not where they go.
      shuffled = metrics.TrackCorrelation(num_tracks)
      shuffled.update_from_values(
          flat_targets[rng.permutation(len(flat_targets))], flat_predictions
      )
      table = read_targets(data[organism]['path'] + '/targets.txt')
      frame = pd.DataFrame(
          {
              'track': np.arange(num_tracks),
              'identifier': table['identifier'].astype(str),
              'description': table['description'].astype(str),
              'pearson_r': learned.pearson_r(),
              'r2': learned.r2(),
              'shuffled_pearson_r': shuffled.pearson_r(),
          }
      )
      path = step_dir / f'pearson_{organism}.tsv'
      frame.to_csv(path, sep='\t', index=False, float_format='%.4f')
      tables[organism] = frame
      outputs.append(path)
      results[organism] = dict(
          sequences=len(targets),
          bins=targets.shape[1],
          tsv=path,
          pearson_r=frame['pearson_r'].tolist(),
          shuffled_pearson_r=frame['shuffled_pearson_r'].tolist(),
          mean_pearson_r=float(np.nanmean(frame['pearson_r'])),
          mean_shuffled_pearson_r=float(np.nanmean(frame['shuffled_pearson_r'])),
          mean_r2=float(np.nanmean(frame['r2'])),
          labels=frame['description'].tolist(),
      )
    plot = step_dir / 'pearson.png'
    plot_pearson_per_track(tables, plot)
    outputs.append(plot)
    results['plot'] = plot
    return _stringify(results), outputs

  return step


def _strongest_peak(
    genome_dir: str, chrom: str, length: int, sequence_length: int, track: int
) -> Tuple[int, int]:
  """(input start, peak bin) of the input window on `chrom` with the highest binned signal."""
  with np.load(pathlib.Path(genome_dir) / 'signal.npz') as arrays:
    signal = arrays[chrom][:, track]
  bins = signal[: len(signal) // 128 * 128].reshape(-1, 128).mean(1)
  half = sequence_length // 256
  peak = int(np.argmax(bins[half : len(bins) - half])) + half
  start = int(np.clip(peak * 128 + 64 - sequence_length // 2, 0, length - sequence_length))
  return start, peak - start // 128


def _predict_step(
    settings: DemoSettings, genomes: Dict[str, Any], model_path: str, export: Dict[str, Any]
):
  def step(step_dir: pathlib.Path, fresh: bool):
    human = genomes['human']
    start, _ = _strongest_peak(
        os.path.dirname(human['fasta']),
        TEST_CHROM,
        human['chrom_sizes'][TEST_CHROM],
        export['sequence_length'],
        0,
    )
    region = kipoiseq.Interval(TEST_CHROM, start, start + export['sequence_length'])
    region_text = f'{TEST_CHROM}:{start + 1}-{start + export["sequence_length"]}'
    predictor = load_model(model_path)
    tracks = list(range(predictor.heads['human']))
    outputs = PredictionOutputs(plot_tracks=tracks, observed=dict(enumerate(human['bigwigs'])))
    written = predict_to_files(
        predictor,
        human['fasta'],
        [region],
        str(step_dir),
        head='human',
        targets=read_targets(human['targets']),
        outputs=outputs,
        progress=False,
    )
    outputs = sorted(p for p in step_dir.rglob('*') if p.is_file())
    results = dict(
        region=region_text,
        plots=written['plots'],
        files=outputs,
        predictions=written['predictions'],
        command=_command(
            [
                'predict',
                '--model',
                model_path,
                '--fasta',
                human['fasta'],
                '--region',
                region_text,
                '--targets',
                human['targets'],
                '--head',
                'human',
                '--out',
                step_dir,
            ]
        ),
    )
    return _stringify(results), outputs

  return step


def _attribute_step(genomes: Dict[str, Any], model_path: str, export: Dict[str, Any]):
  def step(step_dir: pathlib.Path, fresh: bool):
    human = genomes['human']
    model_length = export['model_sequence_length']
    start, peak_bin = _strongest_peak(
        os.path.dirname(human['fasta']),
        TEST_CHROM,
        human['chrom_sizes'][TEST_CHROM],
        model_length,
        0,
    )
    # The exported model takes 2× the length and sees the centre: centre the input likewise.
    outer = export['sequence_length']
    region = (
        f'{TEST_CHROM}:{start - (outer - model_length) // 2 + 1}-'
        f'{start - (outer - model_length) // 2 + outer}'
    )
    bins = f'{max(peak_bin - 1, 0)}-{min(peak_bin + 1, export["output_length"] - 1)}'
    argv = [
        'attribute',
        '--model',
        model_path,
        '--fasta',
        human['fasta'],
        '--region',
        region,
        '--targets',
        human['targets'],
        '--head',
        'human',
        '--tracks',
        '0',
        '--bins',
        bins,
        '--method',
        'grad',
        '--out',
        step_dir,
    ]
    # What that command runs:
    attribute_to_files(
        load_model(model_path),
        human['fasta'],
        region,
        str(step_dir),
        tracks='0',
        bins=bins,
        head='human',
        targets=read_targets(human['targets']),
        method='grad',
        progress=False,
    )
    with np.load(step_dir / 'attribution.npz') as arrays:
      scores = arrays['scores']
      chrom, input_start = str(arrays['chrom']), int(arrays['start'])
    sites = pd.read_csv(
        human['motif_sites'],
        sep='\t',
        header=None,
        names=['chrom', 'start', 'end', 'motif', 'score', 'strand'],
    )
    inside = np.zeros(len(scores), bool)
    for row in sites[sites['chrom'] == chrom].itertuples():
      lo, hi = max(row.start - input_start, 0), min(row.end - input_start, len(scores))
      if lo < hi:
        inside[lo:hi] = True
    seen = scores != 0  # Bases outside the network's centre window have exactly zero score.
    top = np.argsort(-np.abs(np.where(seen, scores, 0)))[: max(int(0.01 * seen.sum()), 10)]
    top_fraction = float(inside[top].mean())
    base_rate = float(inside[seen].mean())
    outputs = sorted(p for p in step_dir.rglob('*') if p.is_file())
    results = dict(
        region=region,
        bins=bins,
        command=_command(argv),
        top_bases=len(top),
        top_in_motifs=top_fraction,
        motif_base_rate=base_rate,
        enrichment=top_fraction / base_rate if base_rate else float('nan'),
        plots=[p for p in outputs if p.suffix == '.png'],
        files=outputs,
    )
    return _stringify(results), outputs

  return step


def write_motif_vcf(
    path: PathLike,
    fasta: PathLike,
    motif_sites: PathLike,
    chrom: str,
    per_class: int,
    seed: int = 0,
    min_distance: int = 256,
) -> Any:
  """Writes a VCF of SNVs that destroy planted motifs ("hit") and SNVs far from motifs ("miss").

  Hit variants change the central base of a planted motif site; miss variants sit at least
  `min_distance` bp from every site. INFO holds CLASS=hit|miss and, for hits, MOTIF=<name>.

  Args:
    path: VCF to write.
    fasta: the genome (REF alleles are read from it).
    motif_sites: BED of planted sites (chrom, start, end, name, score, strand).
    chrom: chromosome to draw variants from (the held-out test chromosome).
    per_class: variants per class.
    seed: random seed.
    min_distance: smallest distance of a miss variant to any motif site.

  Returns:
    DataFrame of the variants (chrom, pos (1-based), id, ref, alt, class, motif).
  """
  rng = np.random.default_rng(seed)
  sites = pd.read_csv(
      motif_sites,
      sep='\t',
      header=None,
      names=['chrom', 'start', 'end', 'motif', 'score', 'strand'],
  )
  sites = sites[sites['chrom'] == chrom].reset_index(drop=True)
  with pyfaidx.Fasta(os.fspath(fasta), sequence_always_upper=True) as genome:
    length = len(genome[chrom])
    sequence = str(genome[chrom][:])
  if len(sites) < per_class:
    raise ValueError(f'{chrom} has only {len(sites)} motif sites; ask for fewer variants.')
  rows = []
  for site in sites.iloc[np.sort(rng.choice(len(sites), per_class, replace=False))].itertuples():
    pos0 = (site.start + site.end) // 2
    ref = sequence[pos0]
    alt = str(rng.choice([b for b in 'ACGT' if b != ref]))
    rows.append((chrom, pos0 + 1, f'hit_{site.motif}_{pos0 + 1}', ref, alt, 'hit', site.motif))
  distance = np.full(length, np.iinfo(np.int64).max)
  positions = np.arange(length)
  for site in sites.itertuples():
    distance = np.minimum(
        distance, np.maximum(np.maximum(site.start - positions, positions - (site.end - 1)), 0)
    )
  far = np.nonzero(distance >= min_distance)[0]
  if len(far) < per_class:
    raise ValueError(
        f'Fewer than {per_class} positions on {chrom} lie {min_distance} bp from '
        'every motif; lower min_distance.'
    )
  for pos0 in np.sort(rng.choice(far, per_class, replace=False)):
    ref = sequence[pos0]
    alt = str(rng.choice([b for b in 'ACGT' if b != ref]))
    rows.append((chrom, int(pos0) + 1, f'miss_{int(pos0) + 1}', ref, alt, 'miss', '.'))
  variants = pd.DataFrame(rows, columns=['chrom', 'pos', 'id', 'ref', 'alt', 'class', 'motif'])
  variants = variants.sort_values('pos').reset_index(drop=True)
  with open(path, 'w') as handle:
    handle.write('##fileformat=VCFv4.2\n')
    handle.write(f'##contig=<ID={chrom},length={length}>\n')
    handle.write(
        '##INFO=<ID=CLASS,Number=1,Type=String,Description="hit: destroys a planted '
        'motif; miss: at least %d bp from every motif">\n' % min_distance
    )
    handle.write('##INFO=<ID=MOTIF,Number=1,Type=String,Description="Motif the variant hits">\n')
    handle.write('#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n')
    for v in variants.itertuples():
      info = f'CLASS={v[6]}' + (f';MOTIF={v.motif}' if v.motif != '.' else '')
      handle.write(f'{v.chrom}\t{v.pos}\t{v.id}\t{v.ref}\t{v.alt}\t.\tPASS\t{info}\n')
  return variants


def _variants_step(settings: DemoSettings, seed: int, genomes: Dict[str, Any], model_path: str):
  def step(step_dir: pathlib.Path, fresh: bool):
    human = genomes['human']
    vcf = step_dir / 'motif_variants.vcf'
    variants = write_motif_vcf(
        vcf,
        human['fasta'],
        human['motif_sites'],
        TEST_CHROM,
        settings.variants_per_class,
        seed=seed,
    )
    out = step_dir / 'sad.h5'
    if out.exists():  # Scored by an interrupted earlier run (its record is missing).
      out.unlink()
    predictor = load_model(model_path)
    scoring = ScoringSettings(
        head='human', targets=human['targets'], batch_size=8, model_id=model_path
    )
    result = score_vcf(predictor, human['fasta'], vcf, out, settings=scoring, tsv=True)
    sad = result.scores.scores['SAD'].astype(np.float64)  # [V, tracks]
    transform = ScoreTransform.fit(
        sad, num_components=min(4, sad.shape[1]), target_ids=result.scores.target_ids
    )
    transform_path = step_dir / 'transform.npz'
    transform.save(transform_path)
    by_id = dict(zip(variants['id'], variants['class']))
    classes = np.array([by_id[str(s)] for s in result.scores.snp])
    strength = np.abs(sad).max(axis=1)  # Largest |SAD| over tracks.
    hit, miss = strength[classes == 'hit'], strength[classes == 'miss']
    auroc = float(roc_auc_score(classes == 'hit', strength))
    order = np.argsort(-strength)[:5]
    top = [
        dict(
            id=str(result.scores.snp[i]),
            pos=int(result.scores.pos[i]),
            ref=str(result.scores.ref[i]),
            alt=str(result.scores.alt[i]),
            variant_class=str(classes[i]),
            track=int(np.abs(sad[i]).argmax()),
            sad=float(sad[i, np.abs(sad[i]).argmax()]),
        )
        for i in order
    ]
    plot = step_dir / 'sad_hit_vs_miss.png'
    plot_hit_vs_miss(hit, miss, plot)
    results = dict(
        vcf=vcf,
        sad_h5=out,
        tsv=result.paths.get('tsv', [None])[0],
        transform=transform_path,
        variants=len(classes),
        hit_mean_abs_sad=float(hit.mean()),
        miss_mean_abs_sad=float(miss.mean()),
        ratio=float(hit.mean() / miss.mean()) if miss.mean() else float('inf'),
        hit_median_abs_sad=float(np.median(hit)),
        miss_median_abs_sad=float(np.median(miss)),
        median_ratio=(float(np.median(hit) / np.median(miss)) if np.median(miss) else float('inf')),
        auroc=auroc,
        top=top,
        seconds=result.seconds,
        plot=plot,
        summary=result.summary.format(),
        command=_command(
            [
                'score-variants',
                '--model',
                model_path,
                '--fasta',
                human['fasta'],
                '--vcf',
                vcf,
                '--targets',
                human['targets'],
                '--out',
                out,
                '--tsv',
            ]
        ),
    )
    outputs = [vcf, out, transform_path, plot] + [
        pathlib.Path(p) for p in result.paths.get('tsv', [])
    ]
    return _stringify(results), outputs

  return step


def _stringify(value):
  """Paths → str, numpy scalars → Python, recursively (for demo.json)."""
  if isinstance(value, dict):
    return {str(k): _stringify(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_stringify(v) for v in value]
  if isinstance(value, pathlib.Path):
    return str(value)
  if isinstance(value, np.generic):
    return value.item()
  return value


# --------------------------------------------------------------------------- entry point


def run_demo(
    out_dir: PathLike = DEFAULT_OUT_DIR,
    *,
    quick: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    log: Optional[Callable[[str], None]] = None,
    progress: bool = True,
) -> pathlib.Path:
  """Runs (or resumes) the demo in `out_dir` and returns the path of its index.html report.

  Args:
    out_dir: output folder (created). An existing folder must be a demo folder (holding
      demo.json) or empty.
    quick: smaller genome, shorter sequences and training (for CI; about a fifth of the time).
    overwrite: delete the demo's previous results in `out_dir` (its state, report and step
      folders; other files stay) and redo every step.
    seed: random seed of genome, data, training and variants.
    log: where progress lines and, at the end, the key numbers go (default: print to stderr).
    progress: progress bars while writing data and training.

  Returns:
    Path of index.html.
  """
  log = log or (lambda line: print(line, file=sys.stderr, flush=True))
  out_dir = pathlib.Path(out_dir).resolve()
  settings = QUICK if quick else FULL
  if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / STATE_FILE).exists():
    raise FileExistsError(
        f'{out_dir} exists and is not a demo folder (no {STATE_FILE}); choose '
        'another --out or remove it.'
    )
  if overwrite and (out_dir / STATE_FILE).exists():
    remove_entries(out_dir, (STATE_FILE, REPORT_FILE) + STEP_FOLDERS)
  out_dir.mkdir(parents=True, exist_ok=True)
  began = time.perf_counter()
  steps = _Steps(out_dir, settings, seed, log)
  genomes = steps.run('genome', 'genome', _genome_step(settings, seed)).results
  data = steps.run('data', 'data', _data_step(settings, seed, genomes, progress)).results
  trained = steps.run('train', 'train', _train_step(settings, seed, data, progress)).results
  export = steps.run('export', 'export', _export_step(settings, trained)).results
  model_path = export['path']
  steps.run('evaluate', 'evaluate', _evaluate_step(settings, seed, data, model_path))
  steps.run('predict', 'predict', _predict_step(settings, genomes, model_path, export))
  steps.run('attribute', 'attribute', _attribute_step(genomes, model_path, export))
  steps.run('variants', 'variants', _variants_step(settings, seed, genomes, model_path))
  steps.run(
      'genes',
      'genes',
      genes_step(genomes, steps.records['variants'].results, model_path, TEST_CHROM),
  )
  steps.run('motifs', 'motifs', motifs_step(genomes, model_path))
  steps.run(
      'haplotypes',
      'haplotypes',
      haplotypes_step(
          genomes, steps.records['variants'].results, steps.records['genes'].results, model_path
      ),
  )
  total = time.perf_counter() - began
  path = write_demo_report(out_dir, settings.to_dict(), steps.records, total)
  log(f'[report] {path}  ({total:.0f} s in this run)')
  for line in key_numbers({name: record.results for name, record in steps.records.items()}):
    log(f'  {line}')
  return path
