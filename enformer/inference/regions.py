"""Predict genomic intervals: FASTA → model input around each region's centre → binned tracks.

A region of any width is resized (around its centre) to the predictor's input length; the output
bins cover the centre `output_length × 128` bp of it and carry genomic coordinates. Results go to
HDF5 (or npz) with coordinates and track names, per-track bigWig / bedGraph files for genome
browsers, and PNGs of chosen tracks (`enformer.plots.tracks`).

    predictor = enformer.load_model('https://tfhub.dev/deepmind/enformer/1')
    with FastaStringExtractor('hg38.fa') as fasta:
      result = predict_region(predictor, fasta, parse_region('chr11:5,225,001-5,230,000'))
    result.values  # [896, 5313]; result.bin_starts: genomic start of each bin.

Models with extra input channels (`Enformer(input_channels=4 + E)`, e.g. one-hot + conservation)
take E per-base bigWig tracks (`extra_tracks=[...]`, `enformer predict --extra-track FILE.bw`, in
channel order). They are read over the same N-padded input interval and encoded exactly as
`enformer.data.generate` stores them for training: raw per-base values, missing data and positions
past the chromosome ends = 0, clipped to ±65,504 and rounded to float16; concatenated after the 4
one-hot channels ([L, 4 + E]).

N (including the padding past chromosome ends) is encoded as `neutral_value` in each one-hot
channel: 0 by default (DeepMind's enformer.py, Basenji2 data), 0.25 to reproduce DeepMind's usage
notebook (kipoiseq's default); `enformer predict --n-value`.
"""

import dataclasses
import os
import threading
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import kipoiseq
import numpy as np
import tqdm

from enformer.checks import is_count
from enformer.enformer import BIN_SIZE, HEADS
from enformer.distributed import (
    ModelSource,
    iter_tasks,
    worker_cached,
    worker_model,
    worker_predictor,
)
from enformer.io import atomic
from enformer.io import bigwig as bigwig_io
from enformer.io.fasta import FastaStringExtractor
from enformer.io.lock import OutputLock
from enformer.io.outputs import OutputFolder
from enformer.io.predictions import PredictionWriter
from enformer.plots.tracks import plot_prediction
from enformer.io.targets import Selector, is_cage, select_track, track_identifiers, track_labels
from enformer.sequence import FLOAT16_MAX, NEUTRAL_VALUE, NUM_NUCLEOTIDES, check_neutral_value

# The usage colab's example tracks of the published human head: DNASE CD14+ monocyte, DNASE
# keratinocyte, H3K27ac ChIP keratinocyte, CAGE keratinocyte.
COLAB_HUMAN_TRACKS = (41, 42, 706, 4799)
MAX_PLOTTED_TRACKS = 12


@dataclasses.dataclass
class RegionPrediction:
  """Predictions for one region.

  Attributes:
    region: the requested interval (chromosome named as in the FASTA).
    input_interval: the model input: `sequence_length` bp around the region's centre.
    output_interval: the span of the output bins (centre `bins × 128` bp of the input).
    values: [bins, tracks] predictions of the selected tracks.
    track_indices: output-track index of each column of `values`.
  """

  region: kipoiseq.Interval
  input_interval: kipoiseq.Interval
  output_interval: kipoiseq.Interval
  values: np.ndarray
  track_indices: List[int]

  @property
  def bin_starts(self) -> np.ndarray:
    """Genomic start (0-based) of each output bin: [bins] int64."""
    return self.output_interval.start + BIN_SIZE * np.arange(len(self.values), dtype=np.int64)

  @property
  def name(self) -> str:
    return self.region.name or f'{self.region.chrom}:{self.region.start + 1}-{self.region.end}'


def input_interval(region: kipoiseq.Interval, sequence_length: int) -> kipoiseq.Interval:
  """`sequence_length` bp centred on `region` (may extend past chromosome ends: N-padded)."""
  return region.resize(sequence_length)


def output_interval(model_input: kipoiseq.Interval, output_length: int) -> kipoiseq.Interval:
  """Genomic span of `output_length` 128-bp bins centred in `model_input`."""
  span = output_length * BIN_SIZE
  start = model_input.start + (model_input.width() - span) // 2
  return kipoiseq.Interval(model_input.chrom, start, start + span, name=model_input.name)


def default_tracks(num_tracks: int) -> List[int]:
  """Tracks to draw when none are chosen: the colab's for the published human head, else
  the first 4."""
  if num_tracks == HEADS['human']:
    return list(COLAB_HUMAN_TRACKS)
  return list(range(min(4, num_tracks)))


def check_extra_tracks(input_channels: int, extra_tracks: Sequence[str]) -> None:
  """Raises ValueError unless a model with `input_channels` takes 4 one-hot + len(extra_tracks).

  Also checks that every extra track file exists (FileNotFoundError).
  """
  expected = int(input_channels) - NUM_NUCLEOTIDES
  if expected < 0:
    raise ValueError(
        f'The model takes {input_channels} input channels; at least the 4 one-hot '
        'channels are needed.'
    )
  if expected != len(extra_tracks):
    plural = 's' if expected != 1 else ''
    fix = (
        f'pass {expected} bigWig{plural} as `extra_tracks`, in channel order'
        if expected
        else 'pass no `extra_tracks`'
    )
    raise ValueError(
        f'The model expects {input_channels} input channels (4 one-hot + {expected} '
        f'extra) but {len(extra_tracks)} extra track(s) were given: {fix}.'
    )
  for path in extra_tracks:
    if not os.path.exists(os.fspath(path)):
      raise FileNotFoundError(f'Extra input track bigWig {path} does not exist.')


def read_extra_tracks(extra_tracks: Sequence[str], interval: kipoiseq.Interval) -> np.ndarray:
  """Per-base extra input channels over `interval`: [width, E] float32 (E = len(extra_tracks)).

  Encoded as the training data stores them (enformer.data.generate): raw bigWig values, missing
  data and positions outside the chromosome = 0, clipped to ±65,504, rounded to float16. The chr
  prefix is resolved ('chr1' ↔ '1'); a chromosome absent from a bigWig raises ValueError.
  """
  width = interval.end - interval.start
  columns = [
      bigwig_io.read_bigwig_bins(path, interval.chrom, interval.start, interval.end, bin_size=1)
      for path in extra_tracks
  ]
  values = np.stack(columns, axis=1) if columns else np.zeros((width, 0), np.float32)
  return np.clip(values, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16).astype(np.float32)


def model_inputs(
    extractor: FastaStringExtractor,
    intervals: Sequence[kipoiseq.Interval],
    extra_tracks: Sequence[str] = (),
    neutral_value: float = NEUTRAL_VALUE,
) -> np.ndarray:
  """Model inputs of equal-width intervals: [B, width, 4 + E] float32.

  One-hot sequence (N-padded past chromosome ends, N = `neutral_value` in each channel: 0 by
  default, 0.25 as the usage notebook) followed by the E extra per-base tracks (see
  `read_extra_tracks`).
  """
  x = extractor.extract_batch(intervals, neutral_value)  # [B, width, 4]
  if not extra_tracks:
    return x
  extra = np.stack([read_extra_tracks(extra_tracks, interval) for interval in intervals])
  return np.concatenate([x, extra], axis=-1)


def _check_head(predictor, head: str) -> int:
  if head not in predictor.heads:
    raise ValueError(f'Unknown head {head!r}; the model has heads {sorted(predictor.heads)}.')
  return predictor.heads[head]


# Regions per Dask task: this many batches (results are [regions, bins, tracks] float32 each).
BATCHES_PER_TASK = 4


def predict_batch(
    predictor,
    extractor: FastaStringExtractor,
    regions: Sequence[kipoiseq.Interval],
    head: str,
    track_indices: Sequence[int],
    extra_tracks: Sequence[str] = (),
    neutral_value: float = NEUTRAL_VALUE,
) -> List[RegionPrediction]:
  """One model call for `regions` (chromosomes resolved to the FASTA's names); see
  iter_predictions."""
  batch = []
  for region in regions:
    chrom = extractor.resolve_chromosome(region.chrom)
    resolved = kipoiseq.Interval(
        chrom, region.start, region.end, name=region.name, strand=region.strand
    )
    batch.append((resolved, input_interval(resolved, predictor.sequence_length)))
  x = model_inputs(
      extractor, [model_input for _, model_input in batch], extra_tracks, neutral_value
  )
  outputs = predictor.predict_on_batch(x)[head][..., list(track_indices)]  # [B, bins, tracks]
  return [
      RegionPrediction(
          region,
          model_input,
          output_interval(model_input, predictor.output_length),
          values,
          list(track_indices),
      )
      for (region, model_input), values in zip(batch, outputs)
  ]


def predict_regions_on_worker(
    source: ModelSource,
    fasta: str,
    regions: Sequence[kipoiseq.Interval],
    head: str,
    track_indices: Sequence[int],
    batch_size: int,
    extra_tracks: Sequence[str] = (),
    neutral_value: float = NEUTRAL_VALUE,
) -> List[RegionPrediction]:
  """Dask task: `predict_batch` over `regions` with the worker's cached model and FASTA."""
  predictor = worker_predictor(source)
  extractor = worker_cached(
      ('fasta', fasta, threading.get_ident()), lambda: FastaStringExtractor(fasta)
  )
  predictions = []
  for first in range(0, len(regions), batch_size):
    predictions += predict_batch(
        predictor,
        extractor,
        regions[first : first + batch_size],
        head,
        track_indices,
        extra_tracks,
        neutral_value,
    )
  return predictions


def iter_predictions(
    predictor,
    extractor: FastaStringExtractor,
    regions: Iterable[kipoiseq.Interval],
    *,
    head: str = 'human',
    tracks: Optional[Sequence[int]] = None,
    batch_size: int = 1,
    progress: bool = True,
    extra_tracks: Sequence[str] = (),
    client=None,
    neutral_value: float = NEUTRAL_VALUE,
) -> Iterator[RegionPrediction]:
  """Predicts regions in batches, yielding one RegionPrediction per region in order.

  Args:
    predictor: an `enformer.inference.Predictor` (from `load_model` or `Predictor.from_module`);
      with
      `client`, an `enformer.distributed.ModelSource` (each worker loads the model once).
    extractor: FASTA access; region chromosomes are resolved to its names ('1' ↔ 'chr1').
    regions: intervals of any width (kipoiseq.Interval, 0-based half-open).
    head: output head.
    tracks: track indices to keep (default all tracks of the head).
    batch_size: regions per model call.
    progress: show a tqdm progress bar.
    extra_tracks: per-base bigWigs of the extra input channels of a model with
      `input_channels = 4 + len(extra_tracks)`, in channel order (see `read_extra_tracks`).
    client: a `distributed.Client`: tasks of `BATCHES_PER_TASK` batches run on its workers (the
      FASTA and bigWig paths must be readable there); predictions are yielded in order.
    neutral_value: one-hot value of N in each channel (0: enformer.py / Basenji2, default;
      0.25: DeepMind's usage notebook).
  """
  source = None
  if client is not None:
    source, predictor, _ = worker_model(predictor, client)
  num_tracks = _check_head(predictor, head)
  extra_tracks = list(extra_tracks)
  check_extra_tracks(predictor.input_channels, extra_tracks)
  track_list = list(range(num_tracks)) if tracks is None else [int(t) for t in tracks]
  bad = [t for t in track_list if not 0 <= t < num_tracks]
  if bad:
    raise ValueError(
        f'Track indices {bad[:5]} are out of range for head {head!r} ({num_tracks} tracks).'
    )
  if batch_size < 1:
    raise ValueError(f'batch_size must be at least 1, got {batch_size}.')
  regions = list(regions)
  extractor.check_regions(regions)  # Unknown chromosome or past its end: an error, not N input.
  bar = tqdm.tqdm(
      total=len(regions), desc='Predicting regions', unit='region', disable=not progress
  )
  with bar:
    if client is None:
      for first in range(0, len(regions), batch_size):
        batch = predict_batch(
            predictor,
            extractor,
            regions[first : first + batch_size],
            head,
            track_list,
            extra_tracks,
            neutral_value,
        )
        yield from batch
        bar.update(len(batch))
      return
    per_task = batch_size * BATCHES_PER_TASK
    fasta_file = os.path.abspath(extractor.path)
    extra = [os.path.abspath(os.fspath(t)) for t in extra_tracks]
    tasks = (
        (
            first,
            (
                source,
                fasta_file,
                regions[first : first + per_task],
                head,
                track_list,
                batch_size,
                extra,
                float(neutral_value),
            ),
        )
        for first in range(0, len(regions), per_task)
    )
    for _, predictions in iter_tasks(
        client, predict_regions_on_worker, tasks, name='predict-regions', ordered=True
    ):
      yield from predictions
      bar.update(len(predictions))


def predict_region(
    predictor,
    extractor: FastaStringExtractor,
    region: kipoiseq.Interval,
    head: str = 'human',
    *,
    tracks: Optional[Sequence[int]] = None,
    extra_tracks: Sequence[str] = (),
    neutral_value: float = NEUTRAL_VALUE,
) -> RegionPrediction:
  """Predictions for one region (see iter_predictions)."""
  return next(
      iter_predictions(
          predictor,
          extractor,
          [region],
          head=head,
          tracks=tracks,
          progress=False,
          extra_tracks=extra_tracks,
          neutral_value=neutral_value,
      )
  )


def _safe_filename(text: str) -> str:
  return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in text)[:120]


@dataclasses.dataclass(frozen=True)
class PredictionOutputs:
  """Which files `predict_to_files` writes besides the predictions, and what they show.

  Build it once and pass it as `outputs=`; `dataclasses.replace(outputs, max_plots=0)` makes a
  variant of it. Values are checked when it is built; whether the tracks exist is checked by
  `predict_to_files` against the head.

  Attributes:
    output_format: format of the predictions file: 'h5' (predictions.h5) or 'npz'
      (predictions.npz).
    bigwig: write a bigWig file per track of `plot_tracks` (genome browsers).
    bedgraph: write a bedGraph file per track of `plot_tracks`.
    plot_tracks: track indices drawn in the PNGs and written as bigWig/bedGraph; must be among
      the predicted tracks. None: the observed tracks when `observed` is given and the predicted
      tracks are not chosen; else the predicted tracks when at most 12 were chosen, else the
      usage colab's example tracks (the first 4 for other heads).
    max_plots: PNGs for the first `max_plots` regions (0: none).
    observed: track → observed bigWig path, drawn under that track's prediction with the
      Pearson r of log2(1 + x) (tracks that are not plotted are not read). A track is an index,
      or a selector of `enformer.io.targets.select_track` (identifier or description substring
      matching one track) that `predict_to_files` resolves with its targets table; it must be
      among the predicted `tracks` when those are chosen.
  """

  output_format: str = 'h5'
  bigwig: bool = True
  bedgraph: bool = False
  plot_tracks: Optional[Tuple[int, ...]] = None
  max_plots: int = 10
  observed: Optional[Mapping[Selector, str]] = dataclasses.field(default=None, hash=False)

  def __post_init__(self):
    if self.output_format not in ('h5', 'npz'):
      raise ValueError(
          f"PredictionOutputs.output_format must be 'h5' or 'npz', got {self.output_format!r}."
      )
    if not is_count(self.max_plots):
      raise ValueError(
          f'PredictionOutputs.max_plots must be a number of regions ≥ 0 (0: no '
          f'PNGs), got {self.max_plots!r}.'
      )
    if self.plot_tracks is not None:
      bad = [t for t in self.plot_tracks if not is_count(t)]
      if bad:
        raise ValueError(
            f'PredictionOutputs.plot_tracks must be track indices (integers ≥ 0), '
            f'got {bad[:5]}.'
        )
      object.__setattr__(self, 'plot_tracks', tuple(int(t) for t in self.plot_tracks))
    observed = dict(self.observed or {})
    bad = [t for t in observed if not (is_count(t) or (isinstance(t, str) and t.strip()))]
    if bad:
      raise ValueError(
          f'PredictionOutputs.observed maps tracks (indices ≥ 0, identifiers or '
          f'descriptions) to bigWig paths; got the keys {bad[:5]}.'
      )
    object.__setattr__(
        self,
        'observed',
        {t if isinstance(t, str) else int(t): os.fspath(path) for t, path in observed.items()},
    )


def predict_to_files(
    predictor,
    fasta: str,
    regions: Sequence[kipoiseq.Interval],
    out_dir: str,
    *,
    head: str = 'human',
    tracks: Optional[Sequence[int]] = None,
    targets=None,
    batch_size: int = 1,
    outputs: PredictionOutputs = PredictionOutputs(),
    extra_tracks: Sequence[str] = (),
    neutral_value: float = NEUTRAL_VALUE,
    progress: bool = True,
    overwrite: bool = False,
    client=None,
) -> Dict[str, object]:
  """Predicts regions and writes predictions, browser tracks and PNGs into `out_dir`.

  `out_dir` is locked for the run (a second run on it stops, naming this one). A folder that
  already holds files is refused unless `overwrite`, which first removes the files an earlier
  `predict_to_files` wrote there (recorded in the folder's manifest, `enformer.io.outputs`), so
  no stale bigWig or PNG stays beside the new predictions; other files (the FASTA, a model) are
  kept and never replaced. Every file is renamed into place when complete.

  Args:
    predictor: a Predictor; with `client`, an `enformer.distributed.ModelSource`.
    fasta: indexed (or indexable) FASTA of the genome.
    regions: intervals (any width; resized to the input length around their centre).
    out_dir: output folder (created).
    head: output head.
    tracks: track indices stored in the predictions file (default all tracks of the head).
    targets: targets table (read_targets) for track names, or None.
    batch_size: regions per model call.
    outputs: the files written besides the predictions (format, bigWig/bedGraph, PNGs and the
      tracks they show, observed tracks); `PredictionOutputs()`: predictions.h5, a bigWig per
      plotted track and PNGs of the first 10 regions.
    extra_tracks: per-base bigWigs of a model's extra input channels (see `iter_predictions`).
    neutral_value: one-hot value of N (0 default; 0.25 as the usage notebook), stored as the
      file attribute `neutral_value`.
    progress: tqdm progress bar.
    overwrite: replace the outputs of an earlier run in a used `out_dir` (other files stay).
    client: a `distributed.Client`: batches of regions are predicted by its workers; the files
      equal a single-process run's.

  Returns:
    Summary: paths written ('predictions', 'bigwig', 'bedgraph', 'plots') and counts.
  """
  if not isinstance(outputs, PredictionOutputs):
    raise TypeError(
        f'outputs must be an enformer.inference.regions.PredictionOutputs, got '
        f'{type(outputs).__name__}.'
    )
  model = predictor  # What iter_predictions gets: the predictor, or the workers' ModelSource.
  if client is not None:
    _, predictor, _ = worker_model(predictor, client)
  num_tracks = _check_head(predictor, head)
  neutral_value = check_neutral_value(neutral_value)
  if targets is not None and len(targets) != num_tracks:
    raise ValueError(
        f'The targets table has {len(targets)} rows but head {head!r} has '
        f'{num_tracks} tracks: pass the table of the same organism.'
    )
  stored = list(range(num_tracks)) if tracks is None else list(tracks)
  observed = {
      select_track(targets, track, num_tracks): path for track, path in outputs.observed.items()
  }
  if tracks is not None:
    missing = [t for t in observed if t not in stored]
    if missing:
      raise ValueError(f'`observed` tracks {missing} are not among `tracks`.')
  outputs = dataclasses.replace(outputs, observed=observed)
  plot_tracks = outputs.plot_tracks
  if plot_tracks is None and observed and tracks is None:
    plot_tracks = list(observed)  # The tracks measured: drawn with their observations.
  if plot_tracks is None:
    plot_tracks = (
        stored
        if tracks is not None and len(stored) <= MAX_PLOTTED_TRACKS
        else [t for t in default_tracks(num_tracks) if t in stored] or stored[:4]
    )
  missing = [t for t in plot_tracks if t not in stored]
  if missing:
    raise ValueError(f'Tracks {missing} are plotted but not among the predicted tracks.')
  plot_tracks = list(plot_tracks)
  extra_tracks = list(extra_tracks)
  check_extra_tracks(predictor.input_channels, extra_tracks)  # Before any file is written.
  with OutputLock(out_dir, what=f'output folder {out_dir}'):
    folder = OutputFolder(out_dir, 'predict', overwrite=overwrite)
    return _predict_to_folder(
        predictor,
        fasta,
        regions,
        folder,
        head,
        stored,
        plot_tracks,
        targets,
        batch_size,
        outputs,
        progress,
        extra_tracks,
        model,
        client,
        neutral_value,
    )


def _predict_to_folder(
    predictor,
    fasta_file,
    regions,
    folder,
    head,
    stored,
    plot_tracks,
    targets,
    batch_size,
    outputs: PredictionOutputs,
    progress,
    extra_tracks,
    model,
    client,
    neutral_value,
) -> Dict[str, object]:
  """`predict_to_files` once the output folder is locked and ready (`folder`: its
  `OutputFolder`; `model`: what iter_predictions gets)."""
  written: Dict[str, object] = dict(plots=[], bigwig=[], bedgraph=[])
  identifiers = track_identifiers(targets, plot_tracks)
  stems = {
      track: f'{head}_{track}_{_safe_filename(identifier)}'
      for track, identifier in zip(plot_tracks, identifiers)
  }
  # The names known before predicting: a file of the user's under one of them stops the run now.
  predictions_path = folder.claim(f'predictions.{outputs.output_format}')
  extensions = ['.bw'] * outputs.bigwig + ['.bedGraph'] * outputs.bedgraph
  folder.claim_all(stem + extension for stem in stems.values() for extension in extensions)
  with FastaStringExtractor(fasta_file) as extractor:
    chrom_sizes = extractor.chromosome_sizes
    writer = PredictionWriter(
        predictions_path,
        len(regions),
        predictor.output_length,
        stored,
        targets=targets,
        head=head,
        sequence_length=predictor.sequence_length,
        model=predictor.source,
        extra_tracks=extra_tracks,
        neutral_value=neutral_value,
    )
    blocks: Dict[int, list] = {t: [] for t in plot_tracks}
    columns = [stored.index(t) for t in plot_tracks]
    plotted = plot_tracks[:MAX_PLOTTED_TRACKS]
    try:
      for i, prediction in enumerate(
          iter_predictions(
              model,
              extractor,
              regions,
              head=head,
              tracks=stored,
              batch_size=batch_size,
              progress=progress,
              extra_tracks=extra_tracks,
              client=client,
              neutral_value=neutral_value,
          )
      ):
        writer.add(prediction)
        for track, column in zip(plot_tracks, columns):
          blocks[track].append(
              (
                  prediction.region.chrom,
                  prediction.output_interval.start,
                  prediction.values[:, column],
              )
          )
        if i < outputs.max_plots and plotted:
          window = prediction.output_interval
          observed_bins = {
              t: bigwig_io.read_bigwig_bins(path, window.chrom, window.start, window.end, BIN_SIZE)
              for t, path in outputs.observed.items()
              if t in plotted
          }
          png = folder.claim(f'{i:04d}_{_safe_filename(prediction.name)}.png')
          plot_prediction(
              prediction, plotted, targets, observed_bins, png, chrom_size=chrom_sizes[window.chrom]
          )
          written['plots'].append(png)
    except BaseException as error:
      if isinstance(error, Exception) and atomic.is_disk_full(error):
        writer.abort()
        raise atomic.disk_full_error(predictions_path, needed=writer.expected_bytes) from error
      writer.close()  # Keeps the regions predicted so far (attribute complete = 0).
      raise
    writer.close()
    written['predictions'] = predictions_path
    for track in plot_tracks:
      stem = os.path.join(folder.path, stems[track])
      label = track_labels(targets, [track])[0]
      if outputs.bigwig:
        bigwig_io.write_bigwig(stem + '.bw', chrom_sizes, blocks[track], BIN_SIZE)
        written['bigwig'].append(stem + '.bw')
      if outputs.bedgraph:
        bigwig_io.write_bedgraph(
            stem + '.bedGraph', chrom_sizes, blocks[track], BIN_SIZE, track_name=label
        )
        written['bedgraph'].append(stem + '.bedGraph')
  written.update(
      regions=len(regions),
      tracks=len(stored),
      plotted_tracks=plot_tracks,
      cage_tracks=[
          t for t, c in zip(plot_tracks, is_cage(track_labels(targets, plot_tracks))) if c
      ],
  )
  return written
