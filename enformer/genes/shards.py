"""Join the shard files of `enformer score-genes --shard K/N` into one sed.h5.

As `enformer.variants.shards.merge_scores` does for sad.h5: the shards must be complete, disjoint
and of one run (same model, VCF, GTF, genes, targets and settings); the merged file equals the one
a single run writes.
"""

import json
import os
from typing import Dict, List, Sequence

import numpy as np

from enformer.genes.pipeline import output_paths, write_gene_score_files
from enformer.io import sed as sed_io
from enformer.io.lock import OutputLock
from enformer.io.outputs import file_in_folder
from enformer.variants.shards import check_same_run

PathLike = sed_io.PathLike


def merge_gene_scores(out: PathLike, shards: Sequence[PathLike], *, tsv: bool = False,
                      overwrite: bool = False) -> Dict[str, List[str]]:
  """Writes the sed.h5 (and, with `tsv`, its TSV) of a run scored as N shard files.

  Raises:
    FileNotFoundError: a shard file is missing (or unfinished).
    ValueError: shards of different runs (naming the setting), overlapping or missing shards.
  """
  out = file_in_folder(out, sed_io.SED_FILE)
  with OutputLock(output_paths(out)['h5'], what=f'merge-scores output {out}'):
    if os.path.exists(out) and not overwrite:
      raise FileExistsError(f'{out} already exists. Pass --overwrite to replace it, or choose '
                            'another output.')
    if not shards:
      raise ValueError('Pass the shard files to merge.')
    loaded = []
    for path in map(os.fspath, shards):
      if not os.path.exists(path):
        unfinished = (' (unfinished: rerun its command to finish it)'
                      if os.path.isdir(path + '.partial') else '')
        raise FileNotFoundError(f'Shard {path} does not exist{unfinished}.')
      scores, info = sed_io.read_sed_h5(path)
      if info is None:
        raise ValueError(f'{path} is not a shard file (it was written without --shard).')
      loaded.append((path, scores, info))
    first, first_scores, first_info = loaded[0]
    first_settings = json.loads(first_info.settings)
    owner: Dict[int, str] = {}
    for path, scores, info in loaded:
      check_same_run(first, first_settings, path, json.loads(info.settings), first_scores.attrs,
                     scores.attrs)
      if info.shard[1] != first_info.shard[1]:
        raise ValueError(f'Shard {path} is {info.name} but {first} is {first_info.name}: all '
                         'shards of a run are split the same way (--shard K/N with the same N).')
      for chunk in map(int, info.chunk_index):
        if chunk in owner:
          raise ValueError(f'Shards {owner[chunk]} and {path} overlap (both hold chunk {chunk}); '
                           'pass each shard once.')
        owner[chunk] = path
    count = first_info.shard[1]
    missing = sorted(set(range(first_info.num_chunks)) - set(owner))
    if missing:
      names = sorted({f'{chunk % count + 1}/{count}' for chunk in missing})
      raise ValueError(f'Shard(s) {", ".join(names)} missing: chunks {missing[:10]} of '
                       f'{first_info.num_chunks} are in none of the files given.')
    rows = np.concatenate([np.asarray(info.variant_index) for _, _, info in loaded])
    order = np.argsort(rows, kind='stable')
    if not np.array_equal(rows[order], np.arange(first_info.num_variants)):
      raise ValueError('The shards do not hold each variant of the run exactly once; rescore '
                       'them.')
    # Pairs: each shard's `si` → whole-run variant rows, then in variant order (stable: the
    # genes of one variant keep their order).
    pair_rows = np.concatenate([np.asarray(info.variant_index)[s.si] for _, s, info in loaded])
    pair_order = np.argsort(pair_rows, kind='stable')
    variants = lambda name: np.concatenate([getattr(s, name) for _, s, _ in loaded])[order]
    pairs = lambda name: np.concatenate([getattr(s, name) for _, s, _ in loaded])[pair_order]
    merged = sed_io.GeneScores(
        snp=variants('snp'), chr=variants('chr'), pos=variants('pos'), ref=variants('ref'),
        alt=variants('alt'), si=pair_rows[pair_order], gene=pairs('gene'),
        gene_name=pairs('gene_name'), strand=pairs('strand'), tss_distance=pairs('tss_distance'),
        target_ids=first_scores.target_ids, target_labels=first_scores.target_labels,
        scores={name: np.concatenate([s.scores[name] for _, s, _ in loaded])[pair_order]
                for name in first_scores.scores},
        attrs=dict(first_scores.attrs, merged_shards=len(loaded)))
    return write_gene_score_files(merged, out, tsv=tsv)
