"""`enformer motifs` finds the motifs a model has learned, and none in an untrained model.

The model is `conftest.trained_micro`: a micro Enformer trained on the synthetic genome whose
tracks respond to planted JASPAR consensus sequences (CTCF, SP1, AP1, CREB:
`enformer.data.synthetic.DEFAULT_MOTIFS`). Regions: 120 planted sites of the held-out
chromosomes (chr3, chr4), 160 bp around each.

A consensus sequence belongs to a family of similar JASPAR matrices (SP1's GGGGCGGGGC matches
KLF8, KLF12, KLF10 and SP1 about equally), so "the planted factor's JASPAR id" is the set of the
5 best TOMTOM matches of the planted sequence itself: MA1102.3 CTCFL, MA0139.2 CTCF, ... for CTCF.
"""

import numpy as np
import pandas as pd
import pytest

from conftest import TRAINED_HEAD, TRAINED_LENGTH
from enformer.cli import main
from enformer.data.synthetic import DEFAULT_MOTIFS
from enformer.inference.predictor import Predictor
from enformer.interpret import motifs
from enformer.io.bed import read_bed
from enformer.plots.motifs import information_content
from enformer.testing import MICRO, random_model

pytestmark = pytest.mark.slow
WINDOW = 160
REGIONS = 120


@pytest.fixture(scope='module')
def jaspar():
  return motifs.jaspar_motifs()


@pytest.fixture(scope='module')
def sites(trained_micro, tmp_path_factory):
  """(FASTA, BED of every 3rd planted site on chr3 and chr4: 120 regions)."""
  genome = trained_micro.root / 'genome'
  lines = [
      line
      for line in (genome / 'motif_sites.bed').read_text().splitlines()
      if line.split('\t')[0] in ('chr3', 'chr4')
  ][2::3][:REGIONS]
  bed = tmp_path_factory.mktemp('motif_sites') / 'held_out_sites.bed'
  bed.write_text('\n'.join(lines) + '\n')
  return str(genome / 'genome.fa'), str(bed)


def jaspar_family(consensus: str, jaspar: motifs.MotifDatabase, size: int = 5) -> set:
  """The `size` best JASPAR matches of a planted consensus sequence."""
  ppm = np.full((len(consensus), 4), 0.01)
  ppm[np.arange(len(consensus)), ['ACGT'.index(base) for base in consensus]] = 0.97
  pattern = motifs.Pattern('planted', 'pos', 1, ppm, information_content(ppm))
  return set(motifs.match_patterns([pattern], jaspar, num_matches=size)['match_id'])


def test_modisco_recovers_each_planted_motif_and_tomtom_names_its_factor(
    trained_micro, sites, jaspar, tmp_path
):
  fasta, bed = sites
  out = tmp_path / 'motifs'
  assert (
      main(
          [
              'motifs',
              '--model',
              trained_micro.model_path,
              '--fasta',
              fasta,
              '--bed',
              bed,
              '--head',
              TRAINED_HEAD,
              '--tracks',
              '0-3',
              '--window-size',
              str(WINDOW),
              '--quiet',
              '--out',
              str(out),
          ]
      )
      == 0
  )
  table = pd.read_csv(out / 'motifs.tsv', sep='\t')
  patterns = motifs.read_patterns(out / 'modisco.h5')
  best = motifs.best_matches(table)
  recovered = {}
  for factor, consensus in DEFAULT_MOTIFS.items():
    holding = [p.name for p in patterns if p.sign == 'pos' and p.holds(consensus)]
    assert holding, f'no MoDISco pattern holds {factor} ({consensus}): {table}'
    family = jaspar_family(consensus, jaspar)
    named = [name for name in holding if best.get(name) in family]
    assert named, (
        f'{factor}: patterns {holding} have best matches '
        f'{[best.get(n) for n in holding]}, not among {sorted(family)}'
    )
    recovered[factor] = named[0]
  assert len(set(recovered.values())) == len(DEFAULT_MOTIFS)  # One pattern per factor.
  assert best[recovered['CTCF']] == jaspar.ids[jaspar.index('MA0139')]  # CTCF itself.
  report = (out / 'report.html').read_text()
  for pattern in patterns:
    logo = f'logos/{pattern.name.replace(".", "_")}.png'
    assert f'src="{logo}"' in report and (out / logo).stat().st_size > 1000


def test_an_untrained_model_yields_no_significant_match(sites, jaspar, tmp_path):
  fasta, bed = sites
  predictor = Predictor.from_module(
      random_model(0, **dict(MICRO, heads={TRAINED_HEAD: 4})), TRAINED_LENGTH
  )
  result = motifs.find_motifs(
      predictor,
      fasta,
      read_bed(bed),
      tmp_path / 'random',
      tracks=[0, 1, 2, 3],
      head=TRAINED_HEAD,
      window=WINDOW,
      motif_db=jaspar,
      progress=False,
  )
  assert result.num_regions == REGIONS
  assert motifs.best_matches(result.table) == {}, result.table
