"""Join the shard files of a sharded `score_vcf` run (`shard=(K, N)`) into one sad.h5.

Shards are for batch schedulers without Dask: N jobs each score every N-th chunk of the same VCF
into their own resumable file; `merge_scores` checks that the shards are complete, disjoint and from
the same model, VCF, targets and settings, and writes the file a single run would have written.
"""

import contextlib
import json
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from enformer.io import sad as sad_io
from enformer.io.lock import OutputLock
from enformer.variants.normalization import ScoreTransform
from enformer.io.outputs import file_in_folder
from enformer.variants.pipeline import SCORES_FILE, PathLike, write_score_files

# Names of the shared settings in messages.
SETTING_NAMES = {
    'variants': 'VCF variants',
    'model': 'model',
    'fasta': 'FASTA',
    'head': 'head',
    'sequence_length': 'sequence length',
    'shifts': 'shifts / reverse-complement ensemble',
    'reverse_complement': 'reverse complement',
    'chunk_size': 'chunk size',
    'targets': 'targets table',
    'model_content': 'model files',
    'fasta_content': 'FASTA content',
    'precision': 'precision',
    'gtf_content': 'GTF content',
    'genes': 'genes and TSSs',
    'gene_stat': 'gene statistic',
}


# Settings that are content hashes: messages name the files (shard attributes) instead.
_BY_CONTENT = {'model_content': ('model', 'model'), 'fasta_content': ('FASTA', 'fasta')}


def check_same_run(
    first: str,
    first_settings: Dict,
    path: str,
    settings: Dict,
    first_attrs: Optional[Dict] = None,
    attrs: Optional[Dict] = None,
) -> None:
  """ValueError naming the first setting in which two shards' runs differ."""
  for key in sorted(set(first_settings) | set(settings)):
    if first_settings.get(key) != settings.get(key):
      name = SETTING_NAMES.get(key, key)
      detail = f'{first_settings.get(key)!r} vs {settings.get(key)!r}'
      if key in _BY_CONTENT:
        name, attr = _BY_CONTENT[key]
        detail = (
            f'{(first_attrs or {}).get(attr)!r} vs {(attrs or {}).get(attr)!r}, compared by '
            'content'
        )
      raise ValueError(
          f'Shards {first} and {path} come from different runs: their {name} '
          f'differs ({detail}). Merge shards of one command line only.'
      )


def merge_scores(
    out: PathLike,
    shards: Sequence[PathLike],
    *,
    transform: Optional[ScoreTransform] = None,
    num_pcs: Optional[int] = None,
    tsv: bool = False,
    plot: bool = False,
    overwrite: bool = False,
) -> Dict[str, List[str]]:
  """Writes the sad.h5 (+ side files) of a run scored as N shard files.

  Args:
    out: output HDF5 path, or a folder (as in `score_vcf`: then `out/scores.h5`).
    shards: the N shard files (any order).
    transform, num_pcs, tsv, plot: as in `score_vcf`.
    overwrite: replace an existing `out`.

  Returns:
    Kind ('h5', 'tsv', 'pcs', 'png') → paths written.

  Raises:
    FileNotFoundError: a shard file is missing (or unfinished: its `.partial/` exists).
    ValueError: shards of different runs (naming the setting that differs), overlapping shards,
      or shards missing from the set.
    OutputLockedError: another live process is writing `out`.
  """
  out = file_in_folder(out, SCORES_FILE)
  with claim_merged_output(out, overwrite):
    loaded, order = load_shards(shards, sad_io.read_shard_h5)
    return _merge(out, loaded, order, transform, num_pcs, tsv, plot)


@contextlib.contextmanager
def claim_merged_output(out: str, overwrite: bool) -> Iterator[None]:
  """Holds the merged file's lock and refuses an existing one unless `overwrite`."""
  with OutputLock(out, what=f'merge-scores output {out}'):
    if os.path.exists(out) and not overwrite:
      raise FileExistsError(
          f'{out} already exists. Pass `overwrite` to replace it, or choose another output.'
      )
    yield


def load_shards(
    shards: Sequence[PathLike], read: Callable[[str], Tuple[Any, sad_io.ShardInfo]]
) -> Tuple[List[Tuple[str, Any, sad_io.ShardInfo]], np.ndarray]:
  """Reads the shard files of one run with `read` and checks that they are the whole run.

  Shared by `merge_scores` (sad.h5) and `enformer.genes.merge_gene_scores` (sed.h5).

  Returns:
    (path, scores, info) per shard, in the order given, and the order [V] that puts their
    concatenated variants in the whole run's order.

  Raises:
    FileNotFoundError: a shard file is missing (or unfinished: its `.partial/` exists).
    ValueError: shards of different runs (naming the setting that differs), split into a
      different number of shards, overlapping, missing from the set, or not a shard file.
  """
  if not shards:
    raise ValueError('Pass the shard files to merge.')
  loaded = []
  for path in map(os.fspath, shards):
    if not os.path.exists(path):
      unfinished = (
          ' (unfinished: rerun its command to finish it)'
          if os.path.isdir(path + '.partial')
          else ''
      )
      raise FileNotFoundError(f'Shard {path} does not exist{unfinished}.')
    loaded.append((path, *read(path)))
  first, first_scores, first_info = loaded[0]
  first_settings = json.loads(first_info.settings)
  owner: Dict[int, str] = {}
  for path, scores, info in loaded:
    check_same_run(
        first, first_settings, path, json.loads(info.settings), first_scores.attrs, scores.attrs
    )
    if info.shard[1] != first_info.shard[1]:
      raise ValueError(
          f'Shard {path} is {info.name} but {first} is {first_info.name}: all shards '
          'of a run are split the same way (`shard` K/N with the same N).'
      )
    if list(scores.target_ids) != list(first_scores.target_ids):
      raise ValueError(f'Shards {first} and {path} have different track identifiers.')
    for chunk in map(int, info.chunk_index):
      if chunk in owner:
        raise ValueError(
            f'Shards {owner[chunk]} and {path} overlap (both hold chunk {chunk}, '
            f'shard {info.name}); pass each shard once.'
        )
      owner[chunk] = path
  count = first_info.shard[1]
  missing = sorted(set(range(first_info.num_chunks)) - set(owner))
  if missing:
    names = sorted({f'{chunk % count + 1}/{count}' for chunk in missing})
    raise ValueError(
        f'Shard(s) {", ".join(names)} missing: chunks {missing[:10]} of '
        f'{first_info.num_chunks} are in none of the files given.'
    )
  rows = np.concatenate([np.asarray(info.variant_index) for _, _, info in loaded])
  order = np.argsort(rows, kind='stable')
  if not np.array_equal(rows[order], np.arange(first_info.num_variants)):
    raise ValueError('The shards do not hold each variant of the run exactly once; rescore them.')
  return loaded, order


def _merge(
    out: str,
    loaded: List[Tuple[str, Any, sad_io.ShardInfo]],
    order: np.ndarray,
    transform: Optional[ScoreTransform],
    num_pcs: Optional[int],
    tsv: bool,
    plot: bool,
) -> Dict[str, List[str]]:
  """Writes the merged sad.h5 of checked shards (`load_shards`)."""
  first_scores, first_info = loaded[0][1], loaded[0][2]
  first_settings = json.loads(first_info.settings)
  pick = lambda name: np.concatenate([getattr(s, name) for _, s, _ in loaded])[order]
  scores = sad_io.VariantScores(
      snp=pick('snp'),
      chr=pick('chr'),
      pos=pick('pos'),
      ref=pick('ref'),
      alt=pick('alt'),
      target_ids=first_scores.target_ids,
      target_labels=first_scores.target_labels,
      scores={
          name: np.concatenate([s.scores[name] for _, s, _ in loaded])[order]
          for name in sad_io.SCORE_DATASETS
      },
      attrs=dict(first_scores.attrs),
  )
  scores.attrs['merged_shards'] = len(loaded)
  return write_score_files(
      scores,
      out,
      transform=transform,
      num_pcs=num_pcs,
      tsv=tsv,
      plot=plot,
      check_targets=first_settings.get('targets') is not None,
  )
