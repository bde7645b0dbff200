"""The SQL downsample of a database MLflow store (SqlStore.metric_downsampled) keeps exactly
the points that server.downsample keeps from the full history, on SQLite and PostgreSQL stores.

Histories with ties, NaN runs (a whole bucket of NaN too), a spike and a dip, lengths around the
budgets; budgets from 1 to above the length; with and without after_step.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import mlflow.tracking as mlflow_tracking
import numpy as np
import psycopg
import pytest
from mlflow.entities import Metric

from server.downsample import downsample
from server.metric_store import open_store
from server.metric_store.sql import SqlStore
from tests.service.conftest import PG_ADMIN

LENGTHS = {"one": 1, "five": 5, "k999": 999, "k1000": 1000, "k1001": 1001, "k5003": 5003}
BUDGETS = (1, 2, 3, 4, 5, 7, 10, 101, 1000, 1001, 6000)


def _values(name: str, n: int) -> list[float]:
    rng = np.random.default_rng(len(name) * 1000 + n)
    values = np.round(rng.normal(0, 1, n), 1)  # rounding makes ties within buckets
    if n > 100:
        values[10:60] = np.nan  # whole buckets of NaN at small budgets
        values[n // 3] = 50.0
        values[n // 2] = -50.0
        values[-1] = np.nan
    return values.tolist()


def _fill(uri: str) -> str:
    client = mlflow_tracking.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment(f"ds-{uuid.uuid4().hex[:6]}")).info.run_id
    for key, n in LENGTHS.items():
        points = [
            Metric(key, v, 1_700_000_000_000 + s, s * 3) for s, v in enumerate(_values(key, n))
        ]
        for start in range(0, n, 1000):
            client.log_batch(run_id, metrics=points[start : start + 1000])
    return run_id


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[tuple[SqlStore, str]]:
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path_factory.mktemp('ds') / 'mlflow.db'}"
        reader = open_store(uri)
        assert isinstance(reader, SqlStore)  # chosen by the scheme
        yield reader, _fill(uri)
        reader.close()
        return
    name = f"igm_ds_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    uri = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    reader = open_store(uri)
    assert isinstance(reader, SqlStore)
    try:
        yield reader, _fill(uri)
    finally:
        reader.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _same(a: tuple[list[int], list[float], int], b: tuple[list[int], list[float], int]) -> bool:
    return a[0] == b[0] and a[2] == b[2] and np.array_equal(a[1], b[1], equal_nan=True)


def test_sql_downsample_equals_the_python_downsampler(store) -> None:
    reader, run_id = store
    reader.sql_downsample = True  # the SQL path on SQLite too (the reader chooses Python there)
    checked = 0
    for key, n in LENGTHS.items():
        for after in (None, 299):
            history = reader.metric_history(run_id, key, after)
            if history is None:
                assert n * 3 <= 300 and reader.metric_downsampled(run_id, key, 10, after) is None
                continue
            for budget in BUDGETS:
                want = (*downsample(*history, budget), len(history[0]))
                got = reader.metric_downsampled(run_id, key, budget, after)
                assert _same(got, want), (key, after, budget)
                checked += 1
    assert checked > 100
    assert reader.metric_downsampled(run_id, "no-such-key", 100) is None
    spiky = reader.metric_downsampled(run_id, "k5003", 4)
    assert spiky is not None and 50.0 in spiky[1] and -50.0 in spiky[1]
    assert math.isnan(spiky[1][-1])


def test_cached_histories_follow_new_points(store) -> None:
    """A run only grows (a resumed attempt logs into a new run): a new step, or the last step
    logged again, changes MLflow's latest_metrics row, and the cached history is recomputed."""
    reader, _ = store
    client = mlflow_tracking.MlflowClient(reader.tracking_uri)
    run_id = client.create_run(client.create_experiment(f"c-{uuid.uuid4().hex[:6]}")).info.run_id
    client.log_batch(run_id, metrics=[Metric("m", float(s % 7), 1000 + s, s) for s in range(500)])

    def now() -> tuple[list[int], list[float], int] | None:
        got = reader.metric_downsampled(run_id, "m", 50)
        want = reader.metric_downsampled(run_id, "m", 50, after_step=-1)  # never cached
        assert got == want
        return got

    first = now()
    assert first[2] == 500 and now() is first  # a hit: the same object
    client.log_batch(run_id, metrics=[Metric("m", -9.0, 5000, 700)])  # a new step
    assert now()[2] == 501 and -9.0 in now()[1]
    client.log_batch(run_id, metrics=[Metric("m", 99.0, 6000, 700)])  # the last step again
    assert now()[2] == 502 and 99.0 in now()[1]
    assert reader.metric_downsampled(run_id, "none", 50) is None
