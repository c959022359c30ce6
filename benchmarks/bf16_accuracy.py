"""Accuracy of bfloat16 inference against float32 on a trained model.

Predictions of a set of windows and SNV effects (SAD = mean over bins(alt) − mean over
bins(ref), per track) are computed in float32 and in bfloat16 (both through the fast path with
exact incremental inference), and compared:
  - predictions: per-track Pearson r (median and minimum over tracks), max |Δ| / max |value|;
  - SAD over all (SNV, track) pairs: Pearson r, sign agreement (pairs with |SAD| above 1e-3 of
    the largest), and the overlap of the top 1% of SNVs ranked by max |SAD| over tracks.

Usage:
  python benchmarks/bf16_accuracy.py --reference ../shared/reference/small   # DeepMind's small
  python benchmarks/bf16_accuracy.py --model enformer_demo/export/human_mouse --fasta \
      enformer_demo/genome/human.fa --windows 8 --snvs 240            # the demo's model
"""

import argparse
import json
import pathlib

import kipoiseq
import numpy as np
import tensorflow as tf

from enformer.inference import fast
from enformer.enformer import Enformer
from enformer.inference.incremental import IncrementalForward
from enformer.inference import load_model
from enformer.io.fasta import FastaStringExtractor
from enformer.sequence import one_hot_encode


def pearson(a: np.ndarray, b: np.ndarray) -> float:
  a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
  return float(np.corrcoef(a, b)[0, 1])


def sad_of(forward: IncrementalForward, reference, positions, rng) -> np.ndarray:
  """SAD [S, N] (first head) of SNVs at `positions` of one kept reference window."""
  window = reference.inputs  # [L, 4]
  alts = np.repeat(window[np.newaxis], len(positions), axis=0)
  for i, p in enumerate(positions):
    alts[i, p] = np.roll(window[p], int(rng.integers(1, 4)))
  alt = forward.alternatives(reference, alts)
  head = next(iter(alt))
  return alt[head].mean(axis=1) - reference.outputs[head].mean(axis=0)


def compare(model: Enformer, windows: np.ndarray, num_snvs: int, seed: int = 0) -> dict:
  """float32 vs bfloat16 on `windows` [W, L, 4] and `num_snvs` SNVs spread over them."""
  length = windows.shape[1]
  forwards = {p: fast.compile_forward(model, length, precision=p) for p in fast.PRECISIONS}
  predictions = {
      p: {
          h: np.concatenate([f(w[np.newaxis])[h].numpy() for w in windows])
          for h in model.head_names
      }
      for p, f in forwards.items()
  }
  result = {'windows': int(len(windows)), 'sequence_length': int(length), 'heads': {}}
  for head in model.head_names:
    f32, bf16 = predictions['float32'][head], predictions['bfloat16'][head]
    tracks = [
        pearson(f32[..., t], bf16[..., t]) for t in range(f32.shape[-1]) if np.std(f32[..., t]) > 0
    ]
    result['heads'][head] = {
        'track_pearson_median': float(np.median(tracks)),
        'track_pearson_min': float(np.min(tracks)),
        'max_rel_error': float(np.abs(bf16 - f32).max() / np.abs(f32).max()),
    }
  per_window = -(-num_snvs // len(windows))
  sads = {}
  for precision, forward in forwards.items():
    incremental = IncrementalForward(forward)
    rng = np.random.default_rng(seed)
    rows = []
    for window in windows:
      margin = length // 8
      positions = rng.choice(np.arange(margin, length - margin), per_window, replace=False)
      reference = incremental.reference(window)  # Once per window, as `score-variants` does.
      for group in range(0, per_window, 8):  # Keeps 8 alternatives' predictions in memory.
        rows.append(sad_of(incremental, reference, positions[group : group + 8], rng))
    sads[precision] = np.concatenate(rows)[:num_snvs]
  f32, bf16 = sads['float32'], sads['bfloat16']
  relevant = np.abs(f32) > 1e-3 * np.abs(f32).max()
  top = max(1, int(round(0.01 * len(f32))))
  rank32 = np.argsort(-np.abs(f32).max(axis=1))[:top]
  rank16 = np.argsort(-np.abs(bf16).max(axis=1))[:top]
  result['sad'] = {
      'snvs': int(len(f32)),
      'tracks': int(f32.shape[1]),
      'pearson': pearson(f32, bf16),
      'sign_agreement': float(np.mean(np.sign(f32[relevant]) == np.sign(bf16[relevant]))),
      'top1pct_overlap': float(len(set(rank32) & set(rank16)) / top),
      'top1pct_size': top,
      'max_abs_error_over_max_abs_sad': float(np.abs(bf16 - f32).max() / np.abs(f32).max()),
  }
  return result


def reference_windows(reference_dir: pathlib.Path):
  config = json.loads((reference_dir / 'config.json').read_text())
  model = Enformer(
      channels=config['channels'],
      num_heads=config['num_heads'],
      num_transformer_layers=config['num_transformer_layers'],
      pooling_type=config['pooling_type'],
  )
  model.build_variables()
  tf.train.Checkpoint(module=model).read(
      str(reference_dir / 'checkpoint' / 'enformer')
  ).assert_consumed()
  io = np.load(reference_dir / 'io.npz')
  return model, np.eye(5, dtype=np.float32)[io['sequence_index']][..., :4]


def fasta_windows(model_path: str, fasta: str, count: int, seed: int):
  predictor = load_model(model_path)
  extractor = FastaStringExtractor(fasta)
  length = predictor.model_sequence_length
  rng = np.random.default_rng(seed)
  chroms = [c for c, size in extractor.chromosome_sizes.items() if size > 2 * length]
  windows = []
  for _ in range(count):
    chrom = chroms[int(rng.integers(len(chroms)))]
    start = int(rng.integers(0, extractor.chromosome_sizes[chrom] - length))
    windows.append(
        one_hot_encode(extractor.extract(kipoiseq.Interval(chrom, start, start + length)))
    )
  return predictor.model, np.stack(windows)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--reference', help="folder of DeepMind's small reference checkpoint")
  parser.add_argument('--model', help='a model folder / checkpoint of this package')
  parser.add_argument('--fasta', help='genome to draw windows from (with --model)')
  parser.add_argument('--windows', type=int, default=8)
  parser.add_argument('--snvs', type=int, default=240)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--json', help='write the numbers to this file')
  args = parser.parse_args()
  if args.reference:
    model, windows = reference_windows(pathlib.Path(args.reference))
  elif args.model and args.fasta:
    model, windows = fasta_windows(args.model, args.fasta, args.windows, args.seed)
  else:
    parser.error('pass --reference DIR, or --model and --fasta')
  result = compare(model, windows, args.snvs, args.seed)
  print(json.dumps(result, indent=1))
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == '__main__':
  main()
