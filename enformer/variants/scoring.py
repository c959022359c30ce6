"""Variant effect scores: variant-centred ref/alt sequences, batched predictions, SAD and SAR.

For each variant, the model sees the reference and the alternative sequence of length L centred
on the variant (kipoiseq `Interval(chrom, pos, pos).resize(L)` and `VariantSeqExtractor`, like
the usage colab), N-padded past chromosome ends. Per track t, with bin means
`m(x)[t] = mean over output bins of prediction(x)[:, t]`:

  SAD = m(alt) − m(ref)                      (the colab's raw variant score)
  SAR = log2(1 + m(alt)) − log2(1 + m(ref))

With an ensemble (reverse complement and/or shifts of the window by a few bp), `m` is averaged
over the ensemble members before SAD/SAR are formed. All ALTs of a multi-allelic VCF line share
the reference predictions; references and alternatives are predicted in the same batches.

Indels (`indel_anchor`; the ref sequence is always the window itself):
  'notebook' (default): as DeepMind's usage notebook (`variant_centered_sequences`), which passes
      kipoiseq `anchor = interval.center() - interval.start` (L/2, meant as relative), and
      kipoiseq reads it as an absolute coordinate clamped into the window. For every variant
      past the first L/2 bp of its chromosome the anchor therefore lies left of the variant (at
      the window start once pos ≥ L): the bases left of the variant stay where they are, the ALT
      allele follows at the variant's position,
      and the right flank moves: an insertion of k bp pushes the last k bases out of the window's
      right end, a deletion of k bp pulls k more reference bases in at the right end. (Within
      the first L/2 bp the anchor is the coordinate L/2, right of the variant: the bases right of
      it stay and the left part moves instead, as in the notebook.)
  'variant': anchored at the variant (kipoiseq anchor = `pos`): an
      insertion keeps the bases right of the variant's first base in place and pushes bases out
      at the window's left end; a deletion is placed as with 'notebook' (kipoiseq splits it at
      the anchor, so the right flank moves).
For SNVs and deletions both rules give the same sequences (past the first L/2 bp).

N (also the padding past chromosome ends) is one-hot encoded as `neutral_value` in each channel:
0 by default (DeepMind's enformer.py, Basenji2 data), 0.25 to reproduce the usage notebook.
"""

import dataclasses
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import kipoiseq
from kipoiseq.extractors import VariantSeqExtractor
import numpy as np

from enformer.inference import incremental as incremental_lib
from enformer.io.vcf import VariantSite
from enformer.inference.regions import read_extra_tracks
from enformer.sequence import (
    NEUTRAL_VALUE,
    check_neutral_value,
    one_hot_encode,
    reverse_complement_one_hot,
)

INDEL_ANCHORS = ('notebook', 'variant')


@dataclasses.dataclass(frozen=True)
class EnsembleMember:
  """One view of a variant: window shifted by `shift` bp, optionally reverse complemented."""

  shift: int = 0
  reverse_complement: bool = False


def ensemble_members(
    shifts: Sequence[int] = (0,), reverse_complement: bool = False
) -> Tuple[EnsembleMember, ...]:
  """Members for every shift, forward (and reverse complement if requested)."""
  shifts = tuple(dict.fromkeys(int(s) for s in shifts))
  if not shifts:
    raise ValueError('Pass at least one shift (e.g. 0).')
  strands = (False, True) if reverse_complement else (False,)
  return tuple(EnsembleMember(s, rc) for s in shifts for rc in strands)


def check_shifts(shifts: Sequence[int], sequence_length: int) -> None:
  """ValueError unless every shift keeps the variant inside its L bp window.

  The window of `variant_interval` puts the variant at index L/2 − 1 − shift (0-based), so a
  shift must lie in [−L/2, L/2 − 1]; beyond, ref and alt windows are identical and every score
  would be 0.
  """
  low, high = -(sequence_length // 2), sequence_length // 2 - 1
  outside = [int(s) for s in shifts if not low <= int(s) <= high]
  if outside:
    raise ValueError(
        f'Shift(s) {outside} move the variant out of its {sequence_length:,} bp '
        f'window (every score would be 0): shifts must lie between {low:,} and '
        f'{high:,} bp; ensembles use a few bp, e.g. -1, 0, 1.'
    )


def variant_interval(
    chrom: str, pos: int, sequence_length: int, shift: int = 0
) -> kipoiseq.Interval:
  """The L bp window centred on 1-based `pos` (as the colab builds it), moved by `shift` bp."""
  interval = kipoiseq.Interval(chrom, pos, pos).resize(sequence_length)
  return kipoiseq.Interval(chrom, interval.start + shift, interval.end + shift)


def sequence_anchor(interval: kipoiseq.Interval, pos: int, indel_anchor: str = 'notebook') -> int:
  """The 0-based genome coordinate where kipoiseq anchors the alleles of a site at 1-based `pos`
  in `interval` (clamped into the window, as kipoiseq clamps it): bases on the anchor's side of a
  variant keep their window positions, the others move by the indel's length."""
  if indel_anchor == 'notebook':
    anchor = interval.center() - interval.start  # The notebook's expression (meant as relative).
  else:
    anchor = pos  # Absolute: the variant stays at the window centre (minus shift).
  return max(min(int(anchor), interval.end), interval.start)


def site_sequences(
    extractor: VariantSeqExtractor,
    site: VariantSite,
    sequence_length: int,
    shift: int = 0,
    indel_anchor: str = 'notebook',
) -> List[str]:
  """[ref, alt_1, ..., alt_k] strings of length L for one site (VCF line).

  `indel_anchor` places insertions and deletions (see the module docstring): 'notebook' (default,
  DeepMind's usage notebook: left flank kept, right flank moves) or 'variant'.
  """
  if indel_anchor not in INDEL_ANCHORS:
    raise ValueError(f'indel_anchor must be one of {INDEL_ANCHORS}, got {indel_anchor!r}.')
  interval = variant_interval(site.fasta_chrom, site.pos, sequence_length, shift)
  anchor = sequence_anchor(interval, site.pos, indel_anchor)
  sequences = [extractor.extract(interval, [], anchor=anchor)]
  sequences += [extractor.extract(interval, [variant], anchor=anchor) for variant in site.variants]
  return sequences


class VariantScorer:
  """Scores variants with any predictor that has
  `predict_on_batch(x [B, L, 4]) -> {head: [B, T, N]}`.

  Example:
    >>> predictor = enformer.load_model('enformer_model')
    >>> scorer = VariantScorer(predictor, FastaStringExtractor('hg38.fa'), head='human')
    >>> sad, sar = scorer.score_sites(read_variants('my.vcf', scorer.fasta))  # [V, 5313] each
  """

  def __init__(
      self,
      predictor,
      fasta,
      *,
      head: str = 'human',
      sequence_length: Optional[int] = None,
      batch_size: int = 4,
      reverse_complement: bool = False,
      shifts: Sequence[int] = (0,),
      neutral_value: float = NEUTRAL_VALUE,
      indel_anchor: str = 'notebook',
      incremental: bool = True,
      extra_tracks: Sequence[str] = (),
  ):
    """
    Args:
      predictor: object with `predict_on_batch` (e.g. `enformer.load_model(...)`); its
        `sequence_length` attribute is used when `sequence_length` is None.
      fasta: `enformer.io.fasta.FastaStringExtractor` (N-padding, chr-prefix resolution).
      head: output head to score ('human' or 'mouse').
      sequence_length: model input length L (bp).
      batch_size: sequences per forward pass (refs and alts are mixed in one batch).
      reverse_complement: also predict the reverse complement and average.
      shifts: window shifts in bp to average over, e.g. (-1, 0, 1); each must keep the variant
        inside the window (`check_shifts`).
      neutral_value: one-hot value of N in each channel: 0 (default; enformer.py, Basenji2) or
        0.25 (DeepMind's usage notebook, kipoiseq's default).
      indel_anchor: placement of indels, 'notebook' (default) or 'variant' (module docstring).
      incremental: score SNVs and equal-length MNVs by exact incremental inference
        (`enformer.inference.incremental`: the reference conv-tower output once per window and
        ensemble
        member, a few recomputed bins per alternative); indels, and predictors without a Sonnet
        module, take full passes. False: full passes for every allele.
      extra_tracks: per-base bigWigs of the extra input channels of a model with
        `input_channels = 4 + len(extra_tracks)`, in channel order (as
        `enformer.inference.regions` reads
        them). Reference and alternatives share the values of the reference window; the reverse
        complement reverses them along positions. Scored by full passes (not incremental).
    """
    if indel_anchor not in INDEL_ANCHORS:
      raise ValueError(f'indel_anchor must be one of {INDEL_ANCHORS}, got {indel_anchor!r}.')
    if sequence_length is None:
      sequence_length = getattr(predictor, 'sequence_length', None)
    if not sequence_length:
      raise ValueError(
          'The predictor has no `sequence_length`; pass sequence_length= (the '
          'model input length in bp, e.g. 196608 or 393216 for the TF-Hub module).'
      )
    if batch_size < 1:
      raise ValueError(f'batch_size must be ≥ 1, got {batch_size}.')
    heads = getattr(predictor, 'heads', None)
    if heads is not None and head not in heads:
      raise ValueError(
          f'Unknown head {head!r}; the model has heads {sorted(heads)}. '
          'Pass one of them as `head`.'
      )
    self.predictor = predictor
    self.fasta = fasta
    self.head = head
    self.sequence_length = int(sequence_length)
    self.batch_size = int(batch_size)
    check_shifts(shifts, self.sequence_length)
    self.members = ensemble_members(shifts, reverse_complement)
    self.extra_tracks = tuple(extra_tracks)
    self.neutral_value = check_neutral_value(neutral_value)
    self.indel_anchor = indel_anchor
    self._extractor = VariantSeqExtractor(reference_sequence=fasta)
    self.forward_passes = 0  # Number of predict_on_batch calls (for benchmarks).
    self.incremental = (
        incremental_lib.for_predictor(predictor, [head])
        if incremental and not self.extra_tracks
        else None
    )

  def _jobs(self, sites: Sequence[VariantSite]) -> Iterator[Tuple[int, int, np.ndarray]]:
    """Yields (site index, allele index (0 = ref), input [L, 4 + E]) for every ensemble member."""
    for site_index, site in enumerate(sites):
      for shift in dict.fromkeys(m.shift for m in self.members):
        one_hots = [
            one_hot_encode(s, neutral_value=self.neutral_value)
            for s in site_sequences(
                self._extractor, site, self.sequence_length, shift, self.indel_anchor
            )
        ]
        extra = None  # [L, E]
        if self.extra_tracks:
          interval = variant_interval(site.fasta_chrom, site.pos, self.sequence_length, shift)
          extra = read_extra_tracks(self.extra_tracks, interval)
        for member in self.members:
          if member.shift != shift:
            continue
          for allele, one_hot in enumerate(one_hots):
            x = reverse_complement_one_hot(one_hot) if member.reverse_complement else one_hot
            if extra is not None:
              x = np.concatenate([x, extra[::-1] if member.reverse_complement else extra], -1)
            yield site_index, allele, x

  def _predict_bin_means(self, batch: np.ndarray) -> np.ndarray:
    """[B, L, 4 + E] → mean over output bins of the head's predictions: [B, N] float64."""
    outputs = self.predictor.predict_on_batch(batch)
    self.forward_passes += 1
    if self.head not in outputs:
      raise ValueError(
          f'Unknown head {self.head!r}; the model returned heads {sorted(outputs)}. '
          'Pass one of them as `head`.'
      )
    return np.asarray(outputs[self.head], np.float64).mean(axis=1)

  def bin_means(self, sites: Sequence[VariantSite], progress=None) -> Tuple[np.ndarray, np.ndarray]:
    """Ensemble-averaged bin means: ref [S, N] per site and alt [V, N] per variant (site order).

    Args:
      sites: sites from `enformer.io.vcf.read_variants`.
      progress: optional tqdm bar, advanced by the number of variants of each finished site.
    """
    if self.incremental is not None:
      return self._incremental_bin_means(sites, progress)
    offsets = np.cumsum([0] + [1 + len(site.variants) for site in sites])  # Row of each ref.
    sums: Optional[np.ndarray] = None
    pending: List[Tuple[int, np.ndarray]] = []
    rows_done = np.zeros(len(sites), np.int64)
    per_site = [(1 + len(site.variants)) * len(self.members) for site in sites]

    def flush():
      nonlocal sums
      means = self._predict_bin_means(np.stack([one_hot for _, one_hot in pending]))
      if sums is None:
        sums = np.zeros((offsets[-1], means.shape[1]), np.float64)
      for (row, _), mean in zip(pending, means):
        sums[row] += mean
      finished = 0
      for row, _ in pending:
        site_index = int(np.searchsorted(offsets, row, side='right') - 1)
        rows_done[site_index] += 1
        if rows_done[site_index] == per_site[site_index]:
          finished += len(sites[site_index].variants)
      if progress is not None and finished:
        progress.update(finished)
      pending.clear()

    for site_index, allele, one_hot in self._jobs(sites):
      pending.append((offsets[site_index] + allele, one_hot))
      if len(pending) == self.batch_size:
        flush()
    if pending:
      flush()
    if sums is None:
      return np.zeros((0, 0)), np.zeros((0, 0))
    means = sums / len(self.members)
    is_ref = np.zeros(offsets[-1], bool)
    is_ref[offsets[:-1]] = True
    return means[is_ref], means[~is_ref]

  def _incremental_bin_means(
      self, sites: Sequence[VariantSite], progress=None
  ) -> Tuple[np.ndarray, np.ndarray]:
    """`bin_means` with one reference per site and ensemble member, alternatives incremental."""
    jobs = self._jobs(sites)
    ref_means, alt_means = [], []
    for site in sites:
      ref_sum, alt_sum = 0.0, 0.0
      for _ in self.members:  # `_jobs` yields each member's ref and alts consecutively.
        one_hots = np.stack([next(jobs)[2] for _ in range(1 + len(site.variants))])
        ref, alts = self.incremental(one_hots[0], one_hots[1:], batch_size=self.batch_size)
        ref_sum = ref_sum + np.asarray(ref[self.head], np.float64).mean(axis=0)
        alt_sum = alt_sum + np.asarray(alts[self.head], np.float64).mean(axis=1)
      ref_means.append(ref_sum / len(self.members))
      alt_means.extend(alt_sum / len(self.members))
      if progress is not None:
        progress.update(len(site.variants))
    if not ref_means:
      return np.zeros((0, 0)), np.zeros((0, 0))
    return np.stack(ref_means), np.stack(alt_means)

  def site_predictions(
      self, site: VariantSite
  ) -> Iterator[Tuple[EnsembleMember, np.ndarray, np.ndarray]]:
    """(member, ref [T', N], alts [A, T', N]) of one site for each ensemble member, float64.

    Predictions are in genome orientation (a reverse-complement member's bins are flipped
    back), so bin i of every member covers the same bases relative to its (shifted) window.
    SNVs take the incremental path when the scorer has one, as in `bin_means`.
    """
    jobs = self._jobs([site])
    for member in self.members:  # `_jobs` yields each member's ref and alts consecutively.
      one_hots = np.stack([next(jobs)[2] for _ in range(1 + len(site.variants))])
      if self.incremental is not None:
        ref, alts = self.incremental(one_hots[0], one_hots[1:], batch_size=self.batch_size)
        ref, alts = ref[self.head], alts[self.head]
      else:
        outputs = []
        for start in range(0, len(one_hots), self.batch_size):
          predictions = self.predictor.predict_on_batch(one_hots[start : start + self.batch_size])
          self.forward_passes += 1
          if self.head not in predictions:
            raise ValueError(
                f'Unknown head {self.head!r}; the model returned heads '
                f'{sorted(predictions)}. Pass one of them as `head`.'
            )
          outputs.append(np.asarray(predictions[self.head]))
        stacked = np.concatenate(outputs)
        ref, alts = stacked[0], stacked[1:]
      ref, alts = np.asarray(ref, np.float64), np.asarray(alts, np.float64)
      if member.reverse_complement:
        ref, alts = ref[::-1], alts[:, ::-1]
      yield member, ref, alts

  def score_sites(
      self, sites: Sequence[VariantSite], progress=None
  ) -> Tuple[np.ndarray, np.ndarray]:
    """SAD and SAR [V, N] float32 for the variants of `sites` (ALTs in site order)."""
    ref_means, alt_means = self.bin_means(sites, progress=progress)
    ref_rows = np.repeat(np.arange(len(sites)), [len(site.variants) for site in sites])
    return scores_from_means(ref_means[ref_rows], alt_means)


def scores_from_means(
    ref_means: np.ndarray, alt_means: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
  """SAD = alt − ref and SAR = log2(1 + alt) − log2(1 + ref) from bin means [V, N] (float32)."""
  sad = alt_means - ref_means
  sar = np.log2(1 + alt_means) - np.log2(1 + ref_means)
  return sad.astype(np.float32), sar.astype(np.float32)


def flatten_sites(sites: Sequence[VariantSite]) -> Dict[str, list]:
  """Per-variant columns snp, chr, pos, ref, alt (VCF names) for the ALTs of `sites`."""
  columns = {'snp': [], 'chr': [], 'pos': [], 'ref': [], 'alt': []}
  for site in sites:
    for variant in site.variants:
      columns['snp'].append(variant.id)
      columns['chr'].append(variant.chrom)
      columns['pos'].append(variant.pos)
      columns['ref'].append(variant.ref)
      columns['alt'].append(variant.alt)
  return columns
