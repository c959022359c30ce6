"""`enformer score-variants`: VCF → SAD/SAR in basenji's sad.h5 layout (resumable)."""

import argparse
import re
import sys
from typing import List

from enformer.cli._inputs import check_files, check_model, check_output_path
from enformer.cli.predict import (add_model_config_arguments, add_n_value_argument,
                                  add_precision_argument, model_config_from_args)
from enformer.io.lock import OutputLock

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
    raise argparse.ArgumentTypeError(f'--shifts takes comma-separated integers such as -1,0,1, '
                                     f'got {text!r}.') from None


def register(subparsers) -> None:
  parser = subparsers.add_parser(
      'score-variants',
      help='score VCF variants (SAD/SAR per track) into a sad.h5-style HDF5',
      description=(
          'Predicts the reference and alternative sequence centred on every VCF variant and '
          'writes, per track, SAD = mean over bins(alt) - mean over bins(ref) and SAR = log2(1 + '
          'alt mean) - log2(1 + ref mean) in basenji\'s sad.h5 layout. Multi-allelic records are '
          'split; symbolic ALTs, unknown chromosomes and REF mismatches are skipped and counted. '
          'Resumable: rerun the same command after an interruption to continue.'),
      epilog=INDEL_RULE)
  parser.add_argument('--model', required=True,
                      help='TF-Hub handle/URL, SavedModel folder, or checkpoint folder/prefix '
                      '(checkpoints take the model config flags below)')
  parser.add_argument('--fasta', required=True, help='reference genome FASTA (indexed or indexable)')
  parser.add_argument('--vcf', required=True, help='variants (VCF, plain or bgzip)')
  parser.add_argument('--targets', default=None,
                      help='targets table (targets_human.txt) for target_ids / target_labels')
  parser.add_argument('--out', required=True, help='output HDF5, e.g. scores.h5')
  parser.add_argument('--tsv', action='store_true',
                      help='also write a long-format TSV (one row per variant and track)')
  parser.add_argument('--plot', action='store_true',
                      help='also write <out>.png: SAD heatmap of the tracks with the largest effects')
  parser.add_argument('--head', default='human', help='output head to score (default human)')
  parser.add_argument('--rc', action='store_true',
                      help='average with the reverse-complement predictions')
  parser.add_argument('--shifts', type=_shifts, default=[0],
                      help='window shifts in bp to average over, e.g. -1,0,1 (default 0)')
  parser.add_argument('--batch-size', type=int, default=4,
                      help='sequences per forward pass (refs and alts share batches)')
  add_n_value_argument(parser)
  parser.add_argument('--no-incremental', action='store_true',
                      help='full forward passes for every allele (default: SNVs and equal-length '
                      'MNVs reuse the reference conv-tower output and recompute only the bins '
                      'around the variant; exact within float32 rounding, ~1.6x faster)')
  parser.add_argument('--chunk-size', type=int, default=64,
                      help='variants per saved chunk (the unit of resuming)')
  parser.add_argument('--ref-mismatch', choices=('skip', 'error'), default='skip',
                      help='REF allele differs from the genome: skip and count (default) or stop')
  parser.add_argument('--transform', default=None,
                      help='fitted transform (.npz): adds z-scores (SAD_z) to the output')
  parser.add_argument('--pcs', type=int, default=None,
                      help='with --transform: write the top-k PCs per chromosome as '
                      'bgzip+tabix TSVs (<out>.PCs.<chrom>.tsv.gz)')
  parser.add_argument('--allow-pickle', action='store_true',
                      help='allow --transform to be a scikit-learn pickle (runs code from the '
                      'file: only for files you trust)')
  parser.add_argument('--save-transform', default=None,
                      help='save the --transform (e.g. a converted pickle) as .npz here')
  parser.add_argument('--fit-transform', default=None,
                      help='fit z-score + PCA on the scores of this run (a reference variant '
                      'set) and save it as .npz')
  parser.add_argument('--fit-pcs', type=int, default=20,
                      help='components of --fit-transform (default 20)')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace a finished output (and discard unfinished runs that differ)')
  parser.add_argument('--quiet', action='store_true', help='no progress bar')
  add_model_config_arguments(parser)
  add_precision_argument(parser)
  # Let `--shifts -1,0,1` (a value starting with '-') parse like a negative number.
  parser._negative_number_matcher = re.compile(r'^-\d+(,-?\d+)*$|^-\d*\.\d+$')
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  import os
  from enformer.variants import ScoreTransform

  check_files((args.vcf, '--vcf', 'vcf'), (args.fasta, '--fasta', 'fasta'),
              (args.targets, '--targets', 'text'), (args.transform, '--transform', None))
  check_model(args.model)
  check_output_path(args.out, '--out')
  if os.path.isfile(args.out) and not args.overwrite:
    raise FileExistsError(f'{args.out} already exists (a finished run). Pass --overwrite to '
                          'replace it, or choose another --out.')
  for path, flag in ((args.fit_transform, '--fit-transform'),
                     (args.save_transform, '--save-transform')):
    if path:
      check_output_path(path, flag)
  if args.fit_transform and os.path.exists(args.fit_transform) and not args.overwrite:
    raise FileExistsError(f'{args.fit_transform} already exists; pass --overwrite to replace it.')
  if args.pcs is not None and not args.transform:
    raise ValueError('--pcs needs a fitted transform: pass --transform t.npz (fit one with '
                     '--fit-transform on a reference variant set).')
  transform = None
  if args.transform:
    transform = ScoreTransform.load(args.transform, allow_pickle=args.allow_pickle)
    if args.save_transform:
      transform.save(args.save_transform)
      print(f'Saved the transform as {args.save_transform}', file=sys.stderr)
  # One run per --out: a second run stops here, naming the first, before loading the model.
  with OutputLock(args.out, what=f'--out {args.out}'):
    return _score(args, transform)


def _score(args: argparse.Namespace, transform) -> int:
  """`run` once the inputs are checked and --out is locked."""
  import os
  from enformer.variants import ScoreTransform, score_vcf
  from enformer.inference import load_model  # TensorFlow: only once the arguments are checked.
  predictor = load_model(args.model, sequence_length=args.sequence_length,
                         precision=args.precision, **model_config_from_args(args))
  model_id = args.model if '://' in args.model else os.path.abspath(args.model)
  if args.precision != 'float32':  # Never resume a float32 run's chunks in bfloat16.
    model_id += f' precision={args.precision}'

  result = score_vcf(
      predictor, args.fasta, args.vcf, args.out, head=args.head, targets=args.targets,
      batch_size=args.batch_size, reverse_complement=args.rc, shifts=args.shifts,
      neutral_value=args.n_value,
      ref_mismatch=args.ref_mismatch, chunk_size=args.chunk_size, overwrite=args.overwrite,
      tsv=args.tsv, transform=transform, num_pcs=args.pcs, model_id=model_id,
      plot=args.plot, progress=not args.quiet, run_settings={'command': ' '.join(sys.argv)},
      incremental=not args.no_incremental)
  if args.fit_transform:
    fitted = ScoreTransform.fit(result.scores.sad, args.fit_pcs,
                                target_ids=result.scores.target_ids)
    fitted.save(args.fit_transform)
    result.paths['transform'] = [args.fit_transform]

  print(result.summary.format(), file=sys.stderr)
  count = len(result.scores)
  resumed = (f', resumed {result.chunks_resumed}/{result.chunks_total} chunks'
             if result.chunks_resumed else '')
  print(f'Scored {count} variants × {result.scores.sad.shape[1]} tracks in '
        f'{result.seconds:.1f} s{resumed}.', file=sys.stderr)
  for kind, paths in result.paths.items():
    shown = paths if len(paths) <= 3 else paths[:3] + [f'... ({len(paths)} files)']
    print(f'  {kind}: {", ".join(shown)}', file=sys.stderr)
  return 0
