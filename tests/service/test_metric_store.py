"""The metric store: chosen once by the tracking URI's scheme; its SQL reads only what the pinned
MLflow's schema has (and fails here, loudly, when an MLflow upgrade changes it); its two
implementations read the same store alike."""

from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path

import mlflow.tracking as mlflow_tracking
import numpy as np
import pytest
from mlflow.entities import Metric
from mlflow.store.tracking.dbmodels import models as mlflow_models

from server.metric_store import MlflowReader, open_store
from server.metric_store import sql as sql_store
from server.metric_store.client import ClientStore
from server.metric_store.sql import SqlStore

MODELS = {
    m.__tablename__: m
    for m in (mlflow_models.SqlMetric, mlflow_models.SqlLatestMetric, mlflow_models.SqlRun)
}
CHANGED = (
    "the pinned MLflow's tables differ from what server/metric_store/sql.py reads: check its "
    "SQL against mlflow/store/tracking/dbmodels/models.py and the new migrations, then update "
    "TABLES and MLFLOW_SCHEMA there"
)


def _sql_texts() -> str:
    return " ".join(
        value
        for name, value in vars(sql_store).items()
        if name.endswith("_SQL") and isinstance(value, str)
    )


def test_the_sql_reads_only_columns_the_pinned_mlflow_has() -> None:
    for table, columns in sql_store.TABLES.items():
        assert table in MODELS, f"{CHANGED} (table {table!r})"
        have = {c.name for c in MODELS[table].__table__.columns}
        assert set(columns) <= have, f"{CHANGED} ({table} lacks {sorted(set(columns) - have)})"
    # the cache's freshness probe reads one row per (run, key)
    primary = {c.name for c in mlflow_models.SqlLatestMetric.__table__.primary_key.columns}
    assert primary == {"run_uuid", "key"}, f"{CHANGED} (latest_metrics' key is {primary})"


def test_every_table_and_column_the_sql_names_is_declared() -> None:
    """TABLES is what the SQL uses, so the check above covers all of it."""
    text = _sql_texts()
    tables = set(re.findall(r"\bFROM\s+([a-z_]+)", text)) - {
        "pts",
        "bucketed",
        "extremes",
        "firsts",
    }
    assert tables == set(sql_store.TABLES)
    words = set(re.findall(r"[a-z_]+", text))
    mlflow_columns = {c.name for m in MODELS.values() for c in m.__table__.columns}
    declared = {c for columns in sql_store.TABLES.values() for c in columns}
    assert words & mlflow_columns <= declared, sorted(words & mlflow_columns - declared)


def test_a_fresh_store_is_at_the_schema_revision_the_sql_was_checked_against(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    mlflow_tracking.MlflowClient(uri).search_experiments()  # creates and migrates the store
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == sql_store.MLFLOW_SCHEMA, f"{CHANGED} (head {revision})"


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("sqlite:///{tmp}/m.db", SqlStore),
        ("postgresql://u@127.0.0.1:1/db", SqlStore),
        ("postgresql+psycopg://u@127.0.0.1:1/db", SqlStore),
        ("http://127.0.0.1:1", ClientStore),
        ("https://mlflow.example", ClientStore),
        ("file:///{tmp}/mlruns", ClientStore),
        ("{tmp}/mlruns", ClientStore),
    ],
)
def test_the_store_is_chosen_once_by_the_scheme(tmp_path: Path, uri: str, kind: type) -> None:
    reader = MlflowReader(uri.format(tmp=tmp_path), timeout_s=1)
    try:
        assert type(reader.store) is kind
    finally:
        reader.close()


@pytest.fixture
def filled(tmp_path: Path) -> tuple[str, str]:
    """(sqlite URI, run id) of a run with NaN, a re-logged step and a long key."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow_tracking.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("s")).info.run_id
    points = [Metric("loss", math.sin(s / 9), 1_000 + 10 * s, s) for s in range(2_500)]
    points += [Metric("loss", 9.0, 99_000, 2_499)]  # the last step again (a resumed run's)
    points += [Metric("acc", v, 500 + i, i * 100) for i, v in enumerate([0.1, math.nan, 0.3])]
    for start in range(0, len(points), 1_000):
        client.log_batch(run_id, metrics=points[start : start + 1_000])
    return uri, run_id


def test_both_implementations_read_a_store_alike(filled: tuple[str, str]) -> None:
    uri, run_id = filled
    sql, client = open_store(uri), ClientStore(uri)
    assert isinstance(sql, SqlStore)
    try:
        for store in (sql, client):
            assert store.metric_keys(run_id) == ["acc", "loss"]
            assert store.metric_keys("f" * 32) == []
            assert store.metric_history(run_id, "nope") is None
            assert store.run_info("f" * 32) is None
        assert sql.run_info(run_id) == client.run_info(run_id)
        for key in ("acc", "loss"):
            for after in (None, 150, 10_000):
                a, b = (
                    sql.metric_history(run_id, key, after),
                    client.metric_history(run_id, key, after),
                )
                assert (a is None) == (b is None), (key, after)
                if a is not None:
                    assert a[0].tolist() == b[0].tolist()
                    assert np.array_equal(a[1], b[1], equal_nan=True)
                for budget in (3, 50, 5_000):
                    x = sql.metric_downsampled(run_id, key, budget, after)
                    y = client.metric_downsampled(run_id, key, budget, after)
                    assert (x is None) == (y is None)
                    if x is not None:
                        assert x[0] == y[0] and x[2] == y[2]
                        assert np.array_equal(x[1], y[1], equal_nan=True)
            assert sql.metric_times(run_id, key, last_only=True) == client.metric_times(
                run_id, key, last_only=True
            )
        assert sql.metric_times(run_id, "acc") == [(0, 500), (100, 501), (200, 502)]
    finally:
        sql.close()
