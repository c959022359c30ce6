"""Variant scoring: sequences, SAD/SAR, batching and ensembles, sad.h5 files, resuming,
transforms."""

import pathlib
import warnings

import numpy as np
import pytest

from conftest import shared_path
from enformer.io import sad as sad_io
from enformer import testing
from enformer.testing import MICRO
from enformer.io import vcf as vcf_io
from enformer.io.fasta import FastaStringExtractor
from enformer.sequence import one_hot_encode
from enformer.variants import (
    ScoreTransform,
    ScoringSettings,
    VariantScorer,
    chunk_sites,
    score_vcf,
    site_sequences,
)
from enformer.variants.scoring import VariantSeqExtractor
from test_vcf import write_vcf

LENGTH = 1024  # Input length of the stand-in predictor: 8 bins of 128 bp.
CHROM_LENGTH = 5000


class CountingPredictor:
  """Deterministic stand-in with `predict_on_batch`: per 128 bp bin, track 0 = G+C count,
  track 1 = A count, track 2 = A count weighted by position in the bin (strand-asymmetric).

  Records every batch, so tests can see what was predicted together.
  """

  sequence_length = LENGTH
  heads = {'human': 3}

  def __init__(self, fail_after: int = -1):
    self.batches = []
    self.fail_after = fail_after

  def predict_on_batch(self, x):
    if len(self.batches) == self.fail_after:
      raise RuntimeError('simulated crash')
    x = np.asarray(x)
    self.batches.append(x)
    bins = x.reshape(x.shape[0], -1, 128, 4)
    gc = bins[..., 1:3].sum(axis=(2, 3))
    a = bins[..., 0].sum(axis=2)
    weighted = (bins[..., 0] * np.arange(128) / 128).sum(axis=2)
    return {'human': np.stack([gc, a, weighted], axis=-1).astype(np.float32)}


@pytest.fixture(scope='module')
def genome_sequence() -> str:
  rng = np.random.default_rng(1)
  return ''.join(np.array(list('ACGT'))[rng.integers(0, 4, CHROM_LENGTH)])


@pytest.fixture(scope='module')
def fasta(tmp_path_factory, genome_sequence) -> FastaStringExtractor:
  path = tmp_path_factory.mktemp('genome') / 'toy.fa'
  lines = [genome_sequence[i : i + 60] for i in range(0, CHROM_LENGTH, 60)]
  path.write_text('>chr1\n' + '\n'.join(lines) + '\n>chr2\n' + 'ACGT' * 500 + '\n')
  return FastaStringExtractor(path)


def site(chrom, pos, ref, *alts, fasta_chrom=None, id='v'):
  import kipoiseq

  return vcf_io.VariantSite(
      tuple(kipoiseq.Variant(chrom, pos, ref, a, id=id) for a in alts), fasta_chrom or chrom
  )


def ref_at(sequence: str, pos: int, length: int = 1) -> str:
  return sequence[pos - 1 : pos - 1 + length]


# --------------------------------------------------------------------------- sequences


def test_snv_sequences_centred(fasta, genome_sequence):
  pos = 2500
  ref = ref_at(genome_sequence, pos)
  alt = 'A' if ref != 'A' else 'C'
  extractor = VariantSeqExtractor(reference_sequence=fasta)
  ref_seq, alt_seq = site_sequences(extractor, site('chr1', pos, ref, alt), LENGTH)
  assert ref_seq == genome_sequence[pos - LENGTH // 2 : pos + LENGTH // 2]
  differences = [i for i in range(LENGTH) if ref_seq[i] != alt_seq[i]]
  assert differences == [LENGTH // 2 - 1] and alt_seq[LENGTH // 2 - 1] == alt
  # Shifted window: the variant moves by the shift.
  ref_s, alt_s = site_sequences(extractor, site('chr1', pos, ref, alt), LENGTH, shift=1)
  assert ref_s == genome_sequence[pos - LENGTH // 2 + 1 : pos + LENGTH // 2 + 1]
  assert [i for i in range(LENGTH) if ref_s[i] != alt_s[i]] == [LENGTH // 2 - 2]


def test_indel_sequences_anchored_at_variant(fasta, genome_sequence):
  pos, half = 2500, LENGTH // 2
  extractor = VariantSeqExtractor(reference_sequence=fasta)
  ref = ref_at(genome_sequence, pos)
  ref_seq, ins_seq = site_sequences(
      extractor, site('chr1', pos, ref, ref + 'GG'), LENGTH, indel_anchor='variant'
  )
  assert len(ins_seq) == LENGTH
  assert ins_seq[half:] == ref_seq[half:]  # Right flank untouched.
  assert ins_seq[half - 3 : half] == ref + 'GG'  # Inserted bases end at the anchor.
  assert ins_seq[: half - 3] == ref_seq[2 : half - 1]  # Left flank pushed out by 2 bp.
  deleted = ref_at(genome_sequence, pos, 3)
  ref_seq, del_seq = site_sequences(
      extractor, site('chr1', pos, deleted, deleted[0]), LENGTH, indel_anchor='variant'
  )
  assert del_seq[:half] == ref_seq[:half]
  assert del_seq[half:] == genome_sequence[pos + 2 : pos + 2 + half]  # 2 bp later on the right.


def test_n_padding_at_chromosome_ends(fasta, genome_sequence):
  extractor = VariantSeqExtractor(reference_sequence=fasta)
  for pos, padded in (
      (100, slice(0, LENGTH // 2 - 100)),
      (CHROM_LENGTH - 50, slice(LENGTH // 2 + 50, LENGTH)),
  ):
    ref = ref_at(genome_sequence, pos)
    sequences = site_sequences(
        extractor, site('chr1', pos, ref, 'A' if ref != 'A' else 'C'), LENGTH
    )
    for sequence in sequences:
      assert len(sequence) == LENGTH and set(sequence[padded]) == {'N'}
      assert not one_hot_encode(sequence)[padded].any()
    assert sequences[0].count('N') == padded.stop - padded.start


# --------------------------------------------------------------------------- scores


def snv_site(genome_sequence, pos, alts, chrom='chr1'):
  return site(chrom, pos, ref_at(genome_sequence, pos), *alts)


def test_sad_sar_definitions(fasta, genome_sequence):
  pos = next(p for p in range(2500, 2600) if ref_at(genome_sequence, p) == 'G')
  scorer = VariantScorer(CountingPredictor(), fasta, batch_size=2)
  sad, sar = scorer.score_sites([snv_site(genome_sequence, pos, ['A'])])
  bins = LENGTH // 128
  # G→A: one G/C fewer and one A more, in the bin holding the variant.
  np.testing.assert_allclose(sad[0, :2], [-1 / bins, 1 / bins], rtol=1e-6)
  ref_means, alt_means = scorer.bin_means([snv_site(genome_sequence, pos, ['A'])])
  np.testing.assert_allclose(sar, np.log2(1 + alt_means) - np.log2(1 + ref_means), rtol=1e-6)
  np.testing.assert_allclose(sad, alt_means - ref_means, rtol=1e-6, atol=1e-7)
  assert scorer.forward_passes == 2  # Ref and alt in one batch of 2, each call.


def test_multiallelic_sites_share_reference_and_batch_together(fasta, genome_sequence):
  sites = [
      snv_site(genome_sequence, 2000, ['A', 'C', 'G', 'T']),
      snv_site(genome_sequence, 3000, ['A']),
  ]
  predictor = CountingPredictor()
  scorer = VariantScorer(predictor, fasta, batch_size=7)
  sad, _ = scorer.score_sites(sites)
  assert sad.shape == (5, 3)
  assert scorer.forward_passes == 1 and predictor.batches[0].shape == (7, LENGTH, 4)
  # Batch = [ref, 4 alts of site 0, ref, alt of site 1]: one reference per site.
  differing = (predictor.batches[0][1:5] != predictor.batches[0][0]).any(-1).sum(-1)
  ref_base = ref_at(genome_sequence, 2000)
  assert differing.tolist() == [0 if alt == ref_base else 1 for alt in 'ACGT']
  assert np.all(sad[[i for i, alt in enumerate('ACGT') if alt == ref_base]] == 0)
  # Ensemble: 3 shifts × 2 strands × (2 refs + 5 alts) sequences, no duplicated references.
  ensemble = VariantScorer(
      CountingPredictor(), fasta, batch_size=7, reverse_complement=True, shifts=(-1, 0, 1)
  )
  ensemble.score_sites(sites)
  assert ensemble.forward_passes == 6 and len(ensemble.members) == 6


def test_reverse_complement_and_shift_ensemble_average(fasta, genome_sequence):
  pos = next(p for p in range(2500, 2600) if ref_at(genome_sequence, p) == 'G')
  sites = [snv_site(genome_sequence, pos, ['A'])]
  bins = LENGTH // 128
  sad, _ = VariantScorer(CountingPredictor(), fasta, reverse_complement=True).score_sites(sites)
  # The A count of the reverse complement counts T's of the forward strand: unchanged by G→A.
  np.testing.assert_allclose(sad[0, :2], [-1 / bins, 0.5 / bins], rtol=1e-6)
  singles = [
      VariantScorer(CountingPredictor(), fasta, shifts=(s,)).bin_means(sites) for s in (-1, 0, 1)
  ]
  ref_means, alt_means = VariantScorer(CountingPredictor(), fasta, shifts=(-1, 0, 1)).bin_means(
      sites
  )
  np.testing.assert_allclose(ref_means, np.mean([s[0] for s in singles], axis=0), rtol=1e-12)
  np.testing.assert_allclose(alt_means, np.mean([s[1] for s in singles], axis=0), rtol=1e-12)
  assert not np.allclose(singles[0][0], singles[2][0])  # Shifts do see different windows.


def test_scorer_errors(fasta):
  class NoLength:
    heads = {'human': 3}
    predict_on_batch = CountingPredictor.predict_on_batch

  with pytest.raises(ValueError, match='sequence_length'):
    VariantScorer(NoLength(), fasta)
  with pytest.raises(ValueError, match="Unknown head 'mouse'.*`head`"):
    VariantScorer(CountingPredictor(), fasta, head='mouse')
  with pytest.raises(ValueError, match='at least one shift'):
    VariantScorer(CountingPredictor(), fasta, shifts=())


@pytest.fixture(scope='module')
def tiny_predictor():
  import enformer
  from enformer.inference import Predictor

  model = enformer.Enformer(**dict(MICRO, heads={'human': 8}))
  return Predictor.from_module(model, LENGTH)


def test_batched_enformer_matches_colab_two_calls(tiny_predictor, fasta, genome_sequence):
  """Refs and alts batched together (shared references) equal the colab's two calls per variant."""
  sites = [
      snv_site(genome_sequence, 1500, ['A', 'T']),
      site('chr1', 2200, ref_at(genome_sequence, 2200, 3), ref_at(genome_sequence, 2200)),
  ]
  scorer = VariantScorer(tiny_predictor, fasta, batch_size=3, incremental=False)
  ref_means, alt_means = scorer.bin_means(sites)
  extractor = VariantSeqExtractor(reference_sequence=fasta)
  row = 0
  for index, s in enumerate(sites):
    sequences = site_sequences(extractor, s, LENGTH)
    for k in range(len(s.variants)):
      ref = tiny_predictor.predict_on_batch(one_hot_encode(sequences[0])[None])['human']
      alt = tiny_predictor.predict_on_batch(one_hot_encode(sequences[k + 1])[None])['human']
      np.testing.assert_allclose(ref_means[index], ref.mean(axis=1)[0], rtol=1e-4)
      np.testing.assert_allclose(alt_means[row], alt.mean(axis=1)[0], rtol=1e-4)
      row += 1
  assert scorer.forward_passes == 2  # 5 sequences (2 refs, 3 alts) in batches of 3.


@pytest.mark.slow
@pytest.mark.parametrize('shifts,rc', [((0,), False), ((-1, 0, 1), True)])
def test_incremental_scores_equal_full_passes(fasta, genome_sequence, shifts, rc):
  """The default incremental path (SNVs, a multi-allelic site, an MNV; a deletion falls back to
  full passes) gives the full path's bin means, with shifts and reverse complement."""
  other_bases = [b for b in 'ACGT' if b != ref_at(genome_sequence, 1500)][:2]
  sites = [
      snv_site(genome_sequence, 1500, other_bases),
      site(
          'chr1',
          1800,
          ref_at(genome_sequence, 1800, 2),
          ''.join('A' if b != 'A' else 'C' for b in ref_at(genome_sequence, 1800, 2)),
      ),
      site('chr1', 2200, ref_at(genome_sequence, 2200, 3), ref_at(genome_sequence, 2200)),
  ]
  import enformer
  from enformer.inference import Predictor

  model = enformer.Enformer(**dict(MICRO, heads={'human': 8}))
  predictor = Predictor.from_module(model, 4096)  # 32 bins: room for the recomputed window.
  full = VariantScorer(predictor, fasta, incremental=False, shifts=shifts, reverse_complement=rc)
  fast_scorer = VariantScorer(predictor, fasta, shifts=shifts, reverse_complement=rc)
  assert fast_scorer.incremental is not None
  expected_sad, _ = full.score_sites(sites)
  sad, _ = fast_scorer.score_sites(sites)
  substitutions = len(sites[0].variants) + len(sites[1].variants)
  assert fast_scorer.incremental.incremental_passes == substitutions * len(fast_scorer.members)
  assert fast_scorer.incremental.full_passes == len(fast_scorer.members)  # The deletion.
  np.testing.assert_allclose(sad, expected_sad, atol=1e-3 * np.abs(expected_sad).max())


# --------------------------------------------------------------------------- files


@pytest.fixture()
def toy_vcf(tmp_path, genome_sequence):
  rows = []
  for i, pos in enumerate(range(600, 4400, 400)):
    ref = ref_at(genome_sequence, pos)
    alts = ','.join([b for b in 'ACGT' if b != ref][: 3 if i % 3 == 0 else 1])
    rows.append(f'chr1\t{pos}\trs{i}\t{ref}\t{alts}\t.\t.\t.')
  rows.append('chr1\t700\tsv\tA\t<DEL>\t.\t.\t.')
  rows.append('chr2\t1001\tlast\tA\tAT\t.\t.\t.')
  return write_vcf(tmp_path / 'toy.vcf', rows)


def test_score_vcf_writes_sad_h5_layout(tmp_path, fasta, toy_vcf):
  out = tmp_path / 'scores.h5'
  targets = tmp_path / 'targets.txt'
  targets.write_text(
      'index\tgenome\tidentifier\tfile\tclip\tscale\tsum_stat\tdescription\n'
      '0\t0\tGC\tx\t32\t2\tmean\tG+C count\n1\t0\tA\tx\t32\t2\tmean\tA count\n'
      '2\t0\tAw\tx\t32\t2\tmean\tCAGE:weighted A\n'
  )
  result = score_vcf(
      CountingPredictor(),
      fasta,
      toy_vcf,
      out,
      settings=ScoringSettings(targets=targets, chunk_size=4),
      tsv=True,
      plot=True,
      progress=False,
  )
  import matplotlib.image

  image = matplotlib.image.imread(result.paths['png'][0])
  assert image.ndim == 3 and image.shape[0] > 200 and image[..., :3].std() > 0.05
  assert result.summary.kept == 19 and result.summary.skipped_symbolic == 1
  assert testing.compare_layout(out, shared_path('data', 'basenji_sad', 'sad.h5')) == []
  import h5py

  with h5py.File(out, 'r') as h5:
    assert h5['pos'].dtype == np.uint32 and h5['SAD'].dtype == np.float16
    assert h5['SAR'].dtype == np.float16 and h5['SAD'].shape == h5['SAR'].shape == (19, 3)
    for name in ('snp', 'chr', 'ref', 'alt', 'target_ids', 'target_labels'):
      assert h5[name].dtype.kind == 'S', name
    assert 'alt prediction' in h5['SAD'].attrs['definition']
    assert 'log2(1 +' in h5['SAR'].attrs['definition']
    assert '19 scored' in h5.attrs['vcf_summary']
  scores = sad_io.read_sad_h5(out)
  assert scores.target_ids.tolist() == ['GC', 'A', 'Aw']
  assert scores.target_labels[2] == 'CAGE:weighted A'
  assert scores.snp[:3].tolist() == ['rs0'] * 3 and scores.alt[-1] == 'AT'
  assert scores.pos[-1] == 1001 and scores.chr[-1] == 'chr2'
  sites = vcf_io.read_variants(toy_vcf, fasta)
  sad, sar = VariantScorer(CountingPredictor(), fasta).score_sites(sites)
  np.testing.assert_array_equal(scores.sad, sad.astype(np.float16))
  np.testing.assert_array_equal(scores.sar, sar.astype(np.float16))
  import pandas as pd

  table = pd.read_csv(result.paths['tsv'][0], sep='\t')
  assert len(table) == 19 * 3 and list(table.columns[:5]) == ['snp', 'chr', 'pos', 'ref', 'alt']
  np.testing.assert_allclose(table['SAD'].to_numpy().reshape(19, 3), sad, rtol=1e-5, atol=1e-7)
  with pytest.raises(FileExistsError, match='`overwrite`'):
    score_vcf(CountingPredictor(), fasta, toy_vcf, out, progress=False)
  wide = CountingPredictor()
  wide.heads = {'human': 8}
  with pytest.raises(ValueError, match='targets table has 3 rows but the head predicts 8'):
    score_vcf(
        wide,
        fasta,
        toy_vcf,
        tmp_path / 'wide.h5',
        settings=ScoringSettings(targets=targets),
        progress=False,
    )
  assert not wide.batches  # Checked before any prediction.
  other = ScoreTransform.fit(sad.astype(np.float64), 2, target_ids=['x', 'y', 'z'])
  with pytest.raises(ValueError, match='fitted on other tracks'):
    score_vcf(
        CountingPredictor(),
        fasta,
        toy_vcf,
        tmp_path / 'other.h5',
        settings=ScoringSettings(targets=targets),
        transform=other,
        progress=False,
    )


def test_resume_after_crash_equals_uninterrupted_run(tmp_path, fasta, toy_vcf):
  full = CountingPredictor()
  reference = score_vcf(
      full,
      fasta,
      toy_vcf,
      tmp_path / 'full.h5',
      settings=ScoringSettings(chunk_size=4, batch_size=3),
      progress=False,
  )
  out = tmp_path / 'resumed.h5'
  with pytest.raises(RuntimeError, match='simulated crash'):
    score_vcf(
        CountingPredictor(fail_after=5),
        fasta,
        toy_vcf,
        out,
        settings=ScoringSettings(chunk_size=4, batch_size=3),
        progress=False,
    )
  assert not out.exists()
  saved = sorted(p.name for p in pathlib.Path(str(out) + '.partial').glob('chunk_*.npz'))
  assert saved == ['chunk_000000.npz', 'chunk_000001.npz']
  with pytest.raises(FileExistsError, match='unfinished run with different'):
    score_vcf(
        CountingPredictor(),
        fasta,
        toy_vcf,
        out,
        settings=ScoringSettings(chunk_size=4, shifts=(0, 1)),
        progress=False,
    )
  predictor = CountingPredictor()
  resumed = score_vcf(
      predictor,
      fasta,
      toy_vcf,
      out,
      settings=ScoringSettings(chunk_size=4, batch_size=3),
      progress=False,
  )
  assert resumed.chunks_resumed == 2 and resumed.chunks_total == len(
      chunk_sites(vcf_io.read_variants(toy_vcf, fasta), 4)
  )
  # Only the missing chunks are predicted again.
  assert 0 < sum(map(len, predictor.batches)) < sum(map(len, full.batches))
  assert not pathlib.Path(str(out) + '.partial').exists()
  for name in ('SAD', 'SAR'):
    np.testing.assert_array_equal(resumed.scores.scores[name], reference.scores.scores[name])
  import h5py

  with h5py.File(out, 'r') as a, h5py.File(tmp_path / 'full.h5', 'r') as b:
    for name in ('snp', 'chr', 'pos', 'ref', 'alt', 'target_ids', 'SAD', 'SAR'):
      np.testing.assert_array_equal(a[name][:], b[name][:])


# --------------------------------------------------------------------------- normalisation


@pytest.fixture(scope='module')
def reference_scores() -> np.ndarray:
  rng = np.random.default_rng(0)
  latent = rng.normal(size=(300, 4))
  return (latent @ rng.normal(size=(4, 12)) + 0.1 * rng.normal(size=(300, 12))) * rng.uniform(
      0.5, 3, 12
  ) + rng.normal(size=12)


def test_transform_matches_sklearn_and_round_trips(tmp_path, reference_scores):
  from sklearn.decomposition import PCA
  from sklearn.pipeline import Pipeline
  from sklearn.preprocessing import StandardScaler

  pipeline = Pipeline([('scaler', StandardScaler()), ('pca', PCA(n_components=5))])
  pipeline.fit(reference_scores)
  transform = ScoreTransform.fit(reference_scores, num_components=5)
  new = reference_scores[:7] * 1.1
  np.testing.assert_allclose(
      transform.zscore(new), pipeline.steps[0][1].transform(new), rtol=1e-5, atol=1e-5
  )
  expected = pipeline.transform(new)
  ours = transform.pcs(new, 3)
  assert ours.shape == (7, 3)
  np.testing.assert_allclose(np.abs(ours), np.abs(expected[:, :3]), rtol=1e-4, atol=1e-4)
  path = tmp_path / 't.npz'
  transform.save(path)
  loaded = ScoreTransform.load(path)
  np.testing.assert_allclose(loaded.pcs(new), transform.pcs(new), rtol=1e-6)
  with pytest.raises(ValueError, match='Asked for 9 PCs but the transform has 5'):
    transform.pcs(new, 9)
  with pytest.raises(ValueError, match='fitted on 12 tracks'):
    transform.zscore(new[:, :4])

  import joblib

  pickled = tmp_path / 'deepmind_style.pkl'
  joblib.dump(pipeline, pickled)
  with pytest.raises(ValueError, match='`allow_pickle`'):
    ScoreTransform.load(pickled)
  with pytest.warns(UserWarning, match='arbitrary code'):
    converted = ScoreTransform.load(pickled, allow_pickle=True)
  np.testing.assert_allclose(converted.pcs(new), expected, rtol=1e-4, atol=1e-5)  # Same signs.
  whitened = Pipeline([('s', StandardScaler()), ('p', PCA(3, whiten=True))]).fit(reference_scores)
  joblib.dump(whitened, pickled)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    np.testing.assert_allclose(
        ScoreTransform.load(pickled, allow_pickle=True).pcs(new),
        whitened.transform(new),
        rtol=1e-4,
        atol=1e-5,
    )


def test_pc_tables_are_tabix_indexed(tmp_path):
  import pysam

  chrom = ['chr2', 'chr1', 'chr2', 'chr1']
  pos = [500, 300, 100, 200]
  pcs = np.arange(8, dtype=np.float32).reshape(4, 2)
  paths = sad_io.write_pc_tables(
      tmp_path / 'scores.PCs', chrom, pos, ['a', 'b', 'c', 'd'], ['A'] * 4, ['G'] * 4, pcs
  )
  assert [pathlib.Path(p).name for p in paths] == [
      'scores.PCs.chr2.tsv.gz',
      'scores.PCs.chr1.tsv.gz',
  ]
  table = pysam.TabixFile(paths[0])
  assert table.header[0] == '#CHROM\tPOS\tID\tREF\tALT\tPC0\tPC1'
  rows = [r.split('\t') for r in table.fetch('chr2', 0, 1000)]
  assert [r[1] for r in rows] == ['100', '500'] and rows[0][2:] == ['c', 'A', 'G', '4', '5']
  assert [r.split('\t')[2] for r in table.fetch('chr2', 400, 600)] == ['a']


def test_score_vcf_with_transform_writes_zscores_and_pcs(tmp_path, fasta, toy_vcf):
  raw = score_vcf(CountingPredictor(), fasta, toy_vcf, tmp_path / 'ref.h5', progress=False)
  transform = ScoreTransform.fit(raw.scores.sad.astype(np.float64), num_components=2)
  result = score_vcf(
      CountingPredictor(),
      fasta,
      toy_vcf,
      tmp_path / 'norm.h5',
      transform=transform,
      num_pcs=2,
      progress=False,
  )
  scores = sad_io.read_sad_h5(tmp_path / 'norm.h5')
  assert scores.scores['SAD_z'].shape == (19, 3) and scores.scores['PC'].shape == (19, 2)
  np.testing.assert_allclose(
      scores.scores['SAD_z'].astype(np.float32),
      transform.zscore(raw.scores.sad),
      rtol=1e-2,
      atol=1e-2,
  )
  assert [pathlib.Path(p).name for p in result.paths['pcs']] == [
      'norm.PCs.chr1.tsv.gz',
      'norm.PCs.chr2.tsv.gz',
  ]
  with pytest.raises(ValueError, match='`num_pcs` needs a fitted `transform`'):
    score_vcf(CountingPredictor(), fasta, toy_vcf, tmp_path / 'x.h5', num_pcs=2, progress=False)


def test_scoring_messages_name_arguments_and_the_cli_shows_its_flags(tmp_path, fasta, toy_vcf):
  """The pipeline's messages name `overwrite`, `out`, `shard`, `chunk_size`; score-variants shows
  its flags for them (--overwrite, --out, --shard, --chunk-size)."""
  from enformer.cli import build_parser
  from enformer.cli._errors import describe
  from enformer.variants.pipeline import claim_output, shard_chunks

  out = tmp_path / 'scores.h5'
  out.write_bytes(b'finished')
  args = build_parser().parse_args(
      ['score-variants', '--model', 'm', '--fasta', 'f', '--vcf', 'v', '--out', str(out)]
  )
  with pytest.raises(FileExistsError) as finished:
    with claim_output(str(out), overwrite=False):
      pass
  assert 'Pass `overwrite` to replace it, or choose another `out`' in str(finished.value)
  assert (
      'Pass --overwrite to replace it, or choose another --out' in describe(finished.value, args)[0]
  )
  with pytest.raises(ValueError) as bad:
    shard_chunks(3, (4, 3))
  assert describe(bad.value, args)[0].startswith('--shard K/N needs 1 ≤ K ≤ N, got 4/3')
  with pytest.raises(ValueError) as empty:
    score_vcf(
        CountingPredictor(),
        fasta,
        toy_vcf,
        tmp_path / 'x.h5',
        settings=ScoringSettings(chunk_size=50),
        shard=(2, 2),
        progress=False,
    )
  assert '1 chunks of `chunk_size` 50' in str(empty.value)
  assert (
      'chunks of --chunk-size 50; use fewer shards or a smaller --chunk-size'
      in describe(empty.value, args)[0]
  )


def test_scoring_settings_are_normalised_hashable_and_give_the_workers_absolute_paths():
  settings = ScoringSettings(shifts=[-1, '0'], extra_tracks=None, neutral_value=0)
  assert settings.shifts == (-1, 0) and settings.extra_tracks == ()
  assert isinstance(settings.neutral_value, float)
  assert hash(settings) == hash(ScoringSettings(shifts=(-1, 0)))  # Worker cache keys.
  chunk = settings.chunk_settings('genome.fa')
  assert pathlib.Path(chunk.fasta).is_absolute() and chunk.shifts == (-1, 0)
