"""The demo's genes step: a GTF of genes on planted motifs, `score-genes` on the demo's variants,
`predict --gtf` on the held-out chromosome, and predicted vs observed expression.

  genes.gtf          genes whose TSSs sit on planted motif sites of the test chromosome
                     (`enformer.data.synthetic_genes`)
  sed.h5, sed.tsv    `enformer score-genes` of the variants step's VCF (Borzoi's layout)
  background.npz     a background fitted on the far-from-motif variants' pairs (SED and logSED
                     |score| quantiles per track); the report ranks the pairs against it
  expression/        `enformer predict --gtf`: expression.h5, expression.tsv, expression.h5ad
  sed_top_genes.png  SED per track of the top variant–gene pairs
  expression_vs_observed.png  predicted vs observed expression at the genes' TSSs
Observed expression uses the one definition (`enformer.genes.expression.gene_expression`) on the
synthetic genome's binned signal over the same output bins.
"""

import os
import pathlib
from typing import Any, Dict, List, Tuple

import kipoiseq
import numpy as np

from enformer.data.synthetic_genes import write_synthetic_gtf
from enformer.evaluation.tss import pearson_r
from enformer.genes.expression import BIN_SIZE, gene_expression
from enformer.genes.pipeline import score_genes
from enformer.genes.predict import predict_gene_expression
from enformer.variants.pipeline import ScoringSettings
from enformer.inference import load_model
from enformer.plots.genes import plot_expression_vs_observed, plot_sed_top_genes
from enformer.variants.background import Background


def observed_expression(
    signal_npz: os.PathLike, rows, sequence_length: int, output_bins: int, windows_tss
) -> np.ndarray:
  """[G, tracks] expression of the synthetic signal (128 bp bin means) in each gene's window."""
  values = []
  with np.load(signal_npz) as arrays:
    for chrom, centre, tss in zip(rows['chrom'], rows['tss'], windows_tss):
      signal = arrays[chrom]
      window = kipoiseq.Interval(chrom, int(centre), int(centre) + 1).resize(sequence_length)
      start = window.start + (sequence_length - output_bins * BIN_SIZE) // 2
      span = np.zeros((output_bins * BIN_SIZE, signal.shape[1]), np.float32)
      low, high = max(start, 0), min(start + len(span), len(signal))
      span[low - start : high - start] = signal[low:high]
      binned = span.reshape(output_bins, BIN_SIZE, -1).mean(axis=1)
      values.append(gene_expression(binned, start, tss))
  return np.stack(values)


def genes_step(genomes: Dict[str, Any], variants: Dict[str, Any], model_path: str, test_chrom: str):
  """The step function `(step_dir, fresh) -> (results, outputs)` of `run_demo`."""

  def step(step_dir: pathlib.Path, fresh: bool) -> Tuple[Dict[str, Any], List[pathlib.Path]]:
    human = genomes['human']
    gtf = step_dir / 'genes.gtf'
    genes = write_synthetic_gtf(
        gtf, human['motif_sites'], human['chrom_sizes'], chroms=[test_chrom]
    )
    predictor = load_model(model_path)
    sed_path = step_dir / 'sed.h5'
    if sed_path.exists():  # Scored by an interrupted earlier run (its record is missing).
      sed_path.unlink()
    scoring = ScoringSettings(targets=human['targets'], batch_size=8, model_id=model_path)
    result = score_genes(
        predictor,
        human['fasta'],
        variants['vcf'],
        gtf,
        sed_path,
        settings=scoring,
        progress=False,
        tsv=True,
    )
    scores = result.scores
    # The far-from-motif variants as the background (a stand-in for common variants).
    is_hit = np.char.startswith(scores.snp.astype(str), 'hit_')[scores.si]
    background = Background.fit(
        {n: scores.scores[n][~is_hit] for n in ('SED', 'logSED')}, scores.target_ids
    )
    background_path = step_dir / 'background.npz'
    background.save(background_path)
    scores.scores['SED_quantile'] = background.quantile_score('SED', scores.scores['SED'])
    sed = scores.scores['SED']
    strength = np.abs(sed).max(axis=1)
    quantile = np.abs(scores.scores['SED_quantile']).max(axis=1)
    order = np.argsort(-strength)[:6]
    top = [
        dict(
            variant=str(scores.snp[scores.si[i]]),
            gene_id=str(scores.gene[i]),
            gene_name=str(scores.gene_name[i]),
            tss_distance=int(scores.tss_distance[i]),
            track=int(np.abs(sed[i]).argmax()),
            sed=float(sed[i, np.abs(sed[i]).argmax()]),
            log_sed=float(scores.scores['logSED'][i, np.abs(sed[i]).argmax()]),
            quantile=float(quantile[i]),
        )
        for i in order
    ]
    names = [str(t) for t in scores.target_ids]
    sed_plot = step_dir / 'sed_top_genes.png'
    plot_sed_top_genes(
        sed[order], [f'{t["variant"]}\n{t["gene_name"]}' for t in top], names, sed_plot
    )

    expression_dir = step_dir / 'expression'
    expression = predict_gene_expression(
        predictor,
        human['fasta'],
        gtf,
        expression_dir,
        targets=human['targets'],
        tsv=True,
        batch_size=8,
        progress=False,
        overwrite=True,
    )
    windows_tss = [tuple(t) for t in genes['tss']]
    observed = observed_expression(
        pathlib.Path(human['fasta']).parent / 'signal.npz',
        expression.rows,
        predictor.sequence_length,
        predictor.output_length,
        windows_tss,
    )
    pearson = [
        pearson_r(np.log1p(np.maximum(expression.expression[:, t], 0)), np.log1p(observed[:, t]))
        for t in range(observed.shape[1])
    ]
    expression_plot = step_dir / 'expression_vs_observed.png'
    plot_expression_vs_observed(expression.expression, observed, names, expression_plot)
    results = dict(
        gtf=str(gtf),
        sed_h5=str(sed_path),
        sed_tsv=str(result.paths['tsv'][0]),
        background=str(background_path),
        expression_dir=str(expression_dir),
        genes=len(genes),
        multi_tss_genes=int(sum(len(t) > 1 for t in genes['tss'])),
        minus_strand_genes=int((genes['strand'] == '-').sum()),
        pairs=len(scores),
        variants_with_genes=int(len(np.unique(scores.si))),
        seconds=result.seconds,
        hit_top_quantile=float(quantile[is_hit].max()) if is_hit.any() else float('nan'),
        hit_median_max_abs_sed=float(np.median(strength[is_hit])) if is_hit.any() else 0.0,
        miss_median_max_abs_sed=float(np.median(strength[~is_hit])) if (~is_hit).any() else 0.0,
        expression_pearson=[float(p) for p in pearson],
        top=top,
        sed_plot=str(sed_plot),
        expression_plot=str(expression_plot),
        commands=[
            f'enformer score-genes --model {model_path} --fasta {human["fasta"]} --vcf '
            f'{variants["vcf"]} --gtf {gtf} --targets {human["targets"]} --out {sed_path} '
            '--tsv',
            f'enformer predict --model {model_path} --fasta {human["fasta"]} --gtf {gtf} '
            f'--targets {human["targets"]} --tsv --out {expression_dir}',
        ],
    )
    outputs = [
        gtf,
        sed_path,
        pathlib.Path(result.paths['tsv'][0]),
        background_path,
        sed_plot,
        expression_plot,
    ] + sorted(p for p in expression_dir.iterdir() if p.is_file())
    return results, outputs

  return step
