"""Variant → gene scoring throughput: SNV–gene pairs per second, incremental vs full passes.

`score_genes` on a random genome with a GTF of genes every `--gene-spacing` bp (both strands, every
third gene with two TSSs) and a VCF of random SNVs, timed end to end (sequence extraction, GTF
and VCF reading, chunk store and sed.h5 writing included) once with exact incremental inference
(the default) and once with full forward passes (`incremental=False`), after an untimed warm-up.

Usage:
  python benchmarks/genes.py                        # quick size: 384 ch, 4 heads, 1 layer, 16 kb
  python benchmarks/genes.py --config full --variants 2   # published size, 196,608 bp

Prints one JSON line: pairs, variants, seconds and pairs/s for each mode and their ratio.
"""

import argparse
import json
import os
import pathlib
import tempfile
import time
from typing import Dict, List

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=wrong-import-position

CONFIGS = {
    'quick': (
        dict(channels=384, num_heads=4, num_transformer_layers=1, target_length=None),
        16_384,
    ),
    'full': ({}, 196_608),
}


def write_inputs(
    directory: pathlib.Path, num_variants: int, length: int, gene_spacing: int, seed: int = 0
):
  """FASTA (one chromosome), GTF and a VCF of SNVs spread over the chromosome."""
  rng = np.random.default_rng(seed)
  chrom_length = max(4 * length, 200_000)
  sequence = ''.join(np.array(list('ACGT'))[rng.integers(0, 4, chrom_length)])
  fasta = directory / 'genome.fa'
  fasta.write_text(
      '>chr1\n' + '\n'.join(sequence[i : i + 80] for i in range(0, chrom_length, 80)) + '\n'
  )
  lines = []
  for number, tss in enumerate(range(length, chrom_length - length, gene_spacing)):
    strand = '+' if number % 2 else '-'
    starts = [tss, tss + 300] if number % 3 == 0 else [tss]
    for k, start in enumerate(starts):
      low, high = (start + 1, start + 2000) if strand == '+' else (start - 1998, start + 1)
      lines.append(
          f'chr1\tbench\ttranscript\t{low}\t{high}\t.\t{strand}\t.\tgene_id "G{number}"; '
          f'transcript_id "G{number}.{k}"; gene_name "G{number}"; '
          'gene_type "protein_coding";\n'
      )
  gtf = directory / 'genes.gtf'
  gtf.write_text(''.join(lines))
  rows = []
  for i, pos in enumerate(np.sort(rng.integers(length, chrom_length - length, num_variants))):
    ref = sequence[pos - 1]
    alt = 'ACGT'[('ACGT'.index(ref) + 1 + int(rng.integers(0, 3))) % 4]
    rows.append(f'chr1\t{pos}\tv{i}\t{ref}\t{alt}\t.\t.\t.')
  vcf = directory / 'variants.vcf'
  vcf.write_text(
      '##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n'
      + '\n'.join(rows)
      + '\n'
  )
  return fasta, gtf, vcf


def main(argv: List[str] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', choices=tuple(CONFIGS), default='quick')
  parser.add_argument('--variants', type=int, default=16)
  parser.add_argument(
      '--gene-spacing',
      type=int,
      default=None,
      help='bp between genes (default: the output span / 8)',
  )
  parser.add_argument('--batch-size', type=int, default=4)
  args = parser.parse_args(argv)

  from enformer import Enformer
  from enformer.genes import score_genes
  from enformer.variants import ScoringSettings
  from enformer.inference import Predictor

  config, length = CONFIGS[args.config]
  model = Enformer(**config)
  predictor = Predictor.from_module(model, length)
  # Output span: every bin without a target length, else the published 896 central bins.
  output_span = length if config.get('target_length', 896) is None else 896 * 128
  spacing = args.gene_spacing or max(500, output_span // 8)
  results: Dict[str, object] = {
      'config': args.config,
      'sequence_length': length,
      'gene_spacing': spacing,
      'batch_size': args.batch_size,
  }
  with tempfile.TemporaryDirectory() as directory:
    folder = pathlib.Path(directory)
    fasta, gtf, vcf = write_inputs(folder, args.variants, length, spacing)
    warm_vcf = folder / 'warm.vcf'
    warm_vcf.write_text(''.join(vcf.read_text().splitlines(True)[:3]))
    for mode, incremental in (('incremental', True), ('full', False)):
      settings = ScoringSettings(incremental=incremental, batch_size=args.batch_size)
      score_genes(
          predictor,
          fasta,
          warm_vcf,
          gtf,
          folder / f'warm_{mode}.h5',
          settings=settings,
          progress=False,
      )
      began = time.perf_counter()
      result = score_genes(
          predictor, fasta, vcf, gtf, folder / f'{mode}.h5', settings=settings, progress=False
      )
      seconds = time.perf_counter() - began
      results.update(
          {
              'pairs': len(result.scores),
              'variants': len(result.scores.snp),
              f'{mode}_seconds': round(seconds, 2),
              f'{mode}_pairs_per_s': round(len(result.scores) / seconds, 2),
          }
      )
  results['incremental_speedup'] = round(
      results['full_seconds'] / results['incremental_seconds'], 2
  )
  print(json.dumps(results))
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
