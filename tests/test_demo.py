"""`enformer demo --quick`: every promised file, the report's links, learning beats a baseline,
the genes, motifs and personal-genome predictions it makes."""

import os
import re

import anndata
import h5py
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from conftest import demo_results
from enformer import demo as demo_lib
from enformer.cli import main
from enformer.data.synthetic import DEFAULT_MOTIFS
from enformer.interpret import motifs
from test_motifs_learning import jaspar_family

pytestmark = pytest.mark.slow  # The demo, notebooks, Dask clusters or several processes.

STEPS = (
    'genome',
    'data',
    'train',
    'export',
    'evaluate',
    'predict',
    'attribute',
    'variants',
    'genes',
    'motifs',
    'haplotypes',
)


def test_every_promised_file_exists(quick_demo):
  out = quick_demo
  for organism in ('human', 'mouse'):
    genome = out / 'genome' / organism
    for name in ('genome.fa', 'genome.fa.fai', 'motif_sites.bed', 'targets.txt', 'track0.bw'):
      assert (genome / name).stat().st_size > 0, genome / name
    data = out / 'data' / organism
    for name in ('statistics.json', 'sequences.bed', 'targets.txt'):
      assert (data / name).exists(), data / name
    for subset in ('train', 'valid', 'test'):
      assert list((data / 'tfrecords').glob(f'{subset}-*.tfr')), (data, subset)
  assert (out / 'train' / 'config.json').exists()
  assert list((out / 'train' / 'checkpoints').glob('ckpt-*.index'))
  assert (out / 'train' / 'best' / 'checkpoint' / 'model.index').exists()
  assert (out / 'export' / 'enformer_model' / 'saved_model.pb').exists()
  for name in ('pearson_human.tsv', 'pearson_mouse.tsv', 'pearson.png'):
    assert (out / 'evaluate' / name).exists(), name
  assert (out / 'predict' / 'predictions.h5').exists()
  assert list((out / 'predict').glob('*.png')) and list((out / 'predict').glob('*.bw'))
  for name in ('attribution.npz', 'grad_scores.bw', 'tracks.png', 'logo.png'):
    assert (out / 'attribute' / name).exists(), name
  for name in ('motif_variants.vcf', 'sad.h5', 'sad.tsv', 'transform.npz', 'sad_hit_vs_miss.png'):
    assert (out / 'variants' / name).exists(), name
  for png in out.rglob('*.png'):
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0, png


def test_report_links_every_file_and_plot(quick_demo):
  out = quick_demo
  report = (out / demo_lib.REPORT_FILE).read_text()
  links = set(re.findall(r'href="([^"]+)"', report))
  images = set(re.findall(r'src="([^"]+)"', report))
  for link in links | images:
    assert (out / link).exists(), f'broken link {link}'
  files = [
      p.relative_to(out).as_posix()
      for p in out.rglob('*')
      if p.is_file() and p.name not in (demo_lib.STATE_FILE, demo_lib.REPORT_FILE)
  ]
  unlinked = [f for f in files if f not in links]
  assert not unlinked, f'files the report does not link: {unlinked[:10]}'
  for png in out.rglob('*.png'):
    assert png.relative_to(out).as_posix() in images, png
  for text in ('Pearson R', 'shuffled', 'SAD', 'Timings', 'enrichment'):
    assert text in report


def test_learned_model_beats_shuffled_label_baseline(quick_demo):
  for organism in ('human', 'mouse'):
    table = pd.read_csv(quick_demo / 'evaluate' / f'pearson_{organism}.tsv', sep='\t')
    learned, shuffled = table['pearson_r'].mean(), table['shuffled_pearson_r'].mean()
    assert learned > shuffled + 0.3, (organism, learned, shuffled)
    assert abs(shuffled) < 0.2, (organism, shuffled)
    # Tracks 0-1 respond to one GC-rich motif each (CTCF, SP1): learned within --quick's budget.
    single_motif = table[table['description'].str.contains(r'1×(?:CTCF|SP1)$')]
    assert len(single_motif) == 2, table['description'].tolist()
    assert (single_motif['pearson_r'] > 0.6).all(), single_motif


def test_motif_destroying_variants_score_higher(quick_demo):
  results = demo_results(quick_demo)['variants']
  vcf = pd.read_csv(
      quick_demo / 'variants' / 'motif_variants.vcf',
      sep='\t',
      comment='#',
      header=None,
      names=['chrom', 'pos', 'id', 'ref', 'alt', 'qual', 'filter', 'info'],
  )
  with h5py.File(quick_demo / 'variants' / 'sad.h5', 'r') as f:
    snp = [s.decode() for s in f['snp'][:]]
    sad = f['SAD'][:].astype(np.float64)
    assert f['SAR'].shape == sad.shape == (len(vcf), 4)
    assert f['pos'].dtype == np.uint32
  classes = dict(zip(vcf['id'], vcf['info'].str.extract(r'CLASS=(\w+)')[0]))
  strength = np.abs(sad).max(axis=1)
  hit = strength[[classes[s] == 'hit' for s in snp]]
  miss = strength[[classes[s] == 'miss' for s in snp]]
  assert len(hit) == len(miss) == demo_lib.QUICK.variants_per_class
  assert hit.mean() > miss.mean()
  assert results['hit_mean_abs_sad'] == pytest.approx(hit.mean(), rel=1e-3)


def test_rerun_reuses_every_step(quick_demo):
  lines = []
  path = demo_lib.run_demo(quick_demo, quick=True, log=lines.append)
  assert path == quick_demo / demo_lib.REPORT_FILE
  reused = [line for line in lines if 'done before' in line]
  assert len(reused) == len(STEPS), lines


def test_refuses_other_settings_and_foreign_folders(quick_demo, tmp_path, capsys):
  with pytest.raises(ValueError, match='other settings'):
    demo_lib.run_demo(quick_demo, quick=False)
  (tmp_path / 'notes.txt').write_text('mine')
  assert main(['demo', '--out', str(tmp_path), '--quick']) == 2
  assert 'not a demo folder' in capsys.readouterr().err
  assert (tmp_path / 'notes.txt').exists()


def test_motif_vcf_classes(quick_demo, tmp_path):
  genome = quick_demo / 'genome' / 'human'
  variants = demo_lib.write_motif_vcf(
      tmp_path / 'v.vcf',
      genome / 'genome.fa',
      genome / 'motif_sites.bed',
      'chr4',
      per_class=5,
      seed=1,
  )
  sites = pd.read_csv(
      genome / 'motif_sites.bed',
      sep='\t',
      header=None,
      names=['chrom', 'start', 'end', 'motif', 'score', 'strand'],
  )
  sites = sites[sites['chrom'] == 'chr4']
  for row in variants.itertuples():
    pos0 = row.pos - 1
    inside = ((sites['start'] <= pos0) & (pos0 < sites['end'])).any()
    distance = np.minimum(np.abs(sites['start'] - pos0), np.abs(sites['end'] - 1 - pos0)).min()
    assert inside if row[6] == 'hit' else (not inside and distance >= 256), row
    assert row.ref != row.alt


def test_same_seed_trains_the_same_model(quick_demo, tmp_path):
  """The demo's training is deterministic: two runs of its train step on the same data with the
  same seed give the same losses and validation (one run with another seed differs). Without it,
  two demos of one seed put 80% and 40% of the top gradient × input bases in planted motifs."""
  import dataclasses
  from enformer.demo import run as demo_run

  data = demo_results(quick_demo)['data']
  settings = dataclasses.replace(demo_run.QUICK, num_steps=8, eval_every=8, warmup_steps=2)

  def train(seed, folder):
    results, _ = demo_run._train_step(settings, seed, data, progress=False)(tmp_path / folder, True)
    return [loss for losses in results['final_losses'].values() for loss in losses] + [
        record['pearson_r'] for record in results['validation']
    ]

  first, again, other = train(0, 'a'), train(0, 'b'), train(1, 'c')
  np.testing.assert_allclose(again, first, rtol=1e-5)
  assert not np.allclose(other, first, rtol=1e-3)


def test_demo_genes_step(quick_demo):
  genes = demo_results(quick_demo)['genes']
  assert genes['pairs'] > 0 and genes['genes'] > 10
  assert genes['hit_top_quantile'] > 0.99  # A motif-destroying SNV at a TSS vs the background.
  assert genes['hit_median_max_abs_sed'] > 10 * genes['miss_median_max_abs_sed']
  assert genes['expression_pearson'][0] > 0.5  # The CTCF track at the genes' TSSs.
  with h5py.File(genes['sed_h5']) as h5:
    assert h5['SED'].shape == (genes['pairs'], 4)
  assert (
      len(pd.read_csv(quick_demo / 'genes' / 'expression' / 'expression.tsv', sep='\t'))
      == genes['genes'] * 4
  )
  assert '<h2>Genes</h2>' in (quick_demo / 'index.html').read_text()


def test_the_quick_demo_finds_the_motifs_its_model_learned(quick_demo):
  """--quick's model learns the CTCF and SP1 tracks (R ~0.95; AP1 and CREB stay below 0.4):
  its motifs step recovers those two, named within their JASPAR families, and shows them."""
  jaspar = motifs.jaspar_motifs()
  results = demo_results(quick_demo)['motifs']
  for factor in ('CTCF', 'SP1'):
    assert results['recovered'][factor], results['patterns']
    pattern = next(p for p in results['patterns'] if p['name'] == results['recovered'][factor][0])
    assert pattern['match_id'] in jaspar_family(DEFAULT_MOTIFS[factor], jaspar), pattern
  report = (quick_demo / 'index.html').read_text()
  assert '<h2>Motifs</h2>' in report and 'motifs/motifs/motifs.tsv' in report
  for pattern in results['patterns']:
    assert pattern['match_id'] in report
    assert f'src="{os.path.relpath(pattern["logo"], quick_demo)}"' in report


def test_demo_haplotypes_step(quick_demo):
  """predict-haplotypes on the demo's phased VCF: a sample homozygous for a motif-destroying SNV at
  a gene's TSS expresses the gene less on the motif's track than the reference sample, a
  heterozygous one lies halfway (whichever haplotype carries it), genes without a variant in
  their window do not change, and the files open with anndata and pandas."""
  results = demo_results(quick_demo)
  haplotypes = results['haplotypes']
  data = anndata.read_h5ad(haplotypes['h5ad'])
  assert (
      data.obs['sample'].unique().tolist()
      == [s for s, _ in haplotypes['samples']]
      == ['ref_hom', 'het_0_1', 'het_1_0', 'alt_hom']
  )
  assert data.n_obs == 4 * 3 and data.n_vars == len(haplotypes['genes']) * 4

  def value(sample, haplotype, gene, track):
    row = np.flatnonzero((data.obs['sample'] == sample) & (data.obs['haplotype'] == haplotype))
    column = np.flatnonzero((data.var['gene_id'] == gene) & (data.var['track'] == track))
    return float(np.asarray(data.X)[row[0], column[0]])

  # Tracks that respond to one motif alone (track0 ← CTCF, track1 ← SP1: learned by --quick).
  single = {
      next(iter(w)): t
      for t, w in results['genome']['human']['track_weights'].items()
      if len(w) == 1
  }
  drops = []
  for gene in haplotypes['genes']:
    tracks = [single[gene['motif']]] if gene['motif'] in single else []
    for track in (tracks if gene['motif'] else data.uns['tracks']):
      ref, alt = value('ref_hom', 'mean', gene['gene_id'], track), value(
          'alt_hom', 'mean', gene['gene_id'], track
      )
      het = value('het_0_1', 'mean', gene['gene_id'], track)
      carrier = value('het_0_1', '2', gene['gene_id'], track)
      assert carrier == pytest.approx(value('alt_hom', '1', gene['gene_id'], track), rel=1e-6)
      assert carrier == pytest.approx(value('het_1_0', '1', gene['gene_id'], track), rel=1e-6)
      assert value('het_0_1', '1', gene['gene_id'], track) == pytest.approx(ref, rel=1e-6)
      assert het == pytest.approx((ref + alt) / 2, rel=1e-5)
      if gene['motif']:
        assert alt < 0.95 * ref and alt < het < ref, (gene, track, ref, het, alt)
        drops.append(alt / ref)
      else:  # A control gene: no variant in its window.
        assert alt == pytest.approx(ref, rel=1e-6), (gene, track)
  assert len(drops) >= 2 and min(drops) < 0.5, (drops, haplotypes['genes'])
  assert any(not gene['motif'] for gene in haplotypes['genes'])
  table = pd.read_csv(haplotypes['tsv'], sep='\t')
  assert len(table) == data.n_obs * data.n_vars
  assert haplotypes['distinct'] < haplotypes['haplotypes']  # Identical haplotypes predicted once.
  report = (quick_demo / 'index.html').read_text()
  assert '<h2>Personal genomes</h2>' in report
  assert f'src="{os.path.relpath(haplotypes["heatmap"], quick_demo)}"' in report
