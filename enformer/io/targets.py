"""Track tables of Basenji2 / Enformer: targets_human.txt, targets_mouse.txt.

Tab-separated with columns index, genome, identifier, file, clip, scale, sum_stat, description;
row i describes output track i of the head. Tracks are selected by index, identifier
(e.g. 'CNhs11760') or a case-insensitive substring of the description (e.g. 'CAGE:K562').
"""

import os
import re
from typing import Dict, List, Optional, Sequence, Union

import pandas as pd

REQUIRED_COLUMNS = ('identifier', 'description')
Selector = Union[int, str]
_INDEX_LIST = re.compile(r'^\d+(-\d+)?(,\d+(-\d+)?)*$')


def targets_path(organism: str, directory: Union[str, os.PathLike]) -> str:
  """Path of targets_{organism}.txt in `directory`."""
  return os.path.join(os.fspath(directory), f'targets_{organism}.txt')


def read_targets(path: Union[str, os.PathLike]) -> pd.DataFrame:
  """Reads a Basenji targets table; one row per output track, in track order.

  Returns:
    DataFrame with at least 'identifier' and 'description', indexed 0..N-1 by track.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'Targets file {path} does not exist. Download targets_human.txt / targets_mouse.txt '
        'from https://github.com/calico/basenji/tree/master/manuscripts/cross2020.'
    )
  try:
    table = pd.read_csv(path, sep='\t', encoding='utf-8-sig', encoding_errors='replace')
  except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ValueError(f'{path} is not a tab-separated targets table ({reason}).') from None
  if 'index' in table.columns:
    # DeepMind's targets_mouse.txt numbers its rows 5313..6955 (after the human tracks): any
    # run of consecutive numbers is accepted; rows are tracks 0..N-1 of the head in file order.
    first = table['index'].iloc[0] if len(table) else 0
    if list(table['index']) != list(range(first, first + len(table))):
      raise ValueError(
          f'{path}: the index column must count up by one from its first row '
          f'(e.g. 0..{len(table) - 1}).'
      )
    table = table.set_index(pd.RangeIndex(len(table)), drop=False)
  missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
  if missing:
    raise ValueError(
        f'{path} lacks column(s) {missing}: expected a tab-separated Basenji targets '
        'table with a header (index, genome, identifier, file, clip, scale, sum_stat, '
        'description).'
    )
  return table


def is_cage(descriptions: Union[str, Sequence[str]]) -> Union[bool, List[bool]]:
  """Whether a track description is CAGE (plotted on log10(1 + x), like the usage colab)."""
  if isinstance(descriptions, str):
    return descriptions.upper().startswith('CAGE')
  return [is_cage(d) for d in descriptions]


def parse_track_selectors(values: Union[Selector, Sequence[Selector]]) -> List[Selector]:
  """Track selectors as users write them → ints and texts for `select_tracks`.

  Indices, inclusive ranges and comma lists of them become ints ('10-12' → 10, 11, 12;
  '4828,5111' → 4828, 5111); anything else (an identifier or a description substring, which may
  hold commas or dashes, e.g. 'CHIP:H3K4me3:foreskin, male - newborn') stays one text selector.
  """
  if isinstance(values, (str, int)):
    values = [values]
  selectors: List[Selector] = []
  for value in values:
    if isinstance(value, int) or (hasattr(value, 'dtype') and not isinstance(value, str)):
      selectors.append(int(value))
      continue
    text = str(value).strip()
    if not _INDEX_LIST.match(text):
      if text:
        selectors.append(text)
      continue
    for part in text.split(','):
      first, _, last = part.partition('-')
      if last and int(last) < int(first):
        raise ValueError(f'Track range {part} ends before it starts.')
      selectors.extend(range(int(first), int(last or first) + 1))
  return selectors


def select_tracks(
    targets: Optional[pd.DataFrame], selectors: Sequence[Selector], num_tracks: Optional[int] = None
) -> List[int]:
  """Track indices for `selectors`, in the given order (duplicates removed).

  Each selector is an int, an index list or range as text ('4828,5111', '10-12'; see
  `parse_track_selectors`), an identifier (exact), or a case-insensitive substring of the
  description (all matching tracks).

  Args:
    targets: table from read_targets, or None (then only indices are allowed).
    selectors: indices, identifiers or description substrings.
    num_tracks: tracks of the model head, to validate indices (default len(targets)).
  """
  if num_tracks is None and targets is not None:
    num_tracks = len(targets)
  if targets is not None and num_tracks is not None and len(targets) != num_tracks:
    raise ValueError(
        f'The targets table has {len(targets)} rows but the head has {num_tracks} '
        'tracks: use the table of the same organism as `head`.'
    )
  indices: List[int] = []
  for selector in parse_track_selectors(selectors):
    text = str(selector).strip()
    if isinstance(selector, int) or text.isdigit():
      index = int(text)
      if num_tracks is not None and not 0 <= index < num_tracks:
        raise ValueError(f'Track index {index} is out of range: the head has {num_tracks} tracks.')
      found = [index]
    elif targets is None:
      raise ValueError(
          f'Track {selector!r} is not an index; pass a targets table (`targets`) to '
          'select tracks by identifier or description.'
      )
    else:
      exact = targets.index[targets['identifier'].astype(str) == text].tolist()
      found = (
          exact
          or targets.index[
              targets['description'].astype(str).str.contains(text, case=False, regex=False)
          ].tolist()
      )
      if not found:
        raise ValueError(
            f'No track has identifier {text!r} or a description containing it. '
            'Examples of descriptions: '
            + '; '.join(targets['description'].astype(str).head(3))
            + '.'
        )
    indices.extend(int(i) for i in found if int(i) not in indices)
  return indices


def select_track(
    targets: Optional[pd.DataFrame], selector: Selector, num_tracks: Optional[int] = None
) -> int:
  """The one track `selector` names (an index or identifier; a description substring must
  match exactly one track)."""
  found = select_tracks(targets, [selector], num_tracks)
  if len(found) != 1:
    raise ValueError(
        f'Track {selector!r} matches {len(found)} tracks; name one track by its index '
        'or identifier.'
    )
  return found[0]


def parse_track_files(items: Sequence[str], what: str = 'observed') -> Dict[str, str]:
  """'TRACK=BIGWIG' items → {track selector: bigWig path} (a selector given twice: its last).

  Args:
    items: e.g. ['4799=keratinocyte_cage.bw', 'CAGE:K562=k562.bw'] (the track: an index,
      identifier or description substring) is split from the path at the first '='.
    what: the argument the items were given as, for messages.
  """
  found = {}
  for item in items:
    selector, sep, path = str(item).partition('=')
    if not sep or not selector.strip() or not path:
      raise ValueError(f'`{what}` takes TRACK=BIGWIG items, got {item!r}.')
    found[selector.strip()] = path
  return found


def track_labels(targets: Optional[pd.DataFrame], indices: Sequence[int]) -> List[str]:
  """Human-readable labels for tracks (description, or 'track {i}' without a table)."""
  if targets is None:
    return [f'track {i}' for i in indices]
  return [str(targets.loc[i, 'description']) for i in indices]


def track_identifiers(targets: Optional[pd.DataFrame], indices: Sequence[int]) -> List[str]:
  """Identifiers for tracks (e.g. ENCFF833POA), or 'track_{i}' without a table."""
  if targets is None:
    return [f'track_{i}' for i in indices]
  return [str(targets.loc[i, 'identifier']) for i in indices]
