"""Plain vs fast Enformer inference (and training step) benchmark; same as `enformer benchmark`.

  python benchmarks/benchmark.py --size compact            # about a minute
  python benchmarks/benchmark.py --size paper --train     # published size: tens of minutes, GBs

See enformer/benchmark.py for what is measured and how.
"""

import sys

from enformer.cli import main

if __name__ == '__main__':
  sys.exit(main(['benchmark'] + sys.argv[1:]))
