"""VCF × GTF → sed.h5 in one resumable call (the library behind `enformer score-genes`).

The variant-scoring pipeline (`enformer.variants.pipeline.run_chunks`) with gene-level scores:
the same chunks of whole VCF sites are the unit of work, of resuming (`enformer.io.sad.ChunkStore`
under `<out>.partial/`), of Dask distribution (`client=`) and of sharding (`shard=(K, N)`, joined
by `merge_gene_scores`); the same `ScoringSettings` (ensemble, incremental inference, N value and
indel placement).
Each chunk holds its variant–gene pairs: variant row, gene row, REF and ALT expression [P, N] and
the distance to the gene's TSS; SED and logSED are formed from them when the file is written.
"""

import dataclasses
import os
import threading
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from enformer.distributed import ModelSource, worker_cached, worker_predictor
from enformer.genes.annotation import read_genes
from enformer.genes.expression import GENE_STATS
from enformer.genes.scoring import GeneScorer, sed_scores
from enformer.io import sad as sad_io
from enformer.io import sed as sed_io
from enformer.io.atomic import atomic_write
from enformer.io.fasta import FastaStringExtractor
from enformer.io.files import content_identity
from enformer.io.outputs import file_in_folder
from enformer.io.vcf import VariantSite, VcfSummary
from enformer.variants.background import Background
from enformer.variants.pipeline import (
    ChunkSettings,
    ScoringSettings,
    claim_output,
    head_tracks,
    open_inputs,
    run_chunks,
    track_names,
)

PathLike = Union[str, os.PathLike]
PAIR_ARRAYS = ('variant', 'gene', 'ref', 'alt', 'distance')


@dataclasses.dataclass
class ScoreGenesResult:
  """What `score_genes` produced: the scores, the VCF summary and the files written."""

  scores: sed_io.GeneScores
  summary: VcfSummary
  paths: Dict[str, List[str]]
  chunks_total: int
  chunks_resumed: int
  seconds: float
  num_genes: int


@dataclasses.dataclass(frozen=True)
class GeneChunkSettings:
  """Everything that scores a chunk of sites against genes, except the model (picklable)."""

  variants: ChunkSettings
  gtf: str
  gene_types: Optional[Tuple[str, ...]] = None
  genes: Optional[Tuple[str, ...]] = None
  stat: str = 'sum'

  def gene_table(self, fasta: FastaStringExtractor) -> pd.DataFrame:
    return read_genes(self.gtf, fasta=fasta, gene_types=self.gene_types, genes=self.genes)

  def scorer(
      self,
      predictor,
      fasta: Optional[FastaStringExtractor] = None,
      genes: Optional[pd.DataFrame] = None,
  ) -> GeneScorer:
    fasta = fasta if fasta is not None else FastaStringExtractor(self.variants.fasta)
    genes = genes if genes is not None else self.gene_table(fasta)
    return GeneScorer(self.variants.scorer(predictor, fasta), genes, stat=self.stat)


def score_gene_chunk(
    scorer: GeneScorer, sites: Sequence[VariantSite], progress=None
) -> Dict[str, np.ndarray]:
  """Pairs of one chunk as saved in the chunk store (`variant` counts the chunk's ALTs)."""
  return scorer.score_sites(sites, progress=progress).arrays()


def score_gene_chunk_on_worker(
    source: ModelSource, settings: GeneChunkSettings, sites: Sequence[VariantSite]
) -> Dict[str, np.ndarray]:
  """Dask task: `score_gene_chunk` with the worker's cached model and gene scorer."""
  scorer = worker_cached(
      ('gene-scorer', source.key, settings, threading.get_ident()),
      lambda: settings.scorer(worker_predictor(source)),
  )
  return score_gene_chunk(scorer, sites)


def output_paths(out: PathLike) -> Dict[str, str]:
  """Side files of an output `sed.h5`: the TSV."""
  out = os.fspath(out)
  stem = out[:-3] if out.endswith('.h5') else out
  return {'h5': out, 'tsv': stem + '.tsv'}


def _concatenate_chunks(
    store: sad_io.ChunkStore, chunks: Sequence[int], offsets: np.ndarray
) -> Dict[str, np.ndarray]:
  """Pairs of the listed chunks, `variant` as rows of the whole VCF (chunks without pairs hold
  [0, 0] expression arrays and are skipped)."""
  parts = {name: [] for name in PAIR_ARRAYS}
  for index in chunks:
    chunk = store.load(index)
    if not len(chunk['variant']):
      continue
    chunk['variant'] = chunk['variant'] + offsets[index]
    for name in PAIR_ARRAYS:
      parts[name].append(chunk[name])
  if not parts['variant']:
    return {}
  return {name: np.concatenate(values) for name, values in parts.items()}


def gene_scores(
    pairs: Mapping[str, np.ndarray],
    genes: pd.DataFrame,
    columns: Mapping[str, list],
    rows: np.ndarray,
    target_ids: Sequence[str],
    target_labels: Sequence[str],
    attrs: Mapping[str, object],
) -> sed_io.GeneScores:
  """GeneScores of `pairs` (variant = rows of the whole VCF) for the variants `rows`."""
  local = np.full(len(columns['pos']), -1, np.int64)
  local[rows] = np.arange(len(rows))
  gene_rows = np.asarray(pairs.get('gene', []), np.int64)
  ref = np.asarray(pairs.get('ref', np.zeros((0, len(target_ids)))), np.float32)
  alt = np.asarray(pairs.get('alt', np.zeros((0, len(target_ids)))), np.float32)
  sed, log_sed = sed_scores(ref, alt)
  column = lambda name, dtype=None: np.asarray(columns[name], dtype)[rows]
  return sed_io.GeneScores(
      snp=column('snp'),
      chr=column('chr'),
      pos=column('pos', np.uint32),
      ref=column('ref'),
      alt=column('alt'),
      si=local[np.asarray(pairs.get('variant', []), np.int64)],
      gene=genes['gene_id'].to_numpy()[gene_rows].astype(str),
      gene_name=genes['gene_name'].to_numpy()[gene_rows].astype(str),
      strand=genes['strand'].to_numpy()[gene_rows].astype(str),
      tss_distance=np.asarray(pairs.get('distance', []), np.int64),
      target_ids=np.asarray(target_ids),
      target_labels=np.asarray(target_labels),
      scores={'SED': sed, 'logSED': log_sed, 'REF': ref, 'ALT': alt},
      attrs=dict(attrs),
  )


def add_quantile_scores(
    scores: Dict[str, np.ndarray], background: Background, target_ids: Sequence[str] = ()
) -> None:
  """Adds `<stat>_quantile` for each statistic of `scores` the background holds."""
  if len(target_ids):
    background.check_targets(target_ids)
  for name in [n for n in scores if n in background.stats]:
    scores[f'{name}_quantile'] = background.quantile_score(name, scores[name])


def write_gene_score_files(
    scores: sed_io.GeneScores, out: PathLike, *, tsv: bool = False
) -> Dict[str, List[str]]:
  """Writes `out` (sed.h5 layout) and, with `tsv`, the TSV beside it; the HDF5 goes last."""
  paths = output_paths(out)
  written: Dict[str, List[str]] = {}
  if tsv:
    atomic_write(paths['tsv'], lambda p: sed_io.write_sed_tsv(p, scores))
    written['tsv'] = [paths['tsv']]
  atomic_write(paths['h5'], lambda p: sed_io.write_sed_h5(p, scores))
  written['h5'] = [paths['h5']]
  return written


def score_genes(
    predictor,
    fasta,
    vcf: PathLike,
    gtf: PathLike,
    out: PathLike,
    *,
    settings: Optional[ScoringSettings] = None,
    gene_types: Optional[Sequence[str]] = None,
    genes: Union[PathLike, Sequence[str], None] = None,
    gene_stat: str = 'sum',
    overwrite: bool = False,
    tsv: bool = False,
    background: Optional[Background] = None,
    progress: bool = True,
    run_settings: Optional[Mapping[str, object]] = None,
    client=None,
    shard: Optional[Tuple[int, int]] = None,
) -> ScoreGenesResult:
  """Scores every ALT allele of a VCF against the genes of a GTF and writes `out` (sed.h5).

  A variant is paired with each gene that has a TSS in its window's output
  (`enformer.genes.scoring`); per pair and track, SED = ALT − REF and logSED = log2(1 + ALT) −
  log2(1 + REF) of the gene's expression at its TSSs. Scored in the chunks of
  `enformer.variants.score_vcf` (`run_chunks`), with its `settings` (`ScoringSettings`),
  `overwrite`, `progress`, `run_settings` and `client`; resumable after an interruption (even
  kill -9).

  Example:
    >>> settings = ScoringSettings(targets='targets_human.txt')
    >>> result = score_genes(enformer.load_model('model/'), 'hg38.fa', 'my.vcf',
    ...                      'gencode.gtf.gz', 'sed.h5', settings=settings, tsv=True)
    >>> result.scores.scores['logSED']  # [pairs, T]

  Args:
    gtf: GENCODE / Ensembl GTF (plain or gzip).
    gene_types: keep only genes of these biotypes.
    genes: keep only these gene ids or names (or a file of them).
    gene_stat: 'sum' or 'max' over a gene's TSSs.
    background: a fitted `Background` with SED and/or logSED quantiles: adds `SED_quantile` /
      `logSED_quantile` [P, T] (signed quantile of |score| among the background's, in [−1, 1]).
    out: output HDF5 path, or a folder (then `out/sed.h5`); `tsv` writes `<out>.tsv` beside it.
    shard: (K, N): score only chunks K−1, K−1+N, ... into the shard file `out`; join the N shard
      files with `enformer.genes.merge_gene_scores`. Excludes tsv.

  Raises:
    OutputLockedError: another live process is writing the same `out`.
  """
  started = time.time()
  settings = settings or ScoringSettings()
  out = file_in_folder(out, sed_io.SED_FILE)
  paths = output_paths(out)
  with claim_output(paths['h5'], overwrite):
    if gene_stat not in GENE_STATS:
      raise ValueError(f'`gene_stat` must be one of {GENE_STATS}, got {gene_stat!r}.')
    if shard is not None and (tsv or background is not None):
      raise ValueError(
          'A sharded run (`shard`) writes only its shard file; pass `tsv` when '
          'merging the shards (merge_gene_scores) instead, and score with a '
          '`background` unsharded.'
      )
    if background is not None and not set(background.stats) & {'SED', 'logSED'}:
      raise ValueError(
          f'The background holds {background.stats} distributions, not SED or '
          'logSED: fit it on the SED and logSED scores of a score_genes run.'
      )
    inputs = open_inputs(predictor, fasta, settings, client)
    if isinstance(genes, (str, os.PathLike)):
      genes = os.path.abspath(genes) if os.path.isfile(genes) else [str(genes)]
    chunk_settings = GeneChunkSettings(
        settings.chunk_settings(inputs.fasta.path),
        os.path.abspath(gtf),
        tuple(gene_types) if gene_types is not None else None,
        genes if isinstance(genes, str) or genes is None else tuple(genes),
        gene_stat,
    )
    gene_table = chunk_settings.gene_table(inputs.fasta)
    if gene_table.empty:
      raise ValueError(f'No gene of {gtf} is left to score (after the gene filters).')
    scorer = chunk_settings.scorer(inputs.predictor, inputs.fasta, gene_table)
    run = run_chunks(
        vcf,
        inputs,
        settings,
        scorer=scorer,
        variant_scorer=scorer.variants,
        score=score_gene_chunk,
        task=score_gene_chunk_on_worker,
        task_settings=chunk_settings,
        fingerprint={
            'gtf_content': content_identity(chunk_settings.gtf),
            'genes': sad_io.fingerprint(
                {
                    'genes': gene_table['gene_id'].tolist(),
                    'tss': [list(t) for t in gene_table['tss']],
                }
            ),
            'gene_stat': gene_stat,
        },
        out_h5=paths['h5'],
        overwrite=overwrite,
        shard=shard,
        progress=progress,
        desc='score-genes',
    )
    pairs = _concatenate_chunks(run.store, run.selected, run.offsets)
    num_tracks = head_tracks(inputs.predictor, settings.head)
    if num_tracks is None and pairs:
      num_tracks = pairs['ref'].shape[1]
    target_ids, target_labels = track_names(inputs.targets, int(num_tracks or 0))
    attrs = dict(run.attrs, gtf=os.fspath(gtf), gene_stat=gene_stat, num_genes=len(gene_table))
    attrs.update(run_settings or {})
    scores = gene_scores(pairs, gene_table, run.columns, run.rows, target_ids, target_labels, attrs)
    if background is not None:
      add_quantile_scores(
          scores.scores, background, target_ids if inputs.targets is not None else ()
      )
    if shard is None:
      written = write_gene_score_files(scores, out, tsv=tsv)
    else:
      info = run.shard_info()
      atomic_write(paths['h5'], lambda p: sed_io.write_sed_h5(p, scores, np.float32, info))
      written = {'h5': [paths['h5']]}
    run.store.remove()
    return ScoreGenesResult(
        scores,
        run.summary,
        written,
        len(run.selected),
        run.resumed,
        time.time() - started,
        len(gene_table),
    )
