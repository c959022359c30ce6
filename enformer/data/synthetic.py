"""A small synthetic genome whose signal tracks are a known function of planted motifs.

`make_synthetic_genome` writes, into one folder:
  genome.fa (+ genome.fa.fai)   random DNA (chr1 … chr4 by default) with motif instances planted on
                                either strand
  motif_sites.bed               chrom, start, end, motif name, score (track-independent 0), strand
  signal.npz                    per-base signal [chrom_length, num_tracks] float32 per chromosome
  track{i}.bw                   the same per-base signal as bigWigs (pyBigWig)
  targets.txt                   Basenji-style table (index, genome, identifier, file, clip, scale,
                                sum_stat, description) pointing at the bigWigs
  conservation.bw (optional)    a per-base input track that carries signal the sequence does not

Track t = Σ_motifs weight[t, m] × (Gaussian-smoothed density of motif m's sites) × peak_height
          + baseline + small Gaussian noise (clipped at 0)
with motif t (mod #motifs) at weight 1 and, for t ≥ 2, also motif t+1 (mod #motifs) at weight 0.5
by default — so the first tracks respond to one motif and the others to two.

With `conservation=True` a second, hidden set of sites ("accessible regions" at random positions,
not marked in the sequence) is written as the conservation bigWig (a per-base 0/1 mask) and one
extra track ('accessible') responds to motif 0 only inside those regions: a sequence-only model
cannot predict it, a model given the conservation input channel can.

`make_synthetic_dataset` turns it into the Basenji2 layout (train on chr1/chr2, valid on chr3,
test on chr4) that `get_dataset` reads. Everything is deterministic per seed and takes seconds.
"""

import dataclasses
import json
import os
import pathlib
import shutil
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import kipoiseq
import numpy as np
import pandas as pd
import pyBigWig
import pyfaidx
from tqdm.auto import tqdm

from enformer.data.write import BasenjiWriter, check_output
from enformer.io.atomic import remove_stale_temporaries, temporary_name
from enformer.io.fasta import FastaStringExtractor
from enformer.sequence import reverse_complement

BIN_SIZE = 128
DEFAULT_CHROM_SIZES = {'chr1': 200_000, 'chr2': 180_000, 'chr3': 120_000, 'chr4': 100_000}
# Consensus sequences of well-known transcription-factor motifs (JASPAR cores).
DEFAULT_MOTIFS = {
    'CTCF': 'CCACCAGGGGGC',
    'SP1': 'GGGGCGGGGC',
    'AP1': 'ATGACTCATC',
    'CREB': 'TGACGTCA',
}
DEFAULT_VALID_CHROMS = ('chr3',)
DEFAULT_TEST_CHROMS = ('chr4',)
CONSERVATION_TRACK = 'accessible'


@dataclasses.dataclass
class SyntheticGenome:
  """Paths and ground truth of a synthetic genome written by `make_synthetic_genome`.

  Attributes:
    out_dir: the folder.
    fasta: genome.fa (indexed: genome.fa.fai).
    motif_sites_bed: BED of planted sites (chrom, start, end, name, score, strand).
    motif_sites: the same as a DataFrame (columns chrom, start, end, motif, strand).
    motifs: motif name → consensus (+ strand).
    track_weights: DataFrame [num_tracks × num_motifs] of the response of each track to each motif.
    bigwigs: per-track bigWig paths (row order of the targets table).
    targets: targets.txt path.
    signal_npz: per-base signal per chromosome ([length, num_tracks] float32).
    chrom_sizes: chromosome → length.
    conservation_bigwig: per-base input track (only with conservation=True).
    seed: the seed.
  """

  out_dir: pathlib.Path
  fasta: pathlib.Path
  motif_sites_bed: pathlib.Path
  motif_sites: pd.DataFrame
  motifs: Dict[str, str]
  track_weights: pd.DataFrame
  bigwigs: List[pathlib.Path]
  targets: pathlib.Path
  signal_npz: pathlib.Path
  chrom_sizes: Dict[str, int]
  conservation_bigwig: Optional[pathlib.Path] = None
  seed: int = 0

  @property
  def num_tracks(self) -> int:
    return len(self.bigwigs)

  def signal(self, chrom: str, start: int, end: int) -> np.ndarray:
    """Per-base signal [end - start, num_tracks] (zeros past chromosome ends)."""
    with np.load(self.signal_npz) as data:
      values = data[chrom]
    return _slice_padded(values, start, end)

  def conservation(self, chrom: str, start: int, end: int) -> np.ndarray:
    """Per-base conservation input [end - start] (only with conservation=True)."""
    if self.conservation_bigwig is None:
      raise ValueError('This genome was made without conservation=True.')
    with np.load(self.signal_npz) as data:
      values = data[f'{chrom}__conservation']
    return _slice_padded(values, start, end)

  def binned_signal(self, chrom: str, start: int, end: int, bin_size: int = BIN_SIZE) -> np.ndarray:
    """Mean signal per bin: [(end - start) / bin_size, num_tracks]."""
    if (end - start) % bin_size:
      raise ValueError(f'Interval length {end - start} is not a multiple of bin_size {bin_size}.')
    values = self.signal(chrom, start, end)
    return values.reshape(-1, bin_size, values.shape[-1]).mean(axis=1)

  def sequence(self, chrom: str, start: int, end: int) -> str:
    """DNA of [start, end), N-padded past chromosome ends."""
    with FastaStringExtractor(self.fasta) as genome:
      return genome.extract(kipoiseq.Interval(chrom, start, end))


def _slice_padded(values: np.ndarray, start: int, end: int) -> np.ndarray:
  out = np.zeros((end - start,) + values.shape[1:], values.dtype)
  lo, hi = max(start, 0), min(end, len(values))
  if lo < hi:
    out[lo - start : hi - start] = values[lo:hi]
  return out


def default_track_weights(num_tracks: int, motif_names: Sequence[str]) -> pd.DataFrame:
  """Track t responds to motif t mod M (weight 1) and, for t ≥ 2, to motif t+1 mod M
  (weight 0.5)."""
  weights = np.zeros((num_tracks, len(motif_names)), np.float32)
  for t in range(num_tracks):
    weights[t, t % len(motif_names)] = 1.0
    if t >= 2 and len(motif_names) > 1:
      weights[t, (t + 1) % len(motif_names)] += 0.5
  return pd.DataFrame(
      weights, columns=list(motif_names), index=[f'track{t}' for t in range(num_tracks)]
  )


def _gaussian_kernel(sigma: float) -> np.ndarray:
  radius = int(np.ceil(3 * sigma))
  x = np.arange(-radius, radius + 1)
  return np.exp(-0.5 * (x / sigma) ** 2).astype(np.float32)


def _plant_sites(
    rng: np.random.Generator,
    chrom_length: int,
    motif_lengths: Sequence[int],
    sites_per_kb: float,
    min_gap: int,
) -> List[Tuple[int, int, int]]:
  """Non-overlapping (start, motif index, strand ±1) tuples, sorted by start."""
  num_sites = int(round(chrom_length / 1000 * sites_per_kb * len(motif_lengths)))
  slot = max(motif_lengths) + min_gap
  num_slots = chrom_length // slot - 2
  if num_sites > num_slots:
    raise ValueError(
        f'Too many motif sites ({num_sites}) for a {chrom_length} bp chromosome; '
        'lower sites_per_kb or enlarge the chromosome.'
    )
  slots = np.sort(rng.choice(np.arange(1, num_slots + 1), size=num_sites, replace=False))
  motifs = rng.integers(0, len(motif_lengths), size=num_sites)
  strands = rng.choice([1, -1], size=num_sites)
  offsets = rng.integers(0, min_gap // 2 + 1, size=num_sites)
  return [
      (int(s * slot + o), int(m), int(st)) for s, m, st, o in zip(slots, motifs, strands, offsets)
  ]


def make_synthetic_genome(
    out_dir: Union[str, os.PathLike],
    *,
    chrom_sizes: Optional[Mapping[str, int]] = None,
    motifs: Optional[Mapping[str, str]] = None,
    num_tracks: int = 4,
    track_weights: Optional[pd.DataFrame] = None,
    sites_per_kb: float = 0.5,
    sigma: float = 64.0,
    peak_height: float = 4.0,
    baseline: float = 0.05,
    noise: float = 0.02,
    gc_content: float = 0.42,
    conservation: bool = False,
    seed: int = 0,
    overwrite: bool = True,
    staging_dir: Optional[Union[str, os.PathLike]] = None,
) -> SyntheticGenome:
  """Writes a synthetic genome with planted motifs and signal tracks that depend on them.

  Args:
    out_dir: output folder (created).
    chrom_sizes: chromosome → length (default chr1..chr4, 100–200 kb).
    motifs: name → consensus (default CTCF, SP1, AP1, CREB cores, 8–12 bp).
    num_tracks: number of signal tracks (ignored if `track_weights` is given).
    track_weights: DataFrame [tracks × motifs] of responses; default `default_track_weights`.
    sites_per_kb: planted sites per kb per motif.
    sigma: bp standard deviation of the Gaussian bump each site contributes.
    peak_height: height of one isolated site's bump (weight 1).
    baseline, noise: constant background and the std of the per-base Gaussian noise (clipped ≥ 0).
    gc_content: GC fraction of the random background sequence.
    conservation: also write conservation.bw and an extra track that needs it (see module doc).
    seed: random seed; equal seeds give byte-identical outputs.
    overwrite: rewrite files if they exist (False: reuse an existing genome written with the same
      arguments, recorded in synthetic.json).
    staging_dir: write the files into this folder instead, for the caller to move to `out_dir`
      once everything that uses them is complete (targets.txt already names the bigWigs by their
      paths in `out_dir`; the returned paths are those in `staging_dir`). Not used when an
      existing genome is reused.

  Returns:
    SyntheticGenome with paths and the planted sites.
  """
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  chrom_sizes = dict(chrom_sizes or DEFAULT_CHROM_SIZES)
  motifs = {name: seq.upper() for name, seq in (motifs or DEFAULT_MOTIFS).items()}
  for name, consensus in motifs.items():
    if not consensus or set(consensus) - set('ACGT'):
      raise ValueError(f'Motif {name!r} must be a non-empty A/C/G/T string, got {consensus!r}.')
  names = list(motifs)
  if track_weights is None:
    track_weights = default_track_weights(num_tracks, names)
  if list(track_weights.columns) != names:
    raise ValueError(
        f'track_weights columns {list(track_weights.columns)} must equal the motif '
        f'names {names}.'
    )
  track_names = [str(t) for t in track_weights.index]
  if conservation:
    extra = pd.DataFrame(
        [[1.0 if i == 0 else 0.0 for i in range(len(names))]],
        columns=names,
        index=[CONSERVATION_TRACK],
    )
    track_weights = pd.concat([track_weights, extra])
    track_names.append(CONSERVATION_TRACK)
  weights = track_weights.to_numpy(np.float32)  # [tracks, motifs]

  description = dict(
      chrom_sizes=chrom_sizes,
      motifs=motifs,
      weights=weights.tolist(),
      sites_per_kb=sites_per_kb,
      sigma=sigma,
      peak_height=peak_height,
      baseline=baseline,
      noise=noise,
      gc_content=gc_content,
      conservation=conservation,
      seed=seed,
  )

  def genome_paths(folder: pathlib.Path):
    return (
        dict(
            fasta=folder / 'genome.fa',
            bed=folder / 'motif_sites.bed',
            npz=folder / 'signal.npz',
            targets=folder / 'targets.txt',
            conservation=folder / 'conservation.bw' if conservation else None,
        ),
        [folder / f'track{t}.bw' for t in range(len(track_names))],
    )

  paths, bigwigs = genome_paths(out_dir)
  final_bigwigs = bigwigs
  manifest = out_dir / 'synthetic.json'
  reuse = (
      not overwrite
      and manifest.exists()
      and json.loads(manifest.read_text()) == description
      and all(p.exists() for p in [paths['fasta'], paths['bed'], paths['npz'], *bigwigs])
  )
  if not reuse and staging_dir is not None:
    out_dir = pathlib.Path(staging_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, bigwigs = genome_paths(out_dir)
    manifest = out_dir / 'synthetic.json'

  if not reuse:
    rng = np.random.default_rng(seed)
    kernel = _gaussian_kernel(sigma) * peak_height
    probabilities = np.array([1 - gc_content, gc_content, gc_content, 1 - gc_content]) / 2
    site_rows, arrays = [], {}
    with open(paths['fasta'], 'w') as fasta:
      for chrom, length in chrom_sizes.items():
        bases = np.frombuffer(b'ACGT', np.uint8)[rng.choice(4, size=length, p=probabilities)].copy()
        impulses = np.zeros((length, len(names)), np.float32)
        for start, m, strand in _plant_sites(
            rng, length, [len(s) for s in motifs.values()], sites_per_kb, min_gap=int(2 * sigma)
        ):
          consensus = motifs[names[m]] if strand > 0 else reverse_complement(motifs[names[m]])
          bases[start : start + len(consensus)] = np.frombuffer(consensus.encode(), np.uint8)
          impulses[start + len(consensus) // 2, m] = 1.0
          site_rows.append(
              (chrom, start, start + len(consensus), names[m], '+' if strand > 0 else '-')
          )
        density = np.stack(
            [np.convolve(impulses[:, m], kernel, mode='same') for m in range(len(names))], axis=1
        )  # [length, motifs]
        signal = density @ weights.T  # [length, tracks]
        if conservation:
          accessible = _accessible_mask(rng, length, sigma)
          signal[:, -1] *= accessible
          arrays[f'{chrom}__conservation'] = accessible
        signal += baseline + noise * rng.standard_normal(signal.shape).astype(np.float32)
        arrays[chrom] = np.maximum(signal, 0).astype(np.float32)
        fasta.write(f'>{chrom}\n')
        sequence = bases.tobytes().decode()
        fasta.write('\n'.join(sequence[i : i + 80] for i in range(0, length, 80)) + '\n')
    fai = pathlib.Path(str(paths['fasta']) + '.fai')
    if fai.exists():
      fai.unlink()
    pyfaidx.Faidx(str(paths['fasta'])).close()
    sites = pd.DataFrame(site_rows, columns=['chrom', 'start', 'end', 'motif', 'strand'])
    sites.assign(score=0)[['chrom', 'start', 'end', 'motif', 'score', 'strand']].to_csv(
        paths['bed'], sep='\t', header=False, index=False
    )
    np.savez(paths['npz'], **arrays)
    for t, path in enumerate(bigwigs):
      _write_bigwig(path, chrom_sizes, {c: arrays[c][:, t] for c in chrom_sizes})
    if conservation:
      _write_bigwig(
          paths['conservation'], chrom_sizes, {c: arrays[f'{c}__conservation'] for c in chrom_sizes}
      )
    targets = pd.DataFrame(
        {
            'index': np.arange(len(track_names)),
            'genome': 0,
            'identifier': track_names,
            'file': [str(p) for p in final_bigwigs],
            'clip': 32.0,
            'scale': 1.0,
            'sum_stat': 'mean',
            'description': [
                _track_description(name, row)
                for name, row in zip(track_names, track_weights.itertuples(index=False))
            ],
        }
    )
    targets.to_csv(paths['targets'], sep='\t', index=False)
    manifest.write_text(json.dumps(description))

  sites = pd.read_csv(
      paths['bed'],
      sep='\t',
      header=None,
      names=['chrom', 'start', 'end', 'motif', 'score', 'strand'],
  )
  return SyntheticGenome(
      out_dir=out_dir,
      fasta=paths['fasta'],
      motif_sites_bed=paths['bed'],
      motif_sites=sites.drop(columns='score'),
      motifs=motifs,
      track_weights=track_weights,
      bigwigs=bigwigs,
      targets=paths['targets'],
      signal_npz=paths['npz'],
      chrom_sizes=chrom_sizes,
      conservation_bigwig=paths['conservation'],
      seed=seed,
  )


def _accessible_mask(rng: np.random.Generator, length: int, sigma: float) -> np.ndarray:
  """0/1 mask of random 'accessible' regions covering about half of the chromosome."""
  mask = np.zeros(length, np.float32)
  region = int(16 * sigma)
  for start in range(0, length, 2 * region):
    offset = int(rng.integers(0, region))
    mask[start + offset : start + offset + region] = 1.0
  return mask


def _track_description(name: str, weights) -> str:
  parts = [f'{w:g}×{motif}' for motif, w in zip(weights._fields, weights) if w]
  return f'SYNTHETIC:{name} ' + ' + '.join(parts)


def _write_bigwig(
    path: pathlib.Path, chrom_sizes: Mapping[str, int], values: Mapping[str, np.ndarray]
) -> None:
  bw = pyBigWig.open(str(path), 'w')
  bw.addHeader(list(chrom_sizes.items()), maxZooms=4)
  for chrom in chrom_sizes:
    bw.addEntries(chrom, 0, values=values[chrom].astype(np.float64), span=1, step=1)
  bw.close()


def _window_starts(
    rng: np.random.Generator,
    chrom_sizes: Mapping[str, int],
    chroms: Sequence[str],
    sequence_length: int,
    count: int,
    random: bool,
) -> List[Tuple[str, int]]:
  """`count` windows on `chroms`: random starts, or evenly spaced (tiling when they fit)."""
  usable = {
      c: chrom_sizes[c] - sequence_length for c in chroms if chrom_sizes[c] >= sequence_length
  }
  if not usable:
    raise ValueError(
        f'No chromosome among {list(chroms)} is at least sequence_length={sequence_length} bp.'
    )
  total = sum(u + 1 for u in usable.values())
  if random:
    positions = np.sort(rng.integers(0, total, size=count))
  else:
    positions = np.linspace(0, total - 1, count).astype(np.int64)
  windows, offset = [], 0
  bounds = []
  for chrom, u in usable.items():
    bounds.append((chrom, offset, offset + u + 1))
    offset += u + 1
  for p in positions:
    for chrom, lo, hi in bounds:
      if lo <= p < hi:
        windows.append((chrom, int(p - lo)))
        break
  return windows


def make_synthetic_dataset(
    out_dir: Union[str, os.PathLike],
    *,
    sequence_length: int = 4096,
    num_tracks: int = 4,
    train_size: int = 512,
    valid_size: int = 64,
    test_size: int = 64,
    valid_chroms: Sequence[str] = DEFAULT_VALID_CHROMS,
    test_chroms: Sequence[str] = DEFAULT_TEST_CHROMS,
    conservation: bool = False,
    seed: int = 0,
    genome: Optional[SyntheticGenome] = None,
    overwrite: bool = False,
    progress: bool = False,
    **genome_kwargs,
) -> pathlib.Path:
  """Writes a Basenji2-layout data set from a synthetic genome.

  Training windows start at random positions on the training chromosomes (all but valid/test);
  validation and test windows are evenly spaced on the held-out chromosomes. Targets are the mean
  per-base signal in 128 bp bins: [sequence_length / 128, num_tracks], no cropping (crop_bp = 0),
  so a model with target_length=None predicts all bins.

  Args:
    out_dir: output folder; the genome goes to out_dir/genome unless `genome` is given.
    sequence_length: bp per record (multiple of 128).
    num_tracks: tracks (when the genome is created here).
    train_size, valid_size, test_size: records per subset.
    valid_chroms, test_chroms: held-out chromosomes.
    conservation: store the genome's conservation track as the extra input feature
      'input_tracks' (read it with get_dataset(..., include_input_tracks=True) →
      'sequence' [L, 5], for Enformer(input_channels=5)). Creates the genome with conservation.
    seed: seed for the genome (when created here) and the window positions.
    genome: an existing SyntheticGenome to use.
    overwrite: replace the data set (and its genome) that out_dir holds; without it, a folder
      holding a complete data set (statistics.json) is refused with FileExistsError. Only the
      data set's own files are replaced (tfrecords/, sequences.bed, targets.txt,
      statistics.json and genome/); other files in out_dir are kept.
    progress: show a progress bar.
    **genome_kwargs: passed to make_synthetic_genome.

  Returns:
    out_dir (the data folder, readable by get_dataset(out_dir, subset)).
  """
  if sequence_length % BIN_SIZE:
    raise ValueError(f'sequence_length must be a multiple of {BIN_SIZE}, got {sequence_length}.')
  out_dir = pathlib.Path(out_dir)
  check_output(str(out_dir), overwrite)
  genome_dir, staged_genome = out_dir / 'genome', None
  if genome is None and genome_dir.exists() and not (genome_dir / 'synthetic.json').exists():
    raise FileExistsError(
        f'{genome_dir} exists but is not a synthetic genome (it has no '
        'synthetic.json), and the data set writes its genome there. Move it, or '
        'choose another output folder.'
    )
  if genome is None:
    # A new genome is written beside the old one and moved into place with the data set, so a
    # run killed midway leaves the previous genome and data set as they were.
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(genome_dir)
    staged_genome = pathlib.Path(temporary_name(genome_dir))
    try:
      genome = make_synthetic_genome(
          genome_dir,
          num_tracks=num_tracks,
          seed=seed,
          conservation=conservation,
          overwrite=overwrite,
          staging_dir=staged_genome,
          **genome_kwargs,
      )
    except BaseException:
      shutil.rmtree(staged_genome, ignore_errors=True)
      raise
    if not staged_genome.exists():  # An existing genome was reused.
      staged_genome = None
  else:
    genome_dir = genome.out_dir
  try:
    return _write_synthetic_dataset(
        out_dir,
        genome,
        genome_dir,
        staged_genome,
        sequence_length=sequence_length,
        train_size=train_size,
        valid_size=valid_size,
        test_size=test_size,
        valid_chroms=valid_chroms,
        test_chroms=test_chroms,
        conservation=conservation,
        seed=seed,
        overwrite=overwrite,
        progress=progress,
    )
  finally:
    if staged_genome is not None:
      # Gone already when the data set was swapped in.
      shutil.rmtree(staged_genome, ignore_errors=True)


def _write_synthetic_dataset(
    out_dir: pathlib.Path,
    genome: SyntheticGenome,
    genome_dir: pathlib.Path,
    staged_genome: Optional[pathlib.Path],
    *,
    sequence_length: int,
    train_size: int,
    valid_size: int,
    test_size: int,
    valid_chroms: Sequence[str],
    test_chroms: Sequence[str],
    conservation: bool,
    seed: int,
    overwrite: bool,
    progress: bool,
) -> pathlib.Path:
  """The data set part of make_synthetic_dataset; `staged_genome` moves to out_dir/genome with
  it."""
  if conservation and genome.conservation_bigwig is None:
    raise ValueError('conservation=True needs a genome made with conservation=True.')
  held_out = set(valid_chroms) | set(test_chroms)
  unknown = held_out - set(genome.chrom_sizes)
  if unknown:
    raise ValueError(
        f'Held-out chromosomes {sorted(unknown)} are not in the genome '
        f'({list(genome.chrom_sizes)}).'
    )
  train_chroms = [c for c in genome.chrom_sizes if c not in held_out]
  rng = np.random.default_rng(seed + 1)
  plan = {
      'train': _window_starts(
          rng, genome.chrom_sizes, train_chroms, sequence_length, train_size, True
      ),
      'valid': _window_starts(
          rng, genome.chrom_sizes, valid_chroms, sequence_length, valid_size, False
      ),
      'test': _window_starts(
          rng, genome.chrom_sizes, test_chroms, sequence_length, test_size, False
      ),
  }
  with np.load(genome.signal_npz) as data:
    arrays = {key: data[key] for key in data.files}
  writer = BasenjiWriter(
      out_dir,
      sequence_length=sequence_length,
      target_length=sequence_length // BIN_SIZE,
      num_targets=genome.num_tracks,
      targets=str(genome.targets),
      input_track_names=('conservation',) if conservation else (),
      overwrite=overwrite,
      extra_members={'genome': str(staged_genome)} if staged_genome else None,
      extra_statistics={'synthetic_genome': str(genome_dir), 'seed': seed},
  )
  with writer, FastaStringExtractor(genome.fasta) as fasta:
    total = sum(len(w) for w in plan.values())
    with tqdm(total=total, desc='synthetic data', unit='record', disable=not progress) as bar:
      for subset, windows in plan.items():
        for chrom, start in windows:
          end = start + sequence_length
          signal = arrays[chrom][start:end]
          target = signal.reshape(-1, BIN_SIZE, signal.shape[-1]).mean(axis=1)
          extra = arrays[f'{chrom}__conservation'][start:end] if conservation else None
          writer.add(
              subset,
              fasta.extract(kipoiseq.Interval(chrom, start, end)),
              target,
              interval=(chrom, start, end),
              input_tracks=extra,
          )
          bar.update()
  return out_dir
