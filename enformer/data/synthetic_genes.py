"""A small GTF for a synthetic genome: genes whose TSSs sit on planted motif sites.

`write_synthetic_gtf` reads the planted sites of `enformer.data.synthetic.make_synthetic_genome`
(motif_sites.bed) and writes a GENCODE-style GTF (gene and transcript lines, gene_id, gene_name,
gene_type, transcript_id): every `every`-th site of the chosen chromosomes becomes a gene's TSS
(the site's centre, on the site's strand; the gene runs `gene_length` bp downstream). When a later
planted site lies within `second_tss` bp downstream in the gene's direction, it becomes the TSS
of a second transcript (a multi-TSS gene). Genes are numbered in chromosome order: SYN0001 ...;
their names say which motif they carry (e.g. SP1_chr4_12345). The signal tracks respond to the
motifs, so each gene's observed expression (the signal summed at its TSS bins) is known.
"""

import os
from typing import Optional, Sequence, Union

import pandas as pd

PathLike = Union[str, os.PathLike]
SOURCE = 'synthetic'


def _attributes(gene_id: str, name: str, transcript_id: Optional[str] = None) -> str:
  parts = [f'gene_id "{gene_id}"']
  if transcript_id:
    parts.append(f'transcript_id "{transcript_id}"')
  parts += [f'gene_name "{name}"', 'gene_type "protein_coding"']
  return '; '.join(parts) + ';'


def write_synthetic_gtf(
    path: PathLike,
    motif_sites: PathLike,
    chrom_sizes: dict,
    *,
    chroms: Optional[Sequence[str]] = None,
    every: int = 2,
    gene_length: int = 1000,
    second_tss: int = 300,
) -> pd.DataFrame:
  """Writes the GTF and returns its genes (gene_id, gene_name, chrom, strand, tss: tuple, 0-based).

  Args:
    path: GTF to write.
    motif_sites: BED of planted sites (chrom, start, end, motif, score, strand).
    chrom_sizes: chromosome → length (genes are clipped to it).
    chroms: chromosomes to place genes on (default: all).
    every: use every n-th planted site as a first TSS.
    gene_length: bp from the first TSS to the gene's end.
    second_tss: a later site within this many bp downstream becomes a second TSS.
  """
  sites = pd.read_csv(
      motif_sites,
      sep='\t',
      header=None,
      names=['chrom', 'start', 'end', 'motif', 'score', 'strand'],
  )
  if chroms is not None:
    sites = sites[sites['chrom'].isin(list(chroms))]
  sites = sites.sort_values(['chrom', 'start']).reset_index(drop=True)
  genes, lines = [], []
  for index in range(0, len(sites), max(1, int(every))):
    site = sites.iloc[index]
    chrom, strand = site.chrom, site.strand
    size = chrom_sizes[chrom]
    first = int((site.start + site.end) // 2)
    same = sites[(sites['chrom'] == chrom) & (sites.index != index)]
    centres = ((same['start'] + same['end']) // 2).astype(int)
    ahead = centres[(centres - first) * (1 if strand == '+' else -1) > 0]
    near = ahead[(ahead - first).abs() <= second_tss]
    tss = [first] + ([int(near.iloc[(near - first).abs().argmin()])] if len(near) else [])
    gene_id = f'SYN{len(genes) + 1:04d}'
    name = f'{site.motif}_{chrom}_{first + 1}'
    ends = []
    for number, start in enumerate(tss, start=1):  # 0-based TSS → 1-based GTF coordinates.
      if strand == '+':
        low, high = start + 1, min(size, first + gene_length)
      else:
        low, high = max(1, first - gene_length + 2), start + 1
      ends.append((low, high))
      lines.append(
          (
              chrom,
              'transcript',
              low,
              high,
              strand,
              _attributes(gene_id, name, f'{gene_id}.{number}'),
          )
      )
    low, high = min(e[0] for e in ends), max(e[1] for e in ends)
    lines.insert(
        len(lines) - len(tss), (chrom, 'gene', low, high, strand, _attributes(gene_id, name))
    )
    genes.append(
        {
            'gene_id': gene_id,
            'gene_name': name,
            'chrom': chrom,
            'strand': strand,
            'tss': tuple(tss),
            'motif': site.motif,
        }
    )
  with open(path, 'w') as handle:
    handle.write('##description: synthetic genes on planted motif sites\n')
    for chrom, feature, low, high, strand, attributes in lines:
      handle.write(f'{chrom}\t{SOURCE}\t{feature}\t{low}\t{high}\t.\t{strand}\t.\t{attributes}\n')
  return pd.DataFrame(genes, columns=['gene_id', 'gene_name', 'chrom', 'strand', 'tss', 'motif'])
