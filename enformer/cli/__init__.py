"""The `enformer` command: one subcommand per workflow.

Each module in this package (other than those starting with `_`) defines
`register(subparsers)`, which adds its parser and sets `func=run` for it. Modules import heavy
libraries (TensorFlow) inside `run`, so `enformer --help` stays fast.

Errors: every exception of a subcommand becomes one line on stderr (`enformer CMD: error: ...`,
see `_errors.describe`) and exit code 2 (bad input or environment) or 1 (a bug); `--debug` or
ENFORMER_DEBUG=1 shows the traceback instead.
"""

import argparse
import importlib
import os
import pkgutil
import sys
import warnings
from typing import List, Optional

from enformer import cpu_memory
from enformer.cli import _common
from enformer.cli._errors import describe


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='enformer',
      allow_abbrev=False,
      description='Enformer: DNA sequence → genomic tracks. Prediction, variant scoring, '
      'attribution, Basenji2 data and training.',
  )
  from enformer import __version__

  parser.add_argument('--version', action='version', version=f'enformer {__version__}')
  parser.add_argument(
      '--debug',
      action='store_true',
      help='show the full traceback of an error (also: ENFORMER_DEBUG=1)',
  )
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
  debug = args.debug or os.environ.get('ENFORMER_DEBUG', '').lower() not in ('', '0', 'false')
  warnings.formatwarning = _one_line_warning
  cpu_memory.use_pooled_cpu_memory()
  if not debug:  # --debug shows TensorFlow's own start-up messages too.
    _common.import_tensorflow_quietly()
  try:
    return int(args.func(args) or 0)
  except KeyboardInterrupt:
    if debug:
      raise
    print(f'enformer {args.command}: interrupted', file=sys.stderr)
    return 130
  except Exception as error:  # pylint: disable=broad-except
    if debug:
      raise
    message, known = describe(error, args)
    hint = '' if known else ' (an unexpected error: rerun with --debug for the traceback)'
    print(f'enformer {args.command}: error: {message}{hint}', file=sys.stderr)
    return 2 if known else 1


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
  return f'warning: {message}\n'


if __name__ == '__main__':
  sys.exit(main())
