"""`enformer predict`: predict genomic regions from a FASTA with a TF-Hub module, SavedModel or
checkpoint."""

import argparse

from enformer.cli import _common
from enformer.cli._inputs import (check_files, check_many, check_model, check_output_path)

DESCRIPTION = """Predict genomic tracks for regions of a genome.

Each region (--region chr:start-end, 1-based inclusive, or every line of --bed) is resized around
its centre to the model's input length (393,216 bp for the published TF-Hub module; sequence past
chromosome ends is N-padded) and predicted. Writes to --out:
  predictions.h5 (or .npz)   [regions, bins, tracks] with bin coordinates and track names
  <head>_<track>_<id>.bw     bigWig per chosen track (chromosome sizes from the FASTA index)
  <head>_<track>_<id>.bedGraph  with --bedgraph
  NNNN_<region>.png          the chosen tracks (CAGE on log10(1+x)); --observed adds measured tracks
                             with the Pearson r of log2(1+x)
A used --out is refused unless --overwrite, which replaces the files an earlier predict wrote
there and keeps all others; a region entirely past its chromosome's end is an error.

Models with extra input channels (input_channels = 4 + E, e.g. one-hot + conservation) take E
--extra-track bigWigs in channel order: raw per-base values over the same N-padded input interval,
missing data and positions past chromosome ends = 0, rounded to float16 (as `enformer make-dataset
--input-track` stores them for training). A checkpoint's input_channels is read from the checkpoint.

Examples:
  enformer predict --model https://tfhub.dev/deepmind/enformer/1 --fasta hg38.fa \\
      --region chr11:5,225,001-5,230,000 --targets targets_human.txt \\
      --tracks CAGE:K562 41 --out out/
  enformer predict --model exported_model/ --fasta hg38.fa --bed promoters.bed --batch-size 2 \\
      --out out/
  enformer predict --model runs/atac --fasta hg38.fa --region chr1:1,000,001-1,100,000 \\
      --head atac --extra-track phyloP.bw --observed 0=atac_observed.bw --out out/
      # a fine-tuned one-hot + conservation model: the best checkpoint of its run folder
"""


def register(subparsers) -> None:
  parser = _common.add_parser(
      subparsers,
      'predict',
      help='predict tracks for genomic regions (FASTA + region/BED)',
      description=DESCRIPTION,
  )
  _common.add_model_argument(parser)
  _common.add_fasta_argument(parser)
  where = parser.add_mutually_exclusive_group(required=True)
  where.add_argument(
      '--region', action='append', help='chrom:start-end, 1-based inclusive (repeatable)'
  )
  where.add_argument('--bed', help='BED file of regions (batch mode)')
  where.add_argument(
      '--gtf',
      help='gene annotation (GTF, plain or gzip): predict each gene in a '
      'window centred on its first TSS and write expression.h5, expression.h5ad '
      '(and --tsv: expression.tsv), genes x tracks: the prediction summed over '
      "each TSS's bin and its two neighbours, summed over the gene's TSSs",
  )
  genes = parser.add_argument_group('genes (with --gtf)')
  genes.add_argument(
      '--genes',
      default=None,
      help='only these genes: comma-separated ids or names, or a file of them',
  )
  genes.add_argument(
      '--gene-types',
      type=_common.names,
      default=None,
      help='only these gene types, e.g. protein_coding,lncRNA',
  )
  genes.add_argument(
      '--per-tss', action='store_true', help='one window and one row per TSS (default: per gene)'
  )
  genes.add_argument('--tsv', action='store_true', help='also write expression.tsv')
  _common.add_targets_argument(parser)
  _common.add_tracks_argument(parser)
  _common.add_out_argument(parser, help='output folder (created)')
  parser.add_argument('--head', default='human', help='output head')
  parser.add_argument(
      '--batch-size', type=_common.positive_int, default=1, help='regions per model call'
  )
  parser.add_argument(
      '--format', choices=('h5', 'npz'), default='h5', help='predictions file format'
  )
  parser.add_argument('--bedgraph', action='store_true', help='also write bedGraph files')
  parser.add_argument('--no-bigwig', action='store_true', help='do not write bigWig files')
  parser.add_argument(
      '--max-plots', type=_common.non_negative_int, default=10, help='PNGs for the first N regions'
  )
  _common.add_overwrite_argument(parser)
  parser.add_argument(
      '--observed',
      nargs='+',
      default=[],
      metavar='TRACK=BIGWIG',
      help='observed coverage to draw under a predicted track, e.g. '
      '4799=keratinocyte_cage.bw (the track is an index, identifier or '
      'description substring matching one track)',
  )
  _common.add_extra_track_argument(parser)
  _common.add_n_value_argument(parser)
  _common.add_quiet_argument(parser)
  _common.add_cluster_arguments(parser, 'batches of regions')
  _common.add_model_config_arguments(parser)
  _common.add_precision_argument(parser)
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  # The user's inputs first: a bad file is reported before TensorFlow and the model load.
  check_files(
      (args.fasta, '--fasta', 'fasta'),
      (args.bed, '--bed', 'text'),
      (args.targets, '--targets', 'text'),
  )
  check_many(args.extra_track, '--extra-track', 'bigwig')
  check_model(args.model)
  _common.model_config_from_args(args)
  check_output_path(args.out, '--out', folder=True)
  _common.check_unused_output_folder(args.out, args.overwrite)
  if args.gtf:
    return _predict_genes(args)
  from enformer.io.bed import parse_region, read_bed
  from enformer.io.fasta import FastaStringExtractor
  from enformer.io.targets import parse_track_files, read_targets

  regions = read_bed(args.bed) if args.bed else [parse_region(r) for r in args.region]
  with FastaStringExtractor(args.fasta) as extractor:
    extractor.check_regions(regions)
  targets = read_targets(args.targets) if args.targets else None
  observed = parse_track_files(args.observed, 'observed')  # Resolved by predict_to_files.
  check_many(observed.values(), '--observed', 'bigwig')
  # One run per --out: a second run stops here, naming the first, before loading the model.
  with _common.output_lock(args.out):
    return _predict(args, regions, targets, observed)


def _predict(args: argparse.Namespace, regions, targets, observed) -> int:
  """`run` once the inputs are checked and --out is locked."""
  from enformer.distributed import client_for
  # A DistributedError (e.g. every worker left) reaches the one error boundary (`_errors`).
  with client_for(getattr(args, 'workers', None), getattr(args, 'scheduler', None)) as client:
    return _predict_with(args, regions, targets, observed, client)


def _predict_with(args: argparse.Namespace, regions, targets, observed, client) -> int:
  """`_predict` in this process (client None) or on the Dask cluster of `client`."""
  from enformer.distributed import fetch_model_info
  from enformer.io.targets import select_tracks
  # TensorFlow: only once the inputs are checked.
  from enformer.inference.regions import PredictionOutputs, predict_to_files

  model = _common.model_for(args, client)
  # With a cluster the workers load the model; this process fetches its shape from one.
  predictor = model if client is None else fetch_model_info(client, model)
  if args.head not in predictor.heads:
    raise ValueError(f'--head {args.head!r} is not a head of the model: {sorted(predictor.heads)}.')
  num_tracks = predictor.heads[args.head]
  tracks = select_tracks(targets, args.tracks, num_tracks) if args.tracks else None
  print(f'{predictor}; {len(regions)} region(s).')
  outputs = PredictionOutputs(
      output_format=args.format,
      bigwig=not args.no_bigwig,
      bedgraph=args.bedgraph,
      max_plots=args.max_plots,
      observed=observed,
  )
  summary = predict_to_files(
      model,
      args.fasta,
      regions,
      args.out,
      head=args.head,
      tracks=tracks,
      targets=targets,
      batch_size=args.batch_size,
      outputs=outputs,
      extra_tracks=args.extra_track,
      neutral_value=args.n_value,
      progress=not args.quiet,
      overwrite=args.overwrite,
      client=client,
  )
  print(
      f'Predictions: {summary["predictions"]} ({summary["regions"]} regions × '
      f'{predictor.output_length} bins × {summary["tracks"]} tracks)'
  )
  for key in ('bigwig', 'bedgraph', 'plots'):
    if summary[key]:
      print(f'{key}: {len(summary[key])} file(s), e.g. {summary[key][0]}')
  return 0


def _predict_genes(args: argparse.Namespace) -> int:
  """`enformer predict --gtf`: expression per gene (or TSS) at TSS-centred windows."""
  import os

  check_files((args.gtf, '--gtf', None if args.gtf.endswith('.gz') else 'text'))
  with _common.output_lock(args.out):
    from enformer.distributed import client_for
    from enformer.genes.predict import EXPRESSION_FILES, predict_gene_expression

    with client_for(getattr(args, 'workers', None), getattr(args, 'scheduler', None)) as client:
      result = predict_gene_expression(
          _common.model_for(args, client),
          args.fasta,
          args.gtf,
          args.out,
          head=args.head,
          targets=args.targets,
          gene_types=args.gene_types,
          genes=_common.names_or_file(args.genes),
          per_tss=args.per_tss,
          tsv=args.tsv,
          batch_size=args.batch_size,
          extra_tracks=args.extra_track,
          neutral_value=args.n_value,
          progress=not args.quiet,
          overwrite=args.overwrite,
          client=client,
      )
  rows, tracks = result.expression.shape
  names = [EXPRESSION_FILES[k] for k in ('h5', 'h5ad')] + (
      [EXPRESSION_FILES['tsv']] if args.tsv else []
  )
  print(
      f'Expression of {rows} {"TSSs" if args.per_tss else "genes"} x {tracks} tracks: '
      f'{", ".join(os.path.join(args.out, n) for n in names)}'
  )
  return 0
