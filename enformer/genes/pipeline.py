"""VCF × GTF → sed.h5 in one resumable call (the library behind `enformer score-genes`).

The variant-scoring pipeline (`enformer.variants.pipeline`) with gene-level scores: the same
chunks of whole VCF sites are the unit of work, of resuming (`enformer.io.sad.ChunkStore` under
`<out>.partial/`), of Dask distribution (`client=`) and of sharding (`shard=(K, N)`, joined by
`merge_gene_scores`); the same ensemble, incremental inference, N value and indel placement.
Each chunk holds its variant–gene pairs: variant row, gene row, REF and ALT expression [P, N] and
the distance to the gene's TSS; SED and logSED are formed from them when the file is written.
"""

import dataclasses
import json
import os
import threading
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from enformer.distributed import (ModelSource, fetch_model_info, run_tasks, worker_cached,
                                  worker_predictor)
from enformer.genes.annotation import read_genes
from enformer.genes.expression import GENE_STATS
from enformer.genes.scoring import GeneScorer, sed_scores
from enformer.io import sad as sad_io
from enformer.io import sed as sed_io
from enformer.io.atomic import atomic_write
from enformer.io.fasta import FastaStringExtractor
from enformer.io.files import content_identity
from enformer.io.lock import OutputLock
from enformer.io.outputs import file_in_folder
from enformer.io.targets import read_targets
from enformer.io.vcf import VariantSite, VcfSummary, read_variants
from enformer.variants.background import Background
from enformer.variants.pipeline import (ChunkSettings, chunk_sites, model_identity, shard_chunks,
                                        table_identity, track_names)
from enformer.variants.scoring import flatten_sites

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

  def scorer(self, predictor, fasta: Optional[FastaStringExtractor] = None,
             genes: Optional[pd.DataFrame] = None) -> GeneScorer:
    fasta = fasta if fasta is not None else FastaStringExtractor(self.variants.fasta)
    genes = genes if genes is not None else self.gene_table(fasta)
    return GeneScorer(self.variants.scorer(predictor, fasta), genes, stat=self.stat)


def score_gene_chunk(scorer: GeneScorer, sites: Sequence[VariantSite],
                     progress=None) -> Dict[str, np.ndarray]:
  """Pairs of one chunk as saved in the chunk store (`variant` counts the chunk's ALTs)."""
  return scorer.score_sites(sites, progress=progress).arrays()


def score_gene_chunk_on_worker(source: ModelSource, settings: GeneChunkSettings,
                               sites: Sequence[VariantSite]) -> Dict[str, np.ndarray]:
  """Dask task: `score_gene_chunk` with the worker's cached model and gene scorer."""
  scorer = worker_cached(('gene-scorer', source.key, settings, threading.get_ident()),
                         lambda: settings.scorer(worker_predictor(source)))
  return score_gene_chunk(scorer, sites)


def output_paths(out: PathLike) -> Dict[str, str]:
  """Side files of an output `sed.h5`: the TSV."""
  out = os.fspath(out)
  stem = out[:-3] if out.endswith('.h5') else out
  return {'h5': out, 'tsv': stem + '.tsv'}


def _concatenate_chunks(store: sad_io.ChunkStore, chunks: Sequence[int],
                        offsets: np.ndarray) -> Dict[str, np.ndarray]:
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


def gene_scores(pairs: Mapping[str, np.ndarray], genes: pd.DataFrame, columns: Mapping[str, list],
                rows: np.ndarray, target_ids: Sequence[str], target_labels: Sequence[str],
                attrs: Mapping[str, object]) -> sed_io.GeneScores:
  """GeneScores of `pairs` (variant = rows of the whole VCF) for the variants `rows`."""
  local = np.full(len(columns['pos']), -1, np.int64)
  local[rows] = np.arange(len(rows))
  gene_rows = np.asarray(pairs.get('gene', []), np.int64)
  ref = np.asarray(pairs.get('ref', np.zeros((0, len(target_ids)))), np.float32)
  alt = np.asarray(pairs.get('alt', np.zeros((0, len(target_ids)))), np.float32)
  sed, log_sed = sed_scores(ref, alt)
  column = lambda name, dtype=None: np.asarray(columns[name], dtype)[rows]
  return sed_io.GeneScores(
      snp=column('snp'), chr=column('chr'), pos=column('pos', np.uint32), ref=column('ref'),
      alt=column('alt'), si=local[np.asarray(pairs.get('variant', []), np.int64)],
      gene=genes['gene_id'].to_numpy()[gene_rows].astype(str),
      gene_name=genes['gene_name'].to_numpy()[gene_rows].astype(str),
      strand=genes['strand'].to_numpy()[gene_rows].astype(str),
      tss_distance=np.asarray(pairs.get('distance', []), np.int64),
      target_ids=np.asarray(target_ids), target_labels=np.asarray(target_labels),
      scores={'SED': sed, 'logSED': log_sed, 'REF': ref, 'ALT': alt}, attrs=dict(attrs))


def add_quantile_scores(scores: Dict[str, np.ndarray], background: Background,
                        target_ids: Sequence[str] = ()) -> None:
  """Adds `<stat>_quantile` for each statistic of `scores` the background holds."""
  if len(target_ids):
    background.check_targets(target_ids)
  for name in [n for n in scores if n in background.stats]:
    scores[f'{name}_quantile'] = background.quantile_score(name, scores[name])


def write_gene_score_files(scores: sed_io.GeneScores, out: PathLike, *,
                           tsv: bool = False) -> Dict[str, List[str]]:
  """Writes `out` (sed.h5 layout) and, with `tsv`, the TSV beside it; the HDF5 goes last."""
  paths = output_paths(out)
  written: Dict[str, List[str]] = {}
  if tsv:
    atomic_write(paths['tsv'], lambda p: sed_io.write_sed_tsv(p, scores))
    written['tsv'] = [paths['tsv']]
  atomic_write(paths['h5'], lambda p: sed_io.write_sed_h5(p, scores))
  written['h5'] = [paths['h5']]
  return written


def score_genes(predictor,
                fasta,
                vcf: PathLike,
                gtf: PathLike,
                out: PathLike,
                *,
                head: str = 'human',
                targets=None,
                gene_types: Optional[Sequence[str]] = None,
                genes: Union[PathLike, Sequence[str], None] = None,
                gene_stat: str = 'sum',
                sequence_length: Optional[int] = None,
                batch_size: int = 4,
                reverse_complement: bool = False,
                shifts: Sequence[int] = (0,),
                extra_tracks: Sequence[str] = (),
                neutral_value: float = 0.0,
                indel_anchor: str = 'notebook',
                ref_mismatch: str = 'skip',
                chunk_size: int = 64,
                overwrite: bool = False,
                tsv: bool = False,
                background: Optional[Background] = None,
                model_id: str = '',
                progress: bool = True,
                run_settings: Optional[Mapping[str, object]] = None,
                incremental: bool = True,
                client=None,
                shard: Optional[Tuple[int, int]] = None) -> ScoreGenesResult:
  """Scores every ALT allele of a VCF against the genes of a GTF and writes `out` (sed.h5).

  A variant is paired with each gene that has a TSS in its window's output
  (`enformer.genes.scoring`); per pair and track, SED = ALT − REF and logSED = log2(1 + ALT) −
  log2(1 + REF) of the gene's expression at its TSSs. Resumable after an interruption (even kill
  -9) like `enformer.variants.score_vcf`, whose arguments these are, plus:

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
  out = file_in_folder(out, sed_io.SED_FILE)
  paths = output_paths(out)
  with OutputLock(paths['h5'], what=f'output {os.fspath(out)}'):
    if os.path.exists(paths['h5']) and not overwrite:
      raise FileExistsError(f'{paths["h5"]} already exists (a finished run). Pass --overwrite '
                            '(overwrite=True) to replace it, or choose another --out.')
    if gene_stat not in GENE_STATS:
      raise ValueError(f'gene_stat must be one of {GENE_STATS}, got {gene_stat!r}.')
    if shard is not None and (tsv or background is not None):
      raise ValueError('A --shard run writes only its shard file; pass --tsv to '
                       '`enformer merge-scores` instead, and score with --background unsharded.')
    if background is not None and not set(background.stats) & {'SED', 'logSED'}:
      raise ValueError(f'The background holds {background.stats} distributions, not SED or '
                       'logSED: fit it with `enformer score-genes --fit-background`.')
    source = None
    if client is not None:
      if not isinstance(predictor, ModelSource):
        raise TypeError('With client=, pass the model as enformer.distributed.ModelSource (the '
                        'workers load it); a loaded predictor cannot be sent to workers.')
      source, predictor = predictor, fetch_model_info(client, predictor)
      model_id = model_id or source.key
    if isinstance(fasta, (str, os.PathLike)):
      fasta = FastaStringExtractor(fasta)
    if isinstance(targets, (str, os.PathLike)):
      targets = read_targets(targets)
    if isinstance(genes, (str, os.PathLike)):
      genes = os.path.abspath(genes) if os.path.isfile(genes) else [str(genes)]
    settings = GeneChunkSettings(
        ChunkSettings(os.path.abspath(fasta.path), head, sequence_length, batch_size,
                      reverse_complement, tuple(int(s) for s in shifts), incremental,
                      tuple(os.path.abspath(path) for path in extra_tracks),
                      float(neutral_value), indel_anchor),
        os.path.abspath(gtf), tuple(gene_types) if gene_types is not None else None,
        genes if isinstance(genes, str) or genes is None else tuple(genes), gene_stat)
    gene_table = settings.gene_table(fasta)
    if gene_table.empty:
      raise ValueError(f'No gene of {gtf} is left to score (after the gene filters).')
    scorer = settings.scorer(predictor, fasta, gene_table)
    num_tracks = (getattr(predictor, 'heads', None) or {}).get(head)
    if targets is not None and isinstance(num_tracks, int):
      track_names(targets, num_tracks)  # Fail before scoring if the table does not fit the head.
    summary = VcfSummary()
    sites = read_variants(vcf, fasta, ref_mismatch=ref_mismatch, summary=summary)
    if not sites:
      raise ValueError(f'No scorable variants in {vcf}.\n{summary.format()}')
    columns = flatten_sites(sites)
    chunks = chunk_sites(sites, chunk_size)
    model_path, _, model_precision = (model_id or '').partition(' precision=')
    fingerprint_settings = {
        'variants': sad_io.fingerprint(columns),
        'model': model_path if '://' in model_path else '',
        'precision': model_precision or 'float32',
        'model_content': model_identity(model_path),
        'fasta_content': content_identity(fasta.path, [fasta.path + '.fai']),
        'gtf_content': content_identity(settings.gtf),
        'genes': sad_io.fingerprint({'genes': gene_table['gene_id'].tolist(),
                                     'tss': [list(t) for t in gene_table['tss']]}),
        'gene_stat': gene_stat,
        'targets_content': table_identity(targets), 'head': head,
        'sequence_length': scorer.variants.sequence_length,
        'shifts': [m.shift for m in scorer.variants.members],
        'reverse_complement': reverse_complement, 'chunk_size': chunk_size,
        'targets': None if targets is None else sad_io.fingerprint(
            {'targets': track_names(targets, len(targets))}),
        'neutral_value': scorer.variants.neutral_value, 'indel_anchor': indel_anchor,
    }
    if extra_tracks:
      fingerprint_settings['extra_tracks'] = [os.path.abspath(p) for p in extra_tracks]
    selected = (list(range(len(chunks))) if shard is None else shard_chunks(len(chunks), shard))
    if not selected:
      raise ValueError(f'--shard {shard[0]}/{shard[1]} holds no chunk: the VCF makes only '
                       f'{len(chunks)} chunks of --chunk-size {chunk_size}; use fewer shards or a '
                       'smaller --chunk-size.')
    store_settings = (dict(fingerprint_settings) if shard is None else
                      dict(fingerprint_settings, shard=list(shard)))
    store = sad_io.ChunkStore(paths['h5'], store_settings, overwrite=overwrite)
    done = set(store.done(len(chunks))) & set(selected)
    todo = [i for i in selected if i not in done]
    sizes = [sum(len(site.variants) for site in chunk) for chunk in chunks]
    offsets = np.cumsum([0] + sizes)
    with tqdm(total=sum(sizes[i] for i in selected), initial=sum(sizes[i] for i in done),
              unit='variant', desc='score-genes', disable=not progress) as bar:
      bar.set_postfix_str(f'chunks {len(done)}/{len(selected)}')
      if client is None:
        for count, index in enumerate(todo, start=len(done) + 1):
          store.save(index, **score_gene_chunk(scorer, chunks[index], progress=bar))
          bar.set_postfix_str(f'chunks {count}/{len(selected)}')
      else:
        finished = [len(done)]

        def save(index: int, arrays: Dict[str, np.ndarray]) -> None:
          store.save(index, **arrays)
          finished[0] += 1
          bar.update(sizes[index])
          bar.set_postfix_str(f'chunks {finished[0]}/{len(selected)}')

        run_tasks(client, score_gene_chunk_on_worker,
                  ((index, (source, settings, chunks[index])) for index in todo), save,
                  name='score-gene-chunk')

    pairs = _concatenate_chunks(store, selected, offsets)
    if num_tracks is None and pairs:
      num_tracks = pairs['ref'].shape[1]
    target_ids, target_labels = track_names(targets, int(num_tracks or 0))
    attrs = {
        'head': head, 'sequence_length': scorer.variants.sequence_length,
        'shifts': np.asarray([m.shift for m in scorer.variants.members
                              if not m.reverse_complement]),
        'reverse_complement': reverse_complement, 'neutral_value': scorer.variants.neutral_value,
        'indel_anchor': indel_anchor, 'model': model_id, 'fasta': fasta.path,
        'vcf': os.fspath(vcf), 'gtf': os.fspath(gtf), 'gene_stat': gene_stat,
        'vcf_summary': summary.format(), 'num_genes': len(gene_table),
    }
    attrs.update(run_settings or {})
    rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in selected])
    scores = gene_scores(pairs, gene_table, columns, rows, target_ids, target_labels, attrs)
    if background is not None:
      add_quantile_scores(scores.scores, background, target_ids if targets is not None else ())
    if shard is None:
      written = write_gene_score_files(scores, out, tsv=tsv)
    else:
      info = sad_io.ShardInfo(shard=tuple(shard), num_chunks=len(chunks),
                              num_variants=len(columns['pos']), chunk_index=selected,
                              variant_index=rows,
                              settings=json.dumps(fingerprint_settings, default=str))
      atomic_write(paths['h5'], lambda p: sed_io.write_sed_h5(p, scores, np.float32, info))
      written = {'h5': [paths['h5']]}
    store.remove()
    return ScoreGenesResult(scores, summary, written, len(selected), len(done),
                            time.time() - started, len(gene_table))
