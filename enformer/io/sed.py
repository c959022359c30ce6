"""Gene-level variant scores: Borzoi's `sed.h5` layout (as `borzoi_sed.py` writes it) and a TSV.

HDF5 layout, one row per variant–gene pair P, per variant V, per track T:
  si             [P]     int64   the pair's variant (row of snp, chr, pos, ...)
  gene           [P]     bytes   gene id (GTF gene_id)
  snp            [V]     bytes   variant ID (VCF ID column)
  chr            [V]     bytes   chromosome (as named in the VCF)
  pos            [V]     uint32  1-based position
  ref_allele     [V]     bytes
  alt_allele     [V]     bytes
  target_ids     [T]     bytes   track identifiers (targets table), else 't0', 't1', ...
  target_labels  [T]     bytes   track descriptions, else b''
  SED            [P, T]  float16 ALT − REF expression at the gene's TSSs
  logSED         [P, T]  float16 log2(1 + ALT) − log2(1 + REF)
  REF, ALT       [P, T]  float16 the expressions themselves (Borzoi's optional REF/ALT stats)
and, beyond Borzoi's datasets (its readers ignore them): gene_name [P], strand [P],
tss_distance [P] int64 (variant − nearest scored TSS, bp, in the gene's direction of
transcription), `*_quantile` [P, T] with a background. Float16 values are clipped to its range
(as Borzoi's `clip_float`). Run settings are file attributes.

Shard files (`--shard K/N`) hold the shard's variants and pairs with float32 scores, plus
`chunk_index` [C] and `variant_index` [V'] (each variant's row in the whole run) and the file
attributes `shard`, `num_chunks`, `num_variants`, `run_settings`, as sad.h5 shards do.
"""

import dataclasses
import os
from typing import Dict, Optional, Union

import h5py
import numpy as np
import pandas as pd

from enformer.io.sad import (
    ShardInfo,
    byte_strings,
    decoded_strings,
    pop_shard_info,
    write_shard_info,
)

PathLike = Union[str, os.PathLike]
SED_FILE = 'sed.h5'  # The output file of a run given a folder as its output.
SED_DATASETS = ('SED', 'logSED', 'REF', 'ALT')
SED_DEFINITION = (
    'SED[p, t] = ALT - REF, where REF/ALT = the prediction summed over the bin of '
    "each of the gene's TSSs and its two neighbours, summed (or maxed) over its "
    'TSSs in the output, averaged over the ensemble.'
)
LOG_SED_DEFINITION = 'logSED[p, t] = log2(1 + ALT) - log2(1 + REF), with REF/ALT as for SED.'
_VARIANT_DATASETS = {
    'snp': 'snp',
    'chr': 'chr',
    'pos': 'pos',
    'ref': 'ref_allele',
    'alt': 'alt_allele',
}


@dataclasses.dataclass
class GeneScores:
  """Scores of P variant–gene pairs on T tracks (strings as str).

  Variants [V]: snp, chr, pos, ref, alt. Pairs [P]: si (variant row), gene (id), gene_name,
  strand, tss_distance. `scores` maps 'SED', 'logSED', 'REF', 'ALT' (and `*_quantile`) to [P, T].
  """

  snp: np.ndarray
  chr: np.ndarray
  pos: np.ndarray
  ref: np.ndarray
  alt: np.ndarray
  si: np.ndarray
  gene: np.ndarray
  gene_name: np.ndarray
  strand: np.ndarray
  tss_distance: np.ndarray
  target_ids: np.ndarray
  target_labels: np.ndarray
  scores: Dict[str, np.ndarray]
  attrs: Dict[str, object] = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return len(self.si)


def _clip(values: np.ndarray, dtype) -> np.ndarray:
  values = np.asarray(values, np.float32)
  if np.dtype(dtype) == np.float16:
    info = np.finfo(np.float16)
    values = np.clip(values, info.min, info.max)
  return values.astype(dtype)


def write_sed_h5(
    path: PathLike, scores: GeneScores, dtype=np.float16, shard: Optional[ShardInfo] = None
) -> None:
  """Writes `scores` in the sed.h5 layout (scores as `dtype`; a shard file with `shard`)."""
  num_pairs, num_targets = len(scores), len(scores.target_ids)
  with h5py.File(path, 'w') as h5:
    h5.create_dataset('si', data=np.asarray(scores.si, np.int64))
    h5.create_dataset('gene', data=byte_strings(scores.gene))
    for field, name in _VARIANT_DATASETS.items():
      values = getattr(scores, field)
      h5.create_dataset(
          name, data=np.asarray(values, np.uint32) if field == 'pos' else byte_strings(values)
      )
    h5.create_dataset('target_ids', data=byte_strings(scores.target_ids))
    h5.create_dataset('target_labels', data=byte_strings(scores.target_labels))
    for name, values in scores.scores.items():
      values = np.asarray(values)
      if values.shape != (num_pairs, num_targets):
        raise ValueError(f'{name} has shape {values.shape}, expected {(num_pairs, num_targets)}.')
      h5.create_dataset(name, data=_clip(values, dtype))
    h5.create_dataset('gene_name', data=byte_strings(scores.gene_name))
    h5.create_dataset('strand', data=byte_strings(scores.strand))
    h5.create_dataset('tss_distance', data=np.asarray(scores.tss_distance, np.int64))
    if 'SED' in h5:
      h5['SED'].attrs['definition'] = SED_DEFINITION
    if 'logSED' in h5:
      h5['logSED'].attrs['definition'] = LOG_SED_DEFINITION
    for key, value in scores.attrs.items():
      h5.attrs[key] = value
    if shard is not None:
      write_shard_info(h5, shard)


def is_sed_file(path: PathLike) -> bool:
  """Whether `path` is an HDF5 file in the sed.h5 layout (pairs `si` and `SED`)."""
  try:
    with h5py.File(path, 'r') as h5:
      return 'si' in h5 and 'SED' in h5
  except OSError:
    return False


def read_sed_h5(path: PathLike):
  """(GeneScores, ShardInfo or None) of a sed.h5-layout file (ours or Borzoi's)."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'Score file {path} does not exist.')
  with h5py.File(path, 'r') as h5:
    text = lambda name: decoded_strings(h5[name][:]) if name in h5 else None
    num_pairs = len(h5['si'])
    fields = {
        field: (h5[name][:] if field == 'pos' else text(name))
        for field, name in _VARIANT_DATASETS.items()
    }
    scores = {
        name: h5[name][:] for name in h5 if h5[name].ndim == 2 and h5[name].shape[0] == num_pairs
    }
    empty = np.array([''] * num_pairs)
    attrs = dict(h5.attrs)
    info = pop_shard_info(h5, attrs)
    result = GeneScores(
        si=h5['si'][:].astype(np.int64),
        gene=text('gene'),
        gene_name=text('gene_name') if 'gene_name' in h5 else empty,
        strand=text('strand') if 'strand' in h5 else empty,
        tss_distance=(
            h5['tss_distance'][:] if 'tss_distance' in h5 else np.zeros(num_pairs, np.int64)
        ),
        target_ids=text('target_ids'),
        target_labels=text('target_labels'),
        scores=scores,
        attrs=attrs,
        **fields,
    )
  return result, info


def write_sed_tsv(path: PathLike, scores: GeneScores) -> None:
  """Tidy TSV: one row per variant–gene pair and track.

  Columns: snp chr pos ref alt gene_id gene_name strand tss_distance target_index target_id
  target_label SED logSED REF ALT (and any `*_quantile`).
  """
  num_targets = len(scores.target_ids)
  si = np.asarray(scores.si, np.int64)
  repeat = lambda values: np.repeat(np.asarray(values), num_targets)
  tile = lambda values: np.tile(np.asarray(values), len(scores))
  table = {
      'snp': repeat(np.asarray(scores.snp)[si]),
      'chr': repeat(np.asarray(scores.chr)[si]),
      'pos': repeat(np.asarray(scores.pos)[si]),
      'ref': repeat(np.asarray(scores.ref)[si]),
      'alt': repeat(np.asarray(scores.alt)[si]),
      'gene_id': repeat(scores.gene),
      'gene_name': repeat(scores.gene_name),
      'strand': repeat(scores.strand),
      'tss_distance': repeat(scores.tss_distance),
      'target_index': tile(np.arange(num_targets)),
      'target_id': tile(scores.target_ids),
      'target_label': tile(scores.target_labels),
  }
  for name, values in scores.scores.items():
    table[name] = np.asarray(values, np.float32).ravel()
  pd.DataFrame(table).to_csv(path, sep='\t', index=False, float_format='%.6g')
