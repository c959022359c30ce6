"""`enformer score-genes`: VCF × GTF → gene-level variant effects (SED, logSED), Borzoi sed.h5."""

import argparse
import re
import sys

from enformer.cli import _common
from enformer.cli._inputs import check_files, check_model, check_output_path
from enformer.cli.score_variants import INDEL_RULE, _shifts
from enformer.io.outputs import file_in_folder

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


def _names(text: str):
  """'a,b' → ['a', 'b'] (the --gene-types / --genes parser of the gene commands)."""
  return [value.strip() for value in text.split(',') if value.strip()]


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers, 'score-genes',
      help='score VCF variants against the genes of a GTF (SED/logSED per gene and track) '
      "into Borzoi's sed.h5 layout",
      description=(
          'Predicts the reference and alternative window of every VCF variant (as '
          'score-variants) and, for each gene with a TSS in the output, writes REF and ALT '
          'expression at its TSSs, SED and logSED per track in the sed.h5 layout of Borzoi\'s '
          'borzoi_sed.py (si, gene, snp, chr, pos, ref_allele, alt_allele, target_ids, '
          'target_labels, SED, logSED, REF, ALT). Resumable; --workers/--scheduler and --shard '
          'K/N as score-variants (join shards with `enformer merge-scores`).'),
      epilog=GENE_RULE + '\n\n' + INDEL_RULE)
  _common.add_model_argument(parser)
  _common.add_fasta_argument(parser)
  parser.add_argument('--vcf', required=True, help='variants (VCF, plain or bgzip)')
  parser.add_argument('--gtf', required=True,
                      help='gene annotation (GENCODE / Ensembl GTF, plain or gzip); chr1/1 '
                      'naming is matched to the FASTA')
  parser.add_argument('--gene-types', type=_names, default=None,
                      help='keep only these gene types, e.g. protein_coding,lncRNA')
  parser.add_argument('--genes', default=None,
                      help='keep only these genes: comma-separated ids or names, or a file of '
                      'them (one per line)')
  parser.add_argument('--gene-stat', choices=('sum', 'max'), default='sum',
                      help="combine a gene's TSSs by sum (default) or max")
  _common.add_targets_argument(parser)
  _common.add_out_argument(parser, help='output HDF5 file, e.g. sed.h5, or a folder (then '
                           'FOLDER/sed.h5); --tsv writes the table beside it')
  parser.add_argument('--tsv', action='store_true',
                      help='also write a tidy TSV (one row per variant, gene and track)')
  parser.add_argument('--background', default=None, metavar='FIT',
                      help='fitted background (.npz from --fit-background): adds SED_quantile '
                      'and logSED_quantile, the signed quantile of |score| among the '
                      "background's, in [-1, 1]")
  parser.add_argument('--fit-background', default=None, metavar='NPZ',
                      help='fit a background on the scores of this run (e.g. common variants: '
                      'pass them as --vcf) and save its per-track SED and logSED quantiles here')
  parser.add_argument('--head', default='human', help='output head to score')
  parser.add_argument('--rc', action='store_true',
                      help='average with the reverse-complement predictions')
  parser.add_argument('--shifts', type=_shifts, default=[0],
                      help='window shifts in bp to average over, e.g. -1,0,1 (default: 0)')
  parser.add_argument('--batch-size', type=_common.positive_int, default=4,
                      help='sequences per forward pass')
  parser.add_argument('--no-incremental', action='store_true',
                      help='full forward passes for every allele (default: SNVs reuse the '
                      'reference conv-tower output; exact within float32 rounding)')
  parser.add_argument('--chunk-size', type=_common.positive_int, default=64,
                      help='variants per saved chunk (the unit of resuming)')
  parser.add_argument('--ref-mismatch', choices=('skip', 'error'), default='skip',
                      help='REF allele differs from the genome: skip and count, or stop')
  _common.add_overwrite_argument(
      parser, help=_common.OVERWRITE_HELP + ' (a finished output; unfinished runs that differ '
      'are discarded)')
  _common.add_extra_track_argument(parser)
  _common.add_n_value_argument(parser)
  _common.add_quiet_argument(parser)
  _common.add_cluster_arguments(parser, 'chunks of variants')
  parser.add_argument('--shard', default=None, metavar='K/N',
                      help='score only shard K of N (every N-th chunk) into --out; join the N '
                      'files with `enformer merge-scores`')
  _common.add_model_config_arguments(parser)
  _common.add_precision_argument(parser)
  parser._negative_number_matcher = re.compile(r'^-\d+(,-?\d+)*$|^-\d*\.\d+$')
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  import os
  from enformer.io.sad import parse_shard
  from enformer.io.sed import SED_FILE

  check_files((args.vcf, '--vcf', 'vcf'), (args.fasta, '--fasta', 'fasta'),
              (args.gtf, '--gtf', None if args.gtf.endswith('.gz') else 'text'),
              (args.targets, '--targets', 'text'), (args.background, '--background', 'npz'))
  check_model(args.model)
  args.out = file_in_folder(args.out, SED_FILE)
  check_output_path(args.out, '--out')
  if os.path.isfile(args.out) and not args.overwrite:
    raise FileExistsError(f'{args.out} already exists (a finished run). Pass --overwrite to '
                          'replace it, or choose another --out.')
  if args.fit_background:
    check_output_path(args.fit_background, '--fit-background')
    if os.path.exists(args.fit_background) and not args.overwrite:
      raise FileExistsError(f'{args.fit_background} already exists; pass --overwrite to replace '
                            'it.')
  shard = parse_shard(args.shard) if args.shard else None
  if shard and (args.fit_background or args.background):
    raise ValueError('--fit-background and --background need the whole run: score without '
                     '--shard.')
  if shard and args.tsv:
    raise ValueError('A --shard run writes only its shard file; pass --tsv to `enformer '
                     'merge-scores` instead.')
  genes = None
  if args.genes:
    genes = os.path.abspath(args.genes) if os.path.isfile(args.genes) else _names(args.genes)
  with _common.output_lock(args.out):
    return _score(args, genes, shard)


def _score(args: argparse.Namespace, genes, shard) -> int:
  """`run` once the inputs are checked and --out is locked."""
  import os
  from enformer.distributed import ModelSource, client_for
  from enformer.genes import score_genes
  from enformer.variants.background import Background
  model_id = args.model if '://' in args.model else os.path.abspath(args.model)
  if args.precision != 'float32':
    model_id += f' precision={args.precision}'
  options = dict(head=args.head, targets=args.targets, gene_types=args.gene_types, genes=genes,
                 gene_stat=args.gene_stat, batch_size=args.batch_size, reverse_complement=args.rc,
                 shifts=args.shifts, extra_tracks=args.extra_track,
                 ref_mismatch=args.ref_mismatch, chunk_size=args.chunk_size,
                 overwrite=args.overwrite, tsv=args.tsv, model_id=model_id,
                 progress=not args.quiet, run_settings={'command': ' '.join(sys.argv)},
                 incremental=not args.no_incremental, shard=shard, neutral_value=args.n_value,
                 background=Background.load(args.background) if args.background else None)
  with client_for(args.workers, args.scheduler) as client:
    if client is None:
      predictor = _common.load_predictor(args)
    else:
      handle = args.model if '://' in args.model else os.path.abspath(args.model)
      predictor = ModelSource(handle, getattr(args, 'sequence_length', None),
                              dict(_common.predictor_config(args), precision=args.precision))
    result = score_genes(predictor, args.fasta, args.vcf, args.gtf, args.out, client=client,
                         **options)
  scores = result.scores
  if args.fit_background:
    Background.fit({name: scores.scores[name] for name in ('SED', 'logSED')},
                   scores.target_ids).save(args.fit_background)
    result.paths['background'] = [args.fit_background]
  print(result.summary.format(), file=sys.stderr)
  resumed = (f', resumed {result.chunks_resumed}/{result.chunks_total} chunks'
             if result.chunks_resumed else '')
  print(f'Scored {len(scores.snp)} variants against {result.num_genes} genes: {len(scores)} '
        f'variant-gene pairs x {len(scores.target_ids)} tracks in {result.seconds:.1f} s'
        f'{resumed}.', file=sys.stderr)
  for kind, paths in result.paths.items():
    print(f'  {kind}: {", ".join(paths)}', file=sys.stderr)
  return 0
