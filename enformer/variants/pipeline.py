"""VCF → sad.h5 in one resumable call (the library behind `enformer score-variants`).

Chunks of variants are the unit of work, of resuming and of distribution: `score_chunk` scores one
chunk; a single-process run calls it in order, a Dask run (`client=`) calls it on the workers
(`enformer.distributed`), and `shard=(K, N)` scores every N-th chunk into a shard file that
`enformer.variants.shards.merge_scores` joins. `run_chunks` is that chunk loop, shared with
`enformer.genes.score_genes` (which scores the same chunks against genes); `ScoringSettings` holds
the settings both take.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from enformer.distributed import (
    ModelSource,
    run_tasks,
    worker_cached,
    worker_model,
    worker_predictor,
)
from enformer.interpret.motifs import MotifDatabase, jaspar_motifs
from enformer.interpret.scan import scan_variants, select_motifs
from enformer.io import sad as sad_io
from enformer.io.fasta import FastaStringExtractor
from enformer.io.files import content_identity
from enformer.io.lock import OutputLock
from enformer.io.model_source import model_identity, split_model_id
from enformer.io.outputs import file_in_folder
from enformer.io.targets import read_targets
from enformer.io.vcf import VariantSite, VcfSummary, read_variants
from enformer.variants.background import Background
from enformer.variants.normalization import ScoreTransform
from enformer.plots.variants import plot_variant_scores
from enformer.variants.scoring import VariantScorer, flatten_sites

PathLike = Union[str, os.PathLike]
SCORES_FILE = sad_io.SCORES_FILE  # The output file of a run given a folder as `out`.


@dataclasses.dataclass
class ScoreVcfResult:
  """What `score_vcf` produced: the scores, the VCF summary and the files written."""

  scores: sad_io.VariantScores
  summary: VcfSummary
  paths: Dict[str, List[str]]
  chunks_total: int
  chunks_resumed: int
  seconds: float


@dataclasses.dataclass(frozen=True)
class ChunkSettings:
  """Everything that scores a chunk except the model and the variants (picklable, for workers)."""

  fasta: str
  head: str = 'human'
  sequence_length: Optional[int] = None
  batch_size: int = 4
  reverse_complement: bool = False
  shifts: Tuple[int, ...] = (0,)
  incremental: bool = True
  extra_tracks: Tuple[str, ...] = ()
  neutral_value: float = 0.0
  indel_anchor: str = 'notebook'

  def scorer(self, predictor, fasta: Optional[FastaStringExtractor] = None) -> VariantScorer:
    """The VariantScorer of `predictor` with these settings (opens the FASTA unless given)."""
    fasta = fasta if fasta is not None else FastaStringExtractor(self.fasta)
    return VariantScorer(
        predictor,
        fasta,
        head=self.head,
        sequence_length=self.sequence_length,
        batch_size=self.batch_size,
        reverse_complement=self.reverse_complement,
        shifts=self.shifts,
        incremental=self.incremental,
        extra_tracks=self.extra_tracks,
        neutral_value=self.neutral_value,
        indel_anchor=self.indel_anchor,
    )


def score_chunk(
    scorer: VariantScorer, sites: Sequence[VariantSite], progress=None
) -> Dict[str, np.ndarray]:
  """Scores of one chunk, as saved in the chunk store: SAD and SAR [V, N] float32.

  Every executor (single process, Dask workers, shards) scores chunks with this function.
  """
  sad, sar = scorer.score_sites(sites, progress=progress)
  return {'SAD': sad, 'SAR': sar}


def score_chunk_on_worker(
    source: ModelSource, settings: ChunkSettings, sites: Sequence[VariantSite]
) -> Dict[str, np.ndarray]:
  """Dask task: `score_chunk` with the worker's cached model and scorer (one FASTA handle per
  thread)."""
  scorer = worker_cached(
      ('scorer', source.key, settings, threading.get_ident()),
      lambda: settings.scorer(worker_predictor(source)),
  )
  return score_chunk(scorer, sites)


def chunk_sites(sites: Sequence[VariantSite], chunk_size: int) -> List[List[VariantSite]]:
  """Consecutive groups of whole sites with ≥ chunk_size variants each (the last may be smaller)."""
  chunks, current, count = [], [], 0
  for site in sites:
    current.append(site)
    count += len(site.variants)
    if count >= chunk_size:
      chunks.append(current)
      current, count = [], 0
  if current:
    chunks.append(current)
  return chunks


def shard_chunks(num_chunks: int, shard: Tuple[int, int]) -> List[int]:
  """Chunk indices of shard K of N (1-based K): every N-th chunk starting at K − 1."""
  index, count = shard
  if not 1 <= index <= count:
    raise ValueError(f'`shard` K/N needs 1 ≤ K ≤ N, got {index}/{count}.')
  return list(range(index - 1, num_chunks, count))


def output_paths(out: PathLike) -> Dict[str, str]:
  """Side files of an output `scores.h5`: TSV, PC-table prefix and heatmap PNG."""
  out = os.fspath(out)
  stem = out[:-3] if out.endswith('.h5') else out
  return {'h5': out, 'tsv': stem + '.tsv', 'pcs': stem + '.PCs', 'png': stem + '.png'}


def track_names(targets, num_tracks: int):
  """(target_ids, target_labels) of a targets table, else ('t0', ...) and ''; checks the count."""
  if targets is None:
    return [f't{i}' for i in range(num_tracks)], [''] * num_tracks
  if len(targets) != num_tracks:
    raise ValueError(
        f'The targets table has {len(targets)} rows but the head predicts '
        f'{num_tracks} tracks: pass the table of the same organism as `head`.'
    )
  return (targets['identifier'].astype(str).tolist(), targets['description'].astype(str).tolist())


def table_identity(targets) -> str:
  """Content hash of a targets table (DataFrame), '' without one."""
  if targets is None:
    return ''
  return hashlib.sha256(
      pd.util.hash_pandas_object(targets, index=True).values.tobytes()
      + ','.join(map(str, targets.columns)).encode()
  ).hexdigest()


def write_score_files(
    scores: sad_io.VariantScores,
    out: PathLike,
    *,
    transform: Optional[ScoreTransform] = None,
    num_pcs: Optional[int] = None,
    tsv: bool = False,
    plot: bool = False,
    check_targets: bool = True,
    background: Optional[Background] = None,
) -> Dict[str, List[str]]:
  """Writes `out` (sad.h5 layout) and its side files from float32 scores; the HDF5 goes last.

  Args:
    scores: variants with 'SAD' and 'SAR' [V, T]; 'SAD_z' and 'PC' are added here.
    out: output HDF5 path (see `output_paths` for the side files).
    transform, num_pcs: z-scores (SAD_z) and the top-k PCs per chromosome (tabix TSVs + 'PC').
    tsv, plot: also write the long TSV / the SAD heatmap PNG.
    check_targets: the track identifiers come from a targets table: require the transform's
      (and the background's).
    background: adds `SAD_quantile` / `SAR_quantile` for the statistics it holds
      (`enformer.variants.background`).

  Returns:
    Kind ('h5', 'tsv', 'pcs', 'png') → paths written.
  """
  paths = output_paths(out)
  if num_pcs is not None and transform is None:
    raise ValueError('`num_pcs` needs a fitted `transform`.')
  written: Dict[str, List[str]] = {}
  sad = scores.scores['SAD']
  if transform is not None:
    fitted_on = [str(t) for t in transform.target_ids]
    if fitted_on and check_targets and fitted_on != [str(t) for t in scores.target_ids]:
      raise ValueError(
          'The transform was fitted on other tracks than `targets` lists (target '
          'identifiers differ); use the transform of the same head and table.'
      )
    scores.scores['SAD_z'] = transform.zscore(sad)
    if num_pcs is not None:
      pcs = transform.pcs(sad, num_pcs)
      scores.scores['PC'] = pcs
      written['pcs'] = sad_io.write_pc_tables(
          paths['pcs'], scores.chr, scores.pos, scores.snp, scores.ref, scores.alt, pcs
      )
  if background is not None:
    if check_targets:
      background.check_targets(scores.target_ids)
    for name in [n for n in sad_io.SCORE_DATASETS if n in background.stats]:
      scores.scores[f'{name}_quantile'] = background.quantile_score(name, scores.scores[name])
  if plot:
    written['png'] = [plot_variant_scores(scores, paths['png'])]
  if tsv:
    sad_io.finish_atomically(paths['tsv'], lambda p: sad_io.write_sad_tsv(p, scores))
    written['tsv'] = [paths['tsv']]
  # The HDF5 goes last: once it exists, the run is finished.
  sad_io.finish_atomically(paths['h5'], lambda p: sad_io.write_sad_h5(p, scores))
  written['h5'] = [paths['h5']]
  return written


@dataclasses.dataclass(frozen=True)
class ScoringSettings:
  """How variants are scored: the settings `score_vcf` and `score_genes` share.

  Build it once (the CLI builds it from its flags) and pass it as `settings=`;
  `dataclasses.replace(settings, chunk_size=8)` makes a variant of it.

  Attributes:
    head: model head to score ('human' or 'mouse').
    targets: targets table (path, or DataFrame from `enformer.io.targets.read_targets`) naming the
      head's tracks (`target_ids` / `target_labels`); None: 't0', 't1', ...
    sequence_length: model input length L in bp (None: the predictor's).
    batch_size: sequences per forward pass (references and alternatives share batches).
    reverse_complement, shifts: the ensemble averaged before scores are formed (`VariantScorer`).
    extra_tracks: bigWig paths of the extra input channels of a model trained with them.
    neutral_value: one-hot value of N: 0 (enformer.py, Basenji2) or 0.25 (DeepMind's usage
      notebook).
    indel_anchor: placement of indels, 'notebook' or 'variant' (`enformer.variants.scoring`).
    ref_mismatch: 'skip' (and count) or 'error' for REF alleles that differ from the genome.
    chunk_size: variants per saved chunk: the unit of resuming, of Dask tasks and of shards.
    incremental: exact incremental inference for SNVs and MNVs; False forces full passes.
    model_id: the model in the resume fingerprint: its path (whose files count by content) or
      handle, with ' precision=bfloat16' appended for a reduced-precision model.
  """

  head: str = 'human'
  targets: Any = dataclasses.field(default=None, compare=False)
  sequence_length: Optional[int] = None
  batch_size: int = 4
  reverse_complement: bool = False
  shifts: Tuple[int, ...] = (0,)
  extra_tracks: Tuple[str, ...] = ()
  neutral_value: float = 0.0
  indel_anchor: str = 'notebook'
  ref_mismatch: str = 'skip'
  chunk_size: int = 64
  incremental: bool = True
  model_id: str = ''

  def __post_init__(self):
    object.__setattr__(self, 'shifts', tuple(int(shift) for shift in self.shifts))
    object.__setattr__(
        self, 'extra_tracks', tuple(os.fspath(path) for path in self.extra_tracks or ())
    )
    object.__setattr__(self, 'neutral_value', float(self.neutral_value))

  def chunk_settings(self, fasta: str) -> ChunkSettings:
    """The picklable part the workers score chunks with (absolute paths)."""
    return ChunkSettings(
        os.path.abspath(fasta),
        self.head,
        self.sequence_length,
        self.batch_size,
        self.reverse_complement,
        self.shifts,
        self.incremental,
        tuple(os.path.abspath(path) for path in self.extra_tracks),
        self.neutral_value,
        self.indel_anchor,
    )


@dataclasses.dataclass
class ScoringInputs:
  """A run's opened inputs (`open_inputs`)."""

  predictor: Any  # The model, or with `client` its info (heads, sequence_length) from a worker.
  source: Optional[ModelSource]  # With `client`: what the workers load.
  fasta: FastaStringExtractor
  targets: Optional[pd.DataFrame]
  model_id: str
  client: Any = None


def open_inputs(predictor, fasta, settings: ScoringSettings, client=None) -> ScoringInputs:
  """Opens the FASTA and the targets table; with `client`, the model's info from a worker."""
  source, predictor, model_id = worker_model(predictor, client, settings.model_id)
  if isinstance(fasta, (str, os.PathLike)):
    fasta = FastaStringExtractor(fasta)
  targets = settings.targets
  if isinstance(targets, (str, os.PathLike)):
    targets = read_targets(targets)
  return ScoringInputs(predictor, source, fasta, targets, model_id, client)


@contextlib.contextmanager
def claim_output(h5_path: str, overwrite: bool) -> Iterator[None]:
  """Holds the output's lock (one run per output) and refuses a finished output."""
  with OutputLock(h5_path, what=f'output {h5_path}'):
    if os.path.exists(h5_path) and not overwrite:
      raise FileExistsError(
          f'{h5_path} already exists (a finished run). Pass `overwrite` to '
          'replace it, or choose another `out`.'
      )
    yield


def head_tracks(predictor, head: str) -> Optional[int]:
  """Tracks of `head` as the predictor reports them (None when it does not say)."""
  num_tracks = (getattr(predictor, 'heads', None) or {}).get(head)
  return num_tracks if isinstance(num_tracks, int) else None


@dataclasses.dataclass
class ChunkedRun:
  """What `run_chunks` did: the VCF's chunks, this run's share of them, scored in `store`."""

  summary: VcfSummary
  columns: Dict[str, list]  # `flatten_sites` of the whole VCF: one entry per ALT allele.
  chunks: List[List[VariantSite]]
  selected: List[int]  # This run's chunks: a shard's, or all.
  resumed: int  # Chunks found finished in the store.
  offsets: np.ndarray  # [C + 1] the first variant row of each chunk.
  fingerprint: Dict[str, object]
  store: sad_io.ChunkStore
  shard: Optional[Tuple[int, int]]
  attrs: Dict[str, object]  # File attributes both score files record.

  @property
  def rows(self) -> np.ndarray:
    """[V'] rows of the whole VCF's variants in this run's chunks."""
    return np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in self.selected])

  def variant_columns(self) -> Dict[str, np.ndarray]:
    """snp, chr, pos (uint32), ref, alt of this run's variants."""
    rows = self.rows
    column = lambda name, dtype=None: np.asarray(self.columns[name], dtype)[rows]
    return dict(
        snp=column('snp'),
        chr=column('chr'),
        pos=column('pos', np.uint32),
        ref=column('ref'),
        alt=column('alt'),
    )

  def shard_info(self) -> sad_io.ShardInfo:
    """Where a shard file's variants belong in the whole run."""
    return sad_io.ShardInfo(
        shard=tuple(self.shard),
        num_chunks=len(self.chunks),
        num_variants=len(self.columns['pos']),
        chunk_index=self.selected,
        variant_index=self.rows,
        settings=json.dumps(self.fingerprint, default=str),
    )


def run_chunks(
    vcf: PathLike,
    inputs: ScoringInputs,
    settings: ScoringSettings,
    *,
    scorer,
    variant_scorer: VariantScorer,
    score: Callable[..., Dict[str, np.ndarray]],
    task: Callable[..., Dict[str, np.ndarray]],
    task_settings,
    fingerprint: Mapping[str, object],
    out_h5: str,
    overwrite: bool = False,
    shard: Optional[Tuple[int, int]] = None,
    progress: bool = True,
    desc: str = 'score',
) -> ChunkedRun:
  """Reads the VCF, splits it into chunks and scores this run's missing chunks into the store.

  The one chunk loop of `score_vcf` and `score_genes`: chunks of whole sites (`chunk_sites`),
  resumed from `<out_h5>.partial/` when the run's fingerprint matches, scored in this process
  (`score(scorer, sites, progress=bar)`) or, with `inputs.client`, on the Dask workers
  (`task(inputs.source, task_settings, sites)`), each finished chunk saved as it arrives.

  Args:
    vcf: the VCF.
    inputs, settings: the run's opened inputs and settings.
    scorer: what `score` scores a chunk with; variant_scorer: its `VariantScorer` (ensemble,
      sequence length and N value for the fingerprint and the attributes).
    score, task, task_settings: the chunk function and its Dask task (see above).
    fingerprint: the caller's own settings that a resumed chunk must share (genes, statistic).
    out_h5: the output file; its chunk store is `<out_h5>.partial/`.
    overwrite: discard an unfinished run with other settings.
    shard: (K, N): only chunks K − 1, K − 1 + N, ...
    progress, desc: a tqdm bar (variants) and its label.
  """
  head, targets = settings.head, inputs.targets
  num_tracks = head_tracks(inputs.predictor, head)
  if targets is not None and num_tracks is not None:
    track_names(targets, num_tracks)  # Fail before scoring if the table does not fit the head.
  summary = VcfSummary()
  sites = read_variants(vcf, inputs.fasta, ref_mismatch=settings.ref_mismatch, summary=summary)
  if not sites:
    raise ValueError(f'No scorable variants in {vcf}.\n{summary.format()}')
  columns = flatten_sites(sites)
  chunks = chunk_sites(sites, settings.chunk_size)
  model_path, model_precision = split_model_id(inputs.model_id)
  fasta_path = inputs.fasta.path
  prints = {
      # Local models and genomes count by content, not path or timestamps: a model replaced
      # at the same path is noticed; a copy or `touch` of the same files resumes.
      'variants': sad_io.fingerprint(columns),
      'model': model_path if '://' in model_path else '',
      'precision': model_precision or 'float32',
      'model_content': model_identity(model_path),
      'fasta_content': content_identity(fasta_path, [fasta_path + '.fai']),
      'targets_content': table_identity(targets),
      'head': head,
      'sequence_length': variant_scorer.sequence_length,
      'shifts': [m.shift for m in variant_scorer.members],
      'reverse_complement': settings.reverse_complement,
      'chunk_size': settings.chunk_size,
      'targets': None
      if targets is None
      else sad_io.fingerprint({'targets': track_names(targets, len(targets))}),
      'neutral_value': variant_scorer.neutral_value,
      'indel_anchor': settings.indel_anchor,
      **fingerprint,
  }
  if settings.extra_tracks:
    prints['extra_tracks'] = [os.path.abspath(path) for path in settings.extra_tracks]
  selected = list(range(len(chunks))) if shard is None else shard_chunks(len(chunks), shard)
  if not selected:
    raise ValueError(
        f'`shard` {shard[0]}/{shard[1]} holds no chunk: the VCF makes only '
        f'{len(chunks)} chunks of `chunk_size` {settings.chunk_size}; use fewer '
        'shards or a smaller `chunk_size`.'
    )
  store_settings = dict(prints) if shard is None else dict(prints, shard=list(shard))
  store = sad_io.ChunkStore(out_h5, store_settings, overwrite=overwrite)
  done = set(store.done(len(chunks))) & set(selected)
  todo = [i for i in selected if i not in done]
  sizes = [sum(len(site.variants) for site in chunk) for chunk in chunks]
  with tqdm(
      total=sum(sizes[i] for i in selected),
      initial=sum(sizes[i] for i in done),
      unit='variant',
      desc=desc,
      disable=not progress,
  ) as bar:
    bar.set_postfix_str(f'chunks {len(done)}/{len(selected)}')
    if inputs.client is None:
      for count, index in enumerate(todo, start=len(done) + 1):
        store.save(index, **score(scorer, chunks[index], progress=bar))
        bar.set_postfix_str(f'chunks {count}/{len(selected)}')
    else:
      finished = [len(done)]

      def save(index: int, arrays: Dict[str, np.ndarray]) -> None:
        store.save(index, **arrays)
        finished[0] += 1
        bar.update(sizes[index])
        bar.set_postfix_str(f'chunks {finished[0]}/{len(selected)}')

      run_tasks(
          inputs.client,
          task,
          ((index, (inputs.source, task_settings, chunks[index])) for index in todo),
          save,
          name=f'{desc}-chunk',
      )
  attrs = {
      'head': head,
      'sequence_length': variant_scorer.sequence_length,
      'shifts': np.asarray([m.shift for m in variant_scorer.members if not m.reverse_complement]),
      'reverse_complement': settings.reverse_complement,
      'neutral_value': variant_scorer.neutral_value,
      'indel_anchor': settings.indel_anchor,
      'model': inputs.model_id,
      'fasta': fasta_path,
      'vcf': os.fspath(vcf),
      'vcf_summary': summary.format(),
  }
  return ChunkedRun(
      summary,
      columns,
      chunks,
      selected,
      len(done),
      np.cumsum([0] + sizes),
      prints,
      store,
      shard,
      attrs,
  )


def motif_annotations(
    scores: sad_io.VariantScores,
    fasta: PathLike,
    vcf: PathLike,
    motif_ids: Sequence[str],
    database: Optional[MotifDatabase] = None,
) -> Dict[str, np.ndarray]:
  """'motif_gained' and 'motif_lost' [V] of the scored variants: ';'-separated 'ID NAME' of the
  `motif_ids` each variant creates or breaks (`enformer.interpret.scan.scan_variants`), '' for
  none; joined to `scores` on chromosome, position, REF and ALT."""
  table = scan_variants(fasta, vcf, motif_ids, database=database)
  found = {
      (str(c), int(p), str(r), str(a)): (gained, lost)
      for c, p, r, a, gained, lost in zip(
          table['chrom'],
          table['pos'],
          table['ref'],
          table['alt'],
          table['motif_gained'],
          table['motif_lost'],
      )
  }
  pairs = [
      found.get((str(c), int(p), str(r), str(a)), ('', ''))
      for c, p, r, a in zip(scores.chr, scores.pos, scores.ref, scores.alt)
  ]
  return {
      'motif_gained': np.array([g for g, _ in pairs], str),
      'motif_lost': np.array([lost for _, lost in pairs], str),
  }


def score_vcf(
    predictor,
    fasta,
    vcf: PathLike,
    out: PathLike,
    *,
    settings: Optional[ScoringSettings] = None,
    overwrite: bool = False,
    tsv: bool = False,
    transform: Optional[ScoreTransform] = None,
    num_pcs: Optional[int] = None,
    background: Optional[Background] = None,
    plot: bool = False,
    progress: bool = True,
    run_settings: Optional[Mapping[str, object]] = None,
    client=None,
    shard: Optional[Tuple[int, int]] = None,
    scan_motifs: Sequence[str] = (),
    motif_database: Optional[MotifDatabase] = None,
) -> ScoreVcfResult:
  """Scores every ALT allele of a VCF and writes `out` in the sad.h5 layout (plus SAR).

  Resumable: chunks of `settings.chunk_size` variants are saved under `<out>.partial/` as they
  finish; rerunning the same call after an interruption (even kill -9) skips finished chunks, and
  the final file equals an uninterrupted run's. A finished `out` is never replaced unless
  `overwrite=True`.

  Example:
    >>> settings = ScoringSettings(head='human', targets='targets_human.txt', chunk_size=32)
    >>> result = score_vcf(enformer.load_model('model/'), 'hg38.fa', 'my.vcf', 'out/',
    ...                    settings=settings, tsv=True)
    >>> result.scores.sad  # [V, T]

  Args:
    predictor: object with `predict_on_batch` and `sequence_length` (`enformer.load_model`); with
      `client`, an `enformer.distributed.ModelSource` (each worker loads the model once).
    fasta: FASTA path or `enformer.io.fasta.FastaStringExtractor` (with `client`: a path, or an
      extractor whose `path` the workers can read).
    vcf: VCF path (plain or bgzip).
    out: output HDF5 path, or a folder (existing, or written with a trailing separator): then
      `out/scores.h5`.
    settings: how to score (`ScoringSettings`: head, targets, ensemble, chunk size, ...).
    overwrite: replace a finished `out` (and discard an unfinished run with other settings).
    tsv: also write a long-format TSV next to `out`.
    transform: fitted `ScoreTransform`: adds dataset `SAD_z` (z-scores) to `out`.
    num_pcs: with `transform`, also write the top-k PCs per chromosome as tabix-indexed TSVs
      and dataset `PC` [V, k].
    background: fitted `enformer.variants.background.Background` with SAD and/or SAR
      quantiles: adds `SAD_quantile` / `SAR_quantile` (signed quantile of |score| among the
      background's, in [−1, 1]).
    plot: also write `<out>.png`, a SAD heatmap of the tracks with the largest effects.
    progress: show a tqdm bar (variants, with variants/s and chunks done).
    run_settings: extra file attributes to record (e.g. the command line).
    client: a `distributed.Client`: chunks are scored by its workers; the driver writes each
      finished chunk into the chunk store, so the output equals a single-process run's.
    shard: (K, N): score only chunks K−1, K−1+N, ... into the shard file `out` (float32 scores
      and the chunk indices, see `enformer.io.sad.write_shard_h5`); join the N shard files with
      `enformer.variants.shards.merge_scores`. Excludes tsv, plot, transform and num_pcs.
    scan_motifs: motif ids of `motif_database` (e.g. 'MA0139' for CTCF): adds `motif_gained` /
      `motif_lost` per variant (`enformer.interpret.scan.scan_variants`: FIMO on the REF and ALT
      alleles) as string datasets of `out` and columns of the TSV. Not with `shard`.
    motif_database: the motifs of `scan_motifs` (default JASPAR CORE vertebrates).

  Raises:
    OutputLockedError: another live process is writing the same `out`.
  """
  started = time.time()
  settings = settings or ScoringSettings()
  out = file_in_folder(out, SCORES_FILE)
  paths = output_paths(out)
  with claim_output(paths['h5'], overwrite):
    if num_pcs is not None and transform is None:
      raise ValueError('`num_pcs` needs a fitted `transform`.')
    if background is not None and not set(background.stats) & set(sad_io.SCORE_DATASETS):
      raise ValueError(
          f'The background holds {background.stats} distributions, not SAD or SAR: '
          'fit it on the SAD and SAR scores of a score_vcf run.'
      )
    if shard is not None and (tsv or plot or transform is not None or background is not None):
      raise ValueError(
          'A sharded run (`shard`) writes only its shard file; pass `tsv`, `plot`, '
          '`transform` and `num_pcs` when merging the shards (merge_scores) instead, '
          'and score with a `background` unsharded.'
      )
    if scan_motifs:
      if shard is not None:
        raise ValueError(
            'A sharded run (`shard`) writes only its shard file; scan motifs '
            '(`scan_motifs`) in an unsharded run.'
        )
      motif_database = motif_database if motif_database is not None else jaspar_motifs()
      select_motifs(motif_database, scan_motifs)  # Unknown ids: an error before any scoring.
    inputs = open_inputs(predictor, fasta, settings, client)
    chunk_settings = settings.chunk_settings(inputs.fasta.path)
    scorer = chunk_settings.scorer(inputs.predictor, inputs.fasta)
    run = run_chunks(
        vcf,
        inputs,
        settings,
        scorer=scorer,
        variant_scorer=scorer,
        score=score_chunk,
        task=score_chunk_on_worker,
        task_settings=chunk_settings,
        fingerprint={},
        out_h5=paths['h5'],
        overwrite=overwrite,
        shard=shard,
        progress=progress,
        desc='score-variants',
    )
    arrays = run.store.concatenate(run.selected, sad_io.SCORE_DATASETS)
    target_ids, target_labels = track_names(inputs.targets, arrays['SAD'].shape[1])
    attrs = dict(
        run.attrs, SAD_definition=sad_io.SAD_DEFINITION, SAR_definition=sad_io.SAR_DEFINITION
    )
    attrs.update(run_settings or {})
    scores = sad_io.VariantScores(
        **run.variant_columns(),
        target_ids=np.asarray(target_ids),
        target_labels=np.asarray(target_labels),
        scores=dict(arrays),
        attrs=attrs,
    )
    if scan_motifs:
      scores.annotations.update(
          motif_annotations(scores, inputs.fasta.path, vcf, scan_motifs, motif_database)
      )
      scores.attrs['motif_scan'] = ', '.join(select_motifs(motif_database, scan_motifs))
    if shard is None:
      written = write_score_files(
          scores,
          out,
          transform=transform,
          num_pcs=num_pcs,
          tsv=tsv,
          plot=plot,
          check_targets=inputs.targets is not None,
          background=background,
      )
    else:
      sad_io.finish_atomically(
          paths['h5'], lambda p: sad_io.write_shard_h5(p, scores, run.shard_info())
      )
      written = {'h5': [paths['h5']]}
    run.store.remove()
    return ScoreVcfResult(
        scores, run.summary, written, len(run.selected), run.resumed, time.time() - started
    )
