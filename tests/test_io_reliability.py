"""Output locks and complete-or-absent output files (enformer.io.lock, enformer.io.atomic)."""

import errno
import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from enformer.io import atomic
from enformer.io.lock import OutputLock, OutputLockedError, lock_path
from enformer.testing import read_holder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_HOLD = textwrap.dedent("""
    import sys, time
    from enformer.io.lock import OutputLock
    lock = OutputLock(sys.argv[1]).acquire()
    print('locked', flush=True)
    time.sleep(600)
""")


def _hold_in_child(output):
  """A child process holding the lock on `output` (it sleeps until killed)."""
  env = dict(os.environ, PYTHONPATH=REPO)
  child = subprocess.Popen(
      [sys.executable, '-c', _HOLD, os.fspath(output), 'train', '--x'],
      stdout=subprocess.PIPE,
      env=env,
      text=True,
  )
  assert child.stdout.readline().strip() == 'locked'
  return child


def test_second_holder_is_refused_with_the_holder_named(tmp_path):
  output = tmp_path / 'scores.h5'
  child = _hold_in_child(output)
  try:
    holder = read_holder(output)
    assert holder.pid == child.pid
    with pytest.raises(OutputLockedError) as raised:
      OutputLock(output, what='--out scores.h5').acquire()
    message = str(raised.value)
    assert f'pid {child.pid}' in message and 'host' in message and 'started' in message
    assert '--out scores.h5' in message and '\n' not in message
  finally:
    child.kill()
    child.wait()


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
  output = tmp_path / 'run'
  child = _hold_in_child(output)
  os.kill(child.pid, signal.SIGKILL)
  child.wait()
  assert os.path.exists(lock_path(output))  # kill -9 left the lock file behind.
  with pytest.warns(RuntimeWarning, match=f'pid {child.pid}.*no longer running'):
    lock = OutputLock(output).acquire()
  assert lock.took_over.pid == child.pid
  assert read_holder(output).pid == os.getpid()
  lock.release()
  assert not os.path.exists(lock_path(output))


def test_lock_is_reentrant_and_released_last(tmp_path):
  output = tmp_path / 'out'
  with OutputLock(output) as outer:
    with OutputLock(output) as inner:  # e.g. the CLI and the library function both lock.
      assert inner.held and outer.held
    assert os.path.exists(lock_path(output))
  assert not os.path.exists(lock_path(output))
  with OutputLock(output):  # Free again.
    pass


def test_atomic_path_renames_only_complete_files(tmp_path):
  final = tmp_path / 'predictions.h5'
  with atomic.atomic_path(final) as temporary:
    assert temporary.endswith('.h5') and os.path.dirname(temporary) == str(tmp_path)
    with h5py.File(temporary, 'w') as h5:
      h5['x'] = np.arange(3)
  with h5py.File(final, 'r') as h5:
    np.testing.assert_array_equal(h5['x'][:], np.arange(3))
  with pytest.raises(RuntimeError):
    with atomic.atomic_path(final) as temporary:
      with open(temporary, 'wb') as handle:
        handle.write(b'half')
      raise RuntimeError('killed midway')
  with h5py.File(final, 'r') as h5:  # The previous complete file is still there.
    assert 'x' in h5
  assert sorted(os.listdir(tmp_path)) == ['predictions.h5']


def test_temporaries_of_a_killed_writer_are_removed_and_never_final(tmp_path):
  final = tmp_path / 'predictions.h5'
  script = textwrap.dedent("""
      import os, sys, time
      from enformer.io.atomic import atomic_open
      with atomic_open(sys.argv[1], 'wb') as handle:
        handle.write(b'x' * 96)
        handle.flush()
        print('writing', flush=True)
        time.sleep(600)
  """)
  child = subprocess.Popen(
      [sys.executable, '-c', script, str(final)],
      stdout=subprocess.PIPE,
      env=dict(os.environ, PYTHONPATH=REPO),
      text=True,
  )
  assert child.stdout.readline().strip() == 'writing'
  os.kill(child.pid, signal.SIGKILL)
  child.wait()
  assert not final.exists()
  assert len(os.listdir(tmp_path)) == 1  # Only the hidden temporary.
  atomic.atomic_write(final, lambda p: open(p, 'wb').write(b'ok'))
  assert os.listdir(tmp_path) == ['predictions.h5'] and final.read_bytes() == b'ok'


def test_full_disk_is_one_line_naming_the_path(tmp_path, monkeypatch):
  final = tmp_path / 'summary.json'
  final.write_text('{"old": 1}')

  def full_disk(path):
    with open(path, 'w') as handle:
      handle.write('{"new"')
    raise OSError(errno.ENOSPC, 'No space left on device')

  with pytest.raises(atomic.DiskFullError) as raised:
    atomic.atomic_write(final, full_disk, expected_bytes=1000)
  message = str(raised.value)
  assert str(final) in message and '\n' not in message and 'needs about' in message
  assert json.loads(final.read_text()) == {'old': 1}  # What finished before is kept.
  assert os.listdir(tmp_path) == ['summary.json']
  # h5py reports ENOSPC in its message text only.
  assert atomic.is_disk_full(
      OSError(
          "Can't write data (file write failed: errno = 28, error "
          "message = 'No space left on device')"
      )
  )
  with pytest.raises(atomic.DiskFullError, match='needs about 1.0 GiB'):
    monkeypatch.setattr(atomic, 'free_bytes', lambda path: 1024)
    atomic.atomic_write(final, lambda p: None, expected_bytes=2**30)


def test_atomic_directory_swaps_when_complete(tmp_path):
  out = tmp_path / 'dataset'
  with atomic.atomic_directory(out) as building:
    open(os.path.join(building, 'statistics.json'), 'w').write('{}')
  with pytest.raises(FileExistsError):
    with atomic.atomic_directory(out):
      pass
  with pytest.raises(RuntimeError):
    with atomic.atomic_directory(out, overwrite=True) as building:
      open(os.path.join(building, 'partial.tfr'), 'w').write('')
      raise RuntimeError('killed midway')
  assert os.listdir(out) == ['statistics.json']
  with atomic.atomic_directory(out, overwrite=True) as building:
    open(os.path.join(building, 'new.json'), 'w').write('{}')
  assert os.listdir(out) == ['new.json']
  assert sorted(os.listdir(tmp_path)) == ['dataset']


def test_json_errors_name_the_file(tmp_path):
  from enformer.io.files import read_json

  path = tmp_path / 'statistics.json'
  path.write_text('{"seq_length": 1024,')
  with pytest.raises(ValueError, match=f'{path} is not valid JSON .*line 1'):
    read_json(path)
  path.write_bytes(b'\xef\xbb\xbf{"a": 1}')  # A UTF-8 BOM is accepted.
  assert read_json(path) == {'a': 1}
  path.write_bytes(b'')
  with pytest.raises(ValueError, match=f'{path} is empty'):
    read_json(path)


def test_vcf_bom_and_bytes_that_are_not_utf8(tmp_path):
  from enformer.io.vcf import read_vcf_sites

  path = tmp_path / 'calls.vcf'
  path.write_bytes(
      b'\xef\xbb\xbf##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n'
      b'chr1\t10\trs\xff1\tA\tG\t.\t.\tNOTE=caf\xe9\n'
  )
  (site,) = list(read_vcf_sites(path))  # Tolerated in INFO (never read) and in ID.
  assert (site.chrom, site.pos, site.id, site.ref, site.alts) == ('chr1', 10, 'rs?1', 'A', ('G',))
  path.write_bytes(b'chr1\t10\tx\tA\tG\xff\n')
  with pytest.raises(ValueError, match='line 1: .*not UTF-8'):
    list(read_vcf_sites(path))
  truncated = tmp_path / 'calls.vcf.gz'
  data = gzip.compress(b'chr1\t10\tx\tA\tG\n' * 2000)
  truncated.write_bytes(data[: len(data) // 2])
  with pytest.raises(ValueError, match=f'{truncated} is truncated or corrupt'):
    list(read_vcf_sites(truncated))


def test_official_mouse_targets_table_is_accepted():
  from conftest import shared_path
  from enformer.io.targets import read_targets

  table = read_targets(shared_path('data', 'basenji_targets', 'targets_mouse.txt'))
  assert len(table) == 1643 and table['index'].iloc[0] == 5313  # As published.
  assert list(table.index[:2]) == [0, 1]  # Rows are the mouse head's tracks 0..1642.


def test_one_hot_encode_bytes_and_wrong_types():
  from enformer.sequence import one_hot_encode

  np.testing.assert_array_equal(one_hot_encode(b'ACGTN'), one_hot_encode('ACGTN'))
  with pytest.raises(TypeError, match='DNA string'):
    one_hot_encode(['ACGT'])


def test_content_identity_changes_with_the_content(tmp_path):
  from enformer.io.files import content_identity

  model = tmp_path / 'saved'
  (model / 'variables').mkdir(parents=True)
  (model / 'saved_model.pb').write_bytes(b'graph')
  index = model / 'variables' / 'variables.index'
  index.write_bytes(b'crc 1')
  first = content_identity(model)
  assert content_identity(model) == first
  index.write_bytes(b'crc 2')
  assert content_identity(model) != first
  assert content_identity('https://tfhub.dev/deepmind/enformer/1') != first


def test_lock_in_a_folder_that_cannot_hold_files_names_the_output(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('x')  # A file where the output's folder should be.
  output = blocker / 'scores.h5'
  with pytest.raises(OSError, match=f'cannot write --out {output} there') as raised:
    OutputLock(output, what=f'--out {output}').acquire()
  assert raised.value.filename == os.fspath(output)
  assert not os.path.exists(lock_path(output))
