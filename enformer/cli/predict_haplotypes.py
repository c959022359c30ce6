"""`enformer predict-haplotypes`: phased VCF → predictions of every sample's two haplotypes per
gene (expression at its TSSs) or region, as AnnData (resumable)."""

import argparse
import sys

from enformer.cli import _common
from enformer.cli._inputs import check_files, check_model, check_output_path

RULES = """Haplotypes: haplotype 1 is the allele left of '|' in a genotype, haplotype 2 the right
one; GT allele k of a multi-allelic record is its k-th ALT. Missing alleles ('.') are the
reference (counted). Unphased heterozygous calls ('0/1') stop the run unless --unphased, which
reads them in the order written: their haplotypes are then arbitrary and only the mean of the two
(--mean-haplotypes) is meaningful. Symbolic and structural ALTs (<DEL>, *, breakends) are skipped
and counted. Windows: one of --sequence-length (the model's) bp per gene, centred on its first TSS,
or per BED region, centred on it. Haplotypes made of substitutions are predicted exactly with reuse:
identical haplotypes once, each conv-tower output once per distinct set of variants in its input,
transformer and heads once per distinct haplotype. Indels (--indels): 'full' (the default, exact)
gives a haplotype with an indel in a window a full pass of its own sequence, centred on the
haplotype position of the window's centre, the gene's TSSs read at their haplotype positions (a
deleted TSS at the base after the deletion); on real phased VCFs (1000 Genomes: ~4% of variant sites
are short indels) nearly every haplotype has one in a 196 kb window and takes a full pass, losing
the reuse. 'skip' leaves indel alleles out: each haplotype keeps its SNVs/MNVs and takes the
reference at its indels, so all haplotypes are predicted with reuse, as substitution haplotypes (an
approximation); the indel alleles left out are counted in the log and in uns['vcf_summary']
(skipped_indels). A resumed run must use the same --indels.
Values: genes, per track the prediction summed over each TSS's bin and its two neighbours, summed
over the gene's TSSs (as score-genes); regions, the mean over the output bins overlapping the
region, or with --per-bin every output bin of the window.
Output: OUT/haplotypes.h5ad (AnnData: obs = sample x haplotype with columns sample and haplotype
('1', '2', 'mean'); var = gene x track, gene-major, index GENE|TRACK, columns gene_id, gene_name,
chrom, strand, tss, track (its identifier; t0, t1, ... without --targets), track_index,
track_description (regions: region, chrom, start, end; --per-bin: bin_id, region, bin, chrom,
start); X holds every value); --tsv adds OUT/haplotypes.tsv (sample, haplotype, gene_id, track,
expression)."""


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'predict-haplotypes',
      help="predict every sample's two haplotypes of a phased VCF at genes (GTF) or regions "
      '(BED) into AnnData',
      description=(
          'Personal genomes: for each selected sample of a phased, bgzipped and indexed VCF, '
          'predicts both haplotypes at every gene (expression at its TSSs) or region, exactly '
          'and with reuse across samples (far fewer full-pass equivalents than one full pass '
          'per haplotype). Resumable: rerun the same command after an interruption to continue. '
          '--workers N / --scheduler ADDRESS predict windows on a Dask cluster (same output); '
          '--shard K/N predicts every N-th window into OUT/haplotypes.K-of-N.h5ad.'
      ),
      epilog=RULES,
  )
  _common.add_model_argument(parser)
  _common.add_fasta_argument(parser)
  parser.add_argument(
      '--vcf', required=True, help='phased genotypes: bgzipped VCF with a .tbi or .csi index'
  )
  where = parser.add_mutually_exclusive_group(required=True)
  where.add_argument(
      '--gtf',
      default=None,
      help='genes (GENCODE / Ensembl GTF, plain or gzip): one window per gene',
  )
  where.add_argument('--bed', default=None, help='regions (BED): one window per region')
  parser.add_argument(
      '--samples', default=None, help='samples: comma-separated ids or a file of ids (default: all)'
  )
  parser.add_argument(
      '--unphased',
      action='store_true',
      help='read unphased calls in the order written instead of stopping',
  )
  parser.add_argument(
      '--indels',
      choices=('full', 'skip'),
      default='full',
      help="'full' (default, exact): a haplotype with an indel in a window takes "
      'a full pass of its own sequence, which on real VCFs is nearly every '
      "haplotype; 'skip': indel alleles are left out (counted), each haplotype "
      'keeps its SNVs and is predicted with reuse (an approximation: the SNV '
      'haplotypes)',
  )
  parser.add_argument(
      '--gene-types',
      type=_common.names,
      default=None,
      help='with --gtf: keep only these gene types, e.g. protein_coding,lncRNA',
  )
  parser.add_argument(
      '--genes',
      default=None,
      help='with --gtf: keep only these genes (comma-separated ids or names, or a file of them)',
  )
  parser.add_argument(
      '--per-bin',
      action='store_true',
      dest='bins',
      help='with --bed: every output bin of the window instead of the mean over the region',
  )
  parser.add_argument('--head', default='human', help='output head')
  _common.add_tracks_argument(parser)
  _common.add_targets_argument(parser)
  _common.add_out_argument(parser, help='output folder (haplotypes.h5ad, haplotypes.tsv)')
  parser.add_argument(
      '--tsv',
      action='store_true',
      help='also write OUT/haplotypes.tsv (one row per sample, haplotype, gene and track)',
  )
  parser.add_argument(
      '--mean-haplotypes',
      action='store_true',
      help="also write each sample's diploid mean (haplotype 'mean')",
  )
  parser.add_argument(
      '--batch-size', type=_common.positive_int, default=4, help='haplotypes per transformer pass'
  )
  _common.add_overwrite_argument(
      parser,
      help=_common.OVERWRITE_HELP + ' (a finished output; unfinished runs that differ '
      'are discarded)',
  )
  _common.add_n_value_argument(parser)
  _common.add_quiet_argument(parser)
  _common.add_cluster_arguments(parser, 'windows')
  parser.add_argument(
      '--shard',
      default=None,
      metavar='K/N',
      help='predict only shard K of N (every N-th window) into '
      'OUT/haplotypes.K-of-N.h5ad; join with anndata.concat(files, axis=1, '
      "merge='same')",
  )
  _common.add_model_config_arguments(parser)
  _common.add_precision_argument(parser)
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  import os
  from enformer.io.genotypes import select_samples
  from enformer.io.haplotypes import haplotypes_file
  from enformer.io.sad import parse_shard

  check_files(
      (args.vcf, '--vcf', 'vcf'),
      (args.fasta, '--fasta', 'fasta'),
      (args.gtf, '--gtf', None if (args.gtf or '').endswith('.gz') else 'text'),
      (args.bed, '--bed', 'text'),
      (args.targets, '--targets', 'text'),
  )
  check_model(args.model)
  check_output_path(args.out, '--out', folder=True)
  if args.bins and not args.bed:
    raise ValueError('--per-bin needs --bed regions (genes give the expression at their TSSs).')
  if (args.genes or args.gene_types) and not args.gtf:
    raise ValueError('--genes and --gene-types select genes of --gtf; pass --gtf.')
  shard = parse_shard(args.shard) if args.shard else None
  if shard and args.tsv:
    raise ValueError(
        'A --shard run writes only its shard file; write the TSV from the joined '
        'AnnData (or run without --shard).'
    )
  samples = _common.names_or_file(args.samples)
  select_samples(args.vcf, samples)  # Unknown samples: one line naming the known ones.
  path = os.path.join(args.out, haplotypes_file(shard))
  if os.path.isfile(path) and not args.overwrite:
    raise FileExistsError(
        f'{path} already exists (a finished run). Pass --overwrite to replace '
        'it, or choose another --out.'
    )
  with _common.output_lock(path):
    return _predict(args, samples, shard)


def _predict(args: argparse.Namespace, samples, shard) -> int:
  """`run` once the inputs are checked and the output is locked."""
  from enformer.distributed import client_for
  from enformer.genes.haplotypes import HaplotypeSettings, predict_haplotypes

  settings = HaplotypeSettings(
      unphased=args.unphased,
      indels=args.indels,
      head=args.head,
      tracks=args.tracks,
      targets=args.targets,
      bins=args.bins,
      mean_haplotypes=args.mean_haplotypes,
      tsv=args.tsv,
      neutral_value=args.n_value,
      batch_size=args.batch_size,
      model_id=_common.model_id(args),
  )
  options = dict(
      gtf=args.gtf,
      bed=args.bed,
      genes=_common.names_or_file(args.genes),
      gene_types=args.gene_types,
      samples=samples,
      settings=settings,
      overwrite=args.overwrite,
      progress=not args.quiet,
      run_settings={'command': ' '.join(sys.argv)},
      shard=shard,
  )
  with client_for(args.workers, args.scheduler) as client:
    predictor = _common.model_for(args, client)
    result = predict_haplotypes(predictor, args.fasta, args.vcf, args.out, client=client, **options)
  print(result.summary.format(), file=sys.stderr)
  print(result.stats.format(), file=sys.stderr)
  resumed = (
      f', resumed {result.windows_resumed}/{result.windows_total} windows'
      if result.windows_resumed
      else ''
  )
  data = result.data
  print(
      f'Predicted {data.n_obs} sample haplotypes x {data.n_vars} '
      f'{"genes" if args.gtf else "regions"} x {len(data.uns["tracks"])} tracks in '
      f'{result.seconds:.1f} s{resumed}.',
      file=sys.stderr,
  )
  for kind, path in result.paths.items():
    print(f'  {kind}: {path}', file=sys.stderr)
  return 0
