"""`enformer attribute`: gradient × input or in-silico mutagenesis of chosen tracks and bins."""

import argparse

from enformer.cli.predict import (add_extra_track_argument, add_model_config_arguments,
                                  add_n_value_argument)


def register(subparsers) -> None:
  parser = subparsers.add_parser(
      'attribute',
      help='contribution scores (gradient × input or ISM) of chosen tracks/bins for a region',
      description=(
          'Explains the prediction of chosen tracks (--tracks) in chosen output bins (--bins) for '
          'a genomic region: gradient × input of every input base (--method grad, the usage '
          "colab's contribution scores) or in-silico saturation mutagenesis of a window (--method "
          'ism: every base to each alternative, Δ of the mean masked prediction). The region is '
          "resized around its centre to the model's input length. Writes attribution.npz, a "
          'bigWig of per-base scores, tracks.png (predictions + pooled |scores| per bin) and '
          'logo.png (sequence logo of the window; ISM adds a Δ heatmap). Models with extra input '
          'channels (e.g. one-hot + conservation) take --extra-track bigWigs as `enformer '
          'predict` does; gradient × input scores the bases (4 one-hot channels) and the extra '
          'channels\' gradient × input is saved separately (extra_scores in attribution.npz); ISM '
          'mutates bases only and keeps the extra channels.'),
      epilog='Example: enformer attribute --model enformer_ckpt --fasta hg38.fa --region '
      'chr11:5,225,000-5,230,000 --tracks 4828,5111 --bins 447-449 --method grad --out attr/')
  parser.add_argument('--model', required=True,
                      help='TF-Hub handle/URL, SavedModel folder, or Sonnet checkpoint')
  parser.add_argument('--fasta', required=True, help='reference genome FASTA (indexed or indexable)')
  parser.add_argument('--region', required=True,
                      help='chrom:start-end (1-based inclusive); resized to the input length')
  parser.add_argument('--head', default='human', help='output head (default human)')
  parser.add_argument('--tracks', required=True,
                      help='tracks to explain: indices and ranges, e.g. 4828,5111 or 10-12; with '
                      '--targets also identifiers or description substrings (e.g. CAGE:K562)')
  parser.add_argument('--bins', default=None,
                      help='output bins to explain, e.g. 447-449 (default: the 3 central bins)')
  parser.add_argument('--targets', default=None,
                      help='targets table (targets_human.txt) for track names and selection')
  parser.add_argument('--method', choices=('grad', 'ism'), default='grad',
                      help='grad: gradient × input (default); ism: saturation mutagenesis')
  parser.add_argument('--window', default=None,
                      help='chrom:start-end inside the input: bases to mutate (ISM; default the '
                      'target bins) or to draw in the logo (grad; default 100 bp around the top '
                      'score)')
  parser.add_argument('--reduction', choices=('mean', 'sum'), default='mean',
                      help='target = mean (default, as the colab) or sum of the masked predictions')
  parser.add_argument('--batch-size', type=int, default=8,
                      help='ISM: mutant sequences per forward pass (default 8)')
  parser.add_argument('--out', required=True, help='output folder')
  parser.add_argument('--quiet', action='store_true', help='no progress bar')
  add_extra_track_argument(parser)
  add_n_value_argument(parser)
  add_model_config_arguments(parser)
  parser.set_defaults(func=run)


def _track_selectors(text: str):
  """'4828,5111' / '10-12' / 'CAGE:K562' → list of selectors (ranges expanded)."""
  from enformer.attribution import parse_index_list
  selectors = []
  for part in text.split(','):
    part = part.strip()
    if not part:
      continue
    try:
      selectors.extend(parse_index_list(part))
    except ValueError:
      selectors.append(part)
  return selectors


def run(args: argparse.Namespace) -> int:
  import os

  import numpy as np

  from enformer import attribution, attribution_plots
  from enformer.cli.predict import load_predictor
  from enformer.io.bed import format_region, parse_region
  from enformer.io.bigwig import write_bigwig
  from enformer.io.fasta import FastaStringExtractor
  from enformer.io.targets import read_targets, select_tracks, track_labels
  from enformer.predict import model_inputs
  from enformer.sequence import NUM_NUCLEOTIDES

  if not os.path.exists(args.fasta):
    raise FileNotFoundError(f'--fasta {args.fasta} does not exist.')
  if args.batch_size < 1:
    raise ValueError(f'--batch-size must be >= 1, got {args.batch_size}.')
  region = parse_region(args.region)
  window_region = parse_region(args.window) if args.window else None
  targets = read_targets(args.targets) if args.targets else None
  os.makedirs(args.out, exist_ok=True)

  predictor = load_predictor(args)
  if args.head not in predictor.heads:
    raise ValueError(f'--head {args.head!r} is not a head of this model: {list(predictor.heads)}.')
  num_tracks = predictor.heads[args.head]
  tracks = select_tracks(targets, _track_selectors(args.tracks), num_tracks)
  num_bins = predictor.output_length
  bins = (attribution.parse_index_list(args.bins) if args.bins else
          [num_bins // 2 - 1, num_bins // 2, num_bins // 2 + 1][:num_bins])

  extractor = FastaStringExtractor(args.fasta)
  chrom = extractor.resolve_chromosome(region.chrom)
  interval = region.resize(predictor.sequence_length)
  model_input = model_inputs(extractor, [interval], args.extra_track,
                             neutral_value=args.n_value)[0]  # [L, 4 + E]
  one_hot = model_input[:, :NUM_NUCLEOTIDES]
  window = None
  if window_region is not None:
    if extractor.resolve_chromosome(window_region.chrom) != chrom or not (
        interval.start <= window_region.start < window_region.end <= interval.end):
      raise ValueError(f'--window {args.window} must lie inside the model input '
                       f'{format_region(interval)} (the region resized to '
                       f'{predictor.sequence_length:,} bp).')
    window = (window_region.start - interval.start, window_region.end - interval.start)

  result = attribution.attribute_interval(
      predictor, model_input, chrom, interval.start, tracks, bins, head=args.head,
      method=args.method, window=window, reduction=args.reduction, batch_size=args.batch_size,
      progress=not args.quiet)

  labels = track_labels(targets, result.tracks)
  arrays = dict(
      scores=result.scores, pooled=result.pooled, predictions=result.predictions,
      tracks=np.asarray(result.tracks), bins=np.asarray(result.bins),
      track_labels=np.asarray(labels), chrom=chrom, start=result.start, end=result.end,
      bins_start=result.bins_start, window=np.asarray(result.window), method=args.method,
      head=args.head, n_value=args.n_value,
      sequence_index=np.where(one_hot.max(1) == 1, one_hot.argmax(1), 4).astype(np.int8))
  if result.ism is not None:
    arrays['ism'] = result.ism
  if args.extra_track:
    arrays.update(extra_inputs=result.extra_inputs, extra_tracks=np.asarray(args.extra_track))
    if result.extra_scores is not None:
      arrays['extra_scores'] = result.extra_scores
  np.savez_compressed(os.path.join(args.out, 'attribution.npz'), **arrays)

  bigwig_path = os.path.join(args.out, f'{args.method}_scores.bw')
  sizes = extractor.chromosome_sizes
  if result.ism is None:
    blocks = [(chrom, result.start, result.scores)]
  else:  # Only the mutated window has ISM scores.
    w0, w1 = result.window
    blocks = [(chrom, result.start + w0, result.scores[w0:w1])]
  write_bigwig(bigwig_path, sizes, blocks, bin_size=1)

  panels = {f'{label} (track {index})': result.predictions[:, i]
            for i, (index, label) in enumerate(zip(result.tracks, labels))}
  method_label = ('gradient × input' if args.method == 'grad' else
                  'ISM −mean Δ (window)')
  bins_interval = (chrom, result.bins_start, result.bins_end)
  attribution_plots.plot_tracks_with_contributions(
      panels, result.pooled, bins_interval, contribution_label=f'|{method_label}| per bin',
      highlight_bins=result.bins, path=os.path.join(args.out, 'tracks.png'))
  w0, w1 = result.window
  window_text = f'{chrom}:{result.start + w0 + 1:,}-{result.start + w1:,}'
  if result.ism is None:
    attribution_plots.plot_contribution_logo(
        one_hot[w0:w1], result.scores[w0:w1], start=result.start + w0 + 1,
        title=f'gradient × input, {window_text}', path=os.path.join(args.out, 'logo.png'))
  else:
    attribution_plots.plot_ism(one_hot[w0:w1], result.ism, start=result.start + w0 + 1,
                               title=f'in-silico mutagenesis, {window_text}',
                               path=os.path.join(args.out, 'logo.png'))
  top = int(np.argmax(np.abs(result.scores)))
  print(f'{args.method}: {format_region(interval)}, head {args.head}, tracks {result.tracks}, '
        f'bins {result.bins[0]}-{result.bins[-1]} '
        f'({chrom}:{result.bins_start + result.bins[0] * 128 + 1:,}-'
        f'{result.bins_start + (result.bins[-1] + 1) * 128:,}); top |score| '
        f'{result.scores[top]:.4g} at {chrom}:{result.start + top + 1:,}')
  print(f'wrote {args.out}/attribution.npz, {os.path.basename(bigwig_path)}, tracks.png, logo.png')
  return 0
