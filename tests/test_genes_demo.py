"""The synthetic genome's GTF (enformer.data.synthetic_genes) and the demo's genes step."""

import h5py
import pandas as pd
import pytest

from conftest import demo_results
from enformer.data import synthetic
from enformer.data.synthetic_genes import write_synthetic_gtf
from enformer.genes import read_genes


def test_synthetic_gtf_puts_tss_on_planted_motifs(tmp_path):
  genome = synthetic.make_synthetic_genome(tmp_path / 'g', chrom_sizes={'chr1': 20_000,
                                                                         'chr2': 8_000})
  genes = write_synthetic_gtf(tmp_path / 'genes.gtf', genome.motif_sites_bed, genome.chrom_sizes,
                              chroms=['chr1'])
  table = read_genes(tmp_path / 'genes.gtf', fasta=genome.fasta)
  assert list(table['tss']) == list(genes['tss']) and set(table['chrom']) == {'chr1'}
  assert set(table['strand']) == {'+', '-'} and (table['tss'].map(len) == 2).any()
  sites = genome.motif_sites[genome.motif_sites['chrom'] == 'chr1']
  centres = set((sites['start'] + sites['end']) // 2)
  assert all(t in centres for tss in table['tss'] for t in tss)  # Every TSS on a motif.
  for gene in table.itertuples():
    site = sites[(sites['start'] + sites['end']) // 2 == gene.first_tss].iloc[0]
    assert gene.strand == site.strand and gene.gene_name.startswith(site.motif)


@pytest.mark.slow  # Needs the quick demo.
def test_demo_genes_step(quick_demo):
  genes = demo_results(quick_demo)['genes']
  assert genes['pairs'] > 0 and genes['genes'] > 10
  assert genes['hit_top_quantile'] > 0.99  # A motif-destroying SNV at a TSS vs the background.
  assert genes['hit_median_max_abs_sed'] > 10 * genes['miss_median_max_abs_sed']
  assert genes['expression_pearson'][0] > 0.5  # The CTCF track at the genes' TSSs.
  with h5py.File(genes['sed_h5']) as h5:
    assert h5['SED'].shape == (genes['pairs'], 4)
  assert len(pd.read_csv(quick_demo / 'genes' / 'expression' / 'expression.tsv', sep='\t')) == \
      genes['genes'] * 4
  assert '<h2>Genes</h2>' in (quick_demo / 'index.html').read_text()
