"""Variant score files: basenji's `sad.h5` layout (plus SAR), long TSV, tabix-indexed PC tables.

HDF5 layout (as written by basenji's SNP scorer and DeepMind's 1000 Genomes release):
  snp            [V]     bytes   variant ID (VCF ID column)
  chr            [V]     bytes   chromosome (as named in the VCF)
  pos            [V]     uint32  1-based position
  ref, alt       [V]     bytes   alleles
  target_ids     [T]     bytes   track identifiers (targets table), else 't0', 't1', ...
  target_labels  [T]     bytes   track descriptions (targets table), else b''
  SAD            [V, T]  float16 alt bin mean − ref bin mean
  SAR            [V, T]  float16 log2(1 + alt bin mean) − log2(1 + ref bin mean)
The definitions are stored as HDF5 attributes of SAD and SAR; run settings as file attributes.

Resumable runs write chunks to `<out>.partial/` (one `.npz` per chunk, each renamed into place
atomically) and assemble the HDF5 at the end (`ChunkStore`).

Shard files (`enformer score-variants --shard K/N`) have the same layout for the shard's variants,
with float32 scores and, in addition:
  chunk_index    [C]     int64   chunks of the run held by this shard
  variant_index  [V']    int64   row of each variant in the whole run's output
and file attributes `shard` ('K/N'), `num_chunks`, `num_variants` and `run_settings` (JSON: the
model, VCF, targets and settings that shards of one run share).
"""

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import pandas as pd
import pysam

from enformer.io.atomic import (atomic_open, atomic_write, remove_stale_temporaries, temporary_name)
from enformer.io.files import read_json

PathLike = Union[str, os.PathLike]

SAD_DEFINITION = (
    'SAD[v, t] = mean over output bins of the alt prediction - mean over output '
    'bins of the ref prediction, for track t (each averaged over the ensemble of '
    'shifts / reverse complement).'
)
SAR_DEFINITION = (
    'SAR[v, t] = log2(1 + mean over bins of alt) - log2(1 + mean over bins of ref), '
    'with the same ensemble-averaged bin means as SAD.'
)
SCORES_FILE = 'scores.h5'  # The output file of a run given a folder as its output.
VARIANT_FIELDS = ('snp', 'chr', 'pos', 'ref', 'alt')
SCORE_DATASETS = ('SAD', 'SAR')


@dataclasses.dataclass
class VariantScores:
  """Scores of V variants on T tracks, as stored in sad.h5 (strings decoded to str).

  `scores` maps a dataset name ('SAD', 'SAR', optionally 'SAD_z', ...) to [V, T] arrays;
  `attrs` holds file-level attributes (settings of the run); `annotations` maps a name (e.g.
  'motif_gained', 'motif_lost') to per-variant strings [V], written as byte-string datasets and as
  TSV columns.
  """

  snp: np.ndarray
  chr: np.ndarray
  pos: np.ndarray
  ref: np.ndarray
  alt: np.ndarray
  target_ids: np.ndarray
  target_labels: np.ndarray
  scores: Dict[str, np.ndarray]
  attrs: Dict[str, object] = dataclasses.field(default_factory=dict)
  annotations: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return len(self.pos)

  @property
  def sad(self) -> np.ndarray:
    return self.scores['SAD']

  @property
  def sar(self) -> np.ndarray:
    return self.scores['SAR']


def byte_strings(values: Sequence[str]) -> np.ndarray:
  """Fixed-length UTF-8 byte strings (|S n), as basenji and Borzoi write them; never zero-width."""
  array = np.array([str(v).encode() for v in values], dtype='S')
  return array if array.dtype.itemsize else array.astype('S1')


def parse_shard(text: str) -> Tuple[int, int]:
  """'K/N' → (K, N) with 1 ≤ K ≤ N (ValueError otherwise)."""
  index, _, count = text.partition('/')
  if not (index.isdigit() and count.isdigit()) or not 1 <= int(index) <= int(count):
    raise ValueError(f'`shard` takes K/N with 1 ≤ K ≤ N (e.g. 2/8), got {text!r}.')
  return int(index), int(count)


def decoded_strings(values: np.ndarray) -> np.ndarray:
  """Strings of a byte-string dataset, decoded as the UTF-8 that `byte_strings` writes (numpy's
  `astype(str)` would decode ASCII only, failing on e.g. 'β-cell' in a track description)."""
  if values.dtype.kind == 'S':
    return np.char.decode(values, 'utf-8', 'replace')
  if values.dtype == object:
    return np.array(
        [v.decode('utf-8', 'replace') if isinstance(v, bytes) else str(v) for v in values],
        dtype=str,
    )
  return values.astype(str)


def write_sad_h5(path: PathLike, scores: VariantScores, dtype=np.float16) -> None:
  """Writes `scores` in the sad.h5 layout (score datasets as `dtype` [V, T], float16 in sad.h5)."""
  num_variants, num_targets = len(scores), len(scores.target_ids)
  with h5py.File(path, 'w') as h5:
    for name in VARIANT_FIELDS:
      values = getattr(scores, name)
      if len(values) != num_variants:
        raise ValueError(f'{name} has {len(values)} entries for {num_variants} variants.')
      h5.create_dataset(
          name, data=np.asarray(values, np.uint32) if name == 'pos' else byte_strings(values)
      )
    h5.create_dataset('target_ids', data=byte_strings(scores.target_ids))
    h5.create_dataset('target_labels', data=byte_strings(scores.target_labels))
    for name, values in scores.annotations.items():
      if len(values) != num_variants:
        raise ValueError(f'{name} has {len(values)} entries for {num_variants} variants.')
      h5.create_dataset(name, data=byte_strings(values))
    for name, values in scores.scores.items():
      values = np.asarray(values)
      if (
          values.ndim == 2
          and values.shape != (num_variants, num_targets)
          and name in SCORE_DATASETS
      ):
        raise ValueError(
            f'{name} has shape {values.shape}, expected {(num_variants, num_targets)}.'
        )
      h5.create_dataset(name, data=values.astype(dtype))
    h5['SAD'].attrs['definition'] = SAD_DEFINITION
    if 'SAR' in h5:
      h5['SAR'].attrs['definition'] = SAR_DEFINITION
    if 'SAD_z' in h5:
      h5['SAD_z'].attrs['definition'] = '(SAD - mean) / scale of the fitted transform'
    for key, value in scores.attrs.items():
      h5.attrs[key] = value


def read_sad_h5(path: PathLike) -> VariantScores:
  """Reads a sad.h5-layout file (ours or basenji's); score datasets come back as float16."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'Score file {path} does not exist.')
  with h5py.File(path, 'r') as h5:
    decoded = {}
    for name in VARIANT_FIELDS + ('target_ids', 'target_labels'):
      if name not in h5:
        decoded[name] = np.array([], dtype=str)
        continue
      values = h5[name][:]
      decoded[name] = values if name == 'pos' else decoded_strings(values)
    num_variants = len(decoded['pos'])
    scores = {
        name: h5[name][:]
        for name in h5
        if h5[name].ndim == 2 and h5[name].shape[0] == num_variants and name not in decoded
    }
    annotations = {  # Per-variant strings other than the variant fields (e.g. motif_lost).
        name: decoded_strings(h5[name][:])
        for name in h5
        if h5[name].ndim == 1
        and h5[name].shape[0] == num_variants
        and name not in decoded
        and h5[name].dtype.kind == 'S'
    }
    return VariantScores(scores=scores, attrs=dict(h5.attrs), annotations=annotations, **decoded)


def write_sad_tsv(path: PathLike, scores: VariantScores) -> None:
  """Long-format TSV like basenji's text output: one row per variant × track.

  Columns: snp chr pos ref alt target_index target_id target_label SAD SAR (and any
  `*_quantile` scores), then the per-variant `annotations` (e.g. motif_gained, motif_lost).
  """
  num_variants, num_targets = len(scores), len(scores.target_ids)
  repeat = lambda values: np.repeat(np.asarray(values), num_targets)
  tile = lambda values: np.tile(np.asarray(values), num_variants)
  table = pd.DataFrame(
      {
          'snp': repeat(scores.snp),
          'chr': repeat(scores.chr),
          'pos': repeat(scores.pos),
          'ref': repeat(scores.ref),
          'alt': repeat(scores.alt),
          'target_index': tile(np.arange(num_targets)),
          'target_id': tile(scores.target_ids),
          'target_label': tile(scores.target_labels),
          'SAD': np.asarray(scores.sad, np.float32).ravel(),
          'SAR': np.asarray(scores.sar, np.float32).ravel(),
      }
  )
  for name in [n for n in scores.scores if n.endswith('_quantile')]:
    table[name] = np.asarray(scores.scores[name], np.float32).ravel()
  for name, values in scores.annotations.items():
    table[name] = repeat(np.asarray(values, str))
  table.to_csv(path, sep='\t', index=False, float_format='%.6g')


def write_pc_tables(
    prefix: PathLike,
    chrom: Sequence[str],
    pos: Sequence[int],
    ids: Sequence[str],
    ref: Sequence[str],
    alt: Sequence[str],
    pcs: np.ndarray,
) -> List[str]:
  """Principal components per chromosome as bgzip + tabix-indexed TSVs (DeepMind's release format).

  Writes `<prefix>.<chrom>.tsv.gz` (+ `.tbi`) with columns `#CHROM POS ID REF ALT PC0 … PC{k-1}`,
  rows sorted by position.

  Args:
    prefix: path prefix of the files.
    chrom, pos, ids, ref, alt: per variant [V].
    pcs: [V, k] principal components.

  Returns:
    Paths of the .tsv.gz files, in order of first appearance of each chromosome.
  """
  prefix = os.fspath(prefix)
  pcs = np.asarray(pcs)
  chrom, pos = np.asarray(chrom).astype(str), np.asarray(pos, np.int64)
  header = '\t'.join(
      ['#CHROM', 'POS', 'ID', 'REF', 'ALT'] + [f'PC{i}' for i in range(pcs.shape[1])]
  )
  paths = []
  for name in dict.fromkeys(chrom):
    rows = np.flatnonzero(chrom == name)
    rows = rows[np.argsort(pos[rows], kind='stable')]
    final = f'{prefix}.{name}.tsv.gz'
    remove_stale_temporaries(final)
    text_path = temporary_name(final)[: -len('.gz')]  # bgzip + tabix add .gz and .gz.tbi.
    try:
      with open(text_path, 'w') as handle:
        handle.write(header + '\n')
        for row in rows:
          values = '\t'.join(f'{value:.6g}' for value in pcs[row])
          handle.write(f'{name}\t{pos[row]}\t{ids[row]}\t{ref[row]}\t{alt[row]}\t{values}\n')
      compressed = pysam.tabix_index(
          text_path, seq_col=0, start_col=1, end_col=1, meta_char='#', force=True
      )
      os.replace(compressed + '.tbi', final + '.tbi')
      os.replace(compressed, final)  # The table last: complete tables always have an index.
    finally:
      for leftover in (text_path, text_path + '.gz', text_path + '.gz.tbi'):
        if os.path.exists(leftover):
          os.remove(leftover)
    paths.append(final)
  return paths


def fingerprint(settings: Mapping[str, object]) -> str:
  """SHA-256 of a JSON-serialisable description of a run (detects a changed command on resume)."""
  return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


class ChunkStore:
  """Chunks of a resumable run in `<out>.partial/`: `run.json` and `chunk_{i:06d}.npz`.

  Each chunk is written to a temporary name and renamed into place, so a run killed at any
  moment leaves only complete chunks behind; rerunning the same command skips them. The caller
  holds an `enformer.io.lock.OutputLock` on `out` while using the store (`score_vcf` does),
  so no two runs share one store.
  """

  def __init__(self, out: PathLike, settings: Mapping[str, object], overwrite: bool = False):
    self.out = os.fspath(out)
    self.directory = self.out + '.partial'
    self.fingerprint = fingerprint(settings)
    manifest = os.path.join(self.directory, 'run.json')
    if os.path.isdir(self.directory):
      previous, previous_settings = None, {}
      if os.path.exists(manifest):
        record = read_json(manifest, 'the resume record')
        if isinstance(record, dict):
          previous, previous_settings = record.get('fingerprint'), record.get('settings') or {}
      if previous != self.fingerprint:
        if not overwrite:
          changed = sorted(
              key
              for key in set(previous_settings) | set(settings)
              if json.dumps(previous_settings.get(key), default=str)
              != json.dumps(settings.get(key), default=str)
          )
          detail = f' (changed: {", ".join(changed)})' if changed and previous_settings else ''
          raise FileExistsError(
              f'{self.directory} holds an unfinished run with different inputs or settings'
              f'{detail}; its scores cannot be combined with this run. Pass `overwrite` to '
              'discard it and start over, or choose another `out`.'
          )
        shutil.rmtree(self.directory)
    os.makedirs(self.directory, exist_ok=True)
    if not os.path.exists(manifest):
      self._atomic_write(
          manifest,
          lambda handle: handle.write(
              json.dumps(
                  {'fingerprint': self.fingerprint, 'settings': dict(settings)},
                  indent=1,
                  default=str,
              ).encode()
          ),
      )

  def _chunk_path(self, index: int) -> str:
    return os.path.join(self.directory, f'chunk_{index:06d}.npz')

  @staticmethod
  def _atomic_write(path: str, write) -> None:
    with atomic_open(path, 'wb') as handle:  # Temporaries of killed runs are swept here too.
      write(handle)

  def has(self, index: int) -> bool:
    return os.path.exists(self._chunk_path(index))

  def done(self, num_chunks: int) -> List[int]:
    return [i for i in range(num_chunks) if self.has(i)]

  def save(self, index: int, **arrays: np.ndarray) -> None:
    self._atomic_write(self._chunk_path(index), lambda handle: np.savez(handle, **arrays))

  def load(self, index: int) -> Dict[str, np.ndarray]:
    with np.load(self._chunk_path(index), allow_pickle=False) as data:
      return {name: data[name] for name in data.files}

  def concatenate(
      self, chunks: Union[int, Sequence[int]], names: Iterable[str]
  ) -> Dict[str, np.ndarray]:
    """Concatenates arrays `names` of chunks 0..chunks-1 (or of the listed chunks) along axis 0."""
    names = list(names)
    parts = {name: [] for name in names}
    for index in (range(chunks) if isinstance(chunks, int) else chunks):
      chunk = self.load(index)
      for name in names:
        parts[name].append(chunk[name])
    return {name: np.concatenate(values) for name, values in parts.items()}

  def remove(self) -> None:
    shutil.rmtree(self.directory, ignore_errors=True)


@dataclasses.dataclass
class ShardInfo:
  """Where a shard file's variants belong in the whole run (see the module docstring)."""

  shard: Tuple[int, int]
  num_chunks: int
  num_variants: int
  chunk_index: Sequence[int]
  variant_index: Sequence[int]
  settings: str

  @property
  def name(self) -> str:
    return f'{self.shard[0]}/{self.shard[1]}'


def write_shard_info(h5: h5py.File, info: ShardInfo) -> None:
  """Adds a shard file's `info` to an open score file (sad.h5 or sed.h5 layout)."""
  h5.create_dataset('chunk_index', data=np.asarray(info.chunk_index, np.int64))
  h5.create_dataset('variant_index', data=np.asarray(info.variant_index, np.int64))
  h5.attrs.update(
      shard=info.name,
      num_chunks=info.num_chunks,
      num_variants=info.num_variants,
      run_settings=info.settings,
  )


def pop_shard_info(h5: h5py.File, attrs: Dict[str, object]) -> Optional[ShardInfo]:
  """The `ShardInfo` of an open score file, its attributes removed from `attrs` (the file's
  attributes); None for a file that is not a shard."""
  if 'shard' not in attrs:
    return None
  index, count = (int(v) for v in str(attrs.pop('shard')).split('/'))
  return ShardInfo(
      shard=(index, count),
      num_chunks=int(attrs.pop('num_chunks')),
      num_variants=int(attrs.pop('num_variants')),
      chunk_index=h5['chunk_index'][:],
      variant_index=h5['variant_index'][:],
      settings=str(attrs.pop('run_settings')),
  )


def write_shard_h5(path: PathLike, scores: VariantScores, info: ShardInfo) -> None:
  """Writes a shard file: `scores` (float32) of the shard's variants plus `info`."""
  write_sad_h5(path, scores, dtype=np.float32)
  with h5py.File(path, 'a') as h5:
    write_shard_info(h5, info)


def read_shard_h5(path: PathLike) -> Tuple[VariantScores, ShardInfo]:
  """Reads a file written by `write_shard_h5` (ValueError for any other sad.h5 file)."""
  path = os.fspath(path)
  scores = read_sad_h5(path)
  with h5py.File(path, 'r') as h5:
    info = pop_shard_info(h5, scores.attrs)
  if info is None:
    raise ValueError(f'{path} is not a shard file (it was written without `shard`).')
  return scores, info


def finish_atomically(path: PathLike, write) -> None:
  """Calls write(temporary_path), then renames it to `path` (no half-written final files)."""
  atomic_write(path, write)
