"""Dask execution of variant scoring and genome-wide prediction (see docs/distributed.md).

  executor  ModelSource (how workers load a model), iter_tasks / run_tasks (windowed tasks and
            fault handling), worker_predictor / worker_cached (per-worker caches), ModelInfo, errors
  cluster   local_client (LocalCluster of single-threaded workers), connect, client_for

Library use: `score_vcf(ModelSource('model/'), ..., client=client)` and
`predict_to_files(ModelSource(...), ..., client=client)`.
"""

from enformer.distributed.cluster import (
    DASK_CONFIG,
    client_for,
    connect,
    local_client,
    worker_environment,
)
from enformer.distributed.executor import (
    DistributedError,
    ModelInfo,
    ModelLoadError,
    ModelSource,
    NoWorkers,
    WorkerDied,
    fetch_model_info,
    iter_tasks,
    model_info,
    run_tasks,
    worker_cached,
    worker_model,
    worker_predictor,
)

__all__ = [
    'DASK_CONFIG',
    'DistributedError',
    'ModelInfo',
    'ModelLoadError',
    'ModelSource',
    'NoWorkers',
    'WorkerDied',
    'client_for',
    'connect',
    'fetch_model_info',
    'iter_tasks',
    'local_client',
    'model_info',
    'run_tasks',
    'worker_cached',
    'worker_environment',
    'worker_model',
    'worker_predictor',
]
