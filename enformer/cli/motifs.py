"""`enformer motifs`: TF-MoDISco patterns of chosen tracks, named by TOMTOM against JASPAR."""

import argparse
import os
import sys

from enformer.cli import _common
from enformer.cli._inputs import check_files, check_model, check_output_path

DESCRIPTION = """\
Which transcription-factor motifs drive chosen tracks? For every region the contribution scores
of the tracks' sum over the region's output bins are computed (--method grad: batched gradients,
hypothetical contributions = gradient minus its mean over the 4 bases; --method ism: in-silico
mutagenesis of the window), the --window-size bp around each region's centre go to TF-MoDISco
(modisco-lite), and TOMTOM (memelite) names each pattern by its best matches in JASPAR CORE
vertebrates (offline, from pyjaspar) or a MEME file of your own (--motif-db).

Regions: a BED file (--bed), or the --top N peaks of the tracks' predicted signal in an `enformer
predict` output (--predictions).

Writes into --out: contributions.h5 (one-hot, hypothetical and actual contributions in the layout
`modisco motifs --h5py` reads), modisco.h5 (modisco-lite's format), motifs.tsv (pattern, sign,
num_seqlets, match_rank, match_id, match_name, q_value, p_value) and report.html with a logo of
each pattern beside its best matches. The contribution step is resumable: rerun the same command
after an interruption. --workers N / --scheduler ADDRESS run its chunks of regions on a Dask
cluster (same output; a killed run resumes with or without the cluster).

--scan MOTIF_ID ... --vcf VCF: which of these known motifs each variant creates or breaks. FIMO
(memelite) scans the REF and ALT alleles with their flanks; a motif is lost when the REF allele
has a hit (p < 1e-4) and the ALT allele's best p-value is at least 10 times larger (no hit: p = 1),
gained in the opposite case. Writes scan.tsv (chrom, pos, id, ref, alt, motif_gained, motif_lost,
then p_ref:ID and p_alt:ID per motif); no model is needed. --scan MOTIF_ID ... --bed BED: every
FIMO hit (p < 1e-4, either strand) in the regions, in genome coordinates: scan_regions.tsv (chrom,
start, end, strand, motif_id, motif_name, score, p_value, region)."""


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'motifs',
      help='TF-MoDISco motifs of chosen tracks, matched to JASPAR with TOMTOM',
      description=DESCRIPTION,
      epilog='Example: enformer motifs --model enformer_ckpt --fasta hg38.fa --bed peaks.bed '
      '--tracks CAGE:K562 --targets targets_human.txt --out motifs/',
  )
  _common.add_model_argument(parser).required = False  # Not with --scan.
  _common.add_fasta_argument(parser)
  where = parser.add_mutually_exclusive_group()
  where.add_argument('--bed', help='BED file of the regions to explain')
  where.add_argument(
      '--predictions',
      metavar='FILE',
      help='an `enformer predict` output (HDF5 or npz): explain its --top peaks',
  )
  parser.add_argument(
      '--top',
      type=_common.positive_int,
      default=None,
      metavar='N',
      help="with --predictions: the N strongest peaks of the tracks' summed "
      'prediction, at least --window-size bp apart',
  )
  parser.add_argument('--head', default='human', help='output head')
  _common.add_tracks_argument(parser)
  _common.add_targets_argument(parser)
  parser.add_argument(
      '--method',
      choices=('grad', 'ism'),
      default='grad',
      help='grad: gradients (batched); ism: saturation mutagenesis of the window',
  )
  parser.add_argument(
      '--window-size',
      type=_common.positive_int,
      default=400,
      metavar='BP',
      help="bp around each region's centre kept for MoDISco",
  )
  parser.add_argument(
      '--motif-db',
      default=None,
      metavar='MEME',
      help='MEME file of motifs to match (default: JASPAR2026 CORE vertebrates, '
      'shipped with pyjaspar)',
  )
  parser.add_argument(
      '--matches',
      type=_common.positive_int,
      default=3,
      metavar='K',
      help='TOMTOM matches listed per pattern',
  )
  parser.add_argument(
      '--batch-size',
      type=_common.positive_int,
      default=8,
      help='regions per gradient batch (ISM: mutants per forward pass)',
  )
  parser.add_argument(
      '--chunk-size',
      type=_common.positive_int,
      default=64,
      help='regions per saved chunk (the unit of resuming)',
  )
  parser.add_argument(
      '--scan',
      nargs='+',
      default=None,
      metavar='MOTIF_ID',
      help='motif ids (JASPAR, e.g. MA0139 for CTCF, or of --motif-db) to scan '
      'on the REF and ALT alleles of --vcf with FIMO',
  )
  parser.add_argument('--vcf', default=None, help='with --scan: the variants')
  _common.add_out_argument(parser, help='output folder (created)')
  _common.add_n_value_argument(parser)
  _common.add_quiet_argument(parser)
  _common.add_model_config_arguments(parser)
  _common.add_overwrite_argument(parser)
  _common.add_cluster_arguments(parser, 'the contribution step (chunks of regions)')
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  if args.scan:
    return _scan(args)
  if args.vcf:
    raise ValueError(
        '--vcf goes with --scan MOTIF_ID ...: the motifs to look for around the variants.'
    )
  missing = [
      flag
      for flag, value in (
          ('--model', args.model),
          ('--tracks', args.tracks),
          ('--bed or --predictions', args.bed or args.predictions),
      )
      if not value
  ]
  if missing:
    raise ValueError(
        f'{", ".join(missing)} required: the model, the tracks to explain and the '
        'regions (or --scan MOTIF_ID ... --vcf VCF to scan variants for motifs).'
    )
  # The user's inputs first: a bad file is reported before TensorFlow and the model load.
  check_files(
      (args.fasta, '--fasta', 'fasta'),
      (args.targets, '--targets', 'text'),
      (args.bed, '--bed', 'text'),
      (args.motif_db, '--motif-db', 'text'),
  )
  if args.predictions:
    kind = 'npz' if args.predictions.endswith('.npz') else 'h5'
    check_files((args.predictions, '--predictions', kind))
    if args.top is None:
      raise ValueError('--predictions needs --top N: how many of its strongest peaks to explain.')
  elif args.top is not None:
    raise ValueError(
        '--top picks peaks from an `enformer predict` output: pass it with '
        '--predictions FILE (or give the regions with --bed).'
    )
  check_model(args.model)
  _common.model_config_from_args(args)
  check_output_path(args.out, '--out', folder=True)
  _common.check_unused_output_folder(args.out, args.overwrite)
  from enformer.io.bed import read_bed
  from enformer.io.fasta import FastaStringExtractor
  from enformer.io.targets import read_targets

  targets = read_targets(args.targets) if args.targets else None
  tracks = list(args.tracks)
  regions = None
  if args.bed:
    regions = read_bed(args.bed)
    with FastaStringExtractor(args.fasta) as extractor:
      extractor.check_regions(regions)

  # One run per --out: a second run stops here, naming the first, before loading the model.
  with _common.output_lock(args.out):
    return _motifs(args, targets, tracks, regions)


def _motifs(args: argparse.Namespace, targets, tracks, regions) -> int:
  """`run` once the inputs are checked and --out is locked."""
  from enformer.distributed import client_for
  from enformer.interpret import motifs

  if regions is None:
    regions = motifs.top_regions(
        args.predictions, tracks, args.top, width=args.window_size, targets=targets
    )
  database = motifs.load_motif_db(args.motif_db)
  with client_for(args.workers, args.scheduler) as client:
    # With a cluster the workers load the model; this process loads no weights.
    predictor = _common.model_for(args, client)
    result = motifs.find_motifs(
        predictor,
        args.fasta,
        regions,
        args.out,
        tracks=tracks,
        head=args.head,
        targets=targets,
        method=args.method,
        window=args.window_size,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        motif_db=database,
        num_matches=args.matches,
        neutral_value=args.n_value,
        model_id=_common.model_id(args),
        progress=not args.quiet,
        overwrite=args.overwrite,
        client=client,
    )
  print(result.summary())
  resumed = f', resumed {result.chunks_resumed} chunks' if result.chunks_resumed else ''
  print(
      f'wrote {os.path.join(args.out, "")}{{contributions.h5, modisco.h5, motifs.tsv, '
      f'report.html}} in {result.seconds:.1f} s ({result.regions_per_second:.1f} regions/s '
      f'for the contributions{resumed})',
      file=sys.stderr,
  )
  return 0


def _scan(args: argparse.Namespace) -> int:
  """--scan: FIMO on the REF and ALT alleles of --vcf, or over the --bed regions (no model)."""
  if bool(args.vcf) == bool(args.bed):
    raise ValueError(
        '--scan needs --vcf VCF (which motifs each variant creates or breaks) or '
        '--bed BED (every hit in the regions), not both.'
    )
  if args.workers or args.scheduler:
    raise ValueError(
        '--workers / --scheduler run the contribution step on a Dask cluster; '
        '--scan runs no model: drop them.'
    )
  check_files(
      (args.fasta, '--fasta', 'fasta'),
      (args.vcf, '--vcf', 'vcf'),
      (args.bed, '--bed', 'text'),
      (args.motif_db, '--motif-db', 'text'),
  )
  check_output_path(args.out, '--out', folder=True)
  _common.check_unused_output_folder(args.out, args.overwrite)
  from enformer.interpret import motifs, scan

  database = motifs.load_motif_db(args.motif_db)
  if args.bed:
    from enformer.io.bed import read_bed

    table = scan.scan_regions_to_folder(
        args.fasta,
        read_bed(args.bed),
        args.out,
        args.scan,
        database=database,
        overwrite=args.overwrite,
    )
    print(
        f'{len(table)} hits of {len(args.scan)} motifs in {table["region"].nunique()} of the '
        'regions'
    )
    print(f'wrote {os.path.join(args.out, scan.REGION_SCAN_FILE)}', file=sys.stderr)
    return 0
  table = scan.scan_to_folder(
      args.fasta, args.vcf, args.out, args.scan, database=database, overwrite=args.overwrite
  )
  gained = int((table['motif_gained'] != '').sum())
  lost = int((table['motif_lost'] != '').sum())
  print(
      f'{len(table)} variants scanned for {len(args.scan)} motifs: {gained} create one, '
      f'{lost} break one'
  )
  print(f'wrote {os.path.join(args.out, scan.SCAN_FILE)}', file=sys.stderr)
  return 0
