"""Every figure of the package, drawn with matplotlib.

One backend policy for all of them: the Agg backend (no display needed) unless the user chose one
with MPLBACKEND (as Jupyter kernels do for their inline backend). Functions
return the Figure and save it atomically when given a path.

  tracks       predicted (and observed) tracks of a region, like the usage colab's `plot_tracks`
  attribution  tracks with pooled contribution scores, sequence logos, ISM heatmaps
  variants     variant × track heatmaps of scores
  evaluation   per-assay Pearson R, held-out expression fits
  demo         the demo report's figures
  motifs       MoDISco patterns beside the logos of their JASPAR matches
  haplotypes   samples × genes heat map of predicted expression (personal genomes)
"""

import os
from typing import Optional, Union

import matplotlib

if not os.environ.get('MPLBACKEND'):
  matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from enformer.io.atomic import atomic_write  # pylint: disable=wrong-import-position

PathLike = Union[str, os.PathLike]


def save(
    fig: 'matplotlib.figure.Figure', path: Optional[PathLike], dpi: int = 100, **savefig_options
) -> None:
  """Saves `fig` as a PNG at `path` (written under a temporary name, then renamed); no-op for
  None. `savefig_options` go to `Figure.savefig` (e.g. bbox_inches='tight')."""
  if path is not None:
    atomic_write(path, lambda temporary: fig.savefig(temporary, dpi=dpi, **savefig_options))


def close(fig: 'matplotlib.figure.Figure') -> None:
  plt.close(fig)
