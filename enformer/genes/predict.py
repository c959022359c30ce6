"""Expression per gene: TSS-centred windows → a genes × tracks table (the library behind
`enformer predict --gtf`).

Each gene is predicted in one window centred on its first TSS (in transcription order); with
`per_tss`, one window per TSS. The window's expression is `enformer.genes.expression.
gene_expression` over the gene's TSSs in the output (only the window's own TSS with `per_tss`).
Files written into the output folder (`enformer.io.outputs.OutputFolder`):

  expression.h5    gene_id [G], gene_name [G], chrom [G], strand [G], tss [G] (the window's
                   centre, 0-based), expression [G, T] float32, target_ids [T], target_labels [T]
  expression.tsv   (tsv=True) one row per gene (or TSS) and track
  expression.h5ad  AnnData: genes (or TSSs) as obs (gene_id, gene_name, chrom, strand, tss),
                   tracks as var (target_id, description), X = expression
"""

import dataclasses
import os
from typing import Optional, Sequence, Union

import anndata
import h5py
import kipoiseq
import numpy as np
import pandas as pd

from enformer.genes.annotation import read_genes
from enformer.genes.expression import gene_expression
from enformer.inference.regions import iter_predictions
from enformer.io.atomic import atomic_write
from enformer.io.fasta import FastaStringExtractor
from enformer.io.outputs import OutputFolder
from enformer.io.sad import byte_strings
from enformer.io.targets import read_targets
from enformer.variants.pipeline import track_names

PathLike = Union[str, os.PathLike]
EXPRESSION_FILES = {'h5': 'expression.h5', 'tsv': 'expression.tsv', 'h5ad': 'expression.h5ad'}


@dataclasses.dataclass
class GeneExpression:
  """Predicted expression of G genes (or TSSs) on T tracks."""

  rows: pd.DataFrame  # gene_id, gene_name, chrom, strand, tss (the window's centre)
  expression: np.ndarray  # [G, T] float32
  target_ids: np.ndarray
  target_labels: np.ndarray

  def to_anndata(self) -> anndata.AnnData:
    """Genes (or TSSs) as obs, tracks as var."""
    obs = self.rows.astype({'tss': np.int64}).copy()
    obs.index = (
        (
            obs['gene_id']
            if obs['gene_id'].is_unique
            else obs['gene_id'] + ':' + obs['tss'].astype(str)
        )
        .astype(str)
        .to_numpy()
    )
    var = pd.DataFrame(
        {'target_id': self.target_ids.astype(str), 'description': self.target_labels.astype(str)}
    )
    var.index = (
        [f'{i}' for i in range(len(var))]
        if not var['target_id'].is_unique
        else var['target_id'].to_numpy()
    )
    return anndata.AnnData(X=self.expression.astype(np.float32), obs=obs, var=var)


def tss_windows(genes: pd.DataFrame, per_tss: bool = False) -> pd.DataFrame:
  """One row per window: the gene's columns and `tss` (the window's centre), `window_tss` (the
  TSSs read in it: all the gene's, or only that one with `per_tss`)."""
  rows = []
  for gene in genes.itertuples(index=False):
    centres = gene.tss if per_tss else (gene.first_tss,)
    for centre in centres:
      rows.append(
          {
              'gene_id': gene.gene_id,
              'gene_name': gene.gene_name,
              'chrom': gene.chrom,
              'strand': gene.strand,
              'tss': int(centre),
              'window_tss': (int(centre),) if per_tss else tuple(gene.tss),
          }
      )
  return pd.DataFrame(
      rows, columns=['gene_id', 'gene_name', 'chrom', 'strand', 'tss', 'window_tss']
  )


def write_expression_h5(path: PathLike, result: GeneExpression) -> None:
  with h5py.File(path, 'w') as h5:
    for name in ('gene_id', 'gene_name', 'chrom', 'strand'):
      h5.create_dataset(name, data=byte_strings(result.rows[name].astype(str)))
    h5.create_dataset('tss', data=result.rows['tss'].to_numpy(np.int64))
    h5.create_dataset('expression', data=result.expression.astype(np.float32))
    h5['expression'].attrs['definition'] = (
        'Prediction summed over the bin of each TSS and its two neighbours (those inside the '
        'output), summed over the TSSs in the window (per-TSS rows: that TSS only).'
    )
    h5.create_dataset('target_ids', data=byte_strings(result.target_ids))
    h5.create_dataset('target_labels', data=byte_strings(result.target_labels))


def write_expression_tsv(path: PathLike, result: GeneExpression) -> None:
  num_genes, num_targets = result.expression.shape
  table = {
      name: np.repeat(result.rows[name].to_numpy(), num_targets)
      for name in ('gene_id', 'gene_name', 'chrom', 'strand', 'tss')
  }
  table.update(
      target_index=np.tile(np.arange(num_targets), num_genes),
      target_id=np.tile(result.target_ids, num_genes),
      target_label=np.tile(result.target_labels, num_genes),
      expression=result.expression.ravel(),
  )
  pd.DataFrame(table).to_csv(path, sep='\t', index=False, float_format='%.6g')


def predict_gene_expression(
    predictor,
    fasta,
    gtf: PathLike,
    out_dir: Optional[PathLike] = None,
    *,
    head: str = 'human',
    targets=None,
    gene_types: Optional[Sequence[str]] = None,
    genes: Union[PathLike, Sequence[str], None] = None,
    per_tss: bool = False,
    stat: str = 'sum',
    tsv: bool = False,
    batch_size: int = 1,
    extra_tracks: Sequence[str] = (),
    neutral_value: float = 0.0,
    progress: bool = True,
    overwrite: bool = False,
    client=None,
) -> GeneExpression:
  """Predicts every gene's expression at its TSSs (windows centred on TSSs) and writes the files.

  Args:
    predictor: `enformer.inference.Predictor` (or, with `client`, a ModelSource).
    fasta: FASTA path or extractor; GTF chromosomes are resolved against it.
    gtf: GTF path; gene_types, genes: filters (`read_genes`).
    out_dir: output folder (None: write nothing, return the table).
    head, targets: output head and its targets table (path or DataFrame) for track names.
    per_tss: one window per TSS instead of one per gene (centred on its first TSS).
    stat: 'sum' or 'max' over the TSSs read in a window.
    tsv: also write expression.tsv.
    batch_size, extra_tracks, neutral_value, progress, client: as `iter_predictions`.
    overwrite: replace this command's earlier outputs in `out_dir`.

  Returns:
    GeneExpression with rows in GTF gene order (per TSS: transcription order).
  """
  owned = isinstance(fasta, (str, os.PathLike))
  extractor = FastaStringExtractor(fasta) if owned else fasta
  try:
    if isinstance(targets, (str, os.PathLike)):
      targets = read_targets(targets)
    table = read_genes(gtf, fasta=extractor, gene_types=gene_types, genes=genes)
    if table.empty:
      raise ValueError(f'No gene of {gtf} is left to predict (after the gene filters).')
    folder = OutputFolder(out_dir, 'predict', overwrite=overwrite) if out_dir is not None else None
    windows = tss_windows(table, per_tss)
    regions = [
        kipoiseq.Interval(chrom, tss, tss + 1, name=gene_id)
        for chrom, tss, gene_id in zip(windows['chrom'], windows['tss'], windows['gene_id'])
    ]
    values = []
    for prediction, tss in zip(
        iter_predictions(
            predictor,
            extractor,
            regions,
            head=head,
            batch_size=batch_size,
            progress=progress,
            extra_tracks=extra_tracks,
            client=client,
            neutral_value=neutral_value,
        ),
        windows['window_tss'],
    ):
      values.append(
          gene_expression(prediction.values, prediction.output_interval.start, tss, stat=stat)
      )
    expression = np.stack(values).astype(np.float32)
  finally:
    if owned:
      extractor.close()
  target_ids, target_labels = track_names(targets, expression.shape[1])
  result = GeneExpression(
      windows.drop(columns='window_tss'),
      expression,
      np.asarray(target_ids),
      np.asarray(target_labels),
  )
  if folder is not None:
    atomic_write(folder.claim(EXPRESSION_FILES['h5']), lambda p: write_expression_h5(p, result))
    if tsv:
      atomic_write(folder.claim(EXPRESSION_FILES['tsv']), lambda p: write_expression_tsv(p, result))
    atomic_write(
        folder.claim(EXPRESSION_FILES['h5ad']), lambda p: result.to_anndata().write_h5ad(p)
    )
  return result
