"""Personal-genome prediction: `predict_haplotypes` against one full pass per haplotype.

Writes a random genome, a GTF of `--genes` genes (one TSS each, 3 windows apart) and a phased,
bgzipped VCF of `--samples` samples, then runs `predict_haplotypes` end to end (VCF reading,
chunk store and h5ad writing included) after an untimed warm-up on one gene (and tracing each
candidate patch size once). The baseline is one full forward pass per haplotype: the median time
of batches of `--batch-size` full passes, times the number of haplotypes. Outputs are checked: one
gene's haplotypes are rebuilt base by base, predicted with full passes, and compared (max |Δ| /
max |value|).

Densities (synthetic populations, per window):
  realistic  ~1 SNV per kb per haplotype: segregating sites at `--sites-per-kb` with allele
             frequencies from Beta(0.5, 1.5) (mean 0.25), carried by 12 founder haplotypes;
             each haplotype is a mosaic of founders that switches about every 20 kb (linkage:
             local haplotypes repeat), plus private singletons at 0.05 per kb
  sparse     20 segregating sites per window, the same frequencies and founders (≤ 20 variants
             per haplotype)

Usage:
  python benchmarks/haplotypes.py                          # quick: 384 ch, 1 layer, 16 kb
  python benchmarks/haplotypes.py --config full            # published size, 196,608 bp
  python benchmarks/haplotypes.py --genes 4 --samples 20   # smaller
  python benchmarks/haplotypes.py --config full --plan-only   # the work alone, no predictions

Prints one JSON line per density: haplotypes, distinct haplotypes, tower patches and their work
(in full towers per haplotype), transformer passes, full-pass equivalents, seconds, the full-pass
baseline and the ratios (with --plan-only: the segments per patch size and the planning time per
window instead of the timings).
"""

import argparse
import collections
import json
import os
import pathlib
import tempfile
import time
from typing import Dict, List

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=wrong-import-position

CONFIGS = {
    'quick': (dict(channels=384, num_heads=4, num_transformer_layers=1, target_length=None),
              16_384),
    'full': ({}, 196_608),
}
FOUNDERS = 12
SWITCH_KB = 20.0
SINGLETONS_PER_KB = 0.05


def write_genome(directory: pathlib.Path, genes: int, length: int, seed: int = 0):
  """FASTA (one chromosome) and a GTF of `genes` genes 3 windows apart (TSS at each centre)."""
  rng = np.random.default_rng(seed)
  size = (3 * genes + 2) * length
  sequence = ''.join(np.array(list('ACGT'))[rng.integers(0, 4, size)])
  fasta = directory / 'genome.fa'
  fasta.write_text('>chr1\n' + '\n'.join(sequence[i:i + 80] for i in range(0, size, 80)) + '\n')
  tss = [(3 * g + 2) * length for g in range(genes)]
  gtf = directory / 'genes.gtf'
  gtf.write_text(''.join(
      f'chr1\tbench\ttranscript\t{t + 1}\t{t + 2000}\t.\t+\t.\tgene_id "G{g}"; transcript_id '
      f'"G{g}.1"; gene_name "G{g}"; gene_type "protein_coding";\n' for g, t in enumerate(tss)))
  return fasta, gtf, sequence, tss


def population(rng: np.random.Generator, start: int, length: int, samples: int, sites: int,
               singletons: float) -> List[Dict[int, int]]:
  """2 × samples haplotypes of one window: {position: ALT offset 1-3} each."""
  positions = np.sort(rng.choice(np.arange(start, start + length), sites, replace=False))
  frequencies = np.clip(rng.beta(0.5, 1.5, sites), 0.01, 0.99)
  offsets = rng.integers(1, 4, sites)
  founders = rng.random((FOUNDERS, sites)) < frequencies  # [F, sites]
  haplotypes = []
  for _ in range(2 * samples):
    switches = np.sort(rng.uniform(start, start + length,
                                   rng.poisson(length / (SWITCH_KB * 1000))))
    segment = np.searchsorted(switches, positions)  # Which segment holds each site.
    chosen = rng.integers(0, FOUNDERS, len(switches) + 1)[segment]
    carried = founders[chosen, np.arange(sites)]
    haplotype = {int(p): int(o) for p, o in zip(positions[carried], offsets[carried])}
    for p in rng.choice(np.arange(start, start + length), rng.poisson(singletons * length / 1000)):
      haplotype.setdefault(int(p), int(rng.integers(1, 4)))
    haplotypes.append(haplotype)
  return haplotypes


def write_vcf(directory: pathlib.Path, name: str, sequence: str,
              windows: List[List[Dict[int, int]]], samples: int) -> str:
  """Phased bgzipped VCF of the windows' haplotypes (1-based POS; genotype k|l per sample)."""
  import pysam  # pylint: disable=import-outside-toplevel
  rows = []
  for haplotypes in windows:
    for position in sorted(set().union(*haplotypes)):
      ref = sequence[position]
      alts = sorted({h[position] for h in haplotypes if position in h})
      letters = ['ACGT'[('ACGT'.index(ref) + o) % 4] for o in alts]
      calls = [str(alts.index(h[position]) + 1) if position in h else '0' for h in haplotypes]
      genotypes = '\t'.join(f'{calls[2 * s]}|{calls[2 * s + 1]}' for s in range(samples))
      rows.append(f'chr1\t{position + 1}\t.\t{ref}\t{",".join(letters)}\t.\tPASS\t.\tGT\t'
                  f'{genotypes}')
  header = ['##fileformat=VCFv4.2', '##contig=<ID=chr1>',
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            '\t'.join(['#CHROM', 'POS', 'ID', 'REF', 'ALT', 'QUAL', 'FILTER', 'INFO', 'FORMAT'] +
                      [f'S{s}' for s in range(samples)])]
  path = directory / f'{name}.vcf'
  path.write_text('\n'.join(header + rows) + '\n')
  return pysam.tabix_index(str(path), preset='vcf', force=True)


def plan_only(args: argparse.Namespace) -> int:
  """Full-pass equivalents of the synthetic populations, from the plan alone (no predictions)."""
  from enformer import Enformer  # pylint: disable=import-outside-toplevel
  from enformer.inference import fast  # pylint: disable=import-outside-toplevel
  from enformer.inference.haplotypes import HaplotypeForward, HaplotypeStats  # pylint: disable=import-outside-toplevel

  config, length = CONFIGS[args.config]
  model = Enformer(**config)
  forward = HaplotypeForward(fast.compile_forward(model, length, ['human']))
  rng = np.random.default_rng(1)
  for density in args.densities.split(','):
    sites = int(args.sites_per_kb * length / 1000) if density == 'realistic' else 20
    singletons = SINGLETONS_PER_KB if density == 'realistic' else 0.0
    total, variants, sizes, seconds = HaplotypeStats(), [], collections.Counter(), 0.0
    for _ in range(args.genes):
      bases = rng.integers(0, 4, length)
      reference = np.eye(4, dtype=np.float32)[bases]
      haplotypes = population(rng, 0, length, args.samples, sites, singletons)
      haplotypes = [[(p, (bases[p] + o) % 4) for p, o in h.items()] for h in haplotypes]
      variants += [len(h) for h in haplotypes]
      began = time.perf_counter()
      total.add(forward.work(reference, haplotypes))
      seconds += time.perf_counter() - began
      sizes.update(segment.bins for segment in forward.plan(reference, haplotypes))
    print(json.dumps({
        'config': args.config, 'density': density, 'plan_only': True, 'sequence_length': length,
        'genes': args.genes, 'samples': args.samples, 'sites_per_window': sites,
        'variants_per_haplotype': round(float(np.mean(variants)), 1),
        'haplotypes': total.haplotypes, 'distinct': total.distinct,
        'tower_patches': total.patches, 'transformer_passes': total.transformer_passes,
        'tower_work_per_haplotype': round(total.tower_work / total.haplotypes, 4),
        'segments_by_patch_bins': dict(sorted(sizes.items())),
        'tower_share': round(total.tower_share, 3),
        'full_pass_equivalents': round(total.full_pass_equivalents, 1),
        'fewer_full_pass_equivalents': round(total.speedup, 2),
        'planning_seconds_per_window': round(seconds / args.genes, 2)}), flush=True)
  return 0


def main(argv: List[str] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', choices=tuple(CONFIGS), default='quick')
  parser.add_argument('--genes', type=int, default=20)
  parser.add_argument('--samples', type=int, default=100)
  parser.add_argument('--sites-per-kb', type=float, default=4.0,
                      help='segregating sites per kb at the realistic density')
  parser.add_argument('--densities', default='realistic,sparse')
  parser.add_argument('--batch-size', type=int, default=4)
  parser.add_argument('--baseline-batches', type=int, default=5)
  parser.add_argument('--plan-only', action='store_true',
                      help='count the work (full-pass equivalents) without running the model: '
                      'HaplotypeForward.work on the same synthetic populations')
  args = parser.parse_args(argv)
  if args.plan_only:
    return plan_only(args)

  from enformer import Enformer  # pylint: disable=import-outside-toplevel
  from enformer.genes import haplotypes as haplotypes_lib  # pylint: disable=import-outside-toplevel
  from enformer.genes.expression import gene_expression  # pylint: disable=import-outside-toplevel
  from enformer.inference import Predictor  # pylint: disable=import-outside-toplevel
  from enformer.sequence import one_hot_encode  # pylint: disable=import-outside-toplevel

  config, length = CONFIGS[args.config]
  model = Enformer(**config)
  predictor = Predictor.from_module(model, length)
  forward = haplotypes_lib.haplotype_forward(predictor, 'human', args.batch_size)
  rng = np.random.default_rng(1)
  with tempfile.TemporaryDirectory() as directory:
    folder = pathlib.Path(directory)
    fasta, gtf, sequence, tss = write_genome(folder, args.genes, length)
    starts = [w.start for w in haplotypes_lib.gene_windows(
        haplotypes_lib.read_genes(gtf, fasta=fasta), length)]  # The windows the library reads.
    # Baseline: full passes of random sequences in batches (the first one untimed).
    batch = np.stack([one_hot_encode(sequence[t - length // 2:t + length // 2])
                      for t in tss[:1]] * args.batch_size)
    forward.forward(batch)['human'].numpy()  # Warm-up (traces the graph).
    times = []
    for _ in range(args.baseline_batches):
      began = time.perf_counter()
      forward.forward(batch)['human'].numpy()
      times.append(time.perf_counter() - began)
    full_pass_s = float(np.median(times)) / args.batch_size
    forward.warm_up()  # Traces each patch size once (untimed, as the baseline's trace).
    for density in args.densities.split(','):
      sites = (int(args.sites_per_kb * length / 1000) if density == 'realistic' else 20)
      singletons = SINGLETONS_PER_KB if density == 'realistic' else 0.0
      windows = [population(rng, start, length, args.samples, sites, singletons)
                 for start in starts]
      vcf = write_vcf(folder, density, sequence, windows, args.samples)
      haplotypes_lib.predict_haplotypes(predictor, fasta, vcf, folder / f'warm_{density}',
                                        gtf=gtf, genes=['G0'], samples=['S0'], progress=False,
                                        batch_size=args.batch_size)
      began = time.perf_counter()
      result = haplotypes_lib.predict_haplotypes(predictor, fasta, vcf, folder / density,
                                                 gtf=gtf, progress=False,
                                                 batch_size=args.batch_size)
      seconds = time.perf_counter() - began
      stats = result.stats
      # Same outputs: gene 0's first 8 haplotypes rebuilt base by base, full passes.
      start = starts[0]
      rebuilt = []
      for haplotype in windows[0][:8]:
        letters = list(sequence[start:start + length])
        for position, offset in haplotype.items():
          letters[position - start] = 'ACGT'[('ACGT'.index(sequence[position]) + offset) % 4]
        rebuilt.append(one_hot_encode(''.join(letters)))
      full = np.concatenate([forward.forward(np.stack(rebuilt[i:i + args.batch_size]))['human']
                             .numpy() for i in range(0, 8, args.batch_size)])
      output_start = start + (length - full.shape[1] * 128) // 2
      expected = np.stack([gene_expression(p, output_start, [tss[0]]) for p in full])
      ours = np.asarray(result.data.X[:8, (result.data.var['gene_id'] == 'G0').to_numpy()])
      baseline_s = full_pass_s * stats.haplotypes
      print(json.dumps({
          'config': args.config, 'density': density, 'sequence_length': length,
          'genes': args.genes, 'samples': args.samples, 'sites_per_window': sites,
          'variants_per_haplotype': round(float(np.mean([len(h) for w in windows for h in w])),
                                          1),
          'haplotypes': stats.haplotypes, 'distinct': stats.distinct, 'reused': stats.reused,
          'tower_patches': stats.patches, 'transformer_passes': stats.transformer_passes,
          'tower_work_per_haplotype': round(stats.tower_work / stats.haplotypes, 4),
          'tower_share': round(stats.tower_share, 3),
          'full_pass_equivalents': round(stats.full_pass_equivalents, 1),
          'fewer_full_pass_equivalents': round(stats.speedup, 2),
          'seconds': round(seconds, 1), 'full_pass_s': round(full_pass_s, 4),
          'baseline_seconds': round(baseline_s, 1),
          'wall_time_ratio': round(baseline_s / seconds, 2),
          'max_rel_error_vs_full_passes': float(np.abs(ours - expected).max() /
                                                np.abs(expected).max())}), flush=True)
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
