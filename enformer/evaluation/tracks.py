"""Evaluation: per-track Pearson R and R² over bins and sequences, gene-level TSS metrics, plots.

`evaluate(predict_fn, dataset, head, ...)` streams a data subset through a predictor and returns
per-track metrics (the paper's metric: correlation over all (sequence, bin) pairs of a track, from
summed sufficient statistics) and, given a TSS BED and the subset's sequences.bed, the Enformer
paper's gene-level metric:

  for each gene: the bin holding its TSS ±1 bin, summed (several TSSs of one gene are summed);
  log1p; z-score every track across genes; then
    * correlation across genes, per track   ("across genes")
    * correlation across tracks, per gene   ("across tracks": does the model get which cell types
      express the gene)

`evaluate_to_files(model, data, out_dir, ...)` does it all for a Basenji2 data folder: loads the
model at the data's input length (or takes a loaded predictor), evaluates one subset and writes
the files below into an output folder it claims (`enformer.io.outputs.OutputFolder`).

`write_evaluation` writes per_track.tsv (index, identifier, description, assay, pearson_r, r2),
summary.json, gene_level.tsv (when computed) and a PNG of per-track correlations by assay type
(CAGE / DNASE / CHIP / ATAC / other, from the targets description).
"""

import dataclasses
import json
import os
import posixpath
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from enformer.data import basenji
from enformer.data.errors import DataError, data_errors
from enformer.evaluation.tss import expression_at_tss
from enformer.inference.loading import load_model
from enformer.io.atomic import atomic_open, atomic_write
from enformer.io.bed import read_sequences_bed, read_tss_bed
from enformer.io.outputs import OutputFolder
from enformer.io.targets import read_targets
from enformer.plots.evaluation import plot_by_assay
from enformer.training import metrics as metrics_lib

ASSAYS = ('CAGE', 'DNASE', 'CHIP', 'ATAC')
PredictFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def assay_type(description: str) -> str:
  """'CAGE', 'DNASE', 'CHIP', 'ATAC' from a Basenji description prefix (e.g. 'CHIP:H3K4me3:…')."""
  prefix = str(description).split(':', 1)[0].strip().upper()
  if prefix in ('DNASE', 'DNASE-SEQ'):
    return 'DNASE'
  if prefix.startswith('CHIP'):
    return 'CHIP'
  return prefix if prefix in ASSAYS else 'other'


@dataclasses.dataclass
class TssIndex:
  """Where each gene's TSSs fall in a data subset.

  Attributes:
    genes: gene names, in first-seen order of the BED.
    sites: per record index, a list of (gene index, bin) pairs.
    num_tss: TSS rows found inside some record; num_missing: rows outside every record.
  """

  genes: List[str]
  sites: Dict[int, List[Tuple[int, int]]]
  num_tss: int
  num_missing: int


def index_tss(
    tss: Union[str, os.PathLike, pd.DataFrame],
    sequences: pd.DataFrame,
    num_bins: int,
    pool_width: int = 128,
    crop_bp: int = 0,
) -> TssIndex:
  """Maps TSSs to (record, bin) of a subset.

  Args:
    tss: BED (chrom, start, end, name, ...) of TSS positions (start = the TSS, 0-based).
    sequences: the subset's rows of sequences.bed (chrom, start, end), in record order.
    num_bins: target bins per record (T).
    pool_width: bp per bin.
    crop_bp: bp cropped from each side of a record before binning.
  """
  if not isinstance(tss, pd.DataFrame):
    tss = read_tss_bed(tss)
  genes: List[str] = []
  gene_index: Dict[str, int] = {}
  sites: Dict[int, List[Tuple[int, int]]] = {}
  found = missing = 0
  starts = sequences['start'].to_numpy() + crop_bp
  ends = starts + num_bins * pool_width
  chroms = sequences['chrom'].astype(str).to_numpy()
  for row in tss.itertuples(index=False):
    position = int(row.start)
    hits = np.flatnonzero((chroms == str(row.chrom)) & (starts <= position) & (position < ends))
    if not len(hits):
      missing += 1
      continue
    # The record where the TSS is most central.
    record = int(hits[np.argmin(np.abs((starts[hits] + ends[hits]) / 2 - position))])
    name = str(row.name)
    if name not in gene_index:
      gene_index[name] = len(genes)
      genes.append(name)
    sites.setdefault(record, []).append(
        (gene_index[name], (position - starts[record]) // pool_width)
    )
    found += 1
  if not genes:
    raise ValueError(
        f'None of the {len(tss)} TSSs falls inside a record of this subset: check '
        'the chromosome names and the assembly of the TSS BED.'
    )
  return TssIndex(genes=genes, sites=sites, num_tss=found, num_missing=missing)


def index_subset_tss(
    tss: Union[str, os.PathLike, pd.DataFrame],
    data_path: str,
    subset: str,
    num_bins: int,
    pool_width: int = 128,
    crop_bp: int = 0,
) -> TssIndex:
  """`index_tss` for one subset of a Basenji2 data folder: its records from sequences.bed.

  Record i of the subset is the subset's row i of `data_path`/sequences.bed (the order every
  unshuffled read of the subset follows).
  """
  bed = posixpath.join(data_path, 'sequences.bed')
  if not tf.io.gfile.exists(bed):
    raise FileNotFoundError(
        f"The gene-level metric needs {bed} (the records' coordinates, "
        'Basenji2 layout); this data folder has none.'
    )
  with tf.io.gfile.GFile(bed) as handle:
    sequences = read_sequences_bed(handle)
  sequences = sequences[sequences['subset'] == subset].reset_index(drop=True)
  return index_tss(tss, sequences, num_bins, pool_width, crop_bp)


def gene_level_metrics(predicted: np.ndarray, observed: np.ndarray) -> Dict[str, Any]:
  """The Enformer paper's gene-level evaluation of TSS features [G, N] (genes × tracks).

  log1p, z-score each track across genes, then Pearson R across genes (per track) and across
  tracks (per gene).
  """

  def zscore(x):
    x = np.log1p(np.maximum(np.asarray(x, np.float64), 0.0))
    std = x.std(axis=0)
    with np.errstate(divide='ignore', invalid='ignore'):
      return (x - x.mean(axis=0)) / np.where(std > 0, std, np.nan)

  p, y = zscore(predicted), zscore(observed)
  across_genes = metrics_lib.pearson_per_row(np.nan_to_num(p.T), np.nan_to_num(y.T))
  constant = np.isnan(p).all(axis=0) | np.isnan(y).all(axis=0)
  across_genes[constant] = np.nan
  across_tracks = metrics_lib.pearson_per_row(np.nan_to_num(p), np.nan_to_num(y))
  return {
      'across_genes': across_genes,
      'across_tracks': across_tracks,
      'across_genes_mean': metrics_lib.summarize(across_genes),
      'across_tracks_mean': metrics_lib.summarize(across_tracks),
  }


@dataclasses.dataclass
class Evaluation:
  """Result of `evaluate`.

  Attributes:
    head: evaluated head.
    per_track: DataFrame with index, identifier, description, assay, pearson_r, r2.
    summary: means (NaN tracks skipped, with their count), per assay too.
    gene_level: from `gene_level_metrics` plus 'genes' and 'tracks', or None.
    num_sequences: sequences evaluated.
  """

  head: str
  per_track: pd.DataFrame
  summary: Dict[str, Any]
  gene_level: Optional[Dict[str, Any]]
  num_sequences: int


def evaluate(
    predict_fn: PredictFn,
    dataset,
    head: str,
    *,
    batch_size: int = 4,
    max_batches: Optional[int] = None,
    targets: Optional[pd.DataFrame] = None,
    tss_index: Optional[TssIndex] = None,
    progress: bool = True,
    source: str = '',
) -> Evaluation:
  """Evaluates predictions of one head on a data subset.

  Args:
    predict_fn: x float32 [B, L, C] → {head: [B, T, N]} (e.g. `Predictor.predict_on_batch`).
    dataset: unbatched tf.data examples {'sequence': [L, C], 'target': [T, N]} in record order
      (no shuffling when `tss_index` is used).
    head: head to evaluate.
    batch_size: sequences per prediction call.
    max_batches: stop after this many batches (None: all).
    targets: track table (targets.txt) for identifiers, descriptions and assay types.
    tss_index: from `index_tss`, for the gene-level metric.
    progress: progress bar.
    source: where the data comes from (e.g. 'data/human, subset test'), named in DataError
      messages about NaN/infinite values or records that fail get_dataset's checks.
  """
  correlation = metrics_lib.TrackCorrelation()
  gene_predicted = gene_observed = None
  record = 0
  batches = dataset.batch(batch_size)
  if max_batches:
    batches = batches.take(max_batches)
  what = f'the evaluation data ({source})' if source else 'the evaluation data'
  for batch in _checked(
      tqdm(
          batches.as_numpy_iterator(), desc=f'evaluate {head}', unit='batch', disable=not progress
      ),
      what,
  ):
    for name in ('sequence', 'target'):
      if not np.all(np.isfinite(batch[name])):
        rows = np.flatnonzero(~np.isfinite(batch[name]).reshape(len(batch[name]), -1).all(1))
        raise DataError(
            f'{what[0].upper()}{what[1:]} holds NaN or infinite values in {name!r} of '
            f'record(s) {[int(record + i) for i in rows[:5]]} (counting from 0 in '
            'data set order); fix the data.'
        )
    outputs = predict_fn(batch['sequence'].astype(np.float32))
    if head not in outputs:
      raise ValueError(f'The model has no head {head!r}; it has {sorted(outputs)}.')
    predicted = np.asarray(outputs[head])
    observed = batch['target']
    if predicted.shape != observed.shape:
      raise ValueError(
          f'Predictions {predicted.shape[1:]} and targets {observed.shape[1:]} differ in shape: '
          'the model output length (target_length) and tracks must match the data.'
      )
    correlation.update_from_values(observed, predicted)
    if tss_index is not None:
      if gene_predicted is None:
        shape = (len(tss_index.genes), predicted.shape[-1])
        gene_predicted, gene_observed = np.zeros(shape), np.zeros(shape)
      for i in range(len(predicted)):
        for gene, bins in tss_index.sites.get(record + i, []):
          gene_predicted[gene] += expression_at_tss(predicted[i], bins)
          gene_observed[gene] += expression_at_tss(observed[i], bins)
    record += len(predicted)
  if record == 0:
    raise ValueError('The evaluation data set is empty.')
  r, r2 = correlation.pearson_r(), correlation.r2()
  table = _track_table(r, r2, targets)
  gene_level = None
  if tss_index is not None:
    gene_level = gene_level_metrics(gene_predicted, gene_observed)
    gene_level.update(
        genes=tss_index.genes, num_tss=tss_index.num_tss, num_missing=tss_index.num_missing
    )
  return Evaluation(
      head=head,
      per_track=table,
      summary=_summary(table, gene_level),
      gene_level=gene_level,
      num_sequences=record,
  )


def _checked(batches, what: str):
  """Yields the batches; a failed record check of get_dataset becomes a one-line DataError."""
  iterator = iter(batches)
  while True:
    with data_errors(what):
      try:
        batch = next(iterator)
      except StopIteration:
        return
    yield batch


def _track_table(r: np.ndarray, r2: np.ndarray, targets: Optional[pd.DataFrame]) -> pd.DataFrame:
  n = len(r)
  if targets is not None and len(targets) != n:
    raise ValueError(f'The targets table has {len(targets)} rows but the head has {n} tracks.')
  identifiers = (
      targets['identifier'].astype(str).tolist()
      if targets is not None
      else [f'track_{i}' for i in range(n)]
  )
  descriptions = targets['description'].astype(str).tolist() if targets is not None else [''] * n
  return pd.DataFrame(
      {
          'index': np.arange(n),
          'identifier': identifiers,
          'description': descriptions,
          'assay': [assay_type(d) for d in descriptions],
          'pearson_r': r,
          'r2': r2,
      }
  )


def _summary(table: pd.DataFrame, gene_level: Optional[Dict[str, Any]]) -> Dict[str, Any]:
  def describe(values):
    s = metrics_lib.summarize(values)
    return {'mean': s.mean, 'tracks': s.num_tracks, 'nan_tracks': s.num_nan}

  summary = {
      'pearson_r': describe(table['pearson_r']),
      'r2': describe(table['r2']),
      'by_assay': {assay: describe(group['pearson_r']) for assay, group in table.groupby('assay')},
  }
  if gene_level is not None:
    summary['gene_level'] = {
        'across_genes': describe(gene_level['across_genes']),
        'across_tracks': describe(gene_level['across_tracks']),
        'genes': len(gene_level['genes']),
        'tss_used': gene_level['num_tss'],
        'tss_outside_records': gene_level['num_missing'],
    }
  return summary


# The files `write_evaluation` writes (and GENE_LEVEL_FILE with a TSS BED).
EVALUATION_FILES = ('per_track.tsv', 'summary.json', 'per_track_by_assay.png')
GENE_LEVEL_FILE = 'gene_level.tsv'


def write_evaluation(result: Evaluation, out_dir: str) -> Dict[str, str]:
  """Writes per_track.tsv, summary.json, gene_level.tsv (if any) and per_track_by_assay.png."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {
      kind: os.path.join(out_dir, name)
      for kind, name in zip(('per_track', 'summary', 'plot'), EVALUATION_FILES)
  }
  atomic_write(
      paths['per_track'],
      lambda temporary: result.per_track.to_csv(
          temporary, sep='\t', index=False, float_format='%.6g'
      ),
  )
  with atomic_open(paths['summary'], 'w') as f:
    json.dump(
        {'head': result.head, 'sequences': result.num_sequences, **result.summary}, f, indent=2
    )
  if result.gene_level is not None:
    paths['gene_level'] = os.path.join(out_dir, GENE_LEVEL_FILE)
    table = pd.DataFrame(
        {
            'gene': result.gene_level['genes'],
            'pearson_r_across_tracks': result.gene_level['across_tracks'],
        }
    )
    atomic_write(
        paths['gene_level'],
        lambda temporary: table.to_csv(temporary, sep='\t', index=False, float_format='%.6g'),
    )
  plot_by_assay(result.per_track, paths['plot'], f'{result.head}: {result.num_sequences} sequences')
  return paths


def evaluate_to_files(
    model: Any,
    data: str,
    out_dir: str,
    *,
    subset: str = 'test',
    head: Optional[str] = None,
    targets: Optional[str] = None,
    tss: Optional[str] = None,
    layout: Optional[str] = None,
    batch_size: int = 4,
    max_batches: Optional[int] = None,
    model_config: Optional[Mapping[str, Any]] = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Tuple[Evaluation, Dict[str, str]]:
  """Evaluates a model on a subset of a Basenji2 data folder and writes the result files.

  Args:
    model: a model source for `enformer.inference.load_model` (loaded at the data's input length
      with `model_config`), or a loaded predictor (`predict_on_batch`, `heads`).
    data: a Basenji2 (or legacy basenji) data folder, or 'human'/'mouse' under $ENFORMER_DATA_DIR.
    out_dir: the output folder (created); its files are this function's outputs (`OutputFolder`
      'evaluate': with `overwrite` those of an earlier evaluation are replaced, others kept).
    subset: the data subset, e.g. 'test'.
    head: the model head to evaluate (default: its only or first head).
    targets: targets table for track names (default: DATA/targets.txt when present).
    tss: TSS BED for the gene-level metric.
    layout: 'basenji2' or 'legacy' (default: detected).
    batch_size, max_batches, progress: as for `evaluate`.
    model_config: Enformer constructor arguments for a model source.
    overwrite: replace the files an earlier evaluation wrote into `out_dir`.

  Returns:
    (the Evaluation, {kind: path} of the files written).
  """
  info = basenji.load_info(basenji.resolve_path(data), layout)
  predictor = model
  if isinstance(model, (str, os.PathLike)):
    predictor = load_model(
        os.fspath(model), sequence_length=info.sequence_length, **dict(model_config or {})
    )
  head = head or next(iter(predictor.heads))
  if head not in predictor.heads:
    raise ValueError(f'`head` {head!r} is not a head of the model ({list(predictor.heads)}).')
  targets_path = targets or os.path.join(info.path, 'targets.txt')
  table = read_targets(targets_path) if os.path.exists(targets_path) else None
  tss_index = (
      index_subset_tss(tss, info.path, subset, info.target_length, info.pool_width, info.crop_bp)
      if tss
      else None
  )
  dataset = basenji.get_dataset(
      info.path, subset, layout=layout, settings=basenji.DatasetSettings(deterministic=True)
  )
  result = evaluate(
      predictor.predict_on_batch,
      dataset,
      head,
      batch_size=batch_size,
      max_batches=max_batches,
      targets=table,
      tss_index=tss_index,
      progress=progress,
      source=f'{info.path}, subset {subset}',
  )
  folder = OutputFolder(out_dir, 'evaluate', overwrite=overwrite)
  folder.claim_all(EVALUATION_FILES + (GENE_LEVEL_FILE,) * (result.gene_level is not None))
  return result, write_evaluation(result, out_dir)


def summary_lines(result: Evaluation) -> List[str]:
  s = result.summary
  lines = [
      f'{result.head}: {result.num_sequences} sequences; mean Pearson R '
      f'{s["pearson_r"]["mean"]:.4f}, mean R² {s["r2"]["mean"]:.4f} over '
      f'{s["pearson_r"]["tracks"] - s["pearson_r"]["nan_tracks"]} tracks'
      + (
          f' ({s["pearson_r"]["nan_tracks"]} NaN tracks skipped)'
          if s['pearson_r']['nan_tracks']
          else ''
      )
  ]
  for assay, d in s['by_assay'].items():
    lines.append(f'  {assay}: mean Pearson R {d["mean"]:.4f} ({d["tracks"]} tracks)')
  if 'gene_level' in s:
    g = s['gene_level']
    lines.append(
        f'  gene level ({g["genes"]} genes): across genes {g["across_genes"]["mean"]:.4f}'
        f', across tracks {g["across_tracks"]["mean"]:.4f}'
    )
  return lines
