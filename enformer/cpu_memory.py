"""TensorFlow's pooled allocator for CPU tensors, in the processes enformer starts.

Without a GPU, TensorFlow allocates each CPU tensor with malloc unless TF_CPU_ALLOCATOR_USE_BFC is
set (with a GPU it pools host memory anyway). A full-size pass allocates and frees tensors of tens
to hundreds of MB; glibc maps each one anew and the kernel zeroes its pages at first touch. With
TensorFlow's BFC allocator the memory is kept and reused: `python -m enformer_test` (three
full-size passes, two of them eager) took 94 s instead of 119 s, 10 s instead of 50 s of it in the
kernel, with a lower peak (6.3 instead of 6.5 GB); the fast path's predictions 5% less time
(2-vCPU AMD EPYC, AVX2 only; docs/performance.md).

The pool returns nothing to the system before the process ends, and TensorFlow caps it at 64 GB
unless TF_CPU_BFC_MEM_LIMIT_IN_MB says otherwise; `environment()` sets that to the machine's
memory. The `enformer` command, the workers of its local Dask clusters and `python -m
enformer_test` use the pool; in your own process call `use_pooled_cpu_memory()` before
TensorFlow's first operation. A TF_CPU_ALLOCATOR_USE_BFC=false of yours keeps malloc.
"""

import os
from typing import Dict, Optional

USE_POOL_VARIABLE = 'TF_CPU_ALLOCATOR_USE_BFC'
LIMIT_VARIABLE = 'TF_CPU_BFC_MEM_LIMIT_IN_MB'


def _physical_memory_mb() -> Optional[int]:
  try:
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**20
  except (AttributeError, ValueError, OSError):  # No sysconf (Windows) or no such name.
    return None


def environment() -> Dict[str, str]:
  """The environment variables of pooled CPU memory, the user's own values kept."""
  env = {USE_POOL_VARIABLE: os.environ.get(USE_POOL_VARIABLE, 'true')}
  limit = os.environ.get(LIMIT_VARIABLE) or _physical_memory_mb()
  if limit:
    env[LIMIT_VARIABLE] = str(limit)
  return env


def use_pooled_cpu_memory() -> None:
  """This process's CPU tensors come from TensorFlow's pool, if TensorFlow has not yet run an
  operation (it reads the variables when it creates its CPU device)."""
  for name, value in environment().items():
    os.environ.setdefault(name, value)
