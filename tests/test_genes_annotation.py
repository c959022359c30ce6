"""Gene annotation (enformer.genes.annotation) and expression at a gene's TSSs."""

import gzip

import numpy as np
import pytest

from enformer.evaluation.tss import expression_at_tss
from enformer.genes import gene_expression, read_genes, tss_bins
from conftest import write_random_fasta

ATTRS = 'gene_id "{g}"; transcript_id "{t}"; gene_name "{n}"; gene_type "{k}";'


def gtf_line(
    chrom, feature, start, end, strand, gene, transcript='', name='', kind='protein_coding'
):
  """One GTF line (1-based inclusive start/end)."""
  attrs = ATTRS.format(g=gene, t=transcript, n=name or gene, k=kind)
  return f'{chrom}\tTEST\t{feature}\t{start}\t{end}\t.\t{strand}\t.\t{attrs}\n'


def write_gtf(path, lines):
  text = ''.join(lines)
  if str(path).endswith('.gz'):
    with gzip.open(path, 'wt') as stream:
      stream.write(text)
  else:
    path.write_text(text)
  return path


# Genes on chr1 ('1': the FASTA says chr1) and chr2: PLUS with two TSSs (4000, 4300), MINUS on the
# minus strand (TSS 3700), END near chr2's end (TSS 2998).
TWO_STRAND_GENES = [
    gtf_line('1', 'transcript', 4001, 4500, '+', 'PLUS', 'T1', 'PLUSNAME'),
    gtf_line('1', 'transcript', 4301, 4600, '+', 'PLUS', 'T2', 'PLUSNAME'),
    gtf_line('1', 'transcript', 3000, 3701, '-', 'MINUS', 'T3', 'MINUSNAME'),
    gtf_line('2', 'transcript', 2000, 2999, '-', 'END', 'T5', 'ENDNAME'),
]


LINES = [
    # Plus strand, two transcripts (TSS 100 and 150, GTF 1-based 101 and 151), a repeated TSS.
    gtf_line('1', 'gene', 101, 900, '+', 'ENSG1.3', name='PLUS'),
    gtf_line('1', 'transcript', 151, 900, '+', 'ENSG1.3', 'T1', 'PLUS'),
    gtf_line('1', 'transcript', 101, 800, '+', 'ENSG1.3', 'T2', 'PLUS'),
    gtf_line('1', 'transcript', 101, 700, '+', 'ENSG1.3', 'T3', 'PLUS'),
    # Minus strand: TSS at the transcript's last base (GTF end − 1, 0-based): 1999 and 1799.
    gtf_line('1', 'transcript', 1001, 1800, '-', 'ENSG2', 'T4', 'MINUS', 'lncRNA'),
    gtf_line('1', 'transcript', 1201, 2000, '-', 'ENSG2', 'T5', 'MINUS', 'lncRNA'),
    # A gene line without transcripts, on a chromosome the FASTA lacks.
    gtf_line('7', 'gene', 11, 50, '-', 'ENSG3', name='ELSEWHERE'),
]


def test_read_genes_strand_aware_tss_in_transcription_order(tmp_path):
  genes = read_genes(write_gtf(tmp_path / 'a.gtf.gz', LINES))
  assert list(genes['gene_id']) == ['ENSG1.3', 'ENSG2', 'ENSG3']
  plus, minus, elsewhere = (genes.iloc[i] for i in range(3))
  assert plus.tss == (100, 150) and plus.first_tss == 100 and plus.strand == '+'
  assert minus.tss == (1999, 1799) and minus.first_tss == 1999 and minus.gene_type == 'lncRNA'
  assert elsewhere.tss == (49,)  # Gene line only: its end − 1 on '−'.
  assert (plus.start, plus.end) == (100, 900)


def test_read_genes_resolves_chromosomes_against_the_fasta(tmp_path):
  fasta = write_random_fasta(tmp_path / 'g.fa', {'chr1': 3000, 'chr2': 500})
  genes = read_genes(write_gtf(tmp_path / 'a.gtf', LINES), fasta=fasta)
  assert list(genes['chrom']) == ['chr1', 'chr1']  # '1' → 'chr1'; chromosome 7 is not there.
  assert list(genes['gtf_chrom']) == ['1', '1']
  other = write_gtf(tmp_path / 'b.gtf', [gtf_line('chrX', 'gene', 1, 9, '+', 'G')])
  with pytest.raises(ValueError, match='No chromosome of GTF'):
    read_genes(other, fasta=fasta)


def test_read_genes_filters(tmp_path):
  gtf = write_gtf(tmp_path / 'a.gtf', LINES)
  assert list(read_genes(gtf, gene_types=['lncRNA'])['gene_id']) == ['ENSG2']
  # Ids with or without their version, and names; from a list or a file.
  assert list(read_genes(gtf, genes=['ENSG1', 'MINUS'])['gene_id']) == ['ENSG1.3', 'ENSG2']
  names = tmp_path / 'genes.txt'
  names.write_text('# wanted\nENSG3\n')
  assert list(read_genes(gtf, genes=names)['gene_name']) == ['ELSEWHERE']
  with pytest.raises(ValueError, match='not in'):
    read_genes(gtf, genes=['NOPE'])
  with pytest.raises(ValueError, match='gene type'):
    read_genes(gtf, gene_types=['miRNA'])


def test_gene_expression_sums_or_maxes_the_three_bin_sums():
  predictions = np.arange(20.0)[:, None] * [1.0, 2.0]  # [T=20, N=2]
  start = 1000
  # TSSs in bins 0, 5 and one outside the output (ignored).
  tss = [1000 + 5 * 128 + 7, 1000 + 3, 1000 + 20 * 128]
  assert list(tss_bins(tss, start, 20)) == [5, 0]
  expected = expression_at_tss(predictions, 5) + expression_at_tss(predictions, 0)
  np.testing.assert_allclose(gene_expression(predictions, start, tss), expected)
  np.testing.assert_allclose(
      gene_expression(predictions, start, tss, stat='max'), expression_at_tss(predictions, 5)
  )
  np.testing.assert_allclose(gene_expression(predictions, start, [1000])[0], 0 + 1)  # Edge bin.
  with pytest.raises(ValueError, match='No TSS'):
    gene_expression(predictions, start, [999])  # Bin −1.
