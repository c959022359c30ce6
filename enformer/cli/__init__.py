"""The `enformer` command: one subcommand per workflow.

Each module in this package (other than those starting with `_`) defines
`register(subparsers)`, which adds its parser and sets `func=run` for it. Modules import heavy
libraries (TensorFlow) inside `run`, so `enformer --help` stays fast.
"""

import argparse
import importlib
import pkgutil
import sys
from typing import List, Optional

from enformer.cli import _common


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='enformer',
      description='Enformer: DNA sequence → genomic tracks. Prediction, variant scoring, '
      'attribution, Basenji2 data and training.')
  from enformer import __version__
  parser.add_argument('--version', action='version', version=f'enformer {__version__}')
  subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
  for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if module_info.name.startswith('_'):
      continue
    importlib.import_module(f'{__name__}.{module_info.name}').register(subparsers)
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if not getattr(args, 'func', None):
    parser.print_help()
    return 0
  _common.import_tensorflow_quietly()
  from enformer.io.lock import OutputLockedError  # pylint: disable=import-outside-toplevel
  try:
    return int(args.func(args) or 0)
  except (ValueError, FileNotFoundError, FileExistsError, OutputLockedError) as error:
    # Problems with the user's input: one clear line, no traceback.
    print(f'enformer {args.command}: error: {error}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
