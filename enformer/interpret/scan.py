"""Known motifs that variants create or break: FIMO (memelite) on the REF and ALT alleles.

`scan_variants` scans the sequence around each variant of a VCF, once with the REF and once with
the ALT allele, with chosen motifs of a database (JASPAR CORE vertebrates by default,
`enformer.interpret.motifs`). For every motif the best FIMO hit (either strand) that overlaps
each allele is kept; the motif is *lost* when the REF allele has a hit (p < threshold) and the
ALT allele's best p-value is at least `fold` times larger (no hit counts as p = 1), *gained* in
the opposite case. (A single base rarely abolishes a hit of a long JASPAR matrix outright: a
planted AP1 site's p goes from 4e-6 to 5e-5, still under FIMO's 1e-4.)
"""

import os
from typing import Dict, List, Optional, Sequence, Union

import kipoiseq
import numpy as np
import pandas as pd
from memelite import fimo

from enformer.interpret.motifs import MotifDatabase, jaspar_motifs
from enformer.io.atomic import atomic_open
from enformer.io.fasta import FastaStringExtractor
from enformer.io.lock import OutputLock
from enformer.io.outputs import OutputFolder
from enformer.io.vcf import read_variants
from enformer.sequence import one_hot_encode

PathLike = Union[str, os.PathLike]
SCAN_COLUMNS = ('chrom', 'pos', 'id', 'ref', 'alt', 'motif_gained', 'motif_lost')
THRESHOLD = 1e-4  # FIMO's default p-value threshold.
FOLD = 10.0
SCAN_FILE = 'scan.tsv'
REGION_SCAN_FILE = 'scan_regions.tsv'
REGION_HIT_COLUMNS = (
    'chrom',
    'start',
    'end',
    'strand',
    'motif_id',
    'motif_name',
    'score',
    'p_value',
    'region',
)


def select_motifs(database: MotifDatabase, ids: Sequence[str]) -> Dict[str, np.ndarray]:
  """'ID NAME' → probability matrix [4, w] of each motif id ('MA0139.2', or 'MA0139' for the
  database's version)."""
  chosen = {}
  for motif_id in ids:
    index = database.index(motif_id)
    chosen[f'{database.ids[index]} {database.names[index]}'] = np.ascontiguousarray(
        database.matrices[index], np.float64
    )
  if not chosen:
    raise ValueError('Name at least one motif to scan (e.g. MA0139 for CTCF).')
  return chosen


def _best_p_values(
    hits: Optional[pd.DataFrame], names: List[str], first: int, last: int
) -> Dict[str, float]:
  """Motif → smallest p-value of its hits that overlap positions [first, last)."""
  best = {name: 1.0 for name in names}
  if hits is None or not len(hits):
    return best
  overlapping = hits[(hits['start'] < last) & (hits['end'] > first)]
  for name, p_value in zip(overlapping['motif_name'], overlapping['p-value']):
    name = str(name)[:-3] if str(name).endswith('-rc') else str(name)
    best[name] = min(best[name], float(p_value))
  return best


def scan_variants(
    fasta: PathLike,
    vcf: PathLike,
    motif_ids: Sequence[str],
    *,
    database: Optional[MotifDatabase] = None,
    threshold: float = THRESHOLD,
    fold: float = FOLD,
) -> pd.DataFrame:
  """Which of `motif_ids` each variant of `vcf` creates or breaks.

  Args:
    fasta: the genome.
    vcf: variants (REF alleles are checked against the genome; mismatches are skipped).
    motif_ids: motif ids of `database` (e.g. 'MA0139.2' or 'MA0139').
    database: motifs (default JASPAR CORE vertebrates).
    threshold: FIMO p-value below which a match is a hit.
    fold: how much larger the other allele's best p-value must be for a hit to count as gained
      or lost.

  Returns:
    One row per variant: `SCAN_COLUMNS` (motif_gained / motif_lost: ';'-separated 'ID NAME',
    '' for none), then `p_ref:ID` and `p_alt:ID` (best hit p-value overlapping the allele, 1 when
    there is no hit) for every scanned motif.
  """
  motifs = select_motifs(database if database is not None else jaspar_motifs(), motif_ids)
  names = list(motifs)
  flank = max(m.shape[1] for m in motifs.values()) - 1  # Every hit touching the allele fits.
  extractor = FastaStringExtractor(os.fspath(fasta))
  rows, sequences, spans = [], [], []
  for site in read_variants(vcf, extractor):
    for variant in site.variants:
      start = variant.pos - 1 - flank
      reference = extractor.extract(
          kipoiseq.Interval(site.fasta_chrom, start, variant.pos - 1 + len(variant.ref) + flank)
      )
      alternative = reference[:flank] + variant.alt + reference[flank + len(variant.ref) :]
      rows.append(
          dict(
              chrom=variant.chrom,
              pos=variant.pos,
              id=variant.id or '.',
              ref=variant.ref,
              alt=variant.alt,
          )
      )
      sequences += [reference, alternative]
      spans += [(flank, flank + len(variant.ref)), (flank, flank + max(len(variant.alt), 1))]
  if not rows:
    raise ValueError(f'No variants to scan in {os.fspath(vcf)}.')
  hits = _fimo_hits(motifs, sequences, threshold)
  by_sequence = dict(tuple(hits.groupby('sequence_name')))  # Sequence index → its hits.
  for row, i in zip(rows, range(0, len(sequences), 2)):
    ref_p = _best_p_values(by_sequence.get(i), names, *spans[i])
    alt_p = _best_p_values(by_sequence.get(i + 1), names, *spans[i + 1])
    row['motif_gained'] = ';'.join(
        n for n in names if alt_p[n] < threshold and ref_p[n] >= fold * alt_p[n]
    )
    row['motif_lost'] = ';'.join(
        n for n in names if ref_p[n] < threshold and alt_p[n] >= fold * ref_p[n]
    )
    for name in names:
      motif_id = name.split(' ')[0]
      row[f'p_ref:{motif_id}'] = ref_p[name]
      row[f'p_alt:{motif_id}'] = alt_p[name]
  return pd.DataFrame(rows)


def _fimo_hits(
    motifs: Dict[str, np.ndarray], sequences: Sequence[str], threshold: float
) -> pd.DataFrame:
  """FIMO's hits of `motifs` in `sequences` (one frame; `sequence_name` = sequence index)."""
  width = max(len(s) for s in sequences)
  one_hot = np.zeros((len(sequences), 4, width), np.float32)  # The padding: all zero.
  for i, sequence in enumerate(sequences):
    one_hot[i, :, : len(sequence)] = one_hot_encode(sequence, neutral_value=0.0).T  # N: zeros.
  found = [frame for frame in fimo(motifs, one_hot, threshold=threshold, dim=0) if len(frame)]
  return pd.concat(found) if found else pd.DataFrame(columns=['sequence_name'])


def scan_regions(
    fasta: PathLike,
    regions: Sequence[kipoiseq.Interval],
    motif_ids: Sequence[str],
    *,
    database: Optional[MotifDatabase] = None,
    threshold: float = THRESHOLD,
) -> pd.DataFrame:
  """Every FIMO hit of `motif_ids` in genomic `regions` (0-based intervals), either strand.

  Returns:
    One row per hit, by region then position: `REGION_HIT_COLUMNS` (start/end: 0-based genome
    coordinates of the hit; strand '+' or '-' of the motif; region: 'chrom:start-end', 1-based).
  """
  motifs = select_motifs(database if database is not None else jaspar_motifs(), motif_ids)
  extractor = FastaStringExtractor(os.fspath(fasta))
  extractor.check_regions(regions)
  if not regions:
    raise ValueError('No regions to scan.')
  sequences = [extractor.extract(region) for region in regions]
  hits = _fimo_hits(motifs, sequences, threshold)
  rows = []
  for hit in hits.to_dict('records'):
    region = regions[int(hit['sequence_name'])]
    name = str(hit['motif_name'])
    strand = '-' if name.endswith('-rc') or hit.get('strand') == '-' else '+'
    motif_id, _, motif_name = (name[:-3] if name.endswith('-rc') else name).partition(' ')
    rows.append(
        dict(
            chrom=region.chrom,
            start=region.start + int(hit['start']),
            end=region.start + int(hit['end']),
            strand=strand,
            motif_id=motif_id,
            motif_name=motif_name,
            score=float(hit['score']),
            p_value=float(hit['p-value']),
            region=f'{region.chrom}:{region.start + 1}-{region.end}',
        )
    )
  table = pd.DataFrame(rows, columns=list(REGION_HIT_COLUMNS))
  return table.sort_values(['region', 'start', 'motif_id'], kind='stable').reset_index(drop=True)


def scan_to_folder(
    fasta: PathLike,
    vcf: PathLike,
    out_dir: PathLike,
    motif_ids: Sequence[str],
    *,
    database: Optional[MotifDatabase] = None,
    threshold: float = THRESHOLD,
    fold: float = FOLD,
    overwrite: bool = False,
) -> pd.DataFrame:
  """`scan_variants` written to `out_dir/scan.tsv` (an `OutputFolder` of command 'motifs-scan').

  Returns:
    The table written.
  """
  return _write_table(
      out_dir,
      SCAN_FILE,
      overwrite,
      lambda: scan_variants(
          fasta, vcf, motif_ids, database=database, threshold=threshold, fold=fold
      ),
  )


def scan_regions_to_folder(
    fasta: PathLike,
    regions: Sequence[kipoiseq.Interval],
    out_dir: PathLike,
    motif_ids: Sequence[str],
    *,
    database: Optional[MotifDatabase] = None,
    threshold: float = THRESHOLD,
    overwrite: bool = False,
) -> pd.DataFrame:
  """`scan_regions` written to `out_dir/scan_regions.tsv` (an `OutputFolder` of 'motifs-scan')."""
  return _write_table(
      out_dir,
      REGION_SCAN_FILE,
      overwrite,
      lambda: scan_regions(fasta, regions, motif_ids, database=database, threshold=threshold),
  )


def _write_table(out_dir: PathLike, name: str, overwrite: bool, table_fn) -> pd.DataFrame:
  """`table_fn()` written as `out_dir/name` (TSV), the folder locked and its outputs recorded."""
  out_dir = os.fspath(out_dir)
  with OutputLock(out_dir, what=f'output folder {out_dir}'):
    folder = OutputFolder(out_dir, 'motifs-scan', overwrite=overwrite)
    path = folder.claim(name)
    table = table_fn()
    with atomic_open(path, 'w') as handle:
      table.to_csv(handle, sep='\t', index=False, float_format='%.4g')
  return table
