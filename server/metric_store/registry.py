"""Which MetricStore reads a tracking URI, chosen once by its scheme (as MLflow's own tracking
store registry does): SQL on MLflow's tables for the databases whose SQL and drivers
server.metric_store.sql speaks, MlflowClient for everything else (http, https, file, paths).
"""

from __future__ import annotations

from collections.abc import Callable

from server.metric_store.base import MetricStore, scheme_of
from server.metric_store.client import ClientStore
from server.metric_store.sql import SqlStore

Factory = Callable[..., MetricStore]


def _database(tracking_uri: str, *, timeout_s: float) -> MetricStore:
    store = SqlStore(tracking_uri, timeout_s=timeout_s)
    if store.placeholders_supported():
        return store
    store.close()  # a driver with other placeholders: MLflow's own client reads it
    return ClientStore(tracking_uri, timeout_s=timeout_s)


STORES: dict[str, Factory] = {
    "sqlite": _database,
    "postgresql": _database,
    "postgres": _database,
    "mysql": _database,
}
DEFAULT: Factory = ClientStore


def open_store(tracking_uri: str, *, timeout_s: float = 10.0) -> MetricStore:
    """The store of `tracking_uri`: STORES' entry for its scheme, else MlflowClient's."""
    return STORES.get(scheme_of(tracking_uri), DEFAULT)(tracking_uri, timeout_s=timeout_s)
