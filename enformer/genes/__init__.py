"""Genes: GTF annotation, expression at a gene's TSSs, gene-level variant effects.

  annotation  read_genes: genes and their strand-aware TSSs from a GTF (gtfparse)
  expression  gene_expression: a gene's CAGE-at-TSS in one window of predictions; tss_bins
"""

from enformer.genes.annotation import read_gene_list, read_genes
from enformer.genes.expression import GENE_STATS, gene_expression, tss_bins

__all__ = ['GENE_STATS', 'gene_expression', 'read_gene_list', 'read_genes', 'tss_bins']
