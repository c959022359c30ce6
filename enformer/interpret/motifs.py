"""Motifs from contribution scores: TF-MoDISco patterns named by TOMTOM against JASPAR.

Which transcription-factor motifs drive a track? The field's answer (gReLU, chrombpnet, the
Borzoi paper's tfmodisco script), offline and with the field's own tools:

  1. contribution scores of the chosen tracks for every region (`region_contributions`): batched
     gradients (hypothetical contributions = the gradient minus its mean over the 4 bases at each
     position, the projection modisco-lite expects from gradient × input) or in-silico
     mutagenesis (Δ target of each base minus its mean over the 4 bases);
  2. TF-MoDISco (`modiscolite`) clusters high-contribution seqlets into patterns (`run_modisco`);
  3. TOMTOM (`memelite`) names each pattern by its best matches in JASPAR CORE vertebrates
     (`jaspar_motifs`, shipped by `pyjaspar`; or a MEME file, `read_meme_motifs`): `match_patterns`.

`find_motifs` runs all three into an output folder (what `enformer motifs` runs); the contribution
step is resumable (chunks of regions in a hidden chunk store, as `score-variants`), and with
`client=` its chunks run on the workers of a Dask cluster (`contributions_on_worker`), each saved
into the same chunk store as it arrives.

Shapes: R regions, L model input length, W window (bp around each region's centre kept for
MoDISco), T output bins, N tracks of the head, w motif width.
"""

import dataclasses
import html
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import h5py
import kipoiseq
import numpy as np
import pandas as pd
import scipy.stats
from memelite import tomtom
from memelite.io import read_meme
from pyjaspar import jaspardb
from tqdm.auto import tqdm

from enformer.distributed import (
    ModelSource,
    run_tasks,
    worker_cached,
    worker_model,
    worker_predictor,
)
from enformer.enformer import BIN_SIZE
from enformer.interpret.gradients import input_gradient, output_shape, target_mask
from enformer.interpret.ism import in_silico_mutagenesis
from enformer.io import sad as sad_io
from enformer.io.atomic import atomic_open, atomic_write
from enformer.io.bed import format_region
from enformer.io.fasta import FastaStringExtractor
from enformer.io.files import content_identity
from enformer.io.lock import OutputLock
from enformer.io.model_source import model_identity, split_model_id
from enformer.io.outputs import OutputFolder
from enformer.io.predictions import read_predictions
from enformer.io.targets import select_tracks, track_labels
from enformer import plots
from enformer.plots import motifs as plots_lib
from enformer.sequence import NEUTRAL_VALUE, NUM_NUCLEOTIDES, reverse_complement

PathLike = Union[str, os.PathLike]

JASPAR_RELEASE = 'JASPAR2026'
METHODS = ('grad', 'ism')
TABLE_COLUMNS = (
    'pattern',
    'sign',
    'num_seqlets',
    'match_rank',
    'match_id',
    'match_name',
    'q_value',
)
# TOMTOM q-values below this count as a match (MEME's tomtom reports q < 0.5 by default; the
# report and the tests use the stricter 0.05).
SIGNIFICANT_Q = 0.05
# modisco-lite's own command-line defaults (`modisco motifs`), the settings its users know.
MODISCO_DEFAULTS = dict(
    sliding_window_size=20,
    flank_size=5,
    trim_to_window_size=30,
    initial_flank_to_add=5,
    final_flank_to_add=0,
    target_seqlet_fdr=0.05,
    n_leiden_runs=2,
    max_seqlets_per_metacluster=2000,
)
# Trimming of a pattern before TOMTOM, as modisco-lite's report: keep the span whose per-position
# |contribution| is at least this fraction of the maximum.
TRIM_THRESHOLD = 0.3
# A trimmed pattern with less information than this (bits, uniform background) is not matched:
# TOMTOM finds near-uniform queries "similar" to the low-information columns of long motifs with
# tiny p-values (q ~ 1e-12 for noise around 0.25 against JASPAR), which would name noise. 4 bits
# are two fully specified bases; MoDISco's own filter asks 0.6 bits per base over 6 bases.
MIN_QUERY_BITS = 4.0
CONTRIBUTIONS_FILE = 'contributions.h5'
MODISCO_FILE = 'modisco.h5'
TABLE_FILE = 'motifs.tsv'
REPORT_FILE = 'report.html'


# --------------------------------------------------------------------------- motif databases


@dataclasses.dataclass
class MotifDatabase:
  """Known motifs: identifiers, names and position probability matrices [4, w] (A, C, G, T)."""

  ids: List[str]
  names: List[str]
  matrices: List[np.ndarray]
  source: str

  def __len__(self) -> int:
    return len(self.ids)

  def index(self, motif_id: str) -> int:
    """Position of `motif_id` ('MA0139.2', or a base id 'MA0139' for its listed version)."""
    for i, known in enumerate(self.ids):
      if known == motif_id or known.split('.')[0] == motif_id:
        return i
    raise ValueError(
        f'Motif {motif_id!r} is not in {self.source} ({len(self)} motifs); give '
        'a matrix id such as MA0139.2 or MA0139.'
    )


def _probabilities(counts: np.ndarray) -> np.ndarray:
  counts = np.asarray(counts, np.float64)
  return counts / np.maximum(counts.sum(0, keepdims=True), 1e-12)


def jaspar_motifs(
    release: str = JASPAR_RELEASE, collection: str = 'CORE', tax_group: str = 'vertebrates'
) -> MotifDatabase:
  """The latest version of every JASPAR motif of a collection and taxon (offline: the SQLite
  databases that `pyjaspar` ships; JASPAR2026 CORE vertebrates holds 1,019 motifs).

  The motifs, their order and matrices are those of pyjaspar's
  `fetch_motifs(collection=, tax_group=[...], all_versions=False)`, read in three queries of its
  database (JASPAR's MATRIX, MATRIX_ANNOTATION and MATRIX_DATA tables) rather than pyjaspar's
  ten or so per motif.
  """
  connection = jaspardb(release=release).conn
  selected = [
      row[0]
      for row in connection.execute(
          'SELECT DISTINCT m.ID FROM MATRIX m, MATRIX_ANNOTATION a WHERE m.COLLECTION = ? AND '
          "m.ID = a.ID AND a.TAG = 'tax_group' AND a.VAL = ? COLLATE NOCASE",
          (collection.upper(), tax_group.lower()),
      )
  ]
  matrices = {
      row[0]: row[1:] for row in connection.execute('SELECT ID, BASE_ID, VERSION, NAME FROM MATRIX')
  }  # ID → (base id, version, name)
  latest: Dict[str, int] = {}
  for base_id, version, _ in matrices.values():
    latest[base_id] = max(version, latest.get(base_id, version))
  selected = [i for i in selected if matrices[i][1] == latest[matrices[i][0]]]
  if not selected:
    raise ValueError(f'{release} has no {collection} motifs of {tax_group!r}.')
  counts: Dict[int, Dict[str, List[Tuple[int, float]]]] = {i: {} for i in selected}
  for motif, base, column, value in connection.execute('SELECT ID, row, col, val FROM MATRIX_DATA'):
    if motif in counts:
      counts[motif].setdefault(base, []).append((column, value))
  return MotifDatabase(
      ids=[f'{matrices[i][0]}.{matrices[i][1]}' for i in selected],
      names=[matrices[i][2] for i in selected],
      matrices=[
          _probabilities([[float(v) for _, v in sorted(counts[i][base])] for base in 'ACGT'])
          for i in selected
      ],
      source=f'{release} {collection} {tax_group}',
  )


def read_meme_motifs(path: PathLike) -> MotifDatabase:
  """Motifs of a MEME file ('MOTIF id name' lines and letter-probability matrices)."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'Motif file {path} does not exist.')
  try:
    motifs = read_meme(path)
  except (ValueError, IndexError, AttributeError) as error:
    raise ValueError(f'{path} is not a MEME motif file ({error}).') from None
  if not motifs:
    raise ValueError(
        f'{path} holds no motifs: expected MEME format (MOTIF lines followed by '
        'letter-probability matrices).'
    )
  ids, names = [], []
  for key in motifs:
    motif_id, _, name = key.partition(' ')
    ids.append(motif_id)
    names.append(name or motif_id)
  return MotifDatabase(ids, names, [_probabilities(m) for m in motifs.values()], path)


def load_motif_db(path: Optional[PathLike] = None) -> MotifDatabase:
  """A MEME file's motifs, or JASPAR CORE vertebrates when `path` is None."""
  return jaspar_motifs() if path is None else read_meme_motifs(path)


# --------------------------------------------------------------------------- regions


def centred(chrom: str, centre: int, width: int, name: str = '') -> kipoiseq.Interval:
  """[centre - width // 2, centre + width - width // 2) on `chrom` (may reach past its ends)."""
  start = int(centre) - width // 2
  interval = kipoiseq.Interval(chrom, start, start + width)
  interval.name = name or format_region(interval)
  return interval


def region_centre(region: kipoiseq.Interval) -> int:
  return (int(region.start) + int(region.end)) // 2


def top_regions(
    predictions: Union[PathLike, Mapping[str, Any]],
    tracks: Sequence[Any],
    count: int,
    *,
    width: int,
    targets: Optional[pd.DataFrame] = None,
) -> List[kipoiseq.Interval]:
  """The `count` strongest peaks of the summed `tracks` in a `predict` output.

  Every output bin of every predicted region is a candidate, ranked by the sum of the selected
  tracks; peaks are taken greedily, each at least `width` bp from the ones taken before (on the
  same chromosome), and returned as `width`-bp regions centred on their bin.

  Args:
    predictions: a file `enformer predict` wrote (HDF5 or npz), or its `read_predictions` dict.
    tracks: selectors of the head's tracks (indices, identifiers, description substrings with
      `targets`); each must be among the tracks the file holds.
    count: regions to return (fewer when the file holds fewer peaks).
    width: bp of each region and the least distance between their centres.
    targets: targets table for selection by name.

  Returns:
    Regions named 'peak{rank}' (0-based, strongest first).
  """
  if count < 1 or width < 1:
    raise ValueError(f'count and width must be >= 1, got {count} and {width}.')
  data = (
      read_predictions(os.fspath(predictions))
      if not isinstance(predictions, Mapping)
      else (predictions)
  )
  stored = [int(t) for t in np.asarray(data['track_index'])]
  wanted = select_tracks(targets, list(tracks))
  missing = [t for t in wanted if t not in stored]
  if missing:
    raise ValueError(
        f'Tracks {missing} are not in the predictions file (it holds tracks '
        f'{stored[:10]}{"..." if len(stored) > 10 else ""}); predict them first.'
    )
  columns = [stored.index(t) for t in wanted]
  values = np.asarray(data['predictions'], np.float64)[..., columns].sum(-1)  # [R, T]
  bin_start = np.asarray(data['bin_start'], np.int64)  # [R, T]
  bin_size = int(data.get('bin_size', BIN_SIZE))
  chroms = np.asarray(data['chrom']).astype(str)
  order = np.argsort(-values, axis=None, kind='stable')
  taken: Dict[str, List[int]] = {}
  regions: List[kipoiseq.Interval] = []
  for flat in order:
    row, column = np.unravel_index(flat, values.shape)
    chrom, centre = chroms[row], int(bin_start[row, column]) + bin_size // 2
    if any(abs(centre - other) < width for other in taken.get(chrom, ())):
      continue
    taken.setdefault(chrom, []).append(centre)
    regions.append(centred(chrom, centre, width, name=f'peak{len(regions)}'))
    if len(regions) == count:
      break
  return regions


# --------------------------------------------------------------------------- contributions


def hypothetical_from_gradient(gradient: np.ndarray) -> np.ndarray:
  """[..., W, 4] gradient → hypothetical contributions: minus the mean over the 4 bases.

  The contribution a base would have were it there, with the component that no one-hot input can
  change (the same shift of all 4 channels) removed; × one-hot gives the actual contributions.
  """
  gradient = np.asarray(gradient, np.float32)[..., :NUM_NUCLEOTIDES]
  return gradient - gradient.mean(-1, keepdims=True)


def hypothetical_from_ism(ism: np.ndarray) -> np.ndarray:
  """[W, 4] ISM Δ (0 at the reference base) → hypothetical contributions: minus the mean over the
  4 bases (the actual contribution of a base is then −(mean Δ of its substitutions) × 3/4)."""
  ism = np.asarray(ism, np.float32)
  return ism - ism.mean(-1, keepdims=True)


def target_bins(
    region: kipoiseq.Interval, input_start: int, num_bins: int, sequence_length: int
) -> List[int]:
  """Output bins that overlap `region` (the central bin when none does)."""
  first_bin_start = input_start + (sequence_length - num_bins * BIN_SIZE) // 2
  bins = [
      b
      for b in range(num_bins)
      if first_bin_start + b * BIN_SIZE < region.end
      and first_bin_start + (b + 1) * BIN_SIZE > region.start
  ]
  return bins or [num_bins // 2]


def region_contributions(
    model,
    extractor: FastaStringExtractor,
    regions: Sequence[kipoiseq.Interval],
    *,
    sequence_length: int,
    tracks: Sequence[int],
    head: str = 'human',
    method: str = 'grad',
    window: int = 400,
    batch_size: int = 8,
    neutral_value: float = NEUTRAL_VALUE,
    progress: Optional[tqdm] = None,
) -> Dict[str, np.ndarray]:
  """Hypothetical contributions of the sum of `tracks` over each region's output bins.

  Each region is centred in a model input of `sequence_length` bp; the target is the sum of the
  head's `tracks` over the output bins that overlap the region; the `window` bp around the
  region's centre are kept. Gradients run in batches of `batch_size` regions (regions with the
  same target bins share a batch); ISM mutates the window (incremental inference).

  Returns:
    'one_hot' [R, W, 4] int8 and 'hypothetical' [R, W, 4] float32.
  """
  if method not in METHODS:
    raise ValueError(f"method must be 'grad' (gradient × input) or 'ism', got {method!r}.")
  num_bins, _ = output_shape(model, sequence_length, head)
  offset = (sequence_length - window) // 2
  one_hot = np.zeros((len(regions), window, NUM_NUCLEOTIDES), np.int8)
  hypothetical = np.zeros((len(regions), window, NUM_NUCLEOTIDES), np.float32)
  inputs = [centred(r.chrom, region_centre(r), sequence_length) for r in regions]
  bins = [
      tuple(target_bins(r, i.start, num_bins, sequence_length)) for r, i in zip(regions, inputs)
  ]
  groups: Dict[Tuple[int, ...], List[int]] = {}
  for index, key in enumerate(bins):
    groups.setdefault(key, []).append(index)
  for key, members in groups.items():
    mask = target_mask(num_bins, _num_tracks(model, head), list(key), list(tracks))
    for first in range(0, len(members), batch_size):
      batch = members[first : first + batch_size]
      x = extractor.extract_batch([inputs[i] for i in batch], neutral_value)  # [b, L, 4]
      one_hot[batch] = (x[:, offset : offset + window] == 1).astype(np.int8)
      if method == 'grad':
        gradient = input_gradient(model, x, mask, head, reduction='sum')  # [b, L, 4]
        hypothetical[batch] = hypothetical_from_gradient(gradient[:, offset : offset + window])
      else:
        for row, i in enumerate(batch):
          ism = in_silico_mutagenesis(
              model,
              x[row],
              mask,
              window=(offset, offset + window),
              head=head,
              reduction='sum',
              batch_size=max(batch_size, 8),
              progress=False,
          )
          hypothetical[i] = hypothetical_from_ism(ism)
      if progress is not None:
        progress.update(len(batch))
  return dict(one_hot=one_hot, hypothetical=hypothetical)


def _num_tracks(model, head: str) -> int:
  heads = getattr(model, 'heads', None)
  if isinstance(heads, Mapping) and isinstance(heads.get(head), int):
    return int(heads[head])
  return output_shape(model, int(getattr(model, 'sequence_length')), head)[1]


@dataclasses.dataclass(frozen=True)
class ContributionSettings:
  """Everything that explains a chunk of regions except the model and the regions (picklable,
  for Dask workers): the keyword arguments of `region_contributions` and the FASTA's path."""

  fasta: str
  sequence_length: int
  tracks: Tuple[int, ...]
  head: str = 'human'
  method: str = 'grad'
  window: int = 400
  batch_size: int = 8
  neutral_value: float = NEUTRAL_VALUE

  def contributions(
      self,
      model,
      extractor: FastaStringExtractor,
      regions: Sequence[kipoiseq.Interval],
      progress: Optional[tqdm] = None,
  ) -> Dict[str, np.ndarray]:
    """`region_contributions` of `regions` with these settings (one chunk of the store)."""
    return region_contributions(
        model,
        extractor,
        regions,
        sequence_length=self.sequence_length,
        tracks=list(self.tracks),
        head=self.head,
        method=self.method,
        window=self.window,
        batch_size=self.batch_size,
        neutral_value=self.neutral_value,
        progress=progress,
    )


def contributions_on_worker(
    source: ModelSource, settings: ContributionSettings, regions: Sequence[kipoiseq.Interval]
) -> Dict[str, np.ndarray]:
  """Dask task: one chunk's contributions ('one_hot' [R, W, 4], 'hypothetical' [R, W, 4]) with
  the worker's cached model (one FASTA handle per thread)."""
  extractor = worker_cached(
      ('motifs-fasta', settings.fasta, threading.get_ident()),
      lambda: FastaStringExtractor(settings.fasta),
  )
  return settings.contributions(worker_predictor(source), extractor, regions)


@dataclasses.dataclass
class Contributions:
  """Contribution scores of regions, in the layout modisco-lite reads (`modisco motifs --h5py`,
  chrombpnet's): `raw/seq` one-hot, `shap/seq` hypothetical and `projected_shap/seq` actual
  contributions, each [R, 4, W]; plus the regions' windows (chrom, start, end).

  Attributes:
    one_hot: [R, W, 4] int8.
    hypothetical: [R, W, 4] float32.
    chrom, start, end: [R] windows (0-based, half-open).
    attrs: settings recorded with the file.
  """

  one_hot: np.ndarray
  hypothetical: np.ndarray
  chrom: np.ndarray
  start: np.ndarray
  end: np.ndarray
  attrs: Dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def actual(self) -> np.ndarray:
    """[R, W, 4] contributions of the bases present."""
    return self.hypothetical * self.one_hot

  def write(self, path: PathLike) -> None:
    """Writes the HDF5 file atomically."""

    def write(temporary: str) -> None:
      with h5py.File(temporary, 'w') as h5:
        h5.create_dataset('raw/seq', data=self.one_hot.transpose(0, 2, 1), compression='gzip')
        h5.create_dataset('shap/seq', data=self.hypothetical.transpose(0, 2, 1), compression='gzip')
        h5.create_dataset(
            'projected_shap/seq', data=self.actual.transpose(0, 2, 1), compression='gzip'
        )
        h5.create_dataset('chrom', data=np.asarray(self.chrom, object), dtype=h5py.string_dtype())
        h5.create_dataset('start', data=np.asarray(self.start, np.int64))
        h5.create_dataset('end', data=np.asarray(self.end, np.int64))
        h5.attrs.update({k: v for k, v in self.attrs.items() if v is not None})

    atomic_write(os.fspath(path), write)

  @classmethod
  def read(cls, path: PathLike) -> 'Contributions':
    with h5py.File(os.fspath(path), 'r') as h5:
      return cls(
          one_hot=h5['raw/seq'][()].transpose(0, 2, 1).astype(np.int8),
          hypothetical=h5['shap/seq'][()].transpose(0, 2, 1).astype(np.float32),
          chrom=np.asarray([c.decode() if isinstance(c, bytes) else c for c in h5['chrom'][()]]),
          start=h5['start'][()],
          end=h5['end'][()],
          attrs=dict(h5.attrs),
      )


# --------------------------------------------------------------------------- MoDISco, TOMTOM

# TF-MoDISco in a fresh Python process (argv: contributions.h5, output, JSON options): modisco-lite
# compiles its numba kernels into numba's on-disk cache only in a process without other threads
# (TensorFlow's), so run there they are compiled once and later runs load them in milliseconds
# (in this process it compiled them on every run: ~25 s of CPU).
_MODISCO_SCRIPT = """
import json, sys
import h5py
import modiscolite
contributions, out, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with h5py.File(contributions, 'r') as h5:
  one_hot = h5['raw/seq'][()].transpose(0, 2, 1).astype('float32')
  hypothetical = h5['shap/seq'][()].transpose(0, 2, 1).astype('float32')
positive, negative = modiscolite.tfmodisco.TFMoDISco(
    one_hot=one_hot, hypothetical_contribs=hypothetical, **options)
modiscolite.io.save_hdf5(out, positive, negative, one_hot.shape[1])
"""


def run_modisco(contributions: PathLike, path: PathLike, **options) -> None:
  """TF-MoDISco (modisco-lite) on a contributions file; writes modisco-lite's HDF5 at `path`.

  Args:
    contributions: an HDF5 file in the layout modisco-lite reads (`Contributions.write`).
    path: the output (written atomically).
    options: `modiscolite.tfmodisco.TFMoDISco` arguments over `MODISCO_DEFAULTS` (modisco-lite's
      command-line defaults), JSON-serialisable.
  """
  settings = {**MODISCO_DEFAULTS, **options}
  with h5py.File(os.fspath(contributions), 'r') as h5:
    regions, window = int(h5['raw/seq'].shape[0]), int(h5['raw/seq'].shape[-1])
  if window < settings['sliding_window_size'] + 2 * settings['flank_size']:
    raise ValueError(
        f'The window ({window} bp) must hold a MoDISco seqlet '
        f'({settings["sliding_window_size"]} bp + 2 × {settings["flank_size"]} bp '
        'flanks); choose a wider window.'
    )

  def write(temporary: str) -> None:
    run = subprocess.run(
        [
            sys.executable,
            '-c',
            _MODISCO_SCRIPT,
            os.fspath(contributions),
            temporary,
            json.dumps(settings),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
      lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
      if 'extract_seqlets' in run.stderr:  # Its null distribution needs more windows.
        raise ValueError(
            f'TF-MoDISco cannot find seqlets in {regions} regions of {window} bp '
            f'({lines[-1] if lines else "failed"}): explain more regions or wider '
            'windows (hundreds of regions of 200-1,000 bp are usual).'
        )
      raise RuntimeError(f'TF-MoDISco (modisco-lite) failed: {lines[-1] if lines else run}')

  atomic_write(os.fspath(path), write)


@dataclasses.dataclass
class Pattern:
  """One MoDISco pattern as written in modisco.h5.

  Attributes:
    name: e.g. 'pos_patterns.pattern_0'.
    sign: 'pos' or 'neg' (the sign of its contributions).
    num_seqlets: seqlets in the pattern.
    ppm: [w, 4] base frequencies of its seqlets.
    cwm: [w, 4] mean contribution (contribution weight matrix).
  """

  name: str
  sign: str
  num_seqlets: int
  ppm: np.ndarray
  cwm: np.ndarray

  @property
  def consensus(self) -> str:
    """The most frequent base at each position."""
    return ''.join('ACGT'[i] for i in self.ppm.argmax(1))

  def holds(self, sequence: str, mismatches: int = 1) -> bool:
    """Whether `sequence` (or its reverse complement) lies in the consensus with at most
    `mismatches` differences."""
    text = self.consensus
    for query in (sequence.upper(), reverse_complement(sequence.upper())):
      for start in range(len(text) - len(query) + 1):
        if sum(a != b for a, b in zip(text[start:], query)) <= mismatches:
          return True
    return False

  def trimmed(self, threshold: float = TRIM_THRESHOLD) -> Tuple[int, int]:
    """(start, end) of the span whose |CWM| per position is ≥ threshold × its maximum."""
    score = np.abs(self.cwm).sum(1)
    keep = np.nonzero(score >= score.max() * threshold)[0]
    return int(keep.min()), int(keep.max()) + 1


def read_patterns(path: PathLike) -> List[Pattern]:
  """The patterns of a modisco-lite HDF5 file, positive then negative, in pattern order."""
  patterns = []
  with h5py.File(os.fspath(path), 'r') as h5:
    for group in ('pos_patterns', 'neg_patterns'):
      if group not in h5:
        continue
      for name in sorted(h5[group], key=lambda n: int(n.split('_')[-1])):
        pattern = h5[group][name]
        patterns.append(
            Pattern(
                name=f'{group}.{name}',
                sign=group[:3],
                num_seqlets=int(np.asarray(pattern['seqlets']['n_seqlets'][()]).ravel()[0]),
                ppm=np.asarray(pattern['sequence'][()], np.float64),
                cwm=np.asarray(pattern['contrib_scores'][()], np.float64),
            )
        )
  return patterns


def information_bits(ppm: np.ndarray) -> float:
  """Total information content (bits, uniform background) of a [w, 4] probability matrix."""
  ppm = np.clip(np.asarray(ppm, np.float64), 1e-12, None)
  ppm = ppm / ppm.sum(1, keepdims=True)
  return float((2.0 + (ppm * np.log2(ppm)).sum(1)).sum())


def match_patterns(
    patterns: Sequence[Pattern], database: MotifDatabase, num_matches: int = 3
) -> pd.DataFrame:
  """TOMTOM (memelite) of each pattern's trimmed PPM against `database`.

  q-values: Benjamini–Hochberg over the pattern's p-values against every motif of the database
  (as MEME's tomtom computes them per query). A pattern whose trimmed PPM holds less than
  `MIN_QUERY_BITS` of information is not matched.

  Returns:
    One row per pattern and match (best first), columns `TABLE_COLUMNS` + `p_value`; a pattern
    that is not matched has one row with match_rank 0, no match and q_value 1.
  """
  rows = []
  queries, queried = [], []
  for pattern in patterns:
    start, end = pattern.trimmed()
    if information_bits(pattern.ppm[start:end]) >= MIN_QUERY_BITS:
      queries.append(np.ascontiguousarray(pattern.ppm[start:end].T))  # [4, w]
      queried.append(pattern)
    else:
      rows.append(
          dict(
              pattern=pattern.name,
              sign=pattern.sign,
              num_seqlets=pattern.num_seqlets,
              match_rank=0,
              match_id='',
              match_name='',
              q_value=1.0,
              p_value=1.0,
          )
      )
  if queries:
    p_values = tomtom(queries, list(database.matrices))[0]  # [P, M]
    for pattern, p_row in zip(queried, p_values):
      p_row = np.clip(np.nan_to_num(p_row, nan=1.0), 0.0, 1.0)
      q_row = scipy.stats.false_discovery_control(p_row)
      for rank, m in enumerate(np.argsort(p_row, kind='stable')[:num_matches], start=1):
        rows.append(
            dict(
                pattern=pattern.name,
                sign=pattern.sign,
                num_seqlets=pattern.num_seqlets,
                match_rank=rank,
                match_id=database.ids[m],
                match_name=database.names[m],
                q_value=float(q_row[m]),
                p_value=float(p_row[m]),
            )
        )
  order = {pattern.name: i for i, pattern in enumerate(patterns)}
  rows.sort(key=lambda row: (order[row['pattern']], row['match_rank']))
  return pd.DataFrame(rows, columns=list(TABLE_COLUMNS) + ['p_value'])


def best_matches(table: pd.DataFrame, q_threshold: float = SIGNIFICANT_Q) -> Dict[str, str]:
  """Pattern → its best match's id, for patterns whose best match has q < `q_threshold`."""
  best = table[(table['match_rank'] == 1) & (table['q_value'] < q_threshold)]
  return dict(zip(best['pattern'], best['match_id']))


# --------------------------------------------------------------------------- the workflow


@dataclasses.dataclass
class MotifResult:
  """What `find_motifs` wrote and found.

  Attributes:
    out_dir: the output folder.
    table: motifs.tsv as a DataFrame.
    patterns: the MoDISco patterns.
    num_regions: regions explained; chunks_resumed: chunks of them found done.
    seconds: wall time of the whole run; contribution_seconds: of the contribution step (this
      run's regions only).
    files: paths written.
  """

  out_dir: str
  table: pd.DataFrame
  patterns: List[Pattern]
  num_regions: int
  chunks_resumed: int
  seconds: float
  contribution_seconds: float
  files: List[str]

  @property
  def regions_per_second(self) -> float:
    done = self.num_regions
    return done / self.contribution_seconds if self.contribution_seconds > 0 else float('nan')

  def summary(self) -> str:
    named = best_matches(self.table)
    shown = ', '.join(f'{p.split(".")[0][:3]}{p.split("_")[-1]}→{m}' for p, m in named.items())
    return (
        f'{len(self.patterns)} MoDISco patterns from {self.num_regions} regions; '
        f'{len(named)} matched (q < {SIGNIFICANT_Q}){": " + shown if shown else ""}'
    )


def _model_content(model_id: str) -> str:
  """The resume fingerprint's model entry: the content identity of a model id ('PATH' or
  'PATH precision=P'), with its precision."""
  path, precision = split_model_id(model_id)
  return model_identity(path) + (f' {precision}' if precision else '')


def find_motifs(
    predictor,
    fasta: PathLike,
    regions: Sequence[kipoiseq.Interval],
    out_dir: PathLike,
    *,
    tracks: Sequence[Any],
    head: str = 'human',
    targets: Optional[pd.DataFrame] = None,
    method: str = 'grad',
    window: int = 400,
    batch_size: int = 8,
    chunk_size: int = 64,
    motif_db: Optional[MotifDatabase] = None,
    num_matches: int = 3,
    modisco_options: Optional[Mapping[str, Any]] = None,
    neutral_value: float = NEUTRAL_VALUE,
    model_id: str = '',
    progress: bool = True,
    overwrite: bool = False,
    client=None,
) -> MotifResult:
  """Contribution scores → TF-MoDISco → TOMTOM for `regions`, written into the folder `out_dir`.

  Writes contributions.h5 (`Contributions`), modisco.h5 (modisco-lite's format), motifs.tsv (one
  row per pattern and match: `TABLE_COLUMNS`, p_value) and report.html with logos/ (each
  pattern's contribution logo beside its best matches). Resumable: chunks of `chunk_size` regions
  are kept in `out_dir/.contributions.partial/` as they finish; rerunning the same call skips them.
  With `client`, the chunks run on the Dask workers and are saved into the same store (the same
  files; a killed run resumes in either mode).

  Args:
    predictor: a Predictor (`enformer.load_model`); with `client`, an
      `enformer.distributed.ModelSource` (each worker loads the model once).
    fasta: genome FASTA.
    regions: regions to explain (`enformer.io.bed.read_bed`, `top_regions`).
    out_dir: output folder.
    tracks: selectors of the head's tracks whose sum is explained.
    head: output head.
    targets: targets table (track names, selection by name).
    method: 'grad' (gradients, batched) or 'ism' (mutagenesis of the window).
    window: bp around each region's centre kept for MoDISco.
    batch_size: regions per gradient batch (ISM: mutants per forward pass).
    chunk_size: regions per saved chunk (the unit of resuming).
    motif_db: motifs to match (default JASPAR CORE vertebrates).
    num_matches: matches listed per pattern.
    modisco_options: TFMoDISco arguments over `MODISCO_DEFAULTS`.
    neutral_value: one-hot value of N.
    model_id: the model's path or handle, for the resume fingerprint (its files count by content).
    progress: progress bar over regions.
    overwrite: replace this command's earlier outputs in `out_dir` (and discard an unfinished run
      with other settings).
    client: a `distributed.Client`: chunks of regions are explained by its workers (the driver
      writes each as it arrives, then runs MoDISco and TOMTOM).

  Returns:
    A MotifResult.
  """
  started = time.time()
  if method not in METHODS:
    raise ValueError(f"method must be 'grad' or 'ism', got {method!r}.")
  if not regions:
    raise ValueError('No regions to explain.')
  for name, value in (
      ('window', window),
      ('batch_size', batch_size),
      ('chunk_size', chunk_size),
      ('num_matches', num_matches),
  ):
    if int(value) < 1:
      raise ValueError(f'{name} must be >= 1, got {value}.')
  source, predictor, model_id = worker_model(predictor, client, model_id)
  sequence_length = int(predictor.sequence_length)
  if window > sequence_length:
    raise ValueError(
        f'The window ({window:,} bp) is longer than the model input '
        f'({sequence_length:,} bp); choose a window of at most {sequence_length:,}.'
    )
  if head not in predictor.heads:
    raise ValueError(f'Head {head!r} is not a head of this model: {list(predictor.heads)}.')
  track_indices = select_tracks(targets, list(tracks), predictor.heads[head])
  if getattr(predictor, 'input_channels', NUM_NUCLEOTIDES) != NUM_NUCLEOTIDES:
    raise ValueError(
        'Motif discovery explains one-hot-only models; this model takes '
        f'{predictor.input_channels} input channels.'
    )
  out_dir = os.fspath(out_dir)
  extractor = FastaStringExtractor(os.fspath(fasta))
  extractor.check_regions([centred(r.chrom, region_centre(r), window) for r in regions])
  with OutputLock(out_dir, what=f'output folder {out_dir}'):
    folder = OutputFolder(out_dir, 'motifs', overwrite=overwrite)
    paths = folder.claim_all([CONTRIBUTIONS_FILE, MODISCO_FILE, TABLE_FILE, REPORT_FILE])
    settings = {
        'regions': sad_io.fingerprint(
            {'regions': [(r.chrom, int(r.start), int(r.end)) for r in regions]}
        ),
        'model_content': _model_content(model_id),
        'fasta_content': content_identity(extractor.path, [extractor.path + '.fai']),
        'head': head,
        'tracks': track_indices,
        'method': method,
        'window': int(window),
        'sequence_length': sequence_length,
        'chunk_size': int(chunk_size),
        'neutral_value': float(neutral_value),
    }
    store = sad_io.ChunkStore(
        os.path.join(out_dir, '.contributions'), settings, overwrite=overwrite
    )
    chunks = [
        list(range(i, min(i + chunk_size, len(regions))))
        for i in range(0, len(regions), chunk_size)
    ]
    done = store.done(len(chunks))
    todo = [index for index in range(len(chunks)) if index not in done]
    chunk_settings = ContributionSettings(
        os.path.abspath(extractor.path),
        sequence_length,
        tuple(track_indices),
        head,
        method,
        int(window),
        int(batch_size),
        float(neutral_value),
    )
    contribution_started = time.time()
    with tqdm(
        total=len(regions),
        initial=sum(len(chunks[i]) for i in done),
        unit='region',
        desc='contributions',
        disable=not progress,
    ) as bar:
      if client is None:
        for index in todo:
          store.save(
              index,
              **chunk_settings.contributions(
                  predictor, extractor, [regions[i] for i in chunks[index]], progress=bar
              ),
          )
      else:

        def save(index: int, arrays: Dict[str, np.ndarray]) -> None:
          store.save(index, **arrays)
          bar.update(len(chunks[index]))

        run_tasks(
            client,
            contributions_on_worker,
            (
                (index, (source, chunk_settings, [regions[i] for i in chunks[index]]))
                for index in todo
            ),
            save,
            name='motifs-chunk',
        )
    contribution_seconds = time.time() - contribution_started
    arrays = store.concatenate(len(chunks), ['one_hot', 'hypothetical'])
    windows = [centred(r.chrom, region_centre(r), window) for r in regions]
    labels = track_labels(targets, track_indices)
    contributions = Contributions(
        one_hot=arrays['one_hot'],
        hypothetical=arrays['hypothetical'],
        chrom=np.asarray([w.chrom for w in windows]),
        start=np.asarray([w.start for w in windows]),
        end=np.asarray([w.end for w in windows]),
        attrs=dict(
            head=head,
            tracks=np.asarray(track_indices),
            track_labels=', '.join(labels),
            method=method,
            window=int(window),
            sequence_length=sequence_length,
            model=model_id,
            fasta=extractor.path,
            neutral_value=float(neutral_value),
            hypothetical_definition=(
                'gradient minus its mean over the 4 bases'
                if method == 'grad'
                else 'ISM delta minus its mean over the 4 bases'
            ),
        ),
    )
    contributions.write(paths[0])

    run_modisco(paths[0], paths[1], **dict(modisco_options or {}))
    patterns = read_patterns(paths[1])
    database = motif_db if motif_db is not None else jaspar_motifs()
    table = match_patterns(patterns, database, num_matches)
    with atomic_open(paths[2], 'w') as handle:
      table.to_csv(handle, sep='\t', index=False, float_format='%.4g')
    logos = _write_logos(folder, patterns, table, database)
    _write_report(
        paths[3],
        patterns,
        table,
        logos,
        database,
        dict(
            regions=len(regions),
            method=method,
            window=window,
            tracks=', '.join(labels),
            head=head,
            model=model_id or 'the model',
        ),
    )
    store.remove()
  return MotifResult(
      out_dir=out_dir,
      table=table,
      patterns=patterns,
      num_regions=len(regions),
      chunks_resumed=len(done),
      seconds=time.time() - started,
      contribution_seconds=contribution_seconds,
      files=folder.claimed,
  )


def _write_logos(
    folder: OutputFolder, patterns: Sequence[Pattern], table: pd.DataFrame, database: MotifDatabase
) -> Dict[str, str]:
  """One PNG per pattern (its contribution logo beside its matches); pattern → relative path."""
  logos = {}
  for pattern in patterns:
    name = f'logos/{pattern.name.replace(".", "_")}.png'
    path = folder.claim(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rows = table[table['pattern'] == pattern.name]
    matches = [
        (
            f'{row.match_id} {row.match_name} (q={row.q_value:.2g})',
            database.matrices[database.index(row.match_id)],
        )
        for row in rows.itertuples()
        if row.match_id
    ]
    start, end = pattern.trimmed()
    figure = plots_lib.plot_pattern(
        pattern.cwm[start:end],
        matches,
        title=f'{pattern.name} ({pattern.num_seqlets} seqlets)',
        path=path,
    )
    plots.close(figure)
    logos[pattern.name] = name
  return logos


def _write_report(
    path: str,
    patterns: Sequence[Pattern],
    table: pd.DataFrame,
    logos: Mapping[str, str],
    database: MotifDatabase,
    info: Mapping[str, Any],
) -> None:
  """report.html: the settings, the table and each pattern's logos (PNG files beside it)."""
  escape = html.escape
  parts = [
      '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Motifs</title><style>'
      'body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
      'td,th{border:1px solid #ccc;padding:2px 6px}.sig{font-weight:bold}</style></head><body>',
      '<h1>Motifs: TF-MoDISco patterns and their TOMTOM matches</h1>',
      f'<p>{info["regions"]} regions, {escape(str(info["method"]))} contributions of '
      f'{escape(str(info["tracks"]))} (head {escape(str(info["head"]))}) over the '
      f'{info["window"]} bp around each region\'s centre; {escape(str(info["model"]))}. '
      f'Matches against {escape(database.source)} ({len(database)} motifs); bold: q &lt; '
      f'{SIGNIFICANT_Q}.</p>',
  ]
  if not patterns:
    parts.append('<p>MoDISco found no pattern: no seqlets stand out in these contributions.</p>')
  else:
    parts.append('<table><tr>' + ''.join(f'<th>{c}</th>' for c in TABLE_COLUMNS) + '</tr>')
    for row in table.itertuples():
      css = ' class="sig"' if row.q_value < SIGNIFICANT_Q else ''
      parts.append(
          f'<tr{css}>'
          + ''.join(
              f'<td>{escape(str(getattr(row, c)) if c != "q_value" else f"{row.q_value:.3g}")}</td>'
              for c in TABLE_COLUMNS
          )
          + '</tr>'
      )
    parts.append('</table>')
    for pattern in patterns:
      parts.append(
          f'<h2>{escape(pattern.name)}</h2><img src="{escape(logos[pattern.name])}" '
          f'alt="{escape(pattern.name)}" style="max-width:100%">'
      )
  parts.append('</body></html>')
  with atomic_open(path, 'w', encoding='utf-8') as handle:
    handle.write('\n'.join(parts))
