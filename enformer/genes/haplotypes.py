"""Personal genomes: predictions for every sample's two haplotypes of a phased VCF, per gene or
region (the library behind `enformer predict-haplotypes`).

One window per gene (L bp centred on its first TSS, as `predict --gtf` centres it) or per BED
region (centred on the region). For each window, every selected sample's two haplotypes are read
from the VCF (`enformer.io.genotypes`: haplotype 1 is the allele left of '|'), and predicted:

  * haplotypes made of substitutions go through `enformer.inference.haplotypes.HaplotypeForward`:
    identical haplotypes once, each stem and conv-tower output once per distinct set of variants
    in its input, transformer and heads once per distinct haplotype; exact (equal to full passes
    within float32 rounding);
  * haplotypes that carry an indel take a full pass of their own sequence, aligned to reference
    coordinates: the haplotype sequence is built with all its edits, and its L bp window is
    centred on the haplotype position of the reference window's centre (the TSS for genes); a
    gene's TSSs are read at their haplotype positions (a TSS inside a deletion at the base after
    it), so every haplotype reads the same promoter. That is exact, but on real phased VCFs
    (1000 Genomes: ~4% of variant sites are short indels) nearly every haplotype has an indel in
    a 196 kb window, so nearly every haplotype takes a full pass. `indels='skip'` (a setting the
    user chooses, default 'full') leaves indel alleles out instead: each haplotype keeps its
    substitutions and takes the reference at its indels, so every haplotype goes through the
    reuse above; the values are those of the substitution haplotypes (an approximation), and the
    carried indel alleles left out are counted (`GenotypeSummary.skipped_indels`);
  * missing alleles are the reference; symbolic alleles are skipped (counted in the summary).

Values per sample × haplotype × gene (or region) × track:
  genes    the expression at the gene's TSSs: `enformer.genes.expression.gene_expression` (the
           TSS bin and its two neighbours, summed over the gene's TSSs in the output);
  regions  the mean over the output bins that overlap the region; with `bins`, every output bin
           of the window (haplotype coordinates for indel haplotypes, centred on the region).

Output `DIR/haplotypes.h5ad` (AnnData): obs = sample × haplotype (columns `sample`, `haplotype`
'1' / '2', and 'mean' rows with `mean_haplotypes`); var = gene × track, gene-major (index
'GENE|TRACK'; columns gene_id, gene_name, chrom, strand, tss, track, track_index,
track_description), or region × track (region, chrom, start, end, ...) or region bin × track
(bin_id 'name:bin', region, bin, chrom, start, ...): tracks are the third axis, flattened into
var, so X [obs, genes · tracks] holds every value (one matrix, whatever the number of tracks;
`track_matrix(data, track)` gives one track's [obs, genes]); `uns`: tracks, track_indices,
head, the work done (`HaplotypeStats`) and the VCF summary. `HaplotypeSettings(tsv=True)` also
writes `DIR/haplotypes.tsv` (sample, haplotype, gene_id, track, expression; one row per value).
Windows are the chunks of resuming (`<file>.partial/`), of Dask tasks (`client=`) and of
shards (`shard=(K, N)`: `DIR/haplotypes.K-of-N.h5ad` holds shard K's windows;
`anndata.concat(files, axis=1, merge='same')` joins them).
"""

import dataclasses
import os
import threading
import time
import weakref
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import anndata
import kipoiseq
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from enformer.checks import is_count
from enformer.distributed import (ModelSource, run_tasks, worker_cached, worker_predictor)
from enformer.genes.annotation import read_genes
from enformer.genes.expression import GENE_STATS, gene_expression
from enformer.inference import fast
from enformer.inference.haplotypes import HaplotypeForward, HaplotypeStats
from enformer.inference.regions import input_interval
from enformer.io import sad as sad_io
from enformer.io.atomic import atomic_write
from enformer.io.bed import read_bed
from enformer.io.fasta import FastaStringExtractor
from enformer.io.files import content_identity
from enformer.io.genotypes import (
    Edit,
    GenotypeSummary,
    PhasedVcf,
    check_indels,
    select_samples,
    substitutions,
)
from enformer.io.haplotypes import HAPLOTYPES_TSV, haplotypes_file
from enformer.io.lock import OutputLock
from enformer.io.model_source import model_identity, split_model_id
from enformer.io.targets import read_targets, select_tracks
from enformer.sequence import one_hot_encode
from enformer.variants.pipeline import (shard_chunks, table_identity, track_names, worker_model)

PathLike = Union[str, os.PathLike]
BIN = 128
_STATS = (
    'haplotypes',
    'distinct',
    'reference_like',
    'windows',
    'tower_positions',
    'transformer_passes',
    'full_passes',
)
_SUMMARY = tuple(field.name for field in dataclasses.fields(GenotypeSummary))


@dataclasses.dataclass(frozen=True)
class Window:
  """One gene or region: its L bp input window [start, start + L) on `chrom` (FASTA name)."""

  name: str
  chrom: str
  start: int
  tss: Tuple[int, ...] = ()  # Genes: 0-based TSS positions.
  region: Tuple[int, int] = (0, 0)  # Regions: the BED region [start, end).


@dataclasses.dataclass(frozen=True)
class HaplotypeSettings:
  """How `predict_haplotypes` predicts and what it writes besides `haplotypes.h5ad`.

  Build it once (the CLI builds it from its flags) and pass it as `settings=`;
  `dataclasses.replace(settings, batch_size=8)` makes a variant of it. Values are checked when it
  is built; whether the head and tracks exist is checked by `predict_haplotypes` against the model.

  Attributes:
    head: model head ('human' or 'mouse').
    targets: targets table (path, or DataFrame from `enformer.io.targets.read_targets`) naming
      the head's tracks; None: 't0', 't1', ...
    tracks: tracks to keep (None: all): indices, or with `targets` identifiers or description
      substrings (`enformer.io.targets.select_tracks`).
    bins: regions: every output bin of the window instead of the region's mean.
    gene_stat: 'sum' or 'max' over a gene's TSSs.
    unphased: read unphased heterozygous calls in the order written (otherwise an error).
    indels: 'full' (exact: a haplotype with an indel in a window takes a full pass of its own
      sequence there) or 'skip' (indel alleles are left out and counted; each haplotype keeps
      its substitutions and takes the reference at its indels, so every haplotype is predicted
      with reuse: the values are those of the substitution haplotypes, an approximation).
    neutral_value: one-hot value of N.
    batch_size: haplotypes per transformer pass.
    mean_haplotypes: also write each sample's diploid mean (obs rows with haplotype 'mean').
    tsv: also write `out_dir/haplotypes.tsv` (one row per value).
    model_id: the model's path or handle, for the resume fingerprint (its files count by
      content), with ' precision=bfloat16' appended for a reduced-precision model.
  """

  head: str = 'human'
  targets: Any = dataclasses.field(default=None, compare=False)
  tracks: Optional[Tuple[Any, ...]] = None
  bins: bool = False
  gene_stat: str = 'sum'
  unphased: bool = False
  indels: str = 'full'
  neutral_value: float = 0.0
  batch_size: int = 4
  mean_haplotypes: bool = False
  tsv: bool = False
  model_id: str = ''

  def __post_init__(self):
    if self.gene_stat not in GENE_STATS:
      raise ValueError(
          f'HaplotypeSettings.gene_stat must be one of {GENE_STATS}, got {self.gene_stat!r}.'
      )
    try:
      check_indels(self.indels)
    except ValueError as error:
      raise ValueError(f'HaplotypeSettings.{error}') from None
    if not is_count(self.batch_size) or self.batch_size < 1:
      raise ValueError(
          f'HaplotypeSettings.batch_size must be a number of haplotypes ≥ 1, got '
          f'{self.batch_size!r}.'
      )
    if self.tracks is not None:
      if isinstance(self.tracks, (str, bytes)):
        raise ValueError(
            'HaplotypeSettings.tracks must be a sequence of track indices or '
            f'names (or None: all), got the string {self.tracks!r}.'
        )
      object.__setattr__(self, 'tracks', tuple(self.tracks))
    object.__setattr__(self, 'neutral_value', float(self.neutral_value))

  def window_settings(
      self, fasta: str, vcf: str, samples: Sequence[str], track_indices: Sequence[int]
  ) -> 'WindowSettings':
    """The picklable part that predicts a window (absolute paths, the tracks as indices)."""
    return WindowSettings(
        os.path.abspath(fasta),
        os.path.abspath(vcf),
        tuple(samples),
        self.head,
        None if self.tracks is None else tuple(track_indices),
        bool(self.bins),
        bool(self.unphased),
        self.neutral_value,
        self.gene_stat,
        int(self.batch_size),
        indels=self.indels,
    )


@dataclasses.dataclass(frozen=True)
class WindowSettings:
  """Everything that predicts a window except the model (picklable, for Dask workers)."""

  fasta: str
  vcf: str
  samples: Tuple[str, ...]
  head: str = 'human'
  tracks: Optional[Tuple[int, ...]] = None
  bins: bool = False
  unphased: bool = False
  neutral_value: float = 0.0
  gene_stat: str = 'sum'
  batch_size: int = 4
  indels: str = 'full'  # 'full': an indel haplotype takes a full pass; 'skip': indels left out.

  def open_vcf(self) -> PhasedVcf:
    """The genotype reader these settings predict with (its samples, phasing and indels)."""
    return PhasedVcf(self.vcf, list(self.samples), unphased=self.unphased, indels=self.indels)


@dataclasses.dataclass
class PredictHaplotypesResult:
  """What `predict_haplotypes` produced."""

  data: anndata.AnnData
  stats: HaplotypeStats
  summary: GenotypeSummary
  paths: Dict[str, str]
  windows_total: int
  windows_resumed: int
  seconds: float


# Compiled haplotype forwards per model, keyed by (length, head, precision, batch size).
_SHARED: 'weakref.WeakKeyDictionary[object, Dict[tuple, HaplotypeForward]]' = (
    weakref.WeakKeyDictionary()
)


def haplotype_forward(predictor, head: str, batch_size: int = 4) -> HaplotypeForward:
  """The `HaplotypeForward` of a predictor's Sonnet module (its length, `head`, precision),
  compiled once per model and process and reused by later runs."""
  model = getattr(predictor, 'model', None)
  if model is None:
    raise ValueError(
        'Haplotype prediction needs the Sonnet module of the model (a checkpoint, '
        'a training run folder or an export of this package), not a TF-Hub module.'
    )
  length = int(getattr(predictor, 'model_sequence_length', None) or predictor.sequence_length)
  precision = getattr(predictor, 'precision', 'float32')
  cache = _SHARED.setdefault(model, {})
  key = (length, head, precision, int(batch_size))
  if key not in cache:
    forward = fast.compile_forward(model, length, [head], precision=precision)
    cache[key] = HaplotypeForward(forward, batch_size=batch_size)
  return cache[key]


def gene_windows(genes: pd.DataFrame, sequence_length: int) -> List[Window]:
  """One window per gene of `read_genes`, centred on its first TSS."""
  return [
      Window(
          str(gene.gene_id),
          str(gene.chrom),
          input_interval(
              kipoiseq.Interval(gene.chrom, int(gene.first_tss), int(gene.first_tss) + 1),
              sequence_length,
          ).start,
          tss=tuple(int(t) for t in gene.tss),
      )
      for gene in genes.itertuples()
  ]


def region_windows(
    regions: Sequence[kipoiseq.Interval], fasta: FastaStringExtractor, sequence_length: int
) -> List[Window]:
  """One window per region, centred on it (chromosome names as the FASTA's)."""
  fasta.check_regions(regions)
  return [
      Window(
          region.name,
          fasta.resolve_chromosome(region.chrom),
          input_interval(region, sequence_length).start,
          region=(int(region.start), int(region.end)),
      )
      for region in regions
  ]


def _haplotype_sequence(
    fasta: FastaStringExtractor, window: Window, length: int, edits: Sequence[Edit]
):
  """(haplotype window string [L], map: reference position → its position in that string)."""
  margin = sum(abs(len(e.alt) - len(e.ref)) for e in edits) + 1
  begin = window.start - margin
  reference = fasta.extract(kipoiseq.Interval(window.chrom, begin, window.start + length + margin))
  pieces, cursor, shifts = [], begin, []  # shifts: (ref start, ref end, hap start, alt length).
  hap = 0
  for edit in sorted(edits):
    if edit.start < cursor:
      continue
    pieces.append(reference[cursor - begin : edit.start - begin])
    hap += edit.start - cursor
    shifts.append((edit.start, edit.start + len(edit.ref), hap, len(edit.alt)))
    pieces.append(edit.alt)
    hap += len(edit.alt)
    cursor = edit.start + len(edit.ref)
  pieces.append(reference[cursor - begin :])
  sequence = ''.join(pieces)

  def position(t: int) -> int:
    """Where reference base t sits in `sequence` (inside a deletion: the base after it)."""
    offset = t - begin
    for ref_start, ref_end, hap_start, alt_length in shifts:
      if t < ref_start:
        break
      if t < ref_end:
        return hap_start + min(t - ref_start, alt_length)
      offset = hap_start + alt_length + (t - ref_end)
    return offset

  centre = position(window.start + length // 2)
  first = centre - length // 2
  return sequence[first : first + length], lambda t: position(t) - first


def _reduce(
    predictions: np.ndarray, window: Window, output_start: int, settings: WindowSettings, place=None
) -> np.ndarray:
  """[T', N] predictions of one haplotype → [V, N] values (see the module docstring); `place`
  maps reference positions to the predictions' coordinates (indel haplotypes)."""
  place = place or (lambda t: t)
  if window.tss:
    return gene_expression(
        predictions, output_start, [place(t) for t in window.tss], stat=settings.gene_stat
    )[np.newaxis]
  if settings.bins:
    return predictions
  num_bins = predictions.shape[0]
  low = (place(window.region[0]) - output_start) // BIN
  high = (place(window.region[1] - 1) - output_start) // BIN + 1
  low, high = max(low, 0), min(high, num_bins)
  if high <= low:  # The region lies outside the output: its nearest bin.
    low = min(max(low, 0), num_bins - 1)
    high = low + 1
  return predictions[low:high].mean(axis=0, keepdims=True)


def predict_window(
    forward: HaplotypeForward,
    fasta: FastaStringExtractor,
    vcf: PhasedVcf,
    window: Window,
    settings: WindowSettings,
) -> Dict[str, np.ndarray]:
  """Values of one window for each sample's two haplotypes, as saved in the chunk store:
  'values' [2S, V, N] float32 (rows: sample 1 haplotype 1, sample 1 haplotype 2, ...), 'stats'
  and 'summary' (counts, int64), 'tower_work' (float64, in full towers)."""
  if vcf.indels != settings.indels:
    raise ValueError(
        f'The VCF reader handles indels as {vcf.indels!r}, the settings as '
        f'{settings.indels!r}; open it with settings.open_vcf().'
    )
  length = forward.sequence_length
  reference = fasta.extract(kipoiseq.Interval(window.chrom, window.start, window.start + length))
  one_hot = one_hot_encode(reference, neutral_value=settings.neutral_value)
  summary = GenotypeSummary()
  edits = vcf.haplotypes(
      window.chrom,
      window.start,
      window.start + length,
      reference=(reference, window.start),
      summary=summary,
  )
  simple, simple_rows, indel_rows = [], [], []
  for row, haplotype in enumerate(edits):
    substituted = substitutions(haplotype, window.start, length)
    if substituted is None:
      indel_rows.append(row)
    else:
      simple.append(substituted)
      simple_rows.append(row)
  tracks = list(settings.tracks) if settings.tracks is not None else slice(None)

  def reduce(outputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    predictions = outputs[settings.head]  # [T', N]
    output_start = window.start + (length - predictions.shape[0] * BIN) // 2
    return {'values': _reduce(predictions[:, tracks], window, output_start, settings)}

  reduced, stats = forward(one_hot, simple, reduce=reduce)
  values: List[Optional[np.ndarray]] = [None] * len(edits)
  for k, row in enumerate(simple_rows):
    values[row] = reduced['values'][k]
  distinct: Dict[Tuple[Edit, ...], List[int]] = {}
  for row in indel_rows:
    distinct.setdefault(tuple(edits[row]), []).append(row)
  keys = list(distinct)
  for i in range(0, len(keys), settings.batch_size):
    built = [
        _haplotype_sequence(fasta, window, length, key) for key in keys[i : i + settings.batch_size]
    ]
    full = forward.forward(
        np.stack([one_hot_encode(s, neutral_value=settings.neutral_value) for s, _ in built])
    )[settings.head].numpy()
    for key, (_, place), prediction in zip(keys[i : i + settings.batch_size], built, full):
      value = _reduce(
          prediction[:, tracks], window, (length - len(prediction) * BIN) // 2, settings, place
      )
      for row in distinct[key]:
        values[row] = value
  stats.haplotypes += len(indel_rows)
  stats.distinct += len(keys)
  stats.full_passes += len(keys)
  return {
      'values': np.stack(values).astype(np.float32),
      'tower_share': np.float64(forward.tower_share),
      'stats': np.asarray([getattr(stats, name) for name in _STATS], np.int64),
      'tower_work': np.float64(stats.tower_work),
      'summary': np.asarray([getattr(summary, name) for name in _SUMMARY], np.int64),
  }


def predict_window_on_worker(
    source: ModelSource, settings: WindowSettings, window: Window
) -> Dict[str, np.ndarray]:
  """Dask task: `predict_window` with the worker's cached model, forward and input files."""
  forward = worker_cached(
      ('haplotype-forward', source.key, settings.head, settings.batch_size),
      lambda: haplotype_forward(worker_predictor(source), settings.head, settings.batch_size),
  )
  fasta, vcf = worker_cached(
      ('haplotype-inputs', settings, threading.get_ident()),
      lambda: (FastaStringExtractor(settings.fasta), settings.open_vcf()),
  )
  return predict_window(forward, fasta, vcf, window, settings)


def _stats_of(
    arrays: Sequence[np.ndarray], tower_share: float, length: int, tower_work: float = 0.0
) -> HaplotypeStats:
  total = np.sum(arrays, axis=0) if len(arrays) else np.zeros(len(_STATS), np.int64)
  return HaplotypeStats(
      **{name: int(v) for name, v in zip(_STATS, total)},
      tower_work=tower_work,
      tower_share=tower_share,
      sequence_length=length,
  )


def _summary_of(arrays: Sequence[np.ndarray]) -> GenotypeSummary:
  total = np.sum(arrays, axis=0) if len(arrays) else np.zeros(len(_SUMMARY), np.int64)
  return GenotypeSummary(**{name: int(v) for name, v in zip(_SUMMARY, total)})


def _var_table(
    windows: Sequence[Window], genes: Optional[pd.DataFrame], bins: bool, num_bins: int, length: int
) -> pd.DataFrame:
  if genes is not None:
    table = pd.DataFrame(
        {
            'gene_name': genes['gene_name'].astype(str).to_numpy(),
            'chrom': genes['chrom'].astype(str).to_numpy(),
            'strand': genes['strand'].astype(str).to_numpy(),
            'tss': genes['first_tss'].astype(np.int64).to_numpy(),
        },
        index=pd.Index(genes['gene_id'].astype(str).to_numpy(), name='gene_id'),
    )
    return table
  if not bins:
    return pd.DataFrame(
        {
            'chrom': [w.chrom for w in windows],
            'start': [w.region[0] for w in windows],
            'end': [w.region[1] for w in windows],
        },
        index=pd.Index([w.name for w in windows], name='region'),
    )
  crop = (length - num_bins * BIN) // 2
  rows = [
      (f'{w.name}:{b}', w.name, b, w.chrom, w.start + crop + b * BIN)
      for w in windows
      for b in range(num_bins)
  ]
  table = pd.DataFrame(rows, columns=['id', 'region', 'bin', 'chrom', 'start']).set_index('id')
  table.index.name = 'bin_id'
  return table


def _with_tracks(
    table: pd.DataFrame, ids: Sequence[str], indices: Sequence[int], labels: Sequence[str]
) -> pd.DataFrame:
  """One row per (row of `table`, track), row-major: var of the AnnData (index 'ID|TRACK')."""
  key = table.index.name
  repeated = table.reset_index().loc[np.repeat(np.arange(len(table)), len(ids))]
  repeated = repeated.reset_index(drop=True).assign(
      track=np.tile(np.asarray(ids, str), len(table)),
      track_index=np.tile(np.asarray(indices, np.int64), len(table)),
      track_description=np.tile(np.asarray(labels, str), len(table)),
  )
  repeated.index = (repeated[key].astype(str) + '|' + repeated['track']).to_numpy()
  return repeated


def track_matrix(data: anndata.AnnData, track: str) -> np.ndarray:
  """[obs, genes (or regions, bins)] values of one track of a `predict_haplotypes` AnnData."""
  columns = np.flatnonzero(data.var['track'].to_numpy() == track)
  if not columns.size:
    raise ValueError(
        f'No track {track!r} in this AnnData; its tracks are {list(data.uns["tracks"])[:10]}.'
    )
  return np.asarray(data.X[:, columns])


def _write_tsv(path: str, data: anndata.AnnData) -> None:
  """Tidy table: sample, haplotype, gene_id (or region / bin_id), track, expression."""
  key = data.var.columns[0]
  table = pd.DataFrame(
      {
          'sample': np.repeat(data.obs['sample'].to_numpy(), data.n_vars),
          'haplotype': np.repeat(data.obs['haplotype'].to_numpy(), data.n_vars),
          key: np.tile(data.var[key].to_numpy(), data.n_obs),
          'track': np.tile(data.var['track'].to_numpy(), data.n_obs),
          'expression': np.asarray(data.X).ravel(),
      }
  )
  atomic_write(path, lambda p: table.to_csv(p, sep='\t', index=False, float_format='%.7g'))


def predict_haplotypes(
    predictor,
    fasta,
    vcf: PathLike,
    out_dir: PathLike,
    *,
    gtf: Optional[PathLike] = None,
    bed: Optional[PathLike] = None,
    genes: Union[PathLike, Sequence[str], None] = None,
    gene_types: Optional[Sequence[str]] = None,
    samples: Union[None, str, Sequence[str]] = None,
    settings: Optional[HaplotypeSettings] = None,
    overwrite: bool = False,
    progress: bool = True,
    run_settings: Optional[Mapping[str, object]] = None,
    client=None,
    shard: Optional[Tuple[int, int]] = None,
) -> PredictHaplotypesResult:
  """Predicts every selected sample's two haplotypes at each gene (`gtf`) or region (`bed`) and
  writes `out_dir/haplotypes.h5ad` (see the module docstring for the layout).

  Resumable: each window's values are saved under `out_dir/haplotypes.h5ad.partial/` as it finishes;
  rerunning the same call after an interruption (even kill -9) skips finished windows, and the
  final files equal an uninterrupted run's. A finished output is not replaced unless `overwrite`.

  Example:
    >>> settings = HaplotypeSettings(targets='targets_human.txt', tracks=(4828,), tsv=True)
    >>> result = predict_haplotypes(enformer.load_model('model/'), 'hg38.fa', 'phased.vcf.gz',
    ...                             'haplotypes/', gtf='genes.gtf', settings=settings)
    >>> result.data  # AnnData [samples × 2, genes × tracks]

  Args:
    predictor: a Predictor with its Sonnet module (`enformer.load_model` of a checkpoint, run
      folder or export of this package); with `client`, an `enformer.distributed.ModelSource`.
    fasta: FASTA path or `FastaStringExtractor`.
    vcf: phased, bgzipped and indexed (.tbi / .csi) VCF.
    out_dir: output folder.
    gtf, genes, gene_types: genes (`enformer.genes.read_genes`); or `bed`: regions.
    samples: sample ids, a file of ids, or None for all.
    settings: how to predict and what else to write (`HaplotypeSettings`: head, targets, tracks,
      bins, gene_stat, unphased, indels, neutral_value, batch_size, mean_haplotypes, tsv,
      model_id); None: its defaults.
    overwrite: replace a finished output (and discard an unfinished run with other settings).
    progress: a tqdm bar over samples × windows.
    run_settings: extra `uns` entries (e.g. the command line).
    client: a `distributed.Client`: windows are predicted by its workers (same output).
    shard: (K, N): predict only windows K−1, K−1+N, ... into `out_dir/haplotypes.K-of-N.h5ad`.
  """
  started = time.time()
  settings = HaplotypeSettings() if settings is None else settings
  if not isinstance(settings, HaplotypeSettings):
    raise TypeError(
        f'settings must be an enformer.genes.HaplotypeSettings, got {type(settings).__name__}.'
    )
  head, targets, tracks, bins = settings.head, settings.targets, settings.tracks, settings.bins
  if (gtf is None) == (bed is None):
    raise ValueError('Pass genes (a GTF) or regions (a BED file), one of the two.')
  if shard is not None and settings.tsv:
    raise ValueError(
        'A shard run writes only its shard file; write the TSV from the joined AnnData.'
    )
  out_dir = os.fspath(out_dir)
  path = os.path.join(out_dir, haplotypes_file(shard))
  tsv_path = os.path.join(out_dir, HAPLOTYPES_TSV)
  os.makedirs(out_dir, exist_ok=True)
  with OutputLock(path, what=f'output {path}'):
    if os.path.exists(path) and not overwrite:
      raise FileExistsError(
          f'{path} already exists (a finished run); replace it with '
          'overwrite=True, or choose another output folder.'
      )
    source, predictor, model_id = worker_model(predictor, client, settings.model_id)
    if isinstance(fasta, (str, os.PathLike)):
      fasta = FastaStringExtractor(fasta)
    if isinstance(targets, (str, os.PathLike)):
      targets = read_targets(targets)
    chosen = select_samples(vcf, samples)
    num_tracks = (getattr(predictor, 'heads', None) or {}).get(head)
    if num_tracks is None:
      raise ValueError(
          f'The model has no head {head!r}; its heads are '
          f'{sorted(getattr(predictor, "heads", {}) or {})}.'
      )
    track_indices = (
        list(range(num_tracks))
        if tracks is None
        else select_tracks(targets, list(tracks), num_tracks)
    )
    all_ids, all_labels = track_names(targets, num_tracks)
    length = int(getattr(predictor, 'model_sequence_length', None) or predictor.sequence_length)
    gene_table = None
    if gtf is not None:
      gene_table = read_genes(gtf, fasta=fasta, gene_types=gene_types, genes=genes)
      if gene_table.empty:
        raise ValueError(
            f"No gene of {gtf} is left (after the gene filters and the FASTA's chromosomes)."
        )
      windows = gene_windows(gene_table, length)
    else:
      windows = region_windows(read_bed(bed), fasta, length)
    window_settings = settings.window_settings(fasta.path, vcf, chosen, track_indices)
    model_path, model_precision = split_model_id(model_id)
    fingerprint_settings = {
        'windows': sad_io.fingerprint({'windows': [dataclasses.astuple(w) for w in windows]}),
        'samples': list(chosen),
        'vcf_content': content_identity(window_settings.vcf),
        'model': model_path if '://' in model_path else '',
        'precision': model_precision or 'float32',
        'model_content': model_identity(model_path),
        'fasta_content': content_identity(fasta.path, [fasta.path + '.fai']),
        'targets_content': table_identity(targets),
        'head': head,
        'tracks': track_indices,
        'bins': bool(bins),
        'unphased': bool(settings.unphased),
        'indels': settings.indels,
        'neutral_value': settings.neutral_value,
        'gene_stat': settings.gene_stat,
        'sequence_length': length,
    }
    selected = list(range(len(windows))) if shard is None else shard_chunks(len(windows), shard)
    if not selected:
      raise ValueError(
          f'Shard {shard[0]}/{shard[1]} holds no window: there are only '
          f'{len(windows)}; use fewer shards.'
      )
    store = sad_io.ChunkStore(
        path,
        fingerprint_settings if shard is None else dict(fingerprint_settings, shard=list(shard)),
        overwrite=overwrite,
    )
    done = set(store.done(len(windows))) & set(selected)
    todo = [i for i in selected if i not in done]
    with tqdm(
        total=len(selected) * len(chosen),
        initial=len(done) * len(chosen),
        unit='sample·window',
        desc='predict-haplotypes',
        disable=not progress,
    ) as bar:
      bar.set_postfix_str(f'windows {len(done)}/{len(selected)}')
      if client is None:
        forward = haplotype_forward(predictor, head, settings.batch_size)
        with window_settings.open_vcf() as genotypes:
          for count, index in enumerate(todo, start=len(done) + 1):
            store.save(
                index, **predict_window(forward, fasta, genotypes, windows[index], window_settings)
            )
            bar.update(len(chosen))
            bar.set_postfix_str(f'windows {count}/{len(selected)}')
      else:
        finished = [len(done)]

        def save(index: int, arrays: Dict[str, np.ndarray]) -> None:
          store.save(index, **arrays)
          finished[0] += 1
          bar.update(len(chosen))
          bar.set_postfix_str(f'windows {finished[0]}/{len(selected)}')

        run_tasks(
            client,
            predict_window_on_worker,
            ((index, (source, window_settings, windows[index])) for index in todo),
            save,
            name='predict-haplotypes-window',
        )
    chunks = [store.load(i) for i in selected]
    values = np.concatenate([c['values'] for c in chunks], axis=1)  # [2S, V, N]
    share = float(chunks[0]['tower_share'])
    stats = _stats_of(
        [c['stats'] for c in chunks], share, length, float(sum(c['tower_work'] for c in chunks))
    )
    summary = _summary_of([c['summary'] for c in chunks])
    num_bins = chunks[0]['values'].shape[1] if bins and bed is not None else 0
    var = _var_table(
        [windows[i] for i in selected],
        None if gene_table is None else gene_table.iloc[selected],
        bool(bins),
        num_bins,
        length,
    )
    obs = pd.DataFrame({'sample': np.repeat(chosen, 2), 'haplotype': ['1', '2'] * len(chosen)})
    if settings.mean_haplotypes:
      mean = values.reshape(len(chosen), 2, *values.shape[1:]).mean(axis=1)
      values = np.concatenate([values, mean])
      obs = pd.concat(
          [obs, pd.DataFrame({'sample': chosen, 'haplotype': 'mean'})], ignore_index=True
      )
    obs.index = (obs['sample'] + '_' + obs['haplotype']).to_numpy()
    ids = [str(all_ids[t]) for t in track_indices]
    labels = [str(all_labels[t]) for t in track_indices]
    var = _with_tracks(var, ids, track_indices, labels)
    uns = {
        'tracks': ids,
        'track_indices': np.asarray(track_indices),
        'track_descriptions': labels,
        'head': head,
        'sequence_length': length,
        'value': (
            'expression at the TSSs'
            if gtf is not None
            else 'output bins'
            if bins
            else 'region mean'
        ),
        'work': {
            **{n: getattr(stats, n) for n in _STATS},
            'tower_work': stats.tower_work,
            'full_pass_equivalents': stats.full_pass_equivalents,
        },
        'vcf_summary': summary.as_dict(),
        'vcf': window_settings.vcf,
        'indels': settings.indels,
        'model': model_id,
        **{k: str(v) for k, v in (run_settings or {}).items()},
    }
    data = anndata.AnnData(X=values.reshape(len(obs), -1), obs=obs, var=var, uns=uns)
    paths = {}
    if settings.tsv:
      _write_tsv(tsv_path, data)
      paths['tsv'] = tsv_path
    atomic_write(path, data.write_h5ad)  # Last: once it exists, the run is finished.
    paths['h5ad'] = path
    store.remove()
    return PredictHaplotypesResult(
        data, stats, summary, paths, len(selected), len(done), time.time() - started
    )
