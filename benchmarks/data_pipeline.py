"""Data pipeline throughput vs one training step of the small Enformer.

Measures records/s of get_dataset (read + decode + augment, 4 parallel reads and calls) on
  * the synthetic training data (4,096 bp, 32 bins × 4 tracks), and
  * Basenji2-human-shaped records (131,072 bp one-hot, 896 bins × 5,313 float16 targets; random
    values, so ZLIB cannot shrink the targets — like real coverage),
and the time of one forward+backward step of Enformer(channels=384, num_heads=4,
num_transformer_layers=2) on a batch of the synthetic data. The ratio says how many training
steps per second the input pipeline could feed.

Usage: python benchmarks/data_pipeline.py [--records 24] [--batch-size 8] [--skip-human-shaped]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import tensorflow as tf


def records_per_second(path: str, *, repeats: int, parallel: int, augment: bool) -> float:
  from enformer.data import basenji

  dataset = basenji.get_dataset(
      path,
      'train',
      settings=basenji.DatasetSettings(
          repeat=repeats,
          augment=augment,
          seed=0,
          num_parallel_reads=parallel,
          num_parallel_calls=parallel,
      ),
  )
  iterator = iter(dataset)
  next(iterator)  # Start-up (file open, tracing) is not throughput.
  count, start = 0, time.perf_counter()
  for example in iterator:
    count += 1
  del example
  return count / (time.perf_counter() - start)


def write_human_shaped(path: str, records: int) -> None:
  from enformer.data.write import BasenjiWriter

  rng = np.random.default_rng(0)
  sequence_length, target_length, num_targets = 131_072, 896, 5313
  crop = (sequence_length - target_length * 128) // 2
  with BasenjiWriter(
      path,
      sequence_length=sequence_length,
      target_length=target_length,
      num_targets=num_targets,
      crop_bp=crop,
      overwrite=True,
  ) as writer:
    for _ in range(records):
      sequence = np.eye(4, dtype=bool)[rng.integers(0, 4, sequence_length)]
      target = rng.gamma(0.5, 2.0, (target_length, num_targets)).astype(np.float16)
      writer.add('train', sequence, target)


def training_step_seconds(batch, steps: int = 3) -> float:
  import sonnet as snt
  from enformer import Enformer

  model = Enformer(
      channels=384,
      num_heads=4,
      num_transformer_layers=2,
      target_length=None,
      heads={'human': int(batch['target'].shape[-1])},
  )
  optimizer = snt.optimizers.Adam(1e-4)

  @tf.function
  def step(sequence, target):
    with tf.GradientTape() as tape:
      prediction = model(sequence, is_training=True)['human']
      loss = tf.reduce_mean(tf.keras.losses.poisson(target, prediction))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(gradients, model.trainable_variables)
    return loss

  step(batch['sequence'], batch['target'])  # Trace and create variables.
  start = time.perf_counter()
  for _ in range(steps):
    step(batch['sequence'], batch['target']).numpy()
  return (time.perf_counter() - start) / steps


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--records', type=int, default=24, help='Basenji2-human-shaped records.')
  parser.add_argument('--batch-size', type=int, default=8)
  parser.add_argument('--parallel', type=int, default=4)
  parser.add_argument('--skip-human-shaped', action='store_true')
  args = parser.parse_args()

  from enformer.data import basenji, synthetic

  with tempfile.TemporaryDirectory() as tmp:
    small = str(
        synthetic.make_synthetic_dataset(
            os.path.join(tmp, 'synthetic'), train_size=512, valid_size=8, test_size=8
        )
    )
    rows = []
    for augment in (False, True):
      rate = records_per_second(small, repeats=4, parallel=args.parallel, augment=augment)
      rows.append(('synthetic 4,096 bp, [32, 4]', augment, rate))
    if not args.skip_human_shaped:
      human = os.path.join(tmp, 'human_shaped')
      write_human_shaped(human, args.records)
      for augment in (False, True):
        rate = records_per_second(human, repeats=2, parallel=args.parallel, augment=augment)
        rows.append(('Basenji2 human 131,072 bp, [896, 5313]', augment, rate))

    batch = next(iter(basenji.get_dataset(small, 'train', batch_size=args.batch_size)))
    step = training_step_seconds(batch)

  print(
      f'\nInput pipeline: get_dataset read + decode (+ augment), {args.parallel} parallel '
      f'reads/calls, {os.cpu_count()} CPUs'
  )
  for name, augment, rate in rows:
    print(f'  {name:42s} augment={str(augment):5s} {rate:9.1f} records/s')
  print(
      f'\nTraining step (forward+backward+Adam) of Enformer(channels=384, num_heads=4, '
      f'num_transformer_layers=2) on a batch of {args.batch_size} × 4,096 bp: '
      f'{step * 1000:.0f} ms → needs {args.batch_size / step:.1f} records/s'
  )
  synthetic_rate = rows[1][2]
  print(
      f'Pipeline headroom on the synthetic data (augmented): '
      f'{synthetic_rate / (args.batch_size / step):.1f}× what training consumes.'
  )


if __name__ == '__main__':
  main()
