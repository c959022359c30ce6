"""VCF → sad.h5 in one resumable call (the library behind `enformer score-variants`)."""

import dataclasses
import hashlib
import math
import os
import time
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from enformer.io import sad as sad_io
from enformer.io.files import content_identity
from enformer.io.lock import OutputLock
from enformer.io.vcf import VariantSite, VcfSummary, read_variants
from enformer.variants.normalization import ScoreTransform
from enformer.variants.scoring import VariantScorer, flatten_sites
from enformer.io.fasta import FastaStringExtractor
from enformer.io.targets import read_targets
from enformer.variants.plotting import plot_variant_scores

PathLike = Union[str, os.PathLike]


@dataclasses.dataclass
class ScoreVcfResult:
  """What `score_vcf` produced: the scores, the VCF summary and the files written."""
  scores: sad_io.VariantScores
  summary: VcfSummary
  paths: Dict[str, List[str]]
  chunks_total: int
  chunks_resumed: int
  seconds: float


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


def output_paths(out: PathLike) -> Dict[str, str]:
  """Side files of an output `scores.h5`: TSV, PC-table prefix and heatmap PNG."""
  out = os.fspath(out)
  stem = out[:-3] if out.endswith('.h5') else out
  return {'h5': out, 'tsv': stem + '.tsv', 'pcs': stem + '.PCs', 'png': stem + '.png'}


def _track_names(targets, num_tracks: int):
  if targets is None:
    return [f't{i}' for i in range(num_tracks)], [''] * num_tracks
  if len(targets) != num_tracks:
    raise ValueError(f'The targets table has {len(targets)} rows but the head predicts '
                     f'{num_tracks} tracks: pass the table of the same organism as --head.')
  return (targets['identifier'].astype(str).tolist(),
          targets['description'].astype(str).tolist())


def _table_identity(targets) -> str:
  """Content hash of a targets table (DataFrame), '' without one."""
  if targets is None:
    return ''
  return hashlib.sha256(pd.util.hash_pandas_object(targets, index=True).values.tobytes()
                        + ','.join(map(str, targets.columns)).encode()).hexdigest()


def score_vcf(predictor,
              fasta,
              vcf: PathLike,
              out: PathLike,
              *,
              head: str = 'human',
              targets=None,
              sequence_length: Optional[int] = None,
              batch_size: int = 4,
              reverse_complement: bool = False,
              shifts: Sequence[int] = (0,),
              neutral_value: float = 0.0,
              indel_anchor: str = 'notebook',
              ref_mismatch: str = 'skip',
              chunk_size: int = 64,
              overwrite: bool = False,
              tsv: bool = False,
              transform: Optional[ScoreTransform] = None,
              num_pcs: Optional[int] = None,
              model_id: str = '',
              plot: bool = False,
              progress: bool = True,
              run_settings: Optional[Mapping[str, object]] = None,
              incremental: bool = True) -> ScoreVcfResult:
  """Scores every ALT allele of a VCF and writes `out` in the sad.h5 layout (plus SAR).

  Resumable: chunks of `chunk_size` variants are saved under `<out>.partial/` as they finish;
  rerunning the same call after an interruption (even kill -9) skips finished chunks, and the
  final file equals an uninterrupted run's. A finished `out` is never replaced unless
  `overwrite=True`.

  Args:
    predictor: object with `predict_on_batch` and `sequence_length` (`enformer.load_model`).
    fasta: FASTA path or `enformer.io.fasta.FastaStringExtractor`.
    vcf: VCF path (plain or bgzip).
    out: output HDF5 path.
    head: model head to score.
    targets: targets table (path or DataFrame from `enformer.io.targets.read_targets`) for
      `target_ids` / `target_labels`.
    sequence_length, batch_size, reverse_complement, shifts: see `VariantScorer`.
    neutral_value: one-hot value of N: 0 (default; enformer.py, Basenji2) or 0.25 (DeepMind's
      usage notebook). indel_anchor: 'notebook' (default) or 'variant'; see
      `enformer.variants.scoring`.
    ref_mismatch: 'skip' or 'error' for REF alleles that differ from the genome.
    chunk_size: variants per saved chunk.
    overwrite: replace a finished `out` (and discard an unfinished run with other settings).
    tsv: also write a long-format TSV next to `out`.
    transform: fitted `ScoreTransform`: adds dataset `SAD_z` (z-scores) to `out`.
    num_pcs: with `transform`, also write the top-k PCs per chromosome as tabix-indexed TSVs
      and dataset `PC` [V, k].
    model_id: identifies the model in the resume fingerprint: its path (the content of the files
      there is fingerprinted too, so a model replaced at that path is not resumed) or handle.
    plot: also write `<out>.png`, a SAD heatmap of the tracks with the largest effects.
    progress: show a tqdm bar.
    run_settings: extra file attributes to record (e.g. the command line).
    incremental: exact incremental inference for SNVs/MNVs (see `VariantScorer`); False forces
      full forward passes.

  Raises:
    OutputLockedError: another live process is writing the same `out`.
  """
  started = time.time()
  paths = output_paths(out)
  # One run per output: a second run on the same --out stops here, naming this one.
  with OutputLock(paths['h5'], what=f'--out {os.fspath(out)}'):
    if os.path.exists(paths['h5']) and not overwrite:
      raise FileExistsError(f'{paths["h5"]} already exists (a finished run). Pass --overwrite '
                            '(overwrite=True) to replace it, or choose another --out.')
    if num_pcs is not None and transform is None:
      raise ValueError('--pcs needs a fitted transform: pass --transform t.npz.')
    if isinstance(fasta, (str, os.PathLike)):
      fasta = FastaStringExtractor(fasta)
    if isinstance(targets, (str, os.PathLike)):
      targets = read_targets(targets)
    scorer = VariantScorer(predictor, fasta, head=head, sequence_length=sequence_length,
                           batch_size=batch_size, reverse_complement=reverse_complement,
                           shifts=shifts, neutral_value=neutral_value,
                           indel_anchor=indel_anchor, incremental=incremental)
    num_tracks = (getattr(predictor, 'heads', None) or {}).get(head)
    if targets is not None and isinstance(num_tracks, int):
      _track_names(targets, num_tracks)  # Fail before scoring if the table does not fit the head.
    summary = VcfSummary()
    sites = read_variants(vcf, fasta, ref_mismatch=ref_mismatch, summary=summary)
    if not sites:
      raise ValueError(f'No scorable variants in {vcf}.\n{summary.format()}')
    columns = flatten_sites(sites)
    chunks = chunk_sites(sites, chunk_size)
    settings = {
        'variants': sad_io.fingerprint(columns), 'model': model_id,
        # Content identities: a model, genome or table replaced at the same path is noticed.
        'model_content': (content_identity(model_id.rsplit(' precision=', 1)[0])
                          if model_id else ''),
        'fasta': os.path.abspath(fasta.path),
        'fasta_content': content_identity(fasta.path, [fasta.path + '.fai']),
        'targets_content': _table_identity(targets), 'head': head,
        'sequence_length': scorer.sequence_length,
        'shifts': [m.shift for m in scorer.members], 'reverse_complement': reverse_complement,
        'chunk_size': chunk_size, 'neutral_value': scorer.neutral_value,
        'indel_anchor': indel_anchor
    }
    store = sad_io.ChunkStore(paths['h5'], settings, overwrite=overwrite)
    done = set(store.done(len(chunks)))
    done_variants = sum(len(s.variants) for i in done for s in chunks[i])
    with tqdm(total=len(columns['pos']), initial=done_variants, unit='variant',
              desc='score-variants', disable=not progress) as bar:
      for index, chunk in enumerate(chunks):
        if index in done:
          continue
        sad, sar = scorer.score_sites(chunk, progress=bar)
        store.save(index, SAD=sad, SAR=sar)

    arrays = store.concatenate(len(chunks), sad_io.SCORE_DATASETS)
    target_ids, target_labels = _track_names(targets, arrays['SAD'].shape[1])
    attrs = {
        'head': head, 'sequence_length': scorer.sequence_length,
        'shifts': np.asarray([m.shift for m in scorer.members if not m.reverse_complement]),
        'reverse_complement': reverse_complement, 'neutral_value': scorer.neutral_value,
        'indel_anchor': indel_anchor, 'model': model_id, 'fasta': fasta.path,
        'vcf': os.fspath(vcf), 'vcf_summary': summary.format(),
        'SAD_definition': sad_io.SAD_DEFINITION, 'SAR_definition': sad_io.SAR_DEFINITION
    }
    attrs.update(run_settings or {})
    scores = sad_io.VariantScores(
        snp=np.asarray(columns['snp']), chr=np.asarray(columns['chr']),
        pos=np.asarray(columns['pos'], np.uint32), ref=np.asarray(columns['ref']),
        alt=np.asarray(columns['alt']), target_ids=np.asarray(target_ids),
        target_labels=np.asarray(target_labels), scores=dict(arrays), attrs=attrs)

    written: Dict[str, List[str]] = {}
    if transform is not None:
      fitted_on = [str(t) for t in transform.target_ids]
      if fitted_on and targets is not None and fitted_on != list(target_ids):
        raise ValueError('The transform was fitted on other tracks than --targets lists (target '
                         'identifiers differ); use the transform of the same head and table.')
      scores.scores['SAD_z'] = transform.zscore(arrays['SAD'])
      if num_pcs is not None:
        pcs = transform.pcs(arrays['SAD'], num_pcs)
        scores.scores['PC'] = pcs
        written['pcs'] = sad_io.write_pc_tables(paths['pcs'], scores.chr, scores.pos, scores.snp,
                                                scores.ref, scores.alt, pcs)
    if plot:
      written['png'] = [plot_variant_scores(scores, paths['png'])]
    if tsv:
      sad_io.finish_atomically(paths['tsv'], lambda p: sad_io.write_sad_tsv(p, scores))
      written['tsv'] = [paths['tsv']]
    # The HDF5 goes last: once it exists, the run is finished.
    sad_io.finish_atomically(paths['h5'], lambda p: sad_io.write_sad_h5(p, scores))
    written['h5'] = [paths['h5']]
    store.remove()
    return ScoreVcfResult(scores, summary, written, len(chunks), len(done), time.time() - started)
