"""enformer.cpu_memory: the settings of TensorFlow's pooled CPU allocator, the user's kept."""

import os

from enformer import cpu_memory
from enformer.cli import main

MEMORY_MB = str(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**20)


def test_the_pool_is_on_up_to_the_machines_memory_unless_the_user_says_otherwise(monkeypatch):
  monkeypatch.delenv(cpu_memory.USE_POOL_VARIABLE, raising=False)
  monkeypatch.delenv(cpu_memory.LIMIT_VARIABLE, raising=False)
  assert cpu_memory.environment() == {
      'TF_CPU_ALLOCATOR_USE_BFC': 'true',
      'TF_CPU_BFC_MEM_LIMIT_IN_MB': MEMORY_MB,
  }
  monkeypatch.setenv(cpu_memory.USE_POOL_VARIABLE, 'false')
  monkeypatch.setenv(cpu_memory.LIMIT_VARIABLE, '1024')
  assert cpu_memory.environment() == {
      'TF_CPU_ALLOCATOR_USE_BFC': 'false',
      'TF_CPU_BFC_MEM_LIMIT_IN_MB': '1024',
  }
  cpu_memory.use_pooled_cpu_memory()
  assert os.environ[cpu_memory.USE_POOL_VARIABLE] == 'false'


def test_the_command_sets_the_pool_before_its_subcommand_runs(monkeypatch, tmp_path):
  monkeypatch.delenv(cpu_memory.USE_POOL_VARIABLE, raising=False)
  monkeypatch.delenv(cpu_memory.LIMIT_VARIABLE, raising=False)
  # A subcommand that stops at its input checks, before TensorFlow.
  assert main(['merge-scores', str(tmp_path / 'm.h5'), str(tmp_path / 'none.h5')]) == 2
  assert os.environ[cpu_memory.USE_POOL_VARIABLE] == 'true'
  assert os.environ[cpu_memory.LIMIT_VARIABLE] == MEMORY_MB
