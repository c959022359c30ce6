"""`enformer score-variants`: VCF → SAD/SAR in basenji's sad.h5 layout (resumable)."""

import argparse
import os
import re
import sys
from typing import List

from enformer.cli import _common
from enformer.cli._inputs import check_files, check_model, check_output_path
from enformer.io.outputs import file_in_folder

INDEL_RULE = """Sequences: the reference is the L bp window centred on the variant (kipoiseq
Interval(chrom, pos, pos).resize(L), N-padded past chromosome ends); the alternative applies the
ALT allele inside the same window, as DeepMind's usage notebook does (variant_centered_sequences:
kipoiseq VariantSeqExtractor with anchor = interval.center() - interval.start, which kipoiseq
reads as an absolute coordinate clamped into the window: left of the variant). Insertions and
deletions: the bases left of the variant stay where they are and the ALT allele follows at the
variant's position; an insertion of k bp pushes the last k bases out of the window's right end,
a deletion of k bp pulls the next k reference bases in at the right end. (For a variant within
the first L/2 bp of a chromosome the notebook's anchor lies right of it, so there the left part
moves instead.) SNVs only change the variant's base. N is encoded as --n-value (0 by default, as
enformer.py and the Basenji2 data; 0.25 reproduces the notebook's numbers for windows that reach
a chromosome end or an assembly gap)."""


def _shifts(text: str) -> List[int]:
  try:
    return [int(value) for value in text.split(',') if value.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'--shifts takes comma-separated integers such as -1,0,1, got {text!r}.'
    ) from None


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'score-variants',
      help='score VCF variants (SAD/SAR per track) into a sad.h5-style HDF5',
      description=(
          'Predicts the reference and alternative sequence centred on every VCF variant and '
          'writes, per track, SAD = mean over bins(alt) - mean over bins(ref) and SAR = log2(1 + '
          "alt mean) - log2(1 + ref mean) in basenji's sad.h5 layout. Multi-allelic records are "
          'split; symbolic ALTs, unknown chromosomes and REF mismatches are skipped and counted. '
          'Resumable: rerun the same command after an interruption to continue. --workers N / '
          '--scheduler ADDRESS score chunks on a Dask cluster (same output); --shard K/N scores '
          'a 1/N part for `enformer merge-scores`.'
      ),
      epilog=INDEL_RULE,
  )
  _common.add_model_argument(parser)
  _common.add_fasta_argument(parser)
  parser.add_argument('--vcf', required=True, help='variants (VCF, plain or bgzip)')
  _common.add_targets_argument(parser)
  _common.add_out_argument(
      parser,
      help='output HDF5 file, e.g. scores.h5, or a folder (then '
      'FOLDER/scores.h5); the side files (--tsv, --plot, --pcs) go beside it',
  )
  parser.add_argument(
      '--tsv',
      action='store_true',
      help='also write a long-format TSV (one row per variant and track)',
  )
  parser.add_argument(
      '--plot',
      action='store_true',
      help='also write <out>.png: SAD heatmap of the tracks with the largest effects',
  )
  add_scoring_arguments(
      parser,
      batch_help='sequences per forward pass (refs and alts share batches)',
      incremental_help='full forward passes for every allele (default: SNVs and equal-length '
      'MNVs reuse the reference conv-tower output and recompute only the bins around the '
      'variant; exact within float32 rounding, and faster)',
  )
  parser.add_argument(
      '--transform',
      default=None,
      help='fitted transform (.npz): adds z-scores (SAD_z) to the output',
  )
  parser.add_argument(
      '--pcs',
      type=_common.positive_int,
      default=None,
      help='with --transform: write the top-k PCs per chromosome as '
      'bgzip+tabix TSVs (<out>.PCs.<chrom>.tsv.gz)',
  )
  parser.add_argument(
      '--allow-pickle',
      action='store_true',
      help='allow --transform to be a scikit-learn pickle (runs code from the '
      'file: only for files you trust)',
  )
  parser.add_argument(
      '--save-transform',
      default=None,
      help='save the --transform (e.g. a converted pickle) as .npz here',
  )
  parser.add_argument(
      '--fit-transform',
      default=None,
      help='fit z-score + PCA on the scores of this run (a reference variant '
      'set) and save it as .npz',
  )
  parser.add_argument(
      '--fit-pcs', type=_common.positive_int, default=20, help='components of --fit-transform'
  )
  add_background_arguments(parser, ('SAD', 'SAR'), example='common variants')
  parser.add_argument(
      '--scan',
      nargs='+',
      default=None,
      metavar='MOTIF_ID',
      help='motif ids (JASPAR, e.g. MA0139 for CTCF, or of --motif-db): add '
      'motif_gained / motif_lost per variant (FIMO on the REF and ALT alleles, as '
      '`enformer motifs --scan`) to --out and the --tsv',
  )
  parser.add_argument(
      '--motif-db',
      default=None,
      help='with --scan: a MEME file of motifs (default: JASPAR CORE vertebrates '
      'shipped with pyjaspar)',
  )
  add_run_arguments(
      parser,
      shard_help='score only shard K of N (every N-th chunk) into --out, for batch '
      'schedulers without Dask; join the N files with `enformer merge-scores`',
      precision_extra=(
          '. SAD in bfloat16 is a screen, not a final score (some signs flip and the top '
          'variants change; docs/performance.md): rescore the variants you report in float32'
      ),
  )
  parser.set_defaults(func=run)


def add_scoring_arguments(
    parser: argparse.ArgumentParser, *, batch_help: str, incremental_help: str
) -> None:
  """The flags of `ScoringSettings` that score-variants and score-genes share."""
  parser.add_argument('--head', default='human', help='output head to score')
  parser.add_argument(
      '--rc', action='store_true', help='average with the reverse-complement predictions'
  )
  parser.add_argument(
      '--shifts',
      type=_shifts,
      default=[0],
      help='window shifts in bp to average over, e.g. -1,0,1 (default: 0)',
  )
  parser.add_argument('--batch-size', type=_common.positive_int, default=4, help=batch_help)
  parser.add_argument('--no-incremental', action='store_true', help=incremental_help)
  parser.add_argument(
      '--chunk-size',
      type=_common.positive_int,
      default=64,
      help='variants per saved chunk (the unit of resuming)',
  )
  parser.add_argument(
      '--ref-mismatch',
      choices=('skip', 'error'),
      default='skip',
      help='REF allele differs from the genome: skip and count, or stop',
  )


def add_background_arguments(parser: argparse.ArgumentParser, stats, *, example: str) -> None:
  """--background and --fit-background of the statistics `stats` (e.g. SAD and SAR)."""
  first, second = stats
  parser.add_argument(
      '--background',
      default=None,
      metavar='FIT',
      help=f'fitted background (.npz from --fit-background): adds {first}_quantile '
      f'and {second}_quantile, the signed quantile of |score| among the '
      "background's, in [-1, 1]",
  )
  parser.add_argument(
      '--fit-background',
      default=None,
      metavar='NPZ',
      help=f'fit a background on the scores of this run (e.g. {example}) and '
      f'save its per-track {first} and {second} quantiles here (.npz)',
  )


def add_run_arguments(
    parser: argparse.ArgumentParser, *, shard_help: str, precision_extra: str = ''
) -> None:
  """How a scoring run runs: --overwrite, inputs, --quiet, Dask, --shard, model and precision."""
  _common.add_overwrite_argument(
      parser,
      help=_common.OVERWRITE_HELP + ' (a finished output; unfinished runs that differ '
      'are discarded)',
  )
  _common.add_extra_track_argument(parser)
  _common.add_n_value_argument(parser)
  _common.add_quiet_argument(parser)
  _common.add_cluster_arguments(parser, 'chunks of variants')
  parser.add_argument('--shard', default=None, metavar='K/N', help=shard_help)
  _common.add_model_config_arguments(parser)
  if precision_extra:
    _common.add_precision_argument(parser, extra=precision_extra)
  else:
    _common.add_precision_argument(parser)
  # Let `--shifts -1,0,1` (a value starting with '-') parse like a negative number.
  parser._negative_number_matcher = re.compile(r'^-\d+(,-?\d+)*$|^-\d*\.\d+$')


def check_run_arguments(args: argparse.Namespace, default_name: str):
  """Checks --out (a file, or a folder: then FOLDER/default_name: writable, not a finished run),
  --fit-background (writable, new unless --overwrite) and --shard; returns the shard (K, N) or
  None."""
  from enformer.io.sad import parse_shard

  args.out = file_in_folder(args.out, default_name)  # --out results/ as the folder commands take.
  check_output_path(args.out, '--out')
  if os.path.isfile(args.out) and not args.overwrite:
    raise FileExistsError(
        f'{args.out} already exists (a finished run). Pass --overwrite to '
        'replace it, or choose another --out.'
    )
  if args.fit_background:
    check_output_path(args.fit_background, '--fit-background')
    if os.path.exists(args.fit_background) and not args.overwrite:
      raise FileExistsError(
          f'{args.fit_background} already exists; pass --overwrite to replace it.'
      )
  shard = parse_shard(args.shard) if args.shard else None
  if shard and (args.fit_background or args.background):
    raise ValueError('--fit-background and --background need the whole run: score without --shard.')
  return shard


def scoring_settings(args: argparse.Namespace):
  """The `ScoringSettings` of the command's flags (the model identified by path and precision)."""
  from enformer.variants.pipeline import ScoringSettings

  return ScoringSettings(
      head=args.head,
      targets=args.targets,
      batch_size=args.batch_size,
      reverse_complement=args.rc,
      shifts=args.shifts,
      extra_tracks=args.extra_track,
      neutral_value=args.n_value,
      ref_mismatch=args.ref_mismatch,
      chunk_size=args.chunk_size,
      incremental=not args.no_incremental,
      model_id=_common.model_id(args),
  )


def print_written(paths) -> None:
  """One line per kind of file written (at most three paths each)."""
  for kind, written in paths.items():
    shown = written if len(written) <= 3 else written[:3] + [f'... ({len(written)} files)']
    print(f'  {kind}: {", ".join(shown)}', file=sys.stderr)


def run(args: argparse.Namespace) -> int:
  from enformer.io.sad import SCORES_FILE

  check_files(
      (args.vcf, '--vcf', 'vcf'),
      (args.fasta, '--fasta', 'fasta'),
      (args.targets, '--targets', 'text'),
      (args.transform, '--transform', None),
      (args.background, '--background', 'npz'),
      (args.motif_db, '--motif-db', 'text'),
  )
  check_model(args.model)
  shard = check_run_arguments(args, SCORES_FILE)
  if args.motif_db and not args.scan:
    raise ValueError('--motif-db goes with --scan MOTIF_ID ...: the motifs to look for.')
  if shard and args.scan:
    raise ValueError(
        '--scan needs the whole run: score without --shard, or scan the VCF with '
        '`enformer motifs --scan`.'
    )
  for path, flag in (
      (args.fit_transform, '--fit-transform'),
      (args.save_transform, '--save-transform'),
  ):
    if path:
      check_output_path(path, flag)
  if args.fit_transform and os.path.exists(args.fit_transform) and not args.overwrite:
    raise FileExistsError(f'{args.fit_transform} already exists; pass --overwrite to replace it.')
  if args.pcs is not None and not args.transform:
    raise ValueError(
        '--pcs needs a fitted transform: pass --transform t.npz (fit one with '
        '--fit-transform on a reference variant set).'
    )
  if shard and (args.fit_transform or args.save_transform):
    raise ValueError(
        'A --shard run writes only its shard file; fit or save transforms with '
        '`enformer merge-scores`.'
    )
  from enformer.variants import ScoreTransform  # TensorFlow: only once the inputs are checked.

  transform = None
  if args.transform:
    transform = ScoreTransform.load(args.transform, allow_pickle=args.allow_pickle)
    if args.save_transform:
      transform.save(args.save_transform)
      print(f'Saved the transform as {args.save_transform}', file=sys.stderr)
  database = None
  if args.scan:  # Unknown motif ids stop here, before the model is loaded.
    from enformer.interpret import motifs, scan

    database = motifs.load_motif_db(args.motif_db)
    scan.select_motifs(database, args.scan)
  # One run per --out: a second run stops here, naming the first, before loading the model.
  with _common.output_lock(args.out):
    return _score(args, transform, shard, database)


def _score(args: argparse.Namespace, transform, shard, database=None) -> int:
  """`run` once the inputs are checked and --out is locked."""
  from enformer.distributed import client_for
  from enformer.variants import ScoreTransform, score_vcf
  from enformer.variants.background import Background

  if args.precision != 'float32':
    print(
        f'note: SAD in {args.precision} is a screen (signs of small effects can flip); '
        'rescore the variants you report with --precision float32.',
        file=sys.stderr,
    )
  options = dict(
      settings=scoring_settings(args),
      overwrite=args.overwrite,
      tsv=args.tsv,
      transform=transform,
      num_pcs=args.pcs,
      plot=args.plot,
      progress=not args.quiet,
      run_settings={'command': ' '.join(sys.argv)},
      shard=shard,
      background=Background.load(args.background) if args.background else None,
      scan_motifs=args.scan or (),
      motif_database=database,
  )
  with client_for(args.workers, args.scheduler) as client:
    predictor = _common.model_for(args, client)
    # A DistributedError (e.g. every worker left) reaches the one error boundary (`_errors`).
    result = score_vcf(predictor, args.fasta, args.vcf, args.out, client=client, **options)
  if args.fit_transform:
    fitted = ScoreTransform.fit(
        result.scores.sad, args.fit_pcs, target_ids=result.scores.target_ids
    )
    fitted.save(args.fit_transform)
    result.paths['transform'] = [args.fit_transform]
  if args.fit_background:
    Background.fit(
        {name: result.scores.scores[name] for name in ('SAD', 'SAR')}, result.scores.target_ids
    ).save(args.fit_background)
    result.paths['background'] = [args.fit_background]

  print(result.summary.format(), file=sys.stderr)
  count = len(result.scores)
  resumed = (
      f', resumed {result.chunks_resumed}/{result.chunks_total} chunks'
      if result.chunks_resumed
      else ''
  )
  print(
      f'Scored {count} variants × {result.scores.sad.shape[1]} tracks in '
      f'{result.seconds:.1f} s{resumed}.',
      file=sys.stderr,
  )
  if args.scan:
    annotations = result.scores.annotations
    print(
        f'Motifs ({", ".join(args.scan)}): {int((annotations["motif_gained"] != "").sum())} '
        f'variants create one, {int((annotations["motif_lost"] != "").sum())} break one.',
        file=sys.stderr,
    )
  print_written(result.paths)
  return 0
