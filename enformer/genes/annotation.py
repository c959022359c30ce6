"""Genes and their transcription start sites (TSSs) from a GENCODE / Ensembl GTF.

Read with `gtfparse` (plain or gzip). Coordinates are 0-based: a transcript on '+' starts
transcription at its first base (GTF start − 1), one on '−' at its last base (GTF end − 1). A
gene's TSSs are the distinct TSSs of its transcripts in transcription order (ascending on '+',
descending on '−'), so `tss[0]` is its first TSS; a gene without transcript lines has the one TSS
of its gene line.

Example:
  >>> genes = read_genes('gencode.v46.gtf.gz', fasta='hg38.fa', gene_types=['protein_coding'])
  >>> genes.loc[0, ['gene_id', 'gene_name', 'chrom', 'strand', 'tss']]
"""

import os
from typing import Iterable, List, Optional, Sequence, Union

import gtfparse
import numpy as np
import pandas as pd

from enformer.io.fasta import FastaStringExtractor

PathLike = Union[str, os.PathLike]
COLUMNS = (
    'gene_id',
    'gene_name',
    'gene_type',
    'chrom',
    'gtf_chrom',
    'strand',
    'start',
    'end',
    'tss',
    'first_tss',
)


def read_gene_list(genes: Union[PathLike, Iterable[str]]) -> List[str]:
  """Gene ids or names: a path of a file (one per line, '#' comments), or an iterable of them."""
  if isinstance(genes, (str, os.PathLike)):
    path = os.fspath(genes)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f'Gene list {path} does not exist (a file of gene ids or names, one per line).'
      )
    with open(path) as stream:
      names = [line.split('#', 1)[0].strip() for line in stream]
    return [name for name in names if name]
  return [str(name).strip() for name in genes if str(name).strip()]


def _strip_version(gene_id: str) -> str:
  """'ENSG00000139618.17' → 'ENSG00000139618' (GENCODE versions its ids, Ensembl does not)."""
  head, dot, tail = gene_id.rpartition('.')
  return head if dot and tail.isdigit() else gene_id


def _read_gtf(gtf: PathLike) -> pd.DataFrame:
  path = os.fspath(gtf)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'GTF {path} does not exist; pass a GENCODE or Ensembl gene '
        'annotation (.gtf or .gtf.gz).'
    )
  try:
    table = gtfparse.read_gtf(path, features={'gene', 'transcript'}, result_type='pandas')
  except Exception as error:  # gtfparse/polars raise many types for a malformed file.
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ValueError(
        f'Cannot read the GTF {path} ({reason}); pass a GTF file (9 tab-separated '
        'columns, attributes such as gene_id "..."; plain or gzip).'
    ) from None
  if len(table) == 0 or 'gene_id' not in table.columns:
    raise ValueError(
        f'GTF {path} has no gene or transcript lines with a gene_id attribute; pass '
        "a gene annotation such as GENCODE's."
    )
  return table


def read_genes(
    gtf: PathLike,
    *,
    fasta: Union[PathLike, FastaStringExtractor, None] = None,
    gene_types: Optional[Sequence[str]] = None,
    genes: Union[PathLike, Iterable[str], None] = None,
) -> pd.DataFrame:
  """One row per gene with its strand-aware TSSs.

  Args:
    gtf: GTF path (plain or gzip), GENCODE (`gene_type`) or Ensembl (`gene_biotype`) attributes.
    fasta: FASTA path or extractor: chromosome names are resolved against it ('chr1' ↔ '1', as
      `FastaStringExtractor.resolve_chromosome`); genes on chromosomes it lacks are dropped, and a
      GTF none of whose chromosomes it has is an error.
    gene_types: keep only these biotypes (e.g. ['protein_coding', 'lncRNA']).
    genes: keep only these genes: ids (with or without their version suffix) or names, or the path
      of a file of them; one that matches no gene is an error.

  Returns:
    DataFrame, one row per gene in GTF order: gene_id, gene_name, gene_type, chrom (the FASTA's
    name when `fasta` is given), gtf_chrom, strand ('+'/'-'), start, end (0-based, half-open gene
    extent), tss (tuple of 0-based TSS positions in transcription order), first_tss (= tss[0]).
  """
  table = _read_gtf(gtf)
  path = os.fspath(gtf)
  type_column = next(
      (
          c
          for c in ('gene_type', 'gene_biotype')
          if c in table.columns and table[c].astype(str).str.len().gt(0).any()
      ),
      None,
  )
  types = table[type_column].astype(str) if type_column else pd.Series('', index=table.index)
  names = (
      table['gene_name'].astype(str)
      if 'gene_name' in table.columns
      else pd.Series('', index=table.index)
  )
  table = pd.DataFrame(
      {
          'gene_id': table['gene_id'].astype(str),
          'gene_name': names,
          'gene_type': types,
          'gtf_chrom': table['seqname'].astype(str),
          'strand': table['strand'].astype(str),
          'feature': table['feature'].astype(str),
          'start': table['start'].astype(np.int64) - 1,
          'end': table['end'].astype(np.int64),
      }
  )
  bad_strand = ~table['strand'].isin(['+', '-'])
  if bad_strand.any():
    row = table[bad_strand].iloc[0]
    raise ValueError(
        f"GTF {path}: gene {row.gene_id} has strand {row.strand!r}; TSSs need '+' or '-'."
    )
  table['tss'] = np.where(table['strand'] == '+', table['start'], table['end'] - 1)

  if gene_types is not None:
    wanted_types = {str(t) for t in gene_types}
    known = sorted(set(table['gene_type']))
    table = table[table['gene_type'].isin(wanted_types)]
    if table.empty:
      raise ValueError(
          f'No gene in {path} has gene type {sorted(wanted_types)}; its types are '
          f'{known[:12]}{" ..." if len(known) > 12 else ""}.'
      )
  if genes is not None:
    wanted = read_gene_list(genes)
    ids = table['gene_id'].map(_strip_version)
    keys = set(table['gene_id']) | set(ids) | set(table['gene_name'])
    missing = [g for g in wanted if g not in keys and _strip_version(g) not in set(ids)]
    if missing:
      raise ValueError(
          f'{len(missing)} requested gene(s) are not in {path}'
          f'{" (after the gene-type filter)" if gene_types is not None else ""}: '
          f'{missing[:5]}{" ..." if len(missing) > 5 else ""}; pass GTF gene ids '
          'or names.'
      )
    wanted_set = set(wanted) | {_strip_version(g) for g in wanted}
    table = table[
        table['gene_id'].isin(wanted_set)
        | ids.isin(wanted_set)
        | table['gene_name'].isin(wanted_set)
    ]

  chrom_names = {c: c for c in table['gtf_chrom'].unique()}
  if fasta is not None:
    owned = not isinstance(fasta, FastaStringExtractor)
    extractor = FastaStringExtractor(fasta) if owned else fasta
    try:
      for chrom in list(chrom_names):
        try:
          chrom_names[chrom] = extractor.resolve_chromosome(chrom)
        except ValueError:
          chrom_names[chrom] = None
    finally:
      if owned:
        extractor.close()
    if table['gtf_chrom'].size and not any(chrom_names.values()):
      raise ValueError(
          f'No chromosome of GTF {path} ({sorted(chrom_names)[:5]}) is in FASTA '
          f'{extractor.path} ({list(extractor.chromosome_sizes)[:5]}): pass the annotation of '
          'the same genome assembly.'
      )
  table = table.assign(chrom=table['gtf_chrom'].map(chrom_names))
  table = table[table['chrom'].notna()]

  rows = []
  for gene_id, group in table.groupby('gene_id', sort=False):
    transcripts = group[group['feature'] == 'transcript']
    source = transcripts if len(transcripts) else group
    first = group.iloc[0]
    descending = first.strand == '-'
    tss = tuple(sorted({int(t) for t in source['tss']}, reverse=descending))
    rows.append(
        {
            'gene_id': gene_id,
            'gene_name': first.gene_name,
            'gene_type': first.gene_type,
            'chrom': first.chrom,
            'gtf_chrom': first.gtf_chrom,
            'strand': first.strand,
            'start': int(group['start'].min()),
            'end': int(group['end'].max()),
            'tss': tss,
            'first_tss': tss[0],
        }
    )
  return pd.DataFrame(rows, columns=list(COLUMNS))
