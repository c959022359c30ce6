"""The honest proof that the model and the training loop learn.

A synthetic genome (`enformer.data.synthetic`) whose tracks are a known function of planted motifs
(smoothed motif density; track 0 responds to CTCF, track 1 to SP1, track 2 to AP1 + ½ CREB,
track 3 to CREB + ½ CTCF) is written in the Basenji2 layout; a small Enformer trains on windows
of chr1/chr2 with `enformer.training.train` (the loop `enformer train` runs) and is validated on
the held-out chr3. Validation mean Pearson R over tracks must reach THRESHOLD. Run with `pytest -s`
to see the curve.

Determinism: the run is a fresh Python process with op determinism (train's deterministic=True:
ordered input, seeded shuffling, augmentation, initialisation and dropout) and THREADS intra-op and
inter-op threads, set before TensorFlow initialises. With 2 threads two runs (one alone, one with a
CPU burner running) were identical for 15 steps and then differed in the last bits of the gradient
norm, which at 175 steps moved the final R from 0.948 to 0.961; hence one thread.
Threshold: final validation R measured 0.948 and 0.961 (2 threads), 0.962 (default threads, in
process) and, in earlier runs of this test, 0.953, 0.965 and 0.895: THRESHOLD = 0.85 sits below the
lowest of them, while the first evaluation (step 35, R ≈ 0.28) stays far below it.
"""

import json
import textwrap

import pytest

from conftest import background_run

LENGTH = 2048
NUM_TRACKS = 4
SITES_PER_KB = 1.0  # Planted sites per kb per motif (4 motifs): ~8 sites per 2,048 bp window.
NUM_STEPS = 175
EVAL_EVERY = 35
THRESHOLD = 0.85
THREADS = 1
# No timeout: one process without waits on others cannot hang; its wall time follows the load
# (60 of the 175 steps took 12 and 26 min at load averages of 11-20 on 2 cores).

# Run by conftest.py in a fresh process, started when collection ends (see BACKGROUND_SCRIPT there).
BACKGROUND_SCRIPT = textwrap.dedent('''
    import json, sys
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads({threads})
    tf.config.threading.set_inter_op_parallelism_threads({threads})
    from enformer.data.synthetic import make_synthetic_dataset
    from enformer.training import train
    root = sys.argv[1]
    data = make_synthetic_dataset(root + '/data', sequence_length={length},
                                  num_tracks={num_tracks}, train_size=512, valid_size=32,
                                  test_size=4, seed=3, sites_per_kb={sites_per_kb})
    # Tiny preset (384 channels, 4 attention heads, 1 transformer layer, attention pooling)
    # without dropout; Adam 5e-4 after 10 warm-up steps; batch 8; augmentation on (the default).
    result = train(run_dir=root + '/run', preset='tiny', data={{'synthetic': str(data)}},
                   model_args=dict(dropout_rate=0.0), batch_size=8, num_steps={num_steps},
                   learning_rate=5e-4, warmup_steps=10, eval_every={eval_every},
                   deterministic=True, checkpoint_every={num_steps}, export_hub=False,
                   progress=False, seed=3)
    with open(root + '/result.json', 'w') as f:
      json.dump({{'validation': result.validation, 'best': result.best,
                 'losses': [[s, h, float(l), float(g)] for s, h, l, g in result.losses],
                 'steps_per_second': result.steps_per_second}}, f, default=float)
''').format(threads=THREADS, length=LENGTH, num_tracks=NUM_TRACKS, sites_per_kb=SITES_PER_KB,
            num_steps=NUM_STEPS, eval_every=EVAL_EVERY)


@pytest.fixture(scope='module')
def learning_run() -> dict:
  """Validation, best and per-step losses of the training run (a fresh one-thread process)."""
  with open(background_run(__name__).root / 'result.json') as f:
    return json.load(f)


def test_small_enformer_learns_planted_motif_tracks(learning_run):
  validation = learning_run['validation']
  curve = [(r['step'], r['pearson_r'], r['r2']) for r in validation]
  print('\nstep  validation mean Pearson R  R²  (held-out chr3, 4 tracks)')
  for step, r, r2 in curve:
    print(f'{step:4d}  {r:.4f}  {r2:.4f}')
  print(f'{learning_run["steps_per_second"]:.2f} training steps/s')
  assert [s for s, _, _ in curve] == list(range(EVAL_EVERY, NUM_STEPS + 1, EVAL_EVERY))
  assert all(r['nan_tracks'] == 0 for r in validation)
  assert curve[0][1] < THRESHOLD  # It learns during the run (not from the start).
  assert curve[-1][1] >= THRESHOLD, curve
  assert learning_run['best']['score'] >= THRESHOLD
