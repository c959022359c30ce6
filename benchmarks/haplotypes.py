"""Personal-genome prediction: `predict_haplotypes` against one full pass per haplotype.

Writes a random genome, a GTF of `--genes` genes (one TSS each, 3 windows apart) and a phased,
bgzipped VCF of `--samples` samples, then runs `predict_haplotypes` end to end (VCF reading,
chunk store and h5ad writing included) after an untimed warm-up on one gene. The baseline is
one full forward pass per haplotype: the median time of batches of `--batch-size` full passes,
times the number of haplotypes. Outputs are checked: one
gene's haplotypes are rebuilt base by base, predicted with full passes, and compared (max |Δ| /
max |value|).

Densities (synthetic populations, per window):
  realistic  ~1 SNV per kb per haplotype: segregating sites at `--sites-per-kb` with allele
             frequencies from Beta(0.5, 1.5) (mean 0.25), carried by 12 founder haplotypes;
             each haplotype is a mosaic of founders that switches about every 20 kb (linkage:
             local haplotypes repeat), plus private singletons at 0.05 per kb
  sparse     20 segregating sites per window, the same frequencies and founders (≤ 20 variants
             per haplotype)
  coalescent 1000 Genomes-like: `--samples` diploid individuals of one population (`--population`,
             CEU or YRI; a comma-separated list runs each) simulated with msprime under stdpopsim's
             published human demography (`--demography`, HomSap OutOfAfrica_3G09: Gutenkunst et
             al. 2009), one independent simulation per window, recombination 1e-8 per bp per
             generation, binary SNVs at `--mutation-rate` (default: the rate the demography was
             inferred with, 2.35e-8; 1.29e-8 is the species' pedigree rate, see
             docs/performance.md). The reference is the simulated ancestral sequence (derived
             alleles are ALT) or, with `--reference haplotype`, one extra simulated haplotype.
             Prints the panel's population-genetic numbers beside the work (`panel`). Needs
             `pip install msprime stdpopsim` (benchmark-only dependencies).

Usage:
  python benchmarks/haplotypes.py                          # quick: 384 ch, 1 layer, 16 kb
  python benchmarks/haplotypes.py --config full            # published size, 196,608 bp
  python benchmarks/haplotypes.py --genes 4 --samples 20   # smaller
  python benchmarks/haplotypes.py --config full --plan-only   # the work alone, no predictions
  python benchmarks/haplotypes.py --densities coalescent --population CEU,YRI

Prints one JSON line per density: haplotypes, distinct haplotypes, stem and conv-tower positions
computed and their work (in full towers per haplotype), transformer passes, full-pass
equivalents, seconds, the full-pass baseline and the ratios (with --plan-only: the planning time
per window instead of the timings).
"""

import argparse
import importlib.util
import json
import os
import pathlib
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=wrong-import-position

CONFIGS = {
    'quick': (
        dict(channels=384, num_heads=4, num_transformer_layers=1, target_length=None),
        16_384,
    ),
    'full': ({}, 196_608),
}
FOUNDERS = 12
SWITCH_KB = 20.0
SINGLETONS_PER_KB = 0.05
RECOMBINATION_RATE = 1e-8  # Per bp per generation (human genome-wide mean ~1.1e-8).
# Populations, one line per window and density: (density, population or None).
Run = Tuple[str, Optional[str]]


def write_genome(directory: pathlib.Path, genes: int, length: int, seed: int = 0):
  """FASTA (one chromosome) and a GTF of `genes` genes 3 windows apart (TSS at each centre)."""
  rng = np.random.default_rng(seed)
  size = (3 * genes + 2) * length
  sequence = ''.join(np.array(list('ACGT'))[rng.integers(0, 4, size)])
  fasta = directory / 'genome.fa'
  fasta.write_text('>chr1\n' + '\n'.join(sequence[i : i + 80] for i in range(0, size, 80)) + '\n')
  tss = [(3 * g + 2) * length for g in range(genes)]
  gtf = directory / 'genes.gtf'
  gtf.write_text(
      ''.join(
          f'chr1\tbench\ttranscript\t{t + 1}\t{t + 2000}\t.\t+\t.\tgene_id "G{g}"; transcript_id '
          f'"G{g}.1"; gene_name "G{g}"; gene_type "protein_coding";\n'
          for g, t in enumerate(tss)
      )
  )
  return fasta, gtf, sequence, tss


def population(
    rng: np.random.Generator, start: int, length: int, samples: int, sites: int, singletons: float
) -> List[Dict[int, int]]:
  """2 × samples haplotypes of one window: {position: ALT offset 1-3} each."""
  positions = np.sort(rng.choice(np.arange(start, start + length), sites, replace=False))
  frequencies = np.clip(rng.beta(0.5, 1.5, sites), 0.01, 0.99)
  offsets = rng.integers(1, 4, sites)
  founders = rng.random((FOUNDERS, sites)) < frequencies  # [F, sites]
  haplotypes = []
  for _ in range(2 * samples):
    switches = np.sort(rng.uniform(start, start + length, rng.poisson(length / (SWITCH_KB * 1000))))
    segment = np.searchsorted(switches, positions)  # Which segment holds each site.
    chosen = rng.integers(0, FOUNDERS, len(switches) + 1)[segment]
    carried = founders[chosen, np.arange(sites)]
    haplotype = {int(p): int(o) for p, o in zip(positions[carried], offsets[carried])}
    for p in rng.choice(np.arange(start, start + length), rng.poisson(singletons * length / 1000)):
      haplotype.setdefault(int(p), int(rng.integers(1, 4)))
    haplotypes.append(haplotype)
  return haplotypes


def coalescent(
    rng: np.random.Generator,
    start: int,
    length: int,
    samples: int,
    population: str,
    demography: str,
    mutation_rate: Optional[float],
    reference: str = 'ancestral',
) -> Tuple[List[Dict[int, int]], Dict[str, float]]:
  """2 × samples haplotypes of one window from a coalescent simulation, and the panel's numbers.

  msprime simulates `samples` diploid individuals of `population` under stdpopsim's HomSap
  `demography` over `length` bp (recombination `RECOMBINATION_RATE`), then binary mutations on a
  discrete genome at `mutation_rate` (None: the rate the demography was inferred with). Each site's
  ALT base is a random offset 1–3 from the reference base. The reference is the ancestral sequence
  (derived alleles are ALT), or with `reference='haplotype'` the first haplotype of one extra
  simulated individual (not in the panel; ALT = differs from it).

  Returns:
    The haplotypes ({position: ALT offset} each; haplotypes 2s and 2s + 1 are sample s) and the
    panel's numbers for this window: nucleotide diversity (π) and Watterson's θ per bp, Tajima's
    D, segregating sites and derived singletons per kb, derived singletons per kb per haplotype,
    variants (non-reference alleles) per kb per haplotype and non-reference sites per kb per
    individual (either haplotype differs from the reference).
  """
  import msprime  # pylint: disable=import-outside-toplevel
  import stdpopsim  # pylint: disable=import-outside-toplevel

  model = stdpopsim.get_species('HomSap').get_demographic_model(demography)
  extra = 1 if reference == 'haplotype' else 0
  ancestry = msprime.sim_ancestry(
      samples={population: samples + extra},
      demography=model.model,
      sequence_length=length,
      recombination_rate=RECOMBINATION_RATE,
      random_seed=int(rng.integers(1, 2**31 - 1)),
  )
  tree_sequence = msprime.sim_mutations(
      ancestry,
      rate=mutation_rate or model.mutation_rate,
      model=msprime.BinaryMutationModel(),
      discrete_genome=True,
      random_seed=int(rng.integers(1, 2**31 - 1)),
  )
  panel = tree_sequence.samples()[: 2 * samples]
  derived = tree_sequence.genotype_matrix(samples=panel).astype(bool)  # [sites, 2 · samples]
  positions = tree_sequence.tables.sites.position.astype(np.int64) + start
  if extra:  # ALT = differs from the extra individual's first haplotype.
    reference_haplotype = tree_sequence.genotype_matrix(
        samples=tree_sequence.samples()[2 * samples : 2 * samples + 1]
    ).astype(
        bool
    )  # [sites, 1]
    alternative = derived ^ reference_haplotype
  else:
    alternative = derived
  offsets = rng.integers(1, 4, len(positions))
  haplotypes = [
      {int(p): int(o) for p, o in zip(positions[carried], offsets[carried])}
      for carried in alternative.T
  ]
  counts = derived.sum(1)  # Derived alleles per site in the panel.
  segregating = int(((counts > 0) & (counts < 2 * samples)).sum())
  individual = alternative[:, 0::2] | alternative[:, 1::2]  # [sites, samples]
  kb = length / 1000
  stats = {
      'pi_per_bp': float(tree_sequence.diversity(sample_sets=panel)),
      'watterson_theta_per_bp': float(segregating / np.sum(1 / np.arange(1, 2 * samples)) / length),
      'tajimas_d': float(tree_sequence.Tajimas_D(sample_sets=panel)),
      'segregating_sites_per_kb': segregating / kb,
      'singletons_per_kb': float((counts == 1).sum()) / kb,
      'singletons_per_kb_per_haplotype': float((counts == 1).sum()) / kb / (2 * samples),
      'singleton_fraction': float((counts == 1).sum()) / max(segregating, 1),
      'variants_per_kb_per_haplotype': float(alternative.sum(0).mean()) / kb,
      'non_reference_sites_per_kb_per_individual': float(individual.sum(0).mean()) / kb,
  }
  return haplotypes, stats


def window_population(
    args: argparse.Namespace, run: Run, rng: np.random.Generator, start: int, length: int
) -> Tuple[List[Dict[int, int]], Optional[Dict[str, float]]]:
  """One window's haplotypes at a density (and the panel's numbers for `coalescent`)."""
  density, name = run
  if density == 'coalescent':
    return coalescent(
        rng, start, length, args.samples, name, args.demography, args.mutation_rate, args.reference
    )
  singletons = SINGLETONS_PER_KB if density == 'realistic' else 0.0
  return (
      population(rng, start, length, args.samples, configured_sites(args, run, length), singletons),
      None,
  )


def configured_sites(args: argparse.Namespace, run: Run, length: int) -> Optional[int]:
  """Segregating sites per window of the synthetic densities (None for `coalescent`)."""
  return {'realistic': int(args.sites_per_kb * length / 1000), 'sparse': 20}.get(run[0])


def panel_summary(
    stats: List[Dict[str, float]], args: argparse.Namespace, run: Run
) -> Dict[str, object]:
  """The population and the mean of its windows' numbers (`coalescent`), for the JSON line."""
  if run[0] != 'coalescent':
    return {}
  return {
      'population': run[1],
      'demography': args.demography,
      'mutation_rate': args.mutation_rate,
      'reference': args.reference,
      'panel': {k: float(f'{np.mean([s[k] for s in stats]):.4g}') for k in stats[0]},
  }


def write_vcf(
    directory: pathlib.Path,
    name: str,
    sequence: str,
    windows: List[List[Dict[int, int]]],
    samples: int,
) -> str:
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
      rows.append(
          f'chr1\t{position + 1}\t.\t{ref}\t{",".join(letters)}\t.\tPASS\t.\tGT\t{genotypes}'
      )
  header = [
      '##fileformat=VCFv4.2',
      '##contig=<ID=chr1>',
      '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
      '\t'.join(
          ['#CHROM', 'POS', 'ID', 'REF', 'ALT', 'QUAL', 'FILTER', 'INFO', 'FORMAT']
          + [f'S{s}' for s in range(samples)]
      ),
  ]
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
  for run in runs(args):
    total, variants, seconds = HaplotypeStats(), [], 0.0
    panels, sites = [], []
    for _ in range(args.genes):
      bases = rng.integers(0, 4, length)
      reference = np.eye(4, dtype=np.float32)[bases]
      haplotypes, panel = window_population(args, run, rng, 0, length)
      panels.append(panel)
      sites.append(len(set().union(*haplotypes)))
      haplotypes = [[(p, (bases[p] + o) % 4) for p, o in h.items()] for h in haplotypes]
      variants += [len(h) for h in haplotypes]
      began = time.perf_counter()
      total.add(forward.work(reference, haplotypes))
      seconds += time.perf_counter() - began
    print(
        json.dumps(
            {
                'config': args.config,
                'density': run[0],
                **panel_summary(panels, args, run),
                'plan_only': True,
                'sequence_length': length,
                'genes': args.genes,
                'samples': args.samples,
                'sites_per_window': configured_sites(args, run, length),
                'variant_sites_per_window': round(float(np.mean(sites)), 1),
                'variants_per_haplotype': round(float(np.mean(variants)), 1),
                'haplotypes': total.haplotypes,
                'distinct': total.distinct,
                'tower_positions': total.tower_positions,
                'transformer_passes': total.transformer_passes,
                'tower_work_per_haplotype': round(total.tower_work / total.haplotypes, 4),
                'tower_share': round(total.tower_share, 3),
                'full_pass_equivalents': round(total.full_pass_equivalents, 1),
                'fewer_full_pass_equivalents': round(total.speedup, 2),
                'planning_seconds_per_window': round(seconds / args.genes, 2),
            }
        ),
        flush=True,
    )
  return 0


def runs(args: argparse.Namespace) -> List[Run]:
  """The densities to run, `coalescent` once per population."""
  return [
      (density, name)
      for density in args.densities.split(',')
      for name in (args.population.split(',') if density == 'coalescent' else [None])
  ]


def check_coalescent(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  """Exits with one line if `coalescent` is asked for without msprime/stdpopsim or with an
  unknown demography or population (before TensorFlow is imported)."""
  unknown = set(args.densities.split(',')) - {'realistic', 'sparse', 'coalescent'}
  if unknown:
    parser.error(f'unknown densities {sorted(unknown)}: use realistic, sparse or coalescent')
  if 'coalescent' not in args.densities.split(','):
    return
  if not all(importlib.util.find_spec(m) for m in ('msprime', 'stdpopsim')):
    print(
        'benchmarks/haplotypes.py: the coalescent density needs msprime and stdpopsim: '
        'pip install msprime stdpopsim',
        file=sys.stderr,
    )
    raise SystemExit(2)
  import stdpopsim  # pylint: disable=import-outside-toplevel

  species = stdpopsim.get_species('HomSap')
  models = [m.id for m in species.demographic_models]
  if args.demography not in models:
    parser.error(f'--demography {args.demography} is not a HomSap model: one of {models}')
  model = species.get_demographic_model(args.demography)
  names = [p.name for p in model.populations]
  missing = [p for p in args.population.split(',') if p not in names]
  if missing:
    parser.error(f'--population {",".join(missing)} is not in {args.demography}: one of {names}')
  args.mutation_rate = args.mutation_rate or model.mutation_rate


def main(argv: List[str] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', choices=tuple(CONFIGS), default='quick')
  parser.add_argument('--genes', type=int, default=20)
  parser.add_argument('--samples', type=int, default=100)
  parser.add_argument(
      '--sites-per-kb',
      type=float,
      default=4.0,
      help='segregating sites per kb at the realistic density',
  )
  parser.add_argument(
      '--densities',
      default='realistic,sparse',
      help='comma-separated: realistic, sparse, coalescent',
  )
  parser.add_argument(
      '--population',
      default='CEU',
      help='coalescent: population(s) of --demography to sample, comma-separated',
  )
  parser.add_argument(
      '--demography',
      default='OutOfAfrica_3G09',
      help='coalescent: stdpopsim HomSap demographic model',
  )
  parser.add_argument(
      '--mutation-rate',
      type=float,
      default=None,
      help='coalescent: per bp per generation (default: the rate the demography '
      'was inferred with)',
  )
  parser.add_argument(
      '--reference',
      choices=('ancestral', 'haplotype'),
      default='ancestral',
      help='coalescent: the reference is the ancestral sequence or one more simulated haplotype',
  )
  parser.add_argument('--batch-size', type=int, default=4)
  parser.add_argument('--baseline-batches', type=int, default=5)
  parser.add_argument(
      '--plan-only',
      action='store_true',
      help='count the work (full-pass equivalents) without running the model: '
      'HaplotypeForward.work on the same synthetic populations',
  )
  args = parser.parse_args(argv)
  check_coalescent(parser, args)
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
    starts = [
        w.start
        for w in haplotypes_lib.gene_windows(haplotypes_lib.read_genes(gtf, fasta=fasta), length)
    ]  # The windows the library reads.
    # Baseline: full passes of random sequences in batches (the first one untimed).
    batch = np.stack(
        [one_hot_encode(sequence[t - length // 2 : t + length // 2]) for t in tss[:1]]
        * args.batch_size
    )
    forward.forward(batch)['human'].numpy()  # Warm-up (traces the graph).
    times = []
    for _ in range(args.baseline_batches):
      began = time.perf_counter()
      forward.forward(batch)['human'].numpy()
      times.append(time.perf_counter() - began)
    full_pass_s = float(np.median(times)) / args.batch_size
    for run in runs(args):
      density = run[0] if run[1] is None else f'{run[0]}_{run[1]}'
      windows, panels = zip(*[window_population(args, run, rng, start, length) for start in starts])
      sites = float(np.mean([len(set().union(*w)) for w in windows]))
      vcf = write_vcf(folder, density, sequence, windows, args.samples)
      settings = haplotypes_lib.HaplotypeSettings(batch_size=args.batch_size)
      haplotypes_lib.predict_haplotypes(
          predictor,
          fasta,
          vcf,
          folder / f'warm_{density}',
          gtf=gtf,
          genes=['G0'],
          samples=['S0'],
          progress=False,
          settings=settings,
      )
      began = time.perf_counter()
      result = haplotypes_lib.predict_haplotypes(
          predictor, fasta, vcf, folder / density, gtf=gtf, progress=False, settings=settings
      )
      seconds = time.perf_counter() - began
      stats = result.stats
      # Same outputs: gene 0's first 8 haplotypes rebuilt base by base, full passes.
      start = starts[0]
      rebuilt = []
      for haplotype in windows[0][:8]:
        letters = list(sequence[start : start + length])
        for position, offset in haplotype.items():
          letters[position - start] = 'ACGT'[('ACGT'.index(sequence[position]) + offset) % 4]
        rebuilt.append(one_hot_encode(''.join(letters)))
      full = np.concatenate(
          [
              forward.forward(np.stack(rebuilt[i : i + args.batch_size]))['human'].numpy()
              for i in range(0, 8, args.batch_size)
          ]
      )
      output_start = start + (length - full.shape[1] * 128) // 2
      expected = np.stack([gene_expression(p, output_start, [tss[0]]) for p in full])
      ours = np.asarray(result.data.X[:8, (result.data.var['gene_id'] == 'G0').to_numpy()])
      baseline_s = full_pass_s * stats.haplotypes
      print(
          json.dumps(
              {
                  'config': args.config,
                  'density': run[0],
                  **panel_summary(panels, args, run),
                  'sequence_length': length,
                  'genes': args.genes,
                  'samples': args.samples,
                  'sites_per_window': configured_sites(args, run, length),
                  'variant_sites_per_window': round(sites, 1),
                  'variants_per_haplotype': round(
                      float(np.mean([len(h) for w in windows for h in w])), 1
                  ),
                  'haplotypes': stats.haplotypes,
                  'distinct': stats.distinct,
                  'reused': stats.reused,
                  'tower_positions': stats.tower_positions,
                  'transformer_passes': stats.transformer_passes,
                  'tower_work_per_haplotype': round(stats.tower_work / stats.haplotypes, 4),
                  'tower_share': round(stats.tower_share, 3),
                  'full_pass_equivalents': round(stats.full_pass_equivalents, 1),
                  'fewer_full_pass_equivalents': round(stats.speedup, 2),
                  'seconds': round(seconds, 1),
                  'full_pass_s': round(full_pass_s, 4),
                  'baseline_seconds': round(baseline_s, 1),
                  'wall_time_ratio': round(baseline_s / seconds, 2),
                  'max_rel_error_vs_full_passes': float(
                      np.abs(ours - expected).max() / np.abs(expected).max()
                  ),
              }
          ),
          flush=True,
      )
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
