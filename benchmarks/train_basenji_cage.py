"""Short training run on real data: legacy Basenji CAGE records (../shared/data/basenji_cage).

The data: 20 records (2 ZLIB TFRecord files × 10) of 262,144 bp human sequence with 10 CAGE
tracks in 2,048 bins of 128 bp (`enformer.data.get_dataset(..., layout='legacy')`). A small
Enformer (384 channels, 1 transformer layer, one 10-track head) trains with the package's
training loop (`enformer.training.train`) on random windows of `--window` bp cut from those
records (bin-aligned, targets cut with them), and is evaluated every `--eval-every` steps on the
centre window of every record: the training-set Pearson R per track over (window, bin) pairs.
Windows come from `enformer.training.windows.cut_windows`.

  python benchmarks/train_basenji_cage.py                    # 8,192 bp windows, 600 steps
  python benchmarks/train_basenji_cage.py --window 32768 --steps 1000 --layers 2

Prints the curve (step → loss, training mean Pearson R) and writes it to RUN_DIR/history.jsonl.
"""

import argparse
import os
import pathlib
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / 'shared' / 'data' / 'basenji_cage'


def windows(path: str, window: int, *, random: bool, seed: int):
  """A function returning windows of the records (random: training, else centre windows), and the
  data description."""
  from enformer.data import basenji  # pylint: disable=import-outside-toplevel
  from enformer.training.windows import cut_windows  # pylint: disable=import-outside-toplevel

  info = basenji.load_info(path, 'legacy')

  def make():
    records = basenji.get_dataset(
        path,
        'train',
        layout='legacy',
        settings=basenji.DatasetSettings(
            shuffle=random, repeat=random, seed=seed, deterministic=True, prefetch=None
        ),
    )
    return cut_windows(records, window, random=random, seed=seed)

  make()  # Checks the window against the records now.
  return make, info


def main() -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument('--data', default=str(DEFAULT_DATA), help='legacy Basenji data folder')
  parser.add_argument('--window', type=int, default=8192, help='bp per training window')
  parser.add_argument('--steps', type=int, default=600)
  parser.add_argument('--batch-size', type=int, default=4)
  parser.add_argument('--learning-rate', type=float, default=1e-3)
  parser.add_argument('--warmup-steps', type=int, default=10)
  parser.add_argument('--channels', type=int, default=384)
  parser.add_argument('--layers', type=int, default=1, help='transformer layers')
  parser.add_argument('--eval-every', type=int, default=100)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--run-dir', help='run folder (default: a new temporary folder)')
  args = parser.parse_args()
  if not os.path.isdir(args.data):
    raise SystemExit(f'{args.data} not found: point --data to the legacy basenji_cage folder.')

  from enformer.training import train  # pylint: disable=import-outside-toplevel

  train_windows, info = windows(args.data, args.window, random=True, seed=args.seed)
  centre_windows, _ = windows(args.data, args.window, random=False, seed=args.seed)
  run_dir = args.run_dir or tempfile.mkdtemp(prefix='basenji_cage_run_')
  print(
      f'{args.data}: {info.sequence_length:,} bp records, {info.num_targets} tracks; training on '
      f'random {args.window:,} bp windows, batch {args.batch_size}, {args.steps} steps; '
      f'run folder {run_dir}'
  )
  began = time.perf_counter()
  result = train(
      run_dir=run_dir,
      preset='tiny',
      model_args=dict(
          channels=args.channels,
          num_transformer_layers=args.layers,
          heads={'cage': info.num_targets},
      ),
      train_data={'cage': train_windows},
      valid_data={'cage': centre_windows},
      batch_size=args.batch_size,
      num_steps=args.steps,
      learning_rate=args.learning_rate,
      warmup_steps=args.warmup_steps,
      eval_every=args.eval_every,
      checkpoint_every=args.steps,
      seed=args.seed,
      export_hub=False,
      augment=False,
  )
  seconds = time.perf_counter() - began
  losses = {step: loss for step, _, loss, _ in result.losses}
  print('\nstep  mean loss (last interval)  training Pearson R (centre windows, mean of tracks)')
  previous = 0
  for record in result.validation:
    step = record['step']
    interval = [losses[s] for s in range(previous + 1, step + 1) if s in losses]
    previous = step
    nan = f' ({record["nan_tracks"]} NaN tracks skipped)' if record['nan_tracks'] else ''
    print(f'{step:5d}  {sum(interval) / len(interval):10.4f}  {record["pearson_r"]:10.4f}{nan}')
  print(
      f'{result.steps_per_second:.3f} steps/s; {seconds:.0f} s in all '
      f'(strategy: {result.strategy})'
  )


if __name__ == '__main__':
  main()
