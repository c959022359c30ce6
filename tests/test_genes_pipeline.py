"""score_genes (enformer.genes.pipeline): Borzoi's sed.h5 layout read back with h5py, the TSV,
resuming after a crash, shards and their merge."""

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import write_random_fasta
from enformer.genes import merge_gene_scores, score_genes
from enformer.io.fasta import FastaStringExtractor
from enformer.variants import ScoringSettings
from test_genes_annotation import TWO_STRAND_GENES, write_gtf
from test_genes_scoring import BinPredictor
from test_vcf import write_vcf


class CrashingPredictor(BinPredictor):
  """BinPredictor that raises on its `fail_after`-th batch (a killed run)."""

  def __init__(self, fail_after: int = -1):
    self.calls, self.fail_after = 0, fail_after

  def predict_on_batch(self, x):
    if self.calls == self.fail_after:
      raise RuntimeError('simulated crash')
    self.calls += 1
    return super().predict_on_batch(x)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
  folder = tmp_path_factory.mktemp('genes_pipeline')
  fasta = write_random_fasta(folder / 'g.fa', {'chr1': 8000, 'chr2': 3000})
  gtf = write_gtf(folder / 'g.gtf.gz', TWO_STRAND_GENES)
  extractor = FastaStringExtractor(fasta)
  rows = []
  for index, (chrom, pos) in enumerate(
      [('1', 3900), ('1', 4101), ('1', 500), ('2', 2900), ('1', 4200), ('1', 3800)]
  ):
    ref = extractor.extract(type('I', (), {'chrom': chrom, 'start': pos - 1, 'end': pos})())
    alt = 'G' if ref != 'G' else 'T'
    rows.append(f'{chrom}\t{pos}\tv{index}\t{ref}\t{alt}\t.\tPASS\t.')
  ref = extractor.extract(type('I', (), {'chrom': '1', 'start': 3899, 'end': 3900})())
  rows.append(f'1\t3900\tins\t{ref}\t{ref}AAAA\t.\tPASS\t.')  # An insertion (full passes).
  vcf = write_vcf(folder / 'v.vcf', rows)
  return fasta, vcf, gtf


def test_sed_h5_in_borzois_layout(tmp_path, inputs):
  fasta, vcf, gtf = inputs
  out = tmp_path / 'sed.h5'
  result = score_genes(BinPredictor(), fasta, vcf, gtf, out, tsv=True, progress=False)
  with h5py.File(out, 'r') as h5:  # As Borzoi's readers read sed.h5.
    si, genes = h5['si'][:], [g.decode() for g in h5['gene'][:]]
    snps = [s.decode() for s in h5['snp'][:]]
    assert h5['pos'].dtype == np.uint32 and h5['SED'].dtype == np.float16
    assert h5['SED'].shape == h5['logSED'].shape == (len(si), 2)
    assert [t.decode() for t in h5['target_ids'][:]] == ['t0', 't1']
    pairs = [(snps[i], g) for i, g in zip(si, genes)]
    ref, alt = h5['REF'][:].astype(np.float32), h5['ALT'][:].astype(np.float32)
    np.testing.assert_allclose(h5['SED'][:], alt - ref, atol=0.05)
    np.testing.assert_allclose(h5['logSED'][:], np.log2(1 + alt) - np.log2(1 + ref), atol=0.01)
    assert {a.decode() for a in h5['ref_allele'][:]} <= set('ACGT')
  # v2 at 500 reaches no TSS; v3 on '2' scores END at chr2's end; the insertion pairs as v0 does.
  assert pairs == [
      ('v0', 'MINUS'),
      ('v0', 'PLUS'),
      ('v1', 'MINUS'),
      ('v1', 'PLUS'),
      ('v3', 'END'),
      ('v4', 'MINUS'),
      ('v4', 'PLUS'),
      ('v5', 'MINUS'),
      ('v5', 'PLUS'),
      ('ins', 'MINUS'),
      ('ins', 'PLUS'),
  ]
  assert len(result.scores) == 11 and result.num_genes == 3
  table = pd.read_csv(tmp_path / 'sed.tsv', sep='\t')
  assert len(table) == 11 * 2
  row = table[(table.snp == 'v1') & (table.gene_id == 'PLUS') & (table.target_index == 0)].iloc[0]
  assert (row.gene_name, row.strand, row.tss_distance) == ('PLUSNAME', '+', 100)
  # The insertion of 4 bp at 3900 moves TSS 4000 by 4 bp: bins unchanged, SED 0 on track 0.
  assert table[(table.snp == 'ins') & (table.target_index == 0)]['SED'].abs().max() == 0


def test_filters_and_gene_stat_reach_the_scores(tmp_path, inputs):
  fasta, vcf, gtf = inputs
  summed = score_genes(
      BinPredictor(), fasta, vcf, gtf, tmp_path / 'a.h5', genes=['PLUSNAME'], progress=False
  ).scores
  maxed = score_genes(
      BinPredictor(),
      fasta,
      vcf,
      gtf,
      tmp_path / 'b.h5',
      genes=['PLUS'],
      gene_stat='max',
      progress=False,
  ).scores
  assert set(summed.gene) == {'PLUS'} and len(summed) == len(maxed)
  assert np.all(maxed.scores['REF'][:, 0] < summed.scores['REF'][:, 0])  # Two TSSs in reach.


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, inputs):
  fasta, vcf, gtf = inputs
  whole = score_genes(
      BinPredictor(),
      fasta,
      vcf,
      gtf,
      tmp_path / 'whole.h5',
      settings=ScoringSettings(chunk_size=2),
      progress=False,
  ).scores
  out = tmp_path / 'resumed.h5'
  with pytest.raises(RuntimeError, match='simulated crash'):
    score_genes(
        CrashingPredictor(fail_after=5),
        fasta,
        vcf,
        gtf,
        out,
        settings=ScoringSettings(chunk_size=2, incremental=False),
        progress=False,
    )
  assert (tmp_path / 'resumed.h5.partial').is_dir() and not out.exists()
  resumed = score_genes(
      BinPredictor(),
      fasta,
      vcf,
      gtf,
      out,
      settings=ScoringSettings(chunk_size=2, incremental=False),
      progress=False,
  )
  assert resumed.chunks_resumed >= 1
  for name in ('SED', 'REF', 'ALT'):
    np.testing.assert_allclose(resumed.scores.scores[name], whole.scores[name], atol=1e-4)
  assert list(resumed.scores.gene) == list(whole.gene)
  with pytest.raises(FileExistsError, match='already exists'):
    score_genes(BinPredictor(), fasta, vcf, gtf, out, progress=False)


def test_shards_merge_into_the_single_run(tmp_path, inputs):
  fasta, vcf, gtf = inputs
  single = tmp_path / 'single.h5'
  score_genes(
      BinPredictor(),
      fasta,
      vcf,
      gtf,
      single,
      settings=ScoringSettings(chunk_size=2),
      progress=False,
  )
  shards = [tmp_path / f'shard{k}.h5' for k in (1, 2, 3)]
  for k, path in enumerate(shards, start=1):
    score_genes(
        BinPredictor(),
        fasta,
        vcf,
        gtf,
        path,
        settings=ScoringSettings(chunk_size=2),
        shard=(k, 3),
        progress=False,
    )
  with pytest.raises(ValueError, match='missing'):
    merge_gene_scores(tmp_path / 'part.h5', shards[:2])
  merged = tmp_path / 'merged.h5'
  merge_gene_scores(merged, list(reversed(shards)), tsv=True)
  with h5py.File(single, 'r') as a, h5py.File(merged, 'r') as b:
    for name in ('si', 'gene', 'snp', 'pos', 'SED', 'logSED', 'tss_distance'):
      np.testing.assert_array_equal(a[name][:], b[name][:])
  assert (tmp_path / 'merged.tsv').exists()
