"""Motif discovery speed: regions/s of the contribution step of `enformer motifs`, and the time of
TF-MoDISco and TOMTOM on its output.

  python benchmarks/motifs.py                        # the quick demo's size (micro, 2,048 bp)
  python benchmarks/motifs.py --config small         # 384 channels, 1 layer, 16,384 bp
  python benchmarks/motifs.py --config full          # published size, 196,608 bp: slow on CPU

Random weights (the speed does not depend on them) and a random genome; regions are
`--window` bp apart. The contribution step is timed after one untimed warm-up batch (graph
tracing); MoDISco runs in its own process (its numba kernels come from numba's cache after the
first run); TOMTOM matches the patterns against JASPAR CORE vertebrates (loading them is timed
separately).
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import kipoiseq  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from enformer.inference.predictor import Predictor  # pylint: disable=wrong-import-position
from enformer.interpret import motifs  # pylint: disable=wrong-import-position
from enformer.io.fasta import FastaStringExtractor  # pylint: disable=wrong-import-position
from enformer.testing import MICRO, random_model  # pylint: disable=wrong-import-position

CONFIGS = {
    'quick': dict(model=dict(MICRO, heads={'human': 4}), sequence_length=2048),
    'small': dict(
        model=dict(
            channels=384,
            num_heads=4,
            num_transformer_layers=1,
            target_length=None,
            heads={'human': 4},
        ),
        sequence_length=16_384,
    ),
    'full': dict(model=dict(), sequence_length=196_608),
}


def run(config_name: str, num_regions: int, window: int, batch_size: int) -> dict:
  config = CONFIGS[config_name]
  length = config['sequence_length']
  model = random_model(
      0, calibration_length=None if config_name == 'full' else 2048, **config['model']
  )
  predictor = Predictor.from_module(model, length)
  folder = tempfile.mkdtemp()
  size = length + (num_regions + 2) * window
  rng = np.random.default_rng(0)
  fasta = os.path.join(folder, 'genome.fa')
  with open(fasta, 'w') as handle:
    handle.write('>chr1\n' + ''.join(rng.choice(list('ACGT'), size)) + '\n')
  regions = [
      kipoiseq.Interval('chr1', length // 2 + i * window, length // 2 + (i + 1) * window)
      for i in range(num_regions)
  ]
  extractor = FastaStringExtractor(fasta)
  settings = dict(
      sequence_length=length, tracks=[0, 1], head='human', window=window, batch_size=batch_size
  )
  motifs.region_contributions(predictor, extractor, regions[:batch_size], **settings)  # Tracing.
  began = time.perf_counter()
  arrays = motifs.region_contributions(predictor, extractor, regions, **settings)
  contribution_seconds = time.perf_counter() - began
  contributions = motifs.Contributions(
      one_hot=arrays['one_hot'],
      hypothetical=arrays['hypothetical'],
      chrom=np.asarray(['chr1'] * num_regions),
      start=np.asarray([r.start for r in regions]),
      end=np.asarray([r.end for r in regions]),
  )
  contributions.write(os.path.join(folder, 'contributions.h5'))
  began = time.perf_counter()
  motifs.run_modisco(os.path.join(folder, 'contributions.h5'), os.path.join(folder, 'm.h5'))
  modisco_seconds = time.perf_counter() - began
  patterns = motifs.read_patterns(os.path.join(folder, 'm.h5'))
  began = time.perf_counter()
  database = motifs.jaspar_motifs()
  jaspar_seconds = time.perf_counter() - began
  began = time.perf_counter()
  motifs.match_patterns(patterns, database)
  tomtom_seconds = time.perf_counter() - began
  return dict(
      config=config_name,
      sequence_length=length,
      regions=num_regions,
      window=window,
      batch_size=batch_size,
      regions_per_second=num_regions / contribution_seconds,
      modisco_seconds=modisco_seconds,
      patterns=len(patterns),
      jaspar_load_seconds=jaspar_seconds,
      tomtom_seconds=tomtom_seconds,
  )


def main() -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument('--config', choices=sorted(CONFIGS), default='quick')
  parser.add_argument('--regions', type=int, default=200)
  parser.add_argument('--window', type=int, default=200)
  parser.add_argument('--batch-size', type=int, default=8)
  args = parser.parse_args()
  print(json.dumps(run(args.config, args.regions, args.window, args.batch_size), indent=1))


if __name__ == '__main__':
  main()
