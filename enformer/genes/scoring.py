"""Variant → gene scores: expression at each nearby gene's TSSs for REF and ALT, SED and logSED.

For a variant, every ensemble member (shift, reverse complement) of `VariantScorer` predicts the
reference and alternative window; output bin i of a member covers [s + 128 i, s + 128 (i + 1))
with s = window start + (L − 128 T') / 2. A gene is scored with a variant when at least one of its
TSSs lies in the output of every member (the unshifted window's output, for a single member);
those TSSs count. Per member and track, the gene's expression is
`enformer.genes.expression.gene_expression` (the 3-bin sum at each TSS bin, summed or maxed over
the gene's TSSs), averaged over members; then

  SED    = ALT − REF                          (Borzoi's `borzoi_sed.py` names)
  logSED = log2(1 + ALT) − log2(1 + REF)

Indels (Borzoi's indel compensation): in the ALT window the bases on the far side of the variant
from kipoiseq's anchor (`enformer.variants.scoring.sequence_anchor`: for the default 'notebook'
rule, the bases right of the variant, except within the first L/2 bp of a chromosome) sit
len(ALT) − len(REF) bp away from their reference positions. Each TSS at reference position t is
read in the ALT predictions at its ALT position `alt_position(t, ...)`, so REF and ALT read the
same promoter: an insertion of k bp between the anchor and a TSS moves that TSS k bp further out
(its bin may change), a deletion moves it k bp back; a TSS inside a deleted span is read at the
base that follows the deletion.
"""

import bisect
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from enformer.genes.expression import BIN_SIZE, GENE_STATS, gene_expression
from enformer.io.vcf import VariantSite
from enformer.variants.scoring import VariantScorer, sequence_anchor, variant_interval


def alt_position(t: int, variant_start: int, ref_length: int, alt_length: int, anchor: int) -> int:
  """Where the reference base at 0-based `t` sits in the ALT sequence (genome coordinates).

  Args:
    t: 0-based reference position.
    variant_start: 0-based position of the variant's first REF base.
    ref_length, alt_length: allele lengths.
    anchor: kipoiseq's anchor (`sequence_anchor`): bases on its side of the variant stay.
  """
  delta = alt_length - ref_length
  end = variant_start + ref_length
  if delta == 0:
    return t
  if variant_start >= anchor:  # The right flank moves.
    if t < variant_start:
      return t
    if t < end:
      return min(t, variant_start + alt_length)
    return t + delta
  # The variant lies left of the anchor: the left flank moves.
  if t >= end:
    return t
  if t < variant_start:
    return t - delta
  return min(max(t - delta, end - alt_length), end - 1)


class GeneIndex:
  """TSSs of a gene table by chromosome, to find the genes with a TSS in a window."""

  def __init__(self, genes: pd.DataFrame):
    """Args: genes: `enformer.genes.annotation.read_genes` output (chrom = the FASTA's names)."""
    self.genes = genes.reset_index(drop=True)
    self._by_chrom: Dict[str, Tuple[List[int], List[int]]] = {}
    rows: Dict[str, List[Tuple[int, int]]] = {}
    for row, (chrom, tss) in enumerate(zip(self.genes['chrom'], self.genes['tss'])):
      rows.setdefault(chrom, []).extend((int(t), row) for t in tss)
    for chrom, pairs in rows.items():
      pairs.sort()
      self._by_chrom[chrom] = ([p for p, _ in pairs], [r for _, r in pairs])

  def __len__(self) -> int:
    return len(self.genes)

  def genes_in(self, chrom: str, start: int, end: int) -> List[int]:
    """Rows of the genes with a TSS in [start, end), in order of their first such TSS."""
    positions, rows = self._by_chrom.get(chrom, ([], []))
    low, high = bisect.bisect_left(positions, start), bisect.bisect_left(positions, end)
    return list(dict.fromkeys(rows[low:high]))


@dataclasses.dataclass
class GenePairs:
  """Variant–gene pairs of some sites: per pair the variant (row among the sites' ALTs), the gene
  (row of the gene table), the gene's expression for REF and ALT [P, N] and the signed distance
  (bp) of the variant to the gene's nearest TSS in the output (positive: downstream of it in the
  gene's direction of transcription)."""

  variant: np.ndarray
  gene: np.ndarray
  ref: np.ndarray
  alt: np.ndarray
  distance: np.ndarray

  def arrays(self) -> Dict[str, np.ndarray]:
    return dataclasses.asdict(self)


class GeneScorer:
  """Scores variants against the genes whose TSSs lie in their windows' outputs.

  Example:
    >>> scorer = GeneScorer(VariantScorer(predictor, fasta), read_genes('genes.gtf', fasta=fasta))
    >>> pairs = scorer.score_sites(read_variants('my.vcf', fasta))   # pairs.ref, pairs.alt [P, N]
  """

  def __init__(
      self,
      variant_scorer: VariantScorer,
      genes: pd.DataFrame,
      *,
      stat: str = 'sum',
      bin_size: int = BIN_SIZE,
  ):
    """Args:
    variant_scorer: predictions and ensemble (`VariantScorer.site_predictions`).
    genes: `enformer.genes.annotation.read_genes` output, chromosomes named as in the FASTA.
    stat: 'sum' or 'max' over a gene's TSSs.
    bin_size: bp per output bin.
    """
    if stat not in GENE_STATS:
      raise ValueError(f'stat must be one of {GENE_STATS}, got {stat!r}.')
    self.variants = variant_scorer
    self.index = genes if isinstance(genes, GeneIndex) else GeneIndex(genes)
    self.stat = stat
    self.bin_size = int(bin_size)
    self.num_bins: Optional[int] = None  # Output bins T', learnt from the first prediction.

  def _output_starts(self, site: VariantSite, num_bins: int) -> Dict[int, int]:
    """Shift → 0-based genome coordinate of output bin 0 of that member's window."""
    length = self.variants.sequence_length
    crop = (length - num_bins * self.bin_size) // 2
    return {
        m.shift: variant_interval(site.fasta_chrom, site.pos, length, m.shift).start + crop
        for m in self.variants.members
    }

  def _site_genes(self, site: VariantSite, num_bins: int) -> List[Tuple[int, np.ndarray]]:
    """(gene row, its TSSs inside every member's output) for the genes scored with `site`."""
    starts = self._output_starts(site, num_bins)
    low = max(starts.values())
    high = min(starts.values()) + num_bins * self.bin_size
    genes = []
    for row in self.index.genes_in(site.fasta_chrom, low, high):
      tss = np.asarray([t for t in self.index.genes['tss'][row] if low <= t < high], np.int64)
      genes.append((row, tss))
    return genes

  def score_site(self, site: VariantSite) -> GenePairs:
    """Pairs of one site: its ALTs (in order) × its genes (in order of their TSSs)."""
    genes = self._site_genes(site, self.num_bins) if self.num_bins else None
    num_alts = len(site.variants)
    if genes is not None and not genes:
      return _empty_pairs()
    ref_sum = alt_sum = None
    for member, ref, alts in self.variants.site_predictions(site):
      if self.num_bins is None:
        self.num_bins = ref.shape[0]
        genes = self._site_genes(site, self.num_bins)
        if not genes:
          return _empty_pairs()
      start = self._output_starts(site, self.num_bins)[member.shift]
      interval = variant_interval(
          site.fasta_chrom, site.pos, self.variants.sequence_length, member.shift
      )
      anchor = sequence_anchor(interval, site.pos, self.variants.indel_anchor)
      ref_values = np.stack(
          [
              gene_expression(ref, start, tss, stat=self.stat, bin_size=self.bin_size)
              for _, tss in genes
          ]
      )
      alt_values = np.stack(
          [
              np.stack(
                  [
                      gene_expression(
                          alt,
                          start,
                          [
                              alt_position(int(t), v.start, len(v.ref), len(v.alt), anchor)
                              for t in tss
                          ],
                          stat=self.stat,
                          bin_size=self.bin_size,
                      )
                      for _, tss in genes
                  ]
              )
              for v, alt in zip(site.variants, alts)
          ]
      )  # [A, G, N]
      ref_sum = ref_values if ref_sum is None else ref_sum + ref_values
      alt_sum = alt_values if alt_sum is None else alt_sum + alt_values
    count = len(self.variants.members)
    ref_mean, alt_mean = ref_sum / count, alt_sum / count  # [G, N], [A, G, N]
    gene_rows = np.asarray([row for row, _ in genes], np.int64)
    strands = self.index.genes['strand'].to_numpy()[gene_rows]
    variant_position = site.pos - 1
    distances = []
    for (_, tss), strand in zip(genes, strands):
      offsets = variant_position - tss
      nearest = offsets[np.argmin(np.abs(offsets))]
      distances.append(int(nearest) if strand == '+' else -int(nearest))
    num_genes = len(genes)
    return GenePairs(
        variant=np.repeat(np.arange(num_alts, dtype=np.int64), num_genes),
        gene=np.tile(gene_rows, num_alts),
        ref=np.tile(ref_mean, (num_alts, 1)).astype(np.float32),
        alt=alt_mean.reshape(num_alts * num_genes, -1).astype(np.float32),
        distance=np.tile(np.asarray(distances, np.int64), num_alts),
    )

  def score_sites(self, sites: Sequence[VariantSite], progress=None) -> GenePairs:
    """Pairs of all `sites`; `variant` counts the ALTs of `sites` in order."""
    parts, offset = [], 0
    for site in sites:
      pairs = self.score_site(site)
      pairs.variant = pairs.variant + offset
      parts.append(pairs)
      offset += len(site.variants)
      if progress is not None:
        progress.update(len(site.variants))
    return concatenate_pairs(parts)


def _empty_pairs(num_tracks: int = 0) -> GenePairs:
  return GenePairs(
      np.zeros(0, np.int64),
      np.zeros(0, np.int64),
      np.zeros((0, num_tracks), np.float32),
      np.zeros((0, num_tracks), np.float32),
      np.zeros(0, np.int64),
  )


def concatenate_pairs(parts: Sequence[GenePairs]) -> GenePairs:
  """One GenePairs of several (empty parts of unknown track count are skipped)."""
  parts = [p for p in parts if len(p.variant)]
  if not parts:
    return _empty_pairs()
  return GenePairs(
      *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(GenePairs))
  )


def sed_scores(ref: np.ndarray, alt: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """SED = ALT − REF and logSED = log2(1 + ALT) − log2(1 + REF), [P, N] float32."""
  ref, alt = np.asarray(ref, np.float64), np.asarray(alt, np.float64)
  return ((alt - ref).astype(np.float32), (np.log2(1 + alt) - np.log2(1 + ref)).astype(np.float32))
