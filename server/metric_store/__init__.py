"""Read-only access to the MLflow tracking store: metric keys and histories, run artifacts.

- base.py: the MetricStore protocol, the shapes it returns, its errors;
- registry.py: the implementation for a tracking URI, chosen once by its scheme;
- sql.py: database stores, SQL on MLflow's tables (the only code that knows them);
- client.py: MLflow servers and file stores, through MlflowClient;
- artifacts.py: a run's artifacts (MlflowClient, every store);
- cache.py: the downsampled histories sql.py keeps;
- reader.py: MlflowReader, the bounded calls routes make (own threads, a timeout, a pause
  after a failure).
A change to how metrics are read goes in the store that reads them; a new kind of store is a
class that follows MetricStore and an entry in registry.STORES.
"""

from server.metric_store.base import (
    ArtifactIsDirectory,
    ArtifactNotFound,
    Downsampled,
    History,
    MetricStore,
    MlflowUnavailable,
    RunInfo,
)
from server.metric_store.reader import MlflowReader
from server.metric_store.registry import open_store

__all__ = [
    "ArtifactIsDirectory",
    "ArtifactNotFound",
    "Downsampled",
    "History",
    "MetricStore",
    "MlflowReader",
    "MlflowUnavailable",
    "RunInfo",
    "open_store",
]
