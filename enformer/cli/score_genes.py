"""`enformer score-genes`: VCF × GTF → gene-level variant effects (SED, logSED), Borzoi sed.h5."""

import argparse
import sys

from enformer.cli import _common
from enformer.cli._inputs import check_files, check_model
from enformer.cli.score_variants import (
    INDEL_RULE,
    add_background_arguments,
    add_run_arguments,
    add_scoring_arguments,
    check_run_arguments,
    print_written,
    scoring_settings,
)

GENE_RULE = """Genes: a variant is paired with each gene that has a TSS in the output bins of its
window (the window score-variants uses; the output covers its central target_length x 128 bp; a
TSS at 0-based position t lies in bin floor((t - output start) / 128)). A TSS is the first base of
a transcript on '+' and its last base on '-'. Per track, a gene's expression is the prediction
summed over each TSS's bin and its two neighbours (those inside the output), summed over the
gene's TSSs (--gene-stat sum) or their maximum (max), averaged over the --rc / --shifts ensemble;
SED = ALT - REF and logSED = log2(1 + ALT) - log2(1 + REF). Indels: bases on the far side of the
variant from the anchor sit len(ALT) - len(REF) bp away in the ALT window, so each TSS is read in
the ALT predictions at its shifted position (Borzoi's indel compensation): an insertion of k bp
between the variant's anchored side and a TSS moves the TSS k bp (and its bin when it crosses a
bin edge), a deletion k bp back; a deleted TSS is read at the base after the deletion."""


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'score-genes',
      help='score VCF variants against the genes of a GTF (SED/logSED per gene and track) '
      "into Borzoi's sed.h5 layout",
      description=(
          'Predicts the reference and alternative window of every VCF variant (as '
          'score-variants) and, for each gene with a TSS in the output, writes REF and ALT '
          "expression at its TSSs, SED and logSED per track in the sed.h5 layout of Borzoi's "
          'borzoi_sed.py (si, gene, snp, chr, pos, ref_allele, alt_allele, target_ids, '
          'target_labels, SED, logSED, REF, ALT). Resumable; --workers/--scheduler and --shard '
          'K/N as score-variants (join shards with `enformer merge-scores`).'
      ),
      epilog=GENE_RULE + '\n\n' + INDEL_RULE,
  )
  _common.add_model_argument(parser)
  _common.add_fasta_argument(parser)
  parser.add_argument('--vcf', required=True, help='variants (VCF, plain or bgzip)')
  parser.add_argument(
      '--gtf',
      required=True,
      help='gene annotation (GENCODE / Ensembl GTF, plain or gzip); chr1/1 '
      'naming is matched to the FASTA',
  )
  parser.add_argument(
      '--gene-types',
      type=_common.names,
      default=None,
      help='keep only these gene types, e.g. protein_coding,lncRNA',
  )
  parser.add_argument(
      '--genes',
      default=None,
      help='keep only these genes: comma-separated ids or names, or a file of '
      'them (one per line)',
  )
  parser.add_argument(
      '--gene-stat',
      choices=('sum', 'max'),
      default='sum',
      help="combine a gene's TSSs by sum (default) or max",
  )
  _common.add_targets_argument(parser)
  _common.add_out_argument(
      parser,
      help='output HDF5 file, e.g. sed.h5, or a folder (then '
      'FOLDER/sed.h5); --tsv writes the table beside it',
  )
  parser.add_argument(
      '--tsv',
      action='store_true',
      help='also write a tidy TSV (one row per variant, gene and track)',
  )
  add_background_arguments(parser, ('SED', 'logSED'), example='common variants: pass them as --vcf')
  add_scoring_arguments(
      parser,
      batch_help='sequences per forward pass',
      incremental_help='full forward passes for every allele (default: SNVs reuse the '
      'reference conv-tower output; exact within float32 rounding)',
  )
  add_run_arguments(
      parser,
      shard_help='score only shard K of N (every N-th chunk) into --out; '
      'join the N files with `enformer merge-scores`',
  )
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from enformer.io.sed import SED_FILE

  check_files(
      (args.vcf, '--vcf', 'vcf'),
      (args.fasta, '--fasta', 'fasta'),
      (args.gtf, '--gtf', None if args.gtf.endswith('.gz') else 'text'),
      (args.targets, '--targets', 'text'),
      (args.background, '--background', 'npz'),
  )
  check_model(args.model)
  shard = check_run_arguments(args, SED_FILE)
  if shard and args.tsv:
    raise ValueError(
        'A --shard run writes only its shard file; pass --tsv to `enformer '
        'merge-scores` instead.'
    )
  genes = _common.names_or_file(args.genes)
  with _common.output_lock(args.out):
    return _score(args, genes, shard)


def _score(args: argparse.Namespace, genes, shard) -> int:
  """`run` once the inputs are checked and --out is locked."""
  from enformer.distributed import client_for
  from enformer.genes import score_genes
  from enformer.variants.background import Background

  options = dict(
      settings=scoring_settings(args),
      gene_types=args.gene_types,
      genes=genes,
      gene_stat=args.gene_stat,
      overwrite=args.overwrite,
      tsv=args.tsv,
      progress=not args.quiet,
      run_settings={'command': ' '.join(sys.argv)},
      shard=shard,
      background=Background.load(args.background) if args.background else None,
  )
  with client_for(args.workers, args.scheduler) as client:
    predictor = _common.model_for(args, client)
    result = score_genes(
        predictor, args.fasta, args.vcf, args.gtf, args.out, client=client, **options
    )
  scores = result.scores
  if args.fit_background:
    Background.fit(
        {name: scores.scores[name] for name in ('SED', 'logSED')}, scores.target_ids
    ).save(args.fit_background)
    result.paths['background'] = [args.fit_background]
  print(result.summary.format(), file=sys.stderr)
  resumed = (
      f', resumed {result.chunks_resumed}/{result.chunks_total} chunks'
      if result.chunks_resumed
      else ''
  )
  print(
      f'Scored {len(scores.snp)} variants against {result.num_genes} genes: {len(scores)} '
      f'variant-gene pairs x {len(scores.target_ids)} tracks in {result.seconds:.1f} s'
      f'{resumed}.',
      file=sys.stderr,
  )
  print_written(result.paths)
  return 0
