"""The demo's personal-genomes step: `enformer predict-haplotypes --gtf` on a small phased VCF.

Four samples carry the motif-destroying SNVs of the variants step ("hit" variants: the central
base of a planted motif changed) with known genotypes at every site:

  ref_hom  0|0   neither haplotype carries them
  het_0_1  0|1   haplotype 2 carries them
  het_1_0  1|0   haplotype 1 carries them (the same genotype, phased the other way)
  alt_hom  1|1   both haplotypes carry them

Genes: up to `TSS_GENES` genes of the genes step whose first TSS is a hit variant's site (one
per motif in turn), and `CONTROL_GENES` genes whose window holds no variant (all samples alike).
`enformer.genes.haplotypes.predict_haplotypes` predicts each sample's two haplotypes and their
diploid mean at these genes; the report shows a samples × genes heat map of one track (the track
whose expression the variants change most).

  phased.vcf.gz (+ .tbi)   the samples' genotypes (bgzipped, tabix-indexed)
  haplotypes.h5ad          AnnData: obs = sample × haplotype ('1', '2', 'mean'), var = gene × track
  haplotypes.tsv           sample, haplotype, gene_id, track, expression
  haplotypes_heatmap.png   diploid mean per sample × gene for one track
"""

import pathlib
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import pysam

from enformer.genes.annotation import read_genes
from enformer.genes.haplotypes import HaplotypeSettings, predict_haplotypes, track_matrix
from enformer.inference import load_model
from enformer.plots.haplotypes import plot_haplotype_heatmap

SAMPLES = {'ref_hom': '0|0', 'het_0_1': '0|1', 'het_1_0': '1|0', 'alt_hom': '1|1'}
TSS_GENES = 4
CONTROL_GENES = 2
VCF_NAME = 'phased.vcf'
HEATMAP_FILE = 'haplotypes_heatmap.png'


def read_hit_variants(vcf: str) -> pd.DataFrame:
  """The motif-destroying SNVs (INFO CLASS=hit) of the variants step's VCF: chrom, pos (1-based),
  id, ref, alt, motif."""
  table = pd.read_csv(
      vcf,
      sep='\t',
      comment='#',
      header=None,
      names=['chrom', 'pos', 'id', 'ref', 'alt', 'qual', 'filter', 'info'],
  )
  table = table[table['info'].str.contains(r'(?:^|;)CLASS=hit(?:;|$)')].copy()
  table['motif'] = table['info'].str.extract(r'MOTIF=([^;]+)')[0]
  return table[['chrom', 'pos', 'id', 'ref', 'alt', 'motif']].reset_index(drop=True)


def choose_genes(
    genes: pd.DataFrame,
    hits: pd.DataFrame,
    sequence_length: int,
    tss_genes: int = TSS_GENES,
    control_genes: int = CONTROL_GENES,
) -> List[Tuple[str, str]]:
  """[(gene_id, motif or '')]: genes whose first TSS is a hit site (one per motif in turn, in
  chromosome order), then genes whose `sequence_length` window holds no hit variant."""
  by_site = {(c, int(p) - 1): m for c, p, m in zip(hits['chrom'], hits['pos'], hits['motif'])}
  per_motif: Dict[str, List[str]] = {}
  controls = []
  for gene in genes.itertuples():
    motif = by_site.get((gene.chrom, int(gene.first_tss)))
    if motif:  # The SNV sits at the window's centre: the gene's first TSS.
      per_motif.setdefault(motif, []).append(str(gene.gene_id))
      continue
    low, high = gene.first_tss - sequence_length // 2, gene.first_tss + sequence_length // 2
    inside = (
        (hits['chrom'] == gene.chrom) & (hits['pos'] - 1 >= low) & (hits['pos'] - 1 < high)
    ).any()
    if not inside and len(controls) < control_genes:
      controls.append((str(gene.gene_id), ''))
  chosen = []
  while len(chosen) < tss_genes and any(per_motif.values()):
    for motif in sorted(per_motif):
      if per_motif[motif] and len(chosen) < tss_genes:
        chosen.append((per_motif[motif].pop(0), motif))
  return chosen + controls


def write_phased_vcf(
    path: pathlib.Path,
    hits: pd.DataFrame,
    lengths: Dict[str, int],
    samples: Optional[Dict[str, str]] = None,
) -> str:
  """Writes every hit variant with each sample's genotype (`SAMPLES`), bgzipped and
  tabix-indexed; returns the .vcf.gz path."""
  samples = samples or SAMPLES
  lines = [
      '##fileformat=VCFv4.2',
      '##FORMAT=<ID=GT,Number=1,Type=String,Description="Phased genotype">',
      '##INFO=<ID=MOTIF,Number=1,Type=String,Description="Planted motif the SNV destroys">',
  ]
  lines += [f'##contig=<ID={chrom},length={length}>' for chrom, length in lengths.items()]
  lines.append(
      '\t'.join(['#CHROM', 'POS', 'ID', 'REF', 'ALT', 'QUAL', 'FILTER', 'INFO', 'FORMAT', *samples])
  )
  for v in hits.sort_values(['chrom', 'pos']).itertuples():
    lines.append(
        '\t'.join(
            [
                v.chrom,
                str(v.pos),
                v.id,
                v.ref,
                v.alt,
                '.',
                'PASS',
                f'MOTIF={v.motif}',
                'GT',
                *samples.values(),
            ]
        )
    )
  path.write_text('\n'.join(lines) + '\n')
  return pysam.tabix_index(str(path), preset='vcf', force=True)


def haplotypes_step(
    genomes: Dict[str, Any], variants: Dict[str, Any], genes: Dict[str, Any], model_path: str
):
  """The step function `(step_dir, fresh) -> (results, outputs)` of `run_demo`."""

  def step(step_dir: pathlib.Path, fresh: bool) -> Tuple[Dict[str, Any], List[pathlib.Path]]:
    human = genomes['human']
    hits = read_hit_variants(variants['vcf'])
    predictor = load_model(model_path)
    length = int(getattr(predictor, 'model_sequence_length', None) or predictor.sequence_length)
    table = read_genes(genes['gtf'])
    chosen = choose_genes(table, hits, length)
    vcf = write_phased_vcf(
        step_dir / VCF_NAME, hits, {c: human['chrom_sizes'][c] for c in sorted(set(hits['chrom']))}
    )
    gene_ids = [gene_id for gene_id, _ in chosen]
    settings = HaplotypeSettings(
        targets=human['targets'], mean_haplotypes=True, tsv=True, model_id=model_path
    )
    result = predict_haplotypes(
        predictor,
        human['fasta'],
        vcf,
        step_dir,
        gtf=genes['gtf'],
        genes=gene_ids,
        settings=settings,
        progress=False,
        overwrite=True,
    )
    data = result.data
    mean = data[data.obs['haplotype'] == 'mean']
    samples = mean.obs['sample'].tolist()
    order = [list(mean.var['gene_id'].unique()).index(g) for g in gene_ids]
    names = dict(zip(table['gene_id'].astype(str), table['gene_name'].astype(str)))
    effect = [
        np.abs(
            track_matrix(mean, t)[samples.index('alt_hom')]
            - track_matrix(mean, t)[samples.index('ref_hom')]
        ).sum()
        for t in data.uns['tracks']
    ]
    track = str(data.uns['tracks'][int(np.argmax(effect))])
    values = track_matrix(mean, track)[:, order]  # [samples, genes]
    heatmap = step_dir / HEATMAP_FILE
    descriptions = dict(zip(data.uns['tracks'], data.uns['track_descriptions']))
    plot_haplotype_heatmap(
        values, samples, [names[g] for g in gene_ids], f'{track} ({descriptions[track]})', heatmap
    )
    rows = [
        dict(
            gene_id=g,
            gene_name=names[g],
            motif=motif,
            **{sample: float(values[samples.index(sample), i]) for sample in samples},
        )
        for i, (g, motif) in enumerate(chosen)
    ]
    work = data.uns['work']
    results = dict(
        vcf=vcf,
        h5ad=result.paths['h5ad'],
        tsv=result.paths['tsv'],
        heatmap=str(heatmap),
        samples=[[name, SAMPLES[name]] for name in samples],
        variants=len(hits),
        track=track,
        track_description=descriptions[track],
        genes=rows,
        haplotypes=int(work['haplotypes']),
        distinct=int(work['distinct']),
        full_pass_equivalents=float(work['full_pass_equivalents']),
        seconds=result.seconds,
        command=' '.join(
            [
                'enformer predict-haplotypes',
                '--model',
                model_path,
                '--fasta',
                str(human['fasta']),
                '--vcf',
                vcf,
                '--gtf',
                str(genes['gtf']),
                '--genes',
                ','.join(gene_ids),
                '--targets',
                str(human['targets']),
                '--mean-haplotypes',
                '--tsv',
                '--out',
                str(step_dir),
            ]
        ),
    )
    outputs = [
        pathlib.Path(p)
        for p in (vcf, vcf + '.tbi', result.paths['h5ad'], result.paths['tsv'], heatmap)
    ]
    return results, outputs

  return step
