"""The demo's motifs step: `enformer motifs` on the planted sites of the held-out chromosomes.

Gradient contributions of the sum of the human tracks around every planted site of the
validation and test chromosomes, TF-MoDISco patterns of them, and their TOMTOM matches in
JASPAR CORE vertebrates (`enformer.interpret.motifs`); the report shows the table and logos and
which planted motif (CTCF, SP1, AP1, CREB: JASPAR consensus sequences) each pattern holds.

  regions.bed        the explained regions (planted sites of chr3 and chr4)
  motifs/            contributions.h5, modisco.h5, motifs.tsv, report.html, logos/
"""

import os
import pathlib
from typing import Any, Dict, List, Sequence, Tuple

from enformer.inference import load_model
from enformer.interpret import motifs
from enformer.io.bed import read_bed

WINDOW = 200  # bp around each site.
HELD_OUT_CHROMS = ('chr3', 'chr4')


def motifs_step(genomes: Dict[str, Any], model_path: str, chroms: Sequence[str] = HELD_OUT_CHROMS):
  """The step function `(step_dir, fresh) -> (results, outputs)` of `run_demo`."""

  def step(step_dir: pathlib.Path, fresh: bool) -> Tuple[Dict[str, Any], List[pathlib.Path]]:
    human = genomes['human']
    bed = step_dir / 'regions.bed'
    with open(human['motif_sites']) as handle:
      lines = [line for line in handle if line.split('\t')[0] in chroms]
    bed.write_text(''.join(lines))
    out = step_dir / 'motifs'
    tracks = list(range(len(human['bigwigs'])))
    predictor = load_model(model_path)
    result = motifs.find_motifs(
        predictor,
        human['fasta'],
        read_bed(bed),
        out,
        tracks=tracks,
        head='human',
        window=WINDOW,
        progress=False,
        overwrite=True,
        model_id=model_path,
    )
    best = motifs.best_matches(result.table)
    first = result.table.drop_duplicates('pattern').set_index('pattern')
    planted = human['motifs']
    patterns = []
    for pattern in result.patterns:
      row = first.loc[pattern.name]
      patterns.append(
          dict(
              name=pattern.name,
              sign=pattern.sign,
              num_seqlets=pattern.num_seqlets,
              consensus=pattern.consensus[slice(*pattern.trimmed())],
              planted=[name for name, sequence in planted.items() if pattern.holds(sequence)],
              match_id=row['match_id'],
              match_name=row['match_name'],
              q_value=float(row['q_value']),
              significant=pattern.name in best,
              logo=str(out / 'logos' / f'{pattern.name.replace(".", "_")}.png'),
          )
      )
    recovered = {
        name: [p['name'] for p in patterns if name in p['planted'] and p['significant']]
        for name in planted
    }
    outputs = [bed] + [out / name for name in result.files]
    results = dict(
        regions=result.num_regions,
        window=WINDOW,
        tracks=tracks,
        chroms=list(chroms),
        patterns=patterns,
        recovered=recovered,
        seconds=result.seconds,
        regions_per_second=result.regions_per_second,
        table=str(out / motifs.TABLE_FILE),
        report=str(out / motifs.REPORT_FILE),
        summary=result.summary(),
        command=' '.join(
            [
                'enformer motifs',
                '--model',
                model_path,
                '--fasta',
                str(human['fasta']),
                '--bed',
                str(bed),
                '--tracks',
                f'0-{tracks[-1]}',
                '--window-size',
                str(WINDOW),
                '--out',
                str(out),
            ]
        ),
    )
    return results, [pathlib.Path(os.fspath(p)) for p in outputs]

  return step
