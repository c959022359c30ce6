"""Variant → gene scores (enformer.genes.scoring): genes in the output, strands, multi-TSS genes,
chromosome ends, indel bin alignment, ensembles."""

import kipoiseq
import numpy as np
import pytest

from conftest import write_random_fasta
from enformer.evaluation.tss import expression_at_tss
from enformer.genes import read_genes
from enformer.genes.scoring import GeneScorer, alt_position, sed_scores
from enformer.io import vcf as vcf_io
from enformer.io.fasta import FastaStringExtractor
from enformer.variants.scoring import (
    VariantScorer,
    VariantSeqExtractor,
    sequence_anchor,
    site_sequences,
    variant_interval,
)
from test_genes_annotation import gtf_line, write_gtf

LENGTH = 2048  # 16 bins of 128 bp; the output is the central 8 (crop of 512 bp each side).
OUTPUT_BINS = 8
CROP = (LENGTH - OUTPUT_BINS * 128) // 2


class BinPredictor:
  """Stand-in with `predict_on_batch` over the central 8 bins: track 0 = 1 + the output bin index
  (so a gene's 3-bin sum names the bins read), track 1 = G+C count of the bin (reverse-complement
  symmetric)."""

  sequence_length = LENGTH
  heads = {'human': 2}

  def predict_on_batch(self, x):
    x = np.asarray(x)[:, CROP : LENGTH - CROP]
    bins = x.reshape(x.shape[0], OUTPUT_BINS, 128, 4)
    gc = bins[..., 1:3].sum(axis=(2, 3))
    index = np.broadcast_to(np.arange(1, OUTPUT_BINS + 1, dtype=np.float32), gc.shape)
    return {'human': np.stack([index, gc], -1).astype(np.float32)}


def make_site(fasta, chrom, pos, ref_length=1, alt='', fasta_chrom=None):
  """A site at 1-based `pos` with the genome's REF of `ref_length` bases and ALT `alt` (default:
  an SNV to a different base)."""
  fasta_chrom = fasta_chrom or chrom
  ref = fasta.extract(kipoiseq.Interval(fasta_chrom, pos - 1, pos - 1 + ref_length))
  alt = alt or ('A' if ref[0] != 'A' else 'C')
  return vcf_io.VariantSite((kipoiseq.Variant(chrom, pos, ref, alt, id='v'),), fasta_chrom)


@pytest.fixture(scope='module')
def genome(tmp_path_factory):
  folder = tmp_path_factory.mktemp('genes')
  fasta = FastaStringExtractor(write_random_fasta(folder / 'g.fa', {'chr1': 8000, 'chr2': 3000}))
  lines = [
      gtf_line('1', 'transcript', 4001, 4500, '+', 'PLUS', 'T1'),  # TSS 4000.
      gtf_line('1', 'transcript', 4301, 4600, '+', 'PLUS', 'T2'),  # TSS 4300.
      gtf_line('1', 'transcript', 3000, 3701, '-', 'MINUS', 'T3'),  # TSS 3700.
      gtf_line('1', 'transcript', 6001, 7000, '+', 'FAR', 'T4'),  # TSS 6000.
      gtf_line('2', 'transcript', 2000, 2999, '-', 'END', 'T5'),  # TSS 2998: chr2's end −2.
  ]
  genes = read_genes(write_gtf(folder / 'g.gtf', lines), fasta=fasta)
  return fasta, genes


def bins_read(value):
  """The TSS bin b of a 3-bin sum of track 0 (1 + bin index) in the interior: 3 (b + 1)."""
  return int(round(value / 3)) - 1


def test_alt_position_matches_the_sequences_kipoiseq_builds(genome):
  fasta, _ = genome
  extractor = VariantSeqExtractor(reference_sequence=fasta)
  for pos, ref_length, alt_length, rule in (
      (4000, 1, 6, 'notebook'),
      (4000, 5, 1, 'notebook'),
      (4000, 1, 4, 'variant'),
      (300, 1, 5, 'notebook'),
      (300, 4, 1, 'notebook'),
  ):
    site = make_site(fasta, 'chr1', pos, ref_length, 'T' * alt_length)
    variant = site.variants[0]
    ref, alt = site_sequences(extractor, site, LENGTH, indel_anchor=rule)
    interval = variant_interval('chr1', pos, LENGTH)
    anchor = sequence_anchor(interval, pos, rule)
    checked = 0
    for t in range(interval.start, interval.end):
      if variant.start <= t < variant.start + ref_length:
        continue  # Bases of the allele itself.
      moved = alt_position(t, variant.start, ref_length, alt_length, anchor)
      if interval.start <= moved < interval.end and t >= 0:
        assert alt[moved - interval.start] == ref[t - interval.start], (pos, rule, t)
        checked += 1
    assert checked > interval.end - max(0, interval.start) - 20  # All but the moved-out ends.


def test_genes_in_the_output_two_strands_multi_tss(genome):
  fasta, genes = genome
  scorer = GeneScorer(VariantScorer(BinPredictor(), fasta, incremental=False), genes)
  site = make_site(fasta, 'chr1', 4101)  # Window [3076, 5124), output [3588, 4612).
  pairs = scorer.score_site(site)
  names = list(genes['gene_id'][pairs.gene])
  assert names == ['MINUS', 'PLUS']  # FAR's TSS (6000) lies outside the output.
  start = 4101 - LENGTH // 2 + CROP
  # PLUS: TSSs 4000 and 4300 (bins 3 and 5), summed; MINUS: TSS 3700 (bin 0: 2 bins inside).
  index = np.arange(1.0, OUTPUT_BINS + 1)[:, None]
  plus = expression_at_tss(index, (4000 - start) // 128) + expression_at_tss(index, 5)
  assert (4300 - start) // 128 == 5
  np.testing.assert_allclose(pairs.ref[1, :1], plus)
  np.testing.assert_allclose(pairs.ref[0, 0], 1 + 2)  # Bin 0 and its right neighbour.
  assert list(pairs.distance) == [-(4100 - 3700), 4100 - 4000]  # '−' gene: upstream is right.
  maxed = GeneScorer(
      VariantScorer(BinPredictor(), fasta, incremental=False), genes, stat='max'
  ).score_site(site)
  np.testing.assert_allclose(maxed.ref[1, 0], expression_at_tss(index, 5)[0])
  # An SNV leaves the bin-index track alone: SED 0 there.
  sed, log_sed = sed_scores(pairs.ref, pairs.alt)
  assert np.all(sed[:, 0] == 0) and np.all(log_sed[:, 0] == 0)


def test_gene_at_a_chromosome_end_and_chr_naming(genome):
  fasta, genes = genome
  scorer = GeneScorer(VariantScorer(BinPredictor(), fasta, incremental=False), genes)
  # The VCF says '2', the FASTA and the GTF-resolved table 'chr2'; the window runs past the end.
  pairs = scorer.score_site(make_site(fasta, '2', 2900, fasta_chrom='chr2'))
  assert list(genes['gene_id'][pairs.gene]) == ['END'] and genes['gtf_chrom'][3] == '2'
  start = 2900 - LENGTH // 2 + CROP
  assert pairs.ref[0, 0] == 3 * ((2998 - start) // 128 + 1)
  assert np.isfinite(pairs.ref).all()
  assert len(scorer.score_site(make_site(fasta, 'chr1', 1000)).gene) == 0  # No gene in reach.


@pytest.mark.parametrize(
    'pos,ref_length,alt_length,ref_bin,alt_bin',
    [
        # TSS 4000 of PLUS (and 4300) with the 'notebook' anchor: the right flank moves.
        (3900, 1, 201, 4, 6),  # Insertion of 200 bp upstream of TSS 4000: it moves 200 bp right.
        (3700, 201, 1, 6, 4),  # Deletion of bases 3700..3899, upstream: TSS 4000 moves 200 bp left.
        (4100, 1, 201, 3, 3),  # Insertion downstream of TSS 4000: it stays (the anchor side).
        (4100, 101, 1, 3, 3),  # Deletion downstream of TSS 4000: it stays.
    ],
)
def test_indel_bins_are_aligned_to_the_reference(
    genome, pos, ref_length, alt_length, ref_bin, alt_bin
):
  fasta, genes = genome
  plus_only = genes[genes['gene_id'] == 'PLUS'].assign(tss=[(4000,)], first_tss=4000)
  scorer = GeneScorer(VariantScorer(BinPredictor(), fasta), plus_only)
  pairs = scorer.score_site(make_site(fasta, 'chr1', pos, ref_length, 'A' * alt_length))
  start = pos - LENGTH // 2 + CROP
  assert (4000 - start) // 128 == ref_bin
  assert (bins_read(pairs.ref[0, 0]), bins_read(pairs.alt[0, 0])) == (ref_bin, alt_bin)


def test_reverse_complement_members_are_flipped_back(genome):
  fasta, genes = genome
  site = make_site(fasta, 'chr1', 4101)
  plain = GeneScorer(VariantScorer(BinPredictor(), fasta), genes).score_site(site)
  rc = GeneScorer(VariantScorer(BinPredictor(), fasta, reverse_complement=True), genes).score_site(
      site
  )
  # G+C counts are strand-symmetric: the average over both strands equals the forward value
  # only when the reverse-complement bins are read in genome order.
  np.testing.assert_allclose(rc.ref[:, 1], plain.ref[:, 1])
  np.testing.assert_allclose(rc.alt[:, 1], plain.alt[:, 1])
