"""The synthetic genome's GTF (enformer.data.synthetic_genes): TSSs on planted motifs."""

from enformer.data import synthetic
from enformer.data.synthetic_genes import write_synthetic_gtf
from enformer.genes import read_genes


def test_synthetic_gtf_puts_tss_on_planted_motifs(tmp_path):
  genome = synthetic.make_synthetic_genome(
      tmp_path / 'g', chrom_sizes={'chr1': 20_000, 'chr2': 8_000}
  )
  genes = write_synthetic_gtf(
      tmp_path / 'genes.gtf', genome.motif_sites_bed, genome.chrom_sizes, chroms=['chr1']
  )
  table = read_genes(tmp_path / 'genes.gtf', fasta=genome.fasta)
  assert list(table['tss']) == list(genes['tss']) and set(table['chrom']) == {'chr1'}
  assert set(table['strand']) == {'+', '-'} and (table['tss'].map(len) == 2).any()
  sites = genome.motif_sites[genome.motif_sites['chrom'] == 'chr1']
  centres = set((sites['start'] + sites['end']) // 2)
  assert all(t in centres for tss in table['tss'] for t in tss)  # Every TSS on a motif.
  for gene in table.itertuples():
    site = sites[(sites['start'] + sites['end']) // 2 == gene.first_tss].iloc[0]
    assert gene.strand == site.strand and gene.gene_name.startswith(site.motif)
