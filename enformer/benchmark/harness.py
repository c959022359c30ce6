"""The timed harness of `enformer benchmark`: interleaved plain/fast timings, peak memory in fresh
processes, the training step, and variant and ISM scoring (incremental inference, bfloat16)."""

import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from enformer import enformer as enformer_lib
from enformer.inference import fast
from enformer import testing
from enformer.testing import random_one_hot
from enformer.inference.incremental import IncrementalForward
from enformer.benchmark.flops import analytic_gflop, matmul_gflops
from enformer.training import step as step_lib

CONFIGS: Dict[str, Dict[str, object]] = {
    # The `paper` preset's architecture (the published model).
    'paper': dict(
        channels=1536,
        num_heads=8,
        num_transformer_layers=11,
        sequence_length=196_608,
        target_length=896,
    ),
    'medium': dict(
        channels=768,
        num_heads=8,
        num_transformer_layers=4,
        sequence_length=196_608,
        target_length=896,
    ),
    # The configuration of DeepMind's small reference checkpoint (tests), on a shorter input.
    'compact': dict(
        channels=384,
        num_heads=4,
        num_transformer_layers=2,
        sequence_length=32_768,
        target_length=None,
    ),
}


def random_model(config: Dict[str, object], seed: int = 0) -> enformer_lib.Enformer:
  """Enformer of a benchmark size (a value of `CONFIGS`: Enformer arguments plus
  'sequence_length') with seeded random weights, so that every op contributes to the timed work."""
  return testing.random_model(
      seed, calibration_length=None, **{k: v for k, v in config.items() if k != 'sequence_length'}
  )


def _rss_gb() -> float:
  """Current resident set size (GB)."""
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e9


def _peak_rss_gb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux.


def _make_path(model, path: str, length: int):
  if path == 'plain':
    return fast.plain_forward(model)
  if path == 'fast':
    return fast.compile_forward(model, length)
  if path.startswith('fast-') and path[5:] in fast.MODES:
    return fast.compile_forward(model, length, mode=path[5:])
  raise ValueError(f'Unknown path {path!r}; use plain, fast or fast-<mode> ({fast.MODES}).')


def _block(outputs) -> None:
  for value in outputs.values():
    value.numpy()


def worker_memory(config: Dict[str, object], path: str, batch_size: int) -> Dict[str, float]:
  """In a fresh process: peak RSS of building the model and of one forward (incl. compilation)."""
  model = random_model(config)
  rss_model = _rss_gb()
  forward = _make_path(model, path, config['sequence_length'])
  x = random_one_hot(batch_size, config['sequence_length'])
  start = time.perf_counter()
  _block(forward(x))
  first = time.perf_counter() - start
  return dict(rss_model_gb=rss_model, peak_rss_gb=_peak_rss_gb(), first_call_s=first)


def measure_train_step(
    model,
    sequence_length: int,
    batch_size: int = 1,
    steps: int = 2,
    recompute: bool = False,
    precision: str = 'float32',
    head: Optional[str] = None,
) -> Dict[str, float]:
  """Seconds per step and peak RSS of the step `enformer train` runs (`enformer.training.step`:
  Poisson loss, gradient all-reduce, clipping 0.2, Sonnet Adam) on random one-hot inputs.

  One untimed warm-up step traces the function; the median of `steps` timed steps is reported.
  """
  model.build_variables()
  variables = list(model.trainable_variables)
  optimizer = step_lib.Adam(learning_rate=tf.Variable(5e-4, trainable=False))
  optimizer.initialize(variables)
  head = head or model.head_names[0]
  train_step = step_lib.TrainStep(
      model,
      optimizer,
      variables,
      tf.distribute.get_strategy(),
      batch_size,
      0.2,
      precision=precision,
      recompute=recompute,
  )
  rng = np.random.default_rng(0)
  bins = model.output_length(sequence_length)
  batch = {
      'sequence': tf.constant(random_one_hot(batch_size, sequence_length)),
      'target': tf.constant(
          rng.gamma(1.0, 1.0, (batch_size, bins, model.config['heads'][head])).astype(np.float32)
      ),
  }
  times = []
  for _ in range(steps + 1):
    start = time.perf_counter()
    loss, _ = train_step.train(batch, head)
    float(loss)
    times.append(time.perf_counter() - start)
  return dict(
      first_step_s=times[0],
      step_s=statistics.median(times[1:]),
      loss=float(loss),
      peak_rss_gb=_peak_rss_gb(),
      parameters_m=sum(int(np.prod(v.shape)) for v in variables) / 1e6,
  )


def worker_train(config: Dict[str, object], recompute: bool = False) -> Dict[str, float]:
  """In a fresh process: `measure_train_step` at batch 1 (peak RSS is this process's alone)."""
  return measure_train_step(random_model(config), config['sequence_length'], recompute=recompute)


class RssSampler:
  """Samples this process's RSS every `interval` s in a thread; `peak()` since the last reset (GB).

  TensorFlow releases the GIL while it runs ops, so the thread keeps sampling during a forward.
  """

  def __init__(self, interval: float = 0.02):
    self._interval = interval
    self._peak = _rss_gb()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _run(self) -> None:
    while not self._stop.is_set():
      self._peak = max(self._peak, _rss_gb())
      time.sleep(self._interval)

  def reset(self) -> float:
    """Starts a new window; returns the current RSS."""
    self._peak = _rss_gb()
    return self._peak

  def peak(self) -> float:
    self._peak = max(self._peak, _rss_gb())
    return self._peak

  def stop(self) -> None:
    self._stop.set()


def worker_timing(
    config: Dict[str, object],
    paths: List[str],
    repeats: int,
    batch_sizes: List[int],
    progress: bool = False,
) -> Dict[str, object]:
  """In one process: interleaved timings of `paths` at each batch size, output agreement, and
  the sampled peak RSS during each path's calls (above the RSS before the call)."""
  model = random_model(config)
  length = config['sequence_length']
  forwards = {p: _make_path(model, p, length) for p in paths}
  result: Dict[str, object] = {
      'times': {},
      'max_rel_error': {},
      'rss_before_gb': {},
      'peak_rss_during_gb': {},
      'matmul_gflops': matmul_gflops(),
  }
  sampler = RssSampler()

  def call(p: str, key: str, x: np.ndarray):
    before = sampler.reset()
    start = time.perf_counter()
    outputs = {k: v.numpy() for k, v in forwards[p](x).items()}
    elapsed = time.perf_counter() - start
    result['rss_before_gb'][key] = min(result['rss_before_gb'].get(key, before), before)
    result['peak_rss_during_gb'][key] = max(
        result['peak_rss_during_gb'].get(key, 0.0), sampler.peak()
    )
    if progress:
      print(f'PROGRESS {key} {elapsed:.2f} s peak {sampler.peak():.2f} GB', flush=True)
    return outputs, elapsed

  for batch_size in batch_sizes:
    x = random_one_hot(batch_size, length, seed=batch_size)
    outputs = {}
    for p in paths:  # Warm-up (tracing, XLA compilation).
      outputs[p], _ = call(p, f'{p}_b{batch_size}', x)
    for p in paths[1:]:
      result['max_rel_error'][f'{p}_b{batch_size}'] = max(
          float(
              np.abs(outputs[p][h] - outputs[paths[0]][h]).max()
              / np.abs(outputs[paths[0]][h]).max()
          )
          for h in outputs[p]
      )
    del outputs
    times = {p: [] for p in paths}
    for _ in range(repeats):
      for p in paths:
        times[p].append(call(p, f'{p}_b{batch_size}', x)[1])
    for p in paths:
      result['times'][f'{p}_b{batch_size}'] = times[p]
    if progress:
      print('PARTIAL ' + json.dumps(result), flush=True)
  sampler.stop()
  return result


ISM_WINDOW = 100  # Positions per ISM window for the positions/s rows (one reference each).


SCORING_ROWS = (
    'forward',
    'variant_full',
    'variant_incremental',
    'ism_reference',
    'ism_full',
    'ism_incremental',
)


def worker_scoring(
    config: Dict[str, object],
    repeats: int,
    ism_positions: int = 1,
    precisions: Sequence[str] = fast.PRECISIONS,
    rows: Sequence[str] = SCORING_ROWS,
) -> Dict[str, object]:
  """In one process, interleaved: float32 and bfloat16 fast forwards, SNV scoring (reference +
  alternative) and ISM with full passes and with incremental inference, in float32 and bfloat16.

  ISM is timed in its two parts, so that a window's cost can be derived for any window size:
  `ism_reference` (one window's reference: a full pass whose conv-tower output is kept) and
  `ism_full` / `ism_incremental` (`ism_positions` positions × 3 mutants, the reference already
  computed). `precisions`: a subset of ('float32', 'bfloat16'), e.g. float32 alone on a CPU
  without bfloat16 instructions. `rows`: a subset of SCORING_ROWS to time (`ism_full` and
  `ism_incremental` need `ism_reference`). Times in s (median of `repeats`)."""
  unknown = set(rows) - set(SCORING_ROWS)
  if unknown:
    raise ValueError(f'unknown rows {sorted(unknown)}; choose from {SCORING_ROWS}')
  model = random_model(config)
  length = config['sequence_length']
  x = random_one_hot(1, length, seed=1)
  position = length // 2
  alt = x.copy()
  alt[0, position] = np.roll(x[0, position], 1)
  positions = [position + 7 * i for i in range(ism_positions)]
  mutants = np.repeat(x, 3 * len(positions), axis=0)
  for i, p in enumerate(positions):
    for b in range(3):
      mutants[3 * i + b, p] = np.roll(x[0, p], b + 1)
  forwards = {
      precision: fast.compile_forward(model, length, precision=precision)
      for precision in precisions
  }
  incremental = {precision: IncrementalForward(forward) for precision, forward in forwards.items()}
  sampler = RssSampler()
  rss_before = sampler.reset()
  kept = {}

  def full_variant(precision: str) -> None:  # Today's scorer: ref and alt in one batch.
    _block(forwards[precision](np.concatenate([x, alt])))

  def incremental_variant(precision: str) -> None:
    incremental[precision](x[0], alt)

  def ism_reference(precision: str) -> None:
    kept[precision] = incremental[precision].reference(x[0])

  def full_ism(precision: str) -> None:
    for i in range(0, len(mutants), 3):
      _block(forwards[precision](mutants[i : i + 3]))

  def incremental_ism(precision: str) -> None:
    incremental[precision].alternatives(kept[precision], mutants, batch_size=3)

  tasks = {
      f'{name}_{precision}': (function, precision)
      for name, function in [
          ('forward', lambda p: _block(forwards[p](x))),
          ('variant_full', full_variant),
          ('variant_incremental', incremental_variant),
          ('ism_reference', ism_reference),
          ('ism_full', full_ism),
          ('ism_incremental', incremental_ism),
      ]
      if name in rows
      for precision in precisions
  }
  times = {key: [] for key in tasks}
  for round_index in range(repeats + 1):  # Round 0 is the warm-up (tracing).
    for key, (function, precision) in tasks.items():
      start = time.perf_counter()
      function(precision)
      if round_index:
        times[key].append(time.perf_counter() - start)
  median = {key: statistics.median(value) for key, value in times.items()}
  result = {
      'times': times,
      'median_s': median,
      'ism_positions': len(positions),
      'precisions': list(precisions),
      'cpu_bfloat16': fast.cpu_has_bfloat16(),
      'peak_rss_gb': sampler.peak(),
      'rss_before_gb': rss_before,
  }
  if kept:  # The reference tower output ISM keeps per window.
    result['reference_tower_mb'] = float(kept[precisions[0]].tower.numpy().nbytes / 1e6)
  if set(fast.PRECISIONS) <= set(precisions):
    bf16, f32 = forwards['bfloat16'](x), forwards['float32'](x)
    result['bf16_max_rel_error'] = max(
        float(np.abs(bf16[h].numpy() - f32[h].numpy()).max() / np.abs(f32[h].numpy()).max())
        for h in f32
    )
  sampler.stop()
  return result


def ism_positions_per_s(
    median: Dict[str, float], positions: int, kind: str, precision: str, window: int = ISM_WINDOW
) -> float:
  """ISM positions/s over a window of `window` positions: one reference pass, then `window`
  positions at the measured cost per position of `kind` ('full' or 'incremental') mutants
  (`median` holds the `worker_scoring` medians; `positions`: positions in each timed call)."""
  per_position = median[f'ism_{kind}_{precision}'] / positions
  return window / (median[f'ism_reference_{precision}'] + window * per_position)


def scoring_rows(scoring: Dict[str, object], log) -> Dict[str, float]:
  """Prints the incremental / bfloat16 rows; returns their ratios."""
  m = scoring['median_s']
  positions = scoring['ism_positions']
  precisions = scoring.get('precisions', list(fast.PRECISIONS))
  ism = {
      f'{kind}_{p}': ism_positions_per_s(m, positions, kind, p)
      for kind in ('full', 'incremental')
      for p in precisions
  }
  log('')
  log(f'{"variant effects and ISM":<52}' + ''.join(f'{p:>12}' for p in precisions))
  rows = [
      (label, [m[f'{key}_{p}'] if per > 0 else -per / m[f'{key}_{p}'] for p in precisions])
      for label, key, per in [
          ('s / forward (batch 1)', 'forward', 1.0),
          ('variants/s, full passes', 'variant_full', -1.0),
          ('variants/s, incremental', 'variant_incremental', -1.0),
          ('s / ISM reference (kept tower)', 'ism_reference', 1.0),
      ]
  ]
  rows += [
      (
          f'ISM positions/s, {kind} ({ISM_WINDOW}-position window)',
          [ism[f'{kind}_{p}'] for p in precisions],
      )
      for kind in ('full', 'incremental')
  ]
  for label, values in rows:
    log(f'{label:<52}' + ''.join(f'{v:>12.4f}' for v in values))
  ratios = {}
  for p in precisions:
    ratios[f'incremental/full variants per s ({p})'] = (
        m[f'variant_full_{p}'] / m[f'variant_incremental_{p}']
    )
    ratios[f'incremental/full ISM positions per s ({p}, {ISM_WINDOW}-position window)'] = (
        ism[f'incremental_{p}'] / ism[f'full_{p}']
    )
    ratios[f'incremental/full time per ISM mutant ({p})'] = (
        m[f'ism_incremental_{p}'] / m[f'ism_full_{p}']
    )
  if len(precisions) == 2:
    ratios['bfloat16/float32 forward time'] = m['forward_bfloat16'] / m['forward_float32']
    ratios['bfloat16 incremental/float32 full variants per s'] = (
        m['variant_full_float32'] / m['variant_incremental_bfloat16']
    )
  log(
      f'stored reference tower output per window: {scoring["reference_tower_mb"]:.1f} MB; '
      f'peak RSS during these runs {scoring["peak_rss_gb"]:.2f} GB '
      f'(before: {scoring["rss_before_gb"]:.2f} GB)'
  )
  if 'bf16_max_rel_error' in scoring:
    log(
        f'bfloat16 vs float32 max |Δ| / max |value| (random weights): '
        f'{scoring["bf16_max_rel_error"]:.3g}'
    )
  if scoring.get('cpu_bfloat16') is False and 'bfloat16' in precisions:
    log('this CPU has no bfloat16 instructions (AVX-512 BF16 / AMX): bfloat16 is emulated here')
  return ratios


def _run_worker(kind: str, **kwargs) -> Dict[str, object]:
  """Runs `worker_<kind>(**kwargs)` in a fresh Python process; returns its JSON result."""
  code = (
      'import json, sys; from enformer.benchmark import harness as b; '
      f'r = b.worker_{kind}(**json.loads(sys.argv[1])); print("RESULT " + json.dumps(r))'
  )
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run(
      [sys.executable, '-c', code, json.dumps(kwargs)],
      capture_output=True,
      text=True,
      env=env,
      check=False,
  )
  for line in proc.stdout.splitlines():
    if line.startswith('RESULT '):
      return json.loads(line[len('RESULT ') :])
  tail = '\n'.join((proc.stderr or '').strip().splitlines()[-5:])
  return {'error': f'worker {kind} exited with {proc.returncode}: {tail}'}


def run_benchmark(
    config_name: str = 'compact',
    *,
    repeats: int = 3,
    batch4: bool = True,
    memory: bool = True,
    train: bool = False,
    recompute: bool = False,
    plain_batch4: bool = False,
    sequence_length: Optional[int] = None,
    scoring: bool = True,
    log=print,
) -> Dict[str, object]:
  """Runs the benchmark and prints a report; returns all numbers.

  Args:
    config_name: benchmark size, a key of CONFIGS ('compact', 'medium', 'paper').
    repeats: timed forwards per path after warm-up (median reported; ≥ 3 recommended).
    batch4: also time the fast path at batch 4 (interleaved with batch 1 timings).
    memory: measure peak RSS of each path in its own subprocess.
    train: measure a forward + backward step (batch 1) in a subprocess.
    recompute: with `train`, also measure the step with per-block activation recomputation.
    plain_batch4: also time the plain path at batch 4 (slow; large memory at full size).
    scoring: also time incremental SNV scoring and ISM, and bfloat16 inference (`worker_scoring`).
    sequence_length: input length in bp instead of the size's (a multiple of 128; all bins are
      kept when it is too short for the size's target_length).
    log: printing function.
  """
  if config_name not in CONFIGS:
    raise ValueError(f'Unknown benchmark size {config_name!r}; choose from {sorted(CONFIGS)}.')
  if repeats < 1:
    raise ValueError(f'repeats must be >= 1, got {repeats}.')
  config = dict(CONFIGS[config_name])
  if sequence_length is not None:
    if sequence_length <= 0 or sequence_length % 128:
      raise ValueError(
          f'sequence_length must be a positive multiple of 128, got {sequence_length}.'
      )
    config['sequence_length'] = sequence_length
    if config['target_length'] is not None and sequence_length // 128 < config['target_length']:
      config['target_length'] = None
  flops = analytic_gflop(**config)
  log(f'config {config_name}: {config}; {os.cpu_count()} CPUs')
  log('analytic GFLOP per sequence: ' + ', '.join(f'{k} {v:.1f}' for k, v in flops.items()))
  report: Dict[str, object] = {'config': config_name, 'gflop': flops}

  if memory:
    report['memory'] = {}
    for path, batch_size in [('plain', 1), ('fast', 1), ('fast-xla', 1)] + (
        [('fast', 4)] if batch4 else []
    ):
      r = _run_worker('memory', config=config, path=path, batch_size=batch_size)
      report['memory'][f'{path}_b{batch_size}'] = r
      log(f'memory {path} batch {batch_size}: {r}')

  timing = _run_worker(
      'timing', config=config, paths=['plain', 'fast', 'fast-xla'], repeats=repeats, batch_sizes=[1]
  )
  if 'error' in timing:
    raise RuntimeError(timing['error'])
  if batch4:
    paths = ['plain', 'fast'] if plain_batch4 else ['fast']
    t4 = _run_worker('timing', config=config, paths=paths, repeats=repeats, batch_sizes=[1, 4])
    if 'error' in t4:
      raise RuntimeError(t4['error'])
    for field in ('times', 'peak_rss_during_gb', 'rss_before_gb'):
      timing[field].update({f'{k}_batchrun': v for k, v in t4[field].items()})
    timing['max_rel_error'].update(t4['max_rel_error'])
  report['timing'] = timing
  median = {k: statistics.median(v) for k, v in timing['times'].items()}
  report['median_s'] = median

  log('')
  log(
      f'{"path":<24}{"s / forward":>12}{"s / seq":>9}{"GFLOP/s":>9}{"peak RSS GB":>13}'
      f'{"(fresh proc)":>14}'
  )
  for key in sorted(median):
    batch_size = 4 if '_b4' in key else 1
    per_seq = median[key] / batch_size
    name = key.replace('_batchrun', ' (batch run)')
    sampled = timing['peak_rss_during_gb'].get(key)
    fresh = report.get('memory', {}).get(key, {}).get('peak_rss_gb')
    fresh_text = f'{fresh:.2f}' if fresh is not None and '_batchrun' not in key else '-'
    log(
        f'{name:<24}{median[key]:>12.2f}{per_seq:>9.2f}{flops["total"] / per_seq:>9.1f}'
        f'{sampled if sampled is not None else float("nan"):>13.2f}{fresh_text:>14}'
    )
  log(f'large float32 matmul on this machine: {timing["matmul_gflops"]:.0f} GFLOP/s')
  ratios = {
      'fast/plain time (batch 1)': median['fast_b1'] / median['plain_b1'],
      'fast-xla/plain time (batch 1)': median['fast-xla_b1'] / median['plain_b1'],
  }
  peaks, before = timing['peak_rss_during_gb'], timing['rss_before_gb']
  ratios['fast/plain peak RSS during forward (batch 1)'] = peaks['fast_b1'] / peaks['plain_b1']
  ratios['fast/plain peak RSS above RSS before forward (batch 1)'] = (
      peaks['fast_b1'] - before['fast_b1']
  ) / (peaks['plain_b1'] - before['plain_b1'])
  if (
      memory
      and 'peak_rss_gb' in report['memory'].get('plain_b1', {})
      and 'peak_rss_gb' in report['memory'].get('fast_b1', {})
  ):
    m = report['memory']
    ratios['fast/plain peak RSS, fresh process (batch 1)'] = (
        m['fast_b1']['peak_rss_gb'] / m['plain_b1']['peak_rss_gb']
    )
  if batch4:
    per_seq4 = median['fast_b4_batchrun'] / 4
    ratios['fast batch-4 / batch-1 time per sequence'] = per_seq4 / median['fast_b1_batchrun']
    # A variant is 2 forwards (ref, alt); an ISM position is 3 (alternative bases).
    report['variants_per_s'] = {
        'plain': 1 / (2 * median['plain_b1']),
        'fast_b1': 1 / (2 * median['fast_b1']),
        'fast_b4': 1 / (2 * per_seq4),
    }
    report['ism_positions_per_s'] = {
        'plain': 1 / (3 * median['plain_b1']),
        'fast_b1': 1 / (3 * median['fast_b1']),
        'fast_b4': 1 / (3 * per_seq4),
    }
    log(f'variants/s (2 forwards each): {report["variants_per_s"]}')
    log(f'ISM positions/s (3 forwards each): {report["ism_positions_per_s"]}')
  if scoring:
    report['scoring'] = _run_worker('scoring', config=config, repeats=repeats)
    if 'error' in report['scoring']:
      raise RuntimeError(report['scoring']['error'])
    ratios.update(scoring_rows(report['scoring'], log))
  report['ratios'] = ratios
  for k, v in ratios.items():
    log(f'{k}: {v:.3f}')
  log(f'max relative error fast vs plain: {timing["max_rel_error"]}')

  if train:
    report['train'] = {}
    for rc in ([False, True] if recompute else [False]):
      r = _run_worker('train', config=config, recompute=rc)
      report['train'][f'recompute={rc}'] = r
      log(f'train step (batch 1, forward + backward) recompute={rc}: {r}')
  return report
