"""Checks of user-given files before any work starts, and JSON reading that names the file.

    check_input_file('hg38.fa', '--fasta', kind='fasta')   # exists, a file, readable, not empty,
                                                          # looks like a FASTA, bgzip not truncated
    check_output_path('scores.h5', '--out')                # not a folder, folder writable
    read_json('runs/a/config.json')                        # ValueError naming the file and line
    content_identity('model_dir/')                         # changes when the files' content does

Every failure is a ValueError / FileNotFoundError / IsADirectoryError / NotADirectoryError /
PermissionError with one line naming the flag, the path and the fix.
"""

import errno
import glob
import hashlib
import json
import os
from typing import Iterable, Optional, Union

PathLike = Union[str, os.PathLike]

GZIP_MAGIC = b'\x1f\x8b'
# The empty BGZF block every complete bgzip file ends with (SAM/BAM spec, section 4.1.2).
BGZF_EOF = bytes.fromhex('1f8b08040000000000ff0600424302001b0003000000000000000000')
BIGWIG_MAGICS = (b'\x26\xfc\x8f\x88', b'\x88\x8f\xfc\x26')
HDF5_MAGIC = b'\x89HDF\r\n\x1a\n'
ZIP_MAGIC = b'PK\x03\x04'

_KIND_NAMES = {
    'fasta': 'FASTA',
    'vcf': 'VCF',
    'bigwig': 'bigWig',
    'h5': 'HDF5',
    'npz': '.npz',
    'json': 'JSON',
    'text': 'text',
}


def _label(path: str, flag: Optional[str]) -> str:
  return f'{flag} {path}' if flag else path


def check_input_file(
    path: PathLike, flag: Optional[str] = None, *, kind: Optional[str] = None
) -> str:
  """Checks that `path` is a readable, non-empty file (of `kind`, when given); returns it.

  Args:
    path: the file.
    flag: the command-line flag that named it (for messages).
    kind: 'fasta', 'vcf', 'bigwig', 'h5', 'npz', 'json' or 'text': checks the first bytes
      (and the bgzip end-of-file block of compressed FASTA / VCF).
  """
  path = os.fspath(path)
  label = _label(path, flag)
  if not os.path.exists(path):
    raise FileNotFoundError(errno.ENOENT, f'{label} does not exist; check the path', path)
  if os.path.isdir(path):
    raise IsADirectoryError(errno.EISDIR, f'{label} is a folder, but a file is expected', path)
  try:
    with open(path, 'rb') as handle:
      head = handle.read(64)
  except PermissionError:
    raise PermissionError(
        errno.EACCES, f'{label} is not readable; check its permissions', path
    ) from None
  if not head:
    raise ValueError(f'{label} is empty; pass the complete file.')
  if kind is not None:
    _check_kind(path, label, kind, head)
  return path


def _check_kind(path: str, label: str, kind: str, head: bytes) -> None:
  name = _KIND_NAMES.get(kind, kind)
  compressed = head.startswith(GZIP_MAGIC)
  if kind == 'fasta':
    check_fasta_index(path, label, head)
  if kind in ('fasta', 'vcf') and compressed:
    if is_bgzf(head):  # BGZF: complete files end with the EOF block.
      with open(path, 'rb') as handle:
        handle.seek(max(os.path.getsize(path) - len(BGZF_EOF), 0))
        if handle.read() != BGZF_EOF:
          raise ValueError(
              f'{label} is truncated (no bgzip end-of-file block); download or '
              'compress it again with bgzip.'
          )
    return
  text = head.lstrip(b'\xef\xbb\xbf').lstrip()
  if kind == 'fasta' and not text.startswith(b'>'):
    raise ValueError(
        f'{label} is not a FASTA file (it does not start with ">"); pass the '
        'genome FASTA (plain or bgzip).'
    )
  if kind == 'vcf' and not text.startswith(b'#') and b'\t' not in head:
    raise ValueError(f'{label} is not a VCF (no "#" header and no tab-separated columns).')
  if kind == 'bigwig' and head[:4] not in BIGWIG_MAGICS:
    raise ValueError(
        f'{label} is not a bigWig file (wrong magic number); convert bedGraph '
        'with bedGraphToBigWig.'
    )
  if kind == 'h5' and not head.startswith(HDF5_MAGIC):
    raise ValueError(f'{label} is not an HDF5 file.')
  if kind == 'npz' and not head.startswith(ZIP_MAGIC):
    raise ValueError(f'{label} is not a .npz file.')
  if kind in ('json', 'text') and b'\0' in head:
    raise ValueError(f'{label} is a binary file, but {name} text is expected.')


def is_bgzf(head: bytes) -> bool:
  """Whether a file's first bytes start a BGZF (bgzip) block, not a plain gzip member."""
  return (
      head.startswith(GZIP_MAGIC)
      and len(head) >= 14
      and bool(head[3] & 4)
      and (head[12:14] == b'BC')
  )


def check_fasta_index(
    path: PathLike, label: Optional[str] = None, head: Optional[bytes] = None
) -> None:
  """Checks that a FASTA can be indexed: plain or bgzip (not plain gzip, which has no random
  access), and its .fai exists or can be written beside it (the folder is writable)."""
  path = os.fspath(path)
  label = label or path
  if head is None:
    with open(path, 'rb') as handle:
      head = handle.read(64)
  if head.startswith(GZIP_MAGIC) and not is_bgzf(head):
    raise ValueError(
        f'{label} is gzip-compressed, which allows no random access; compress it with bgzip '
        f'instead (gunzip -c {path} | bgzip > genome.fa.gz) or decompress it.'
    )
  indexes = [path + '.fai'] + ([path + '.gzi'] if is_bgzf(head) else [])
  missing = [os.path.basename(index) for index in indexes if not os.path.exists(index)]
  folder = os.path.dirname(os.path.abspath(path))
  if missing and not os.access(folder, os.W_OK | os.X_OK):
    raise PermissionError(
        errno.EACCES,
        f'{label} has no index ({", ".join(missing)}) and its folder {folder} is '
        f'not writable to create one; run `samtools faidx {path}` where you may write, or copy '
        'the FASTA into a writable folder',
        path,
    )


def check_input_folder(path: PathLike, flag: Optional[str] = None) -> str:
  """Checks that `path` is an existing, listable folder; returns it."""
  path = os.fspath(path)
  label = _label(path, flag)
  if not os.path.exists(path):
    raise FileNotFoundError(errno.ENOENT, f'{label} does not exist; check the path', path)
  if not os.path.isdir(path):
    raise NotADirectoryError(errno.ENOTDIR, f'{label} is a file, but a folder is expected', path)
  try:
    os.listdir(path)
  except PermissionError:
    raise PermissionError(
        errno.EACCES, f'{label} is not readable; check its permissions', path
    ) from None
  return path


def check_output_path(path: PathLike, flag: Optional[str] = None, *, folder: bool = False) -> str:
  """Checks that `path` can be written: a file output is not a folder (and vice versa), and
  the nearest existing parent folder is a writable folder. Returns `path`."""
  path = os.fspath(path)
  label = _label(path, flag)
  if folder and os.path.isfile(path):
    raise NotADirectoryError(
        errno.ENOTDIR,
        f'{label} is a file, but an output folder is expected; choose a folder name',
        path,
    )
  if not folder and os.path.isdir(path):
    raise IsADirectoryError(
        errno.EISDIR,
        f'{label} is a folder, but an output file is expected; choose a file name',
        path,
    )
  if folder and os.path.isdir(path) and not os.access(path, os.W_OK | os.X_OK):
    raise PermissionError(
        errno.EACCES,
        f'{label} is a folder this user cannot write into; '
        'check its permissions or choose another output folder',
        path,
    )
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise NotADirectoryError(errno.ENOTDIR, f'{label}: {parent} is a file, not a folder', path)
  if not os.access(parent, os.W_OK | os.X_OK):
    raise PermissionError(errno.EACCES, f'{label}: the folder {parent} is not writable', path)
  return path


def read_json(path: PathLike, what: Optional[str] = None):
  """The JSON value in `path`; ValueError naming the file (and line) when it is not valid JSON."""
  path = os.fspath(path)
  label = f'{what} {path}' if what else path
  try:
    with open(path, 'rb') as handle:
      data = handle.read()
  except IsADirectoryError:
    raise IsADirectoryError(
        errno.EISDIR, f'{label} is a folder, but a JSON file is expected', path
    ) from None
  return parse_json(data, label)


def parse_json(data: Union[bytes, str], label: str):
  """The JSON value of a file's contents (`label` names the file in errors); a BOM is allowed."""
  if isinstance(data, bytes):
    try:
      data = data.decode('utf-8-sig')
    except UnicodeDecodeError as error:
      raise ValueError(
          f'{label} is not UTF-8 text (byte offset {error.start}); it should hold JSON.'
      ) from None
  data = data.lstrip('\ufeff')
  if not data.strip():
    raise ValueError(f'{label} is empty; it should hold JSON (restore or regenerate it).')
  try:
    return json.loads(data)
  except json.JSONDecodeError as error:
    raise ValueError(
        f'{label} is not valid JSON ({error.msg} at line {error.lineno} column '
        f'{error.colno}); fix or regenerate it.'
    ) from None


# Files that identify a model folder's content: SavedModel graph and fingerprint, the variables'
# index (it holds a CRC32C of every tensor), export config, checkpoint state and indexes.
_MODEL_FILES = (
    'saved_model.pb',
    'fingerprint.pb',
    'variables/variables.index',
    'checkpoint',
    'enformer_config.json',
    'config.json',
)
_WHOLE_FILE_BYTES = 64 << 20  # Files up to this size are hashed whole.
_SAMPLES, _SAMPLE_BYTES = 64, 64 << 10  # Larger ones: this many blocks spread over the file.


def _file_digest(path: str, digest) -> None:
  """Adds the size and content of `path` to `digest`: all of it up to 64 MiB, else its first and
  last MiB and 64 blocks spread evenly between (about 6 MiB read, whatever the size). No
  timestamps: a copy or a `touch` of the same content gives the same digest."""
  size = os.path.getsize(path)
  digest.update(f'{size}:'.encode())
  with open(path, 'rb') as handle:
    if size <= _WHOLE_FILE_BYTES:
      for block in iter(lambda: handle.read(1 << 20), b''):
        digest.update(block)
      return
    offsets = [0, size - (1 << 20)] + [
        (size - _SAMPLE_BYTES) * i // (_SAMPLES + 1) for i in range(1, _SAMPLES + 1)
    ]
    for offset in offsets:
      handle.seek(offset)
      digest.update(handle.read(1 << 20 if offset in (0, size - (1 << 20)) else _SAMPLE_BYTES))


def content_identity(path: PathLike, extra_files: Iterable[str] = ()) -> str:
  """A SHA-256 of the content at `path` (not of its timestamps), without reading large files whole.

  A file: its size and content (files over 64 MiB: their first and last MiB and 64 blocks
  between). A folder (SavedModel, checkpoint folder, run folder): the same for the files that
  identify a model (`saved_model.pb`,
  `fingerprint.pb`, `variables/variables.index` with its per-tensor checksums, `checkpoint`,
  every `*.index`, the config JSON), or for all its top-level files otherwise. A checkpoint
  prefix: its `.index`. Anything else (a URL): the text itself. `extra_files` (e.g. the FASTA's
  `.fai`) are added when they exist.
  """
  path = os.fspath(path)
  digest = hashlib.sha256()
  if os.path.isfile(path):
    _file_digest(path, digest)
  elif os.path.isdir(path):
    names = [name for name in _MODEL_FILES if os.path.isfile(os.path.join(path, name))]
    names += sorted(
        os.path.relpath(p, path)
        for p in glob.glob(os.path.join(glob.escape(path), '**', '*.index'), recursive=True)
        if os.path.relpath(p, path) not in names
    )
    if not names:
      names = sorted(n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n)))
    for name in names:
      digest.update(name.encode() + b'\0')
      _file_digest(os.path.join(path, name), digest)
  elif os.path.isfile(path + '.index'):
    _file_digest(path + '.index', digest)
  else:
    digest.update(path.encode())
  for extra in extra_files:
    if os.path.isfile(extra):
      digest.update(os.path.basename(extra).encode() + b'\0')
      _file_digest(extra, digest)
  return digest.hexdigest()
