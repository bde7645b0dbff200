"""Read-only access to the MLflow tracking store: metric keys and histories, run artifacts.

MlflowClient.get_metric_history builds one ORM object per point (about 2.4 s for 100,000 points
on SQLite), so when the tracking URI is a database URI the histories and keys are read with one
SQL query each from MLflow's `metrics` / `latest_metrics` tables over a raw DB-API cursor. Other
URIs (an MLflow server over http(s), file stores) go through MlflowClient. mlflow itself is
imported lazily: `import mlflow` costs about a second and most requests never need it.

Outages: routes call the store through `await reader.call(fn, ...)`, which runs the call on a small
pool of threads of its own (never the pool that serves every other route) and gives up after
`timeout_s` with MlflowUnavailable (the routes answer 503). After a failure the store counts as
down for a moment (`RETRY_AFTER_S`): calls then fail at once instead of piling up. HTTP calls of
MlflowClient are bounded too (one try, `timeout_s` seconds), so a dead server frees its threads.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import posixpath
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from server.downsample import downsample

logger = logging.getLogger("server.mlflow_reader")

DB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql")
MAX_ARTIFACTS = 10_000
CACHE_ENTRIES = 512  # downsampled histories (about 1,000 points each) kept by MlflowReader
NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "ENDPOINT_NOT_FOUND")
RETRY_AFTER_S = 2.0  # after a failed call, the store counts as down this long
T = TypeVar("T")


# server.downsample's contract in SQL: points numbered i = 0..n-1 in step order; the first and
# the last are kept; inner point i (1..n-2) falls in bucket (i*k - 1) // (n - 2) of k equal
# buckets (the same bounds as the numpy version), and each bucket keeps its first minimum and
# first maximum, NULL (NaN) never winning over a number; a history of at most :max points is
# kept whole. Integer division in both SQLite and PostgreSQL.
DOWNSAMPLE_SQL = """
WITH pts AS (
    SELECT step, CASE WHEN is_nan THEN NULL ELSE value END AS v,
           ROW_NUMBER() OVER (ORDER BY {order}) - 1 AS i, COUNT(*) OVER () AS n
    FROM metrics WHERE run_uuid = :run AND key = :key AND step > :after
), bucketed AS (
    SELECT step, v, i, n,
           CASE WHEN n <= :max OR i = 0 OR i = n - 1 THEN -1
                ELSE (i * :k - 1) / (n - 2) END AS b
    FROM pts
), extremes AS (
    SELECT step, v, i, n, b,
           MIN(v) OVER (PARTITION BY b) AS lo, MAX(v) OVER (PARTITION BY b) AS hi,
           MIN(i) OVER (PARTITION BY b) AS first
    FROM bucketed
), firsts AS (
    SELECT step, v, i, n, b, first,
           MIN(CASE WHEN v = lo THEN i END) OVER (PARTITION BY b) AS lo_i,
           MIN(CASE WHEN v = hi THEN i END) OVER (PARTITION BY b) AS hi_i
    FROM extremes
)
SELECT step, v, n FROM firsts
WHERE b = -1 OR i = lo_i OR i = hi_i OR (lo_i IS NULL AND i = first)
ORDER BY i
"""


class MlflowUnavailable(RuntimeError):
    """The tracking store could not be read."""


class ArtifactNotFound(LookupError):
    """No such artifact in the run."""


class ArtifactIsDirectory(ValueError):
    """The artifact path names a folder, not a file."""


def _scheme(uri: str) -> str:
    return urlsplit(uri).scheme.split("+", 1)[0].lower()


def _sqlalchemy_url(uri: str) -> str:
    """MLflow's plain postgresql:// means psycopg2; this environment ships psycopg 3."""
    scheme, _, rest = uri.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return uri


class MlflowReader:
    """Reads runs of one tracking store; safe to share between request threads."""

    def __init__(self, tracking_uri: str, *, timeout_s: float = 10.0, threads: int = 8) -> None:
        self.tracking_uri = tracking_uri
        self.scheme = _scheme(tracking_uri)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._engine: Any = None
        self._client: Any = None
        self._cache: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()
        # SQL buckets on server databases; on SQLite reading the points is faster (see below)
        self.sql_downsample = self.is_database and self.scheme != "sqlite"
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="mlflow-reader")
        self._down_until = 0.0
        self._down_reason = ""

    # --------------------------------------------------------------------------- bounded calls

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` (a method of this reader) on the reader's own threads, within
        timeout_s; MlflowUnavailable when the store fails, is slow, or failed a moment ago."""
        if time.monotonic() < self._down_until:
            raise MlflowUnavailable(f"the MLflow store is unavailable: {self._down_reason}")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        try:
            # a call still waiting for a thread is dropped when the request gives up
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            self._mark_down(f"no answer within {self.timeout_s:g} s")
            raise MlflowUnavailable(
                f"the MLflow store did not answer within {self.timeout_s:g} s"
            ) from None
        except MlflowUnavailable as err:
            self._mark_down(str(err)[:300])
            raise

    def _mark_down(self, reason: str) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER_S
        self._down_reason = reason

    # --------------------------------------------------------------------------- plumbing

    @property
    def is_database(self) -> bool:
        return self.scheme in DB_SCHEMES

    def sqlite_path(self) -> Path | None:
        """The database file of a sqlite:/// store (None for other stores or in-memory)."""
        if self.scheme != "sqlite":
            return None
        path = self.tracking_uri.split("://", 1)[1].removeprefix("/")
        return Path(path) if path and path != ":memory:" else None

    def _store_missing(self) -> bool:
        """A local SQLite store that no run has created yet (reading it would create it)."""
        path = self.sqlite_path()
        return path is not None and not path.is_file()

    def engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                from sqlalchemy import create_engine

                url = _sqlalchemy_url(self.tracking_uri)
                # a database that does not answer fails the connection within the timeout
                args = {"connect_timeout": max(1, round(self.timeout_s))}
                self._engine = create_engine(
                    url,
                    pool_pre_ping=True,
                    connect_args=args if url.startswith("postgresql") else {},
                )
            return self._engine

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                if self.scheme in ("http", "https"):
                    # read at every request by MlflowClient; this process only reads from the
                    # server: one try per call, bounded, rather than 7 retries over minutes
                    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, round(self.timeout_s)))
                    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(self.tracking_uri)
            return self._client

    def _query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run `sql` (placeholders written :name) on a raw DB-API cursor; rows as tuples."""
        engine = self.engine()
        if engine.dialect.paramstyle in ("pyformat", "format"):
            for name in params:
                sql = sql.replace(f":{name}", f"%({name})s")
        try:
            conn = engine.raw_connection()
            try:
                cur = conn.cursor()
                cur.execute(sql, params)
                return cur.fetchall()
            finally:
                conn.close()
        except Exception as exc:
            logger.warning("reading the MLflow store failed: %s", exc)
            raise MlflowUnavailable(f"the MLflow store cannot be read: {exc}") from exc

    def _sql_supported(self) -> bool:
        """Database stores whose driver takes :name (sqlite3) or %(name)s placeholders."""
        if not self.is_database:
            return False
        dialect = self.engine().dialect
        return dialect.name == "sqlite" or dialect.paramstyle in ("pyformat", "format")

    # --------------------------------------------------------------------------- metrics

    def metric_keys(self, run_id: str) -> list[str]:
        """Sorted metric keys of the run ([] when the run has none or does not exist)."""
        if self._store_missing():
            return []
        if self._sql_supported():
            rows = self._query(
                "SELECT key FROM latest_metrics WHERE run_uuid = :run", {"run": run_id}
            )
            return sorted({row[0] for row in rows})
        try:
            run = self.client().get_run(run_id)
        except Exception as exc:
            if _is_not_found(exc):
                return []
            raise MlflowUnavailable(f"the MLflow store cannot be read: {exc}") from exc
        return sorted(run.data.metrics)

    def metric_history(
        self, run_id: str, key: str, after_step: int | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(steps, values) of one metric in step order, NaN where MLflow stored NaN; None when
        the run has no such metric (or, with after_step, no point after that step)."""
        if self._store_missing():
            return None
        if self._sql_supported():
            # SQLite walks the (run_uuid, key, step) index, so equal steps (a resumed run logs
            # some twice) come in insertion order anyway; sorting them by timestamp as well
            # costs a temporary B-tree, about a third of the request for 100,000 points.
            order = "step" if self.engine().dialect.name == "sqlite" else "step, timestamp"
            rows = self._query(
                "SELECT step, value, is_nan FROM metrics "
                f"WHERE run_uuid = :run AND key = :key AND step > :after ORDER BY {order}",
                {
                    "run": run_id,
                    "key": key,
                    "after": -(2**62) if after_step is None else after_step,
                },
            )
            if not rows:
                return None
            # numbers only (NaN comes as a flag), so fromiter reads the rows without building a
            # Python list per row: about a fifth of the read of a 100,000-point key
            flat = itertools.chain.from_iterable(rows)
            table = np.fromiter(flat, dtype=np.float64, count=3 * len(rows)).reshape(-1, 3)
            values = table[:, 1]
            values[table[:, 2] != 0] = np.nan
            return table[:, 0].astype(np.int64), values
        history = self._client_history(run_id, key)
        if history is None or after_step is None:
            return history
        newer = history[0] > after_step
        return (history[0][newer], history[1][newer]) if newer.any() else None

    def metric_downsampled(
        self,
        run_id: str,
        key: str,
        max_points: int,
        after_step: int | None = None,
    ) -> tuple[list[int], list[float], int] | None:
        """server.downsample.downsample of metric_history, and the points in the full history;
        None as metric_history.

        A PostgreSQL (or other server database) store computes the buckets in SQL, so only the
        kept points leave the database and the API process spends ~1 ms of CPU per 100,000-point
        key instead of ~50 ms. On SQLite the same SQL ran 4-5x slower than reading the points
        (SQLite sorts the windows in the API process), so there the points are read and
        downsampled here (`sql_downsample` chooses). Whole histories (no after_step) of a
        database store are cached per (run, key, max_points): a run only grows (a resumed
        attempt logs into a run of its own, server.attempts), and the key's row in MLflow's
        latest_metrics, one primary-key read, says whether points were added since."""
        if self._store_missing():
            return None
        cacheable = after_step is None and self._sql_supported()
        if cacheable:
            probe = self._query(
                "SELECT step, timestamp, value, is_nan FROM latest_metrics "
                "WHERE run_uuid = :run AND key = :key",
                {"run": run_id, "key": key},
            )
            if not probe:
                return None
            token = tuple(probe[0])
            ckey = (run_id, key, max_points)
            with self._lock:
                hit = self._cache.get(ckey)
                if hit is not None and hit[0] == token:
                    self._cache.move_to_end(ckey)
                    return hit[1]
        result = self._downsampled(run_id, key, max_points, after_step)
        if cacheable and result is not None:
            with self._lock:
                self._cache[ckey] = (token, result)
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return result

    def _downsampled(
        self, run_id: str, key: str, max_points: int, after_step: int | None
    ) -> tuple[list[int], list[float], int] | None:
        if not (self.sql_downsample and self._sql_supported()) or max_points < 4:
            history = self.metric_history(run_id, key, after_step)
            if history is None:
                return None
            return (*downsample(*history, max_points), len(history[0]))
        order = "step" if self.engine().dialect.name == "sqlite" else "step, timestamp"
        rows = self._query(
            DOWNSAMPLE_SQL.format(order=order),
            {
                "run": run_id,
                "key": key,
                "after": -(2**62) if after_step is None else after_step,
                "max": max_points,
                "k": (max_points - 2) // 2,
            },
        )
        if not rows:
            return None
        nan = float("nan")
        steps = [int(r[0]) for r in rows]
        values = [nan if r[1] is None else float(r[1]) for r in rows]
        return steps, values, int(rows[0][2])

    def _client_history(self, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            history = self.client().get_metric_history(run_id, key)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise MlflowUnavailable(f"the MLflow store cannot be read: {exc}") from exc
        if not history:
            return None
        history = sorted(history, key=lambda m: (m.step, m.timestamp))
        steps = np.fromiter((m.step for m in history), dtype=np.int64, count=len(history))
        values = np.fromiter((m.value for m in history), dtype=np.float64, count=len(history))
        return steps, values

    def metric_times(self, run_id: str, key: str, last_only: bool = False) -> list[tuple[int, int]]:
        """(step, timestamp in ms) of the points of one metric in step order, or with last_only
        its last point alone (an index seek): what a chart's wall-time axis is built from."""
        if self._store_missing():
            return []
        if self._sql_supported():
            order = "step DESC LIMIT 1" if last_only else "step"
            rows = self._query(
                "SELECT step, timestamp FROM metrics WHERE run_uuid = :run AND key = :key "
                f"ORDER BY {order}",
                {"run": run_id, "key": key},
            )
            return [(int(a), int(b)) for a, b in rows]
        try:
            history = self.client().get_metric_history(run_id, key)
        except Exception as exc:
            if _is_not_found(exc):
                return []
            raise MlflowUnavailable(f"the MLflow store cannot be read: {exc}") from exc
        points = sorted((m.step, m.timestamp) for m in history)
        return points[-1:] if last_only else points

    def run_info(self, run_id: str) -> dict[str, Any] | None:
        """The run's MLflow experiment id and start time (ms); None when the run is unknown."""
        if self._store_missing():
            return None
        if self._sql_supported():
            rows = self._query(
                "SELECT experiment_id, start_time FROM runs WHERE run_uuid = :run", {"run": run_id}
            )
            if not rows:
                return None
            return {"experiment_id": str(rows[0][0]), "start_time": rows[0][1]}
        try:
            info = self.client().get_run(run_id).info
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise MlflowUnavailable(f"the MLflow store cannot be read: {exc}") from exc
        return {"experiment_id": str(info.experiment_id), "start_time": info.start_time}

    # --------------------------------------------------------------------------- artifacts

    def list_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """Every artifact of the run, folders included, depth first ({path, size, is_dir})."""
        client = self.client()
        out: list[dict[str, Any]] = []
        pending: list[str | None] = [None]
        try:
            while pending and len(out) < MAX_ARTIFACTS:
                for info in client.list_artifacts(run_id, pending.pop()):
                    out.append({"path": info.path, "size": info.file_size, "is_dir": info.is_dir})
                    if info.is_dir:
                        pending.append(info.path)
        except Exception as exc:
            if _is_not_found(exc):
                return []
            raise MlflowUnavailable(f"cannot list the artifacts: {exc}") from exc
        return sorted(out[:MAX_ARTIFACTS], key=lambda a: a["path"])

    def download_artifact(self, run_id: str, path: str, dst_dir: Path) -> Path:
        """Copy one artifact file into `dst_dir` and return its local path."""
        client = self.client()
        parent = posixpath.dirname(path) or None
        try:
            entries = {info.path: info for info in client.list_artifacts(run_id, parent)}
        except Exception as exc:
            if _is_not_found(exc):
                raise ArtifactNotFound(path) from None
            raise MlflowUnavailable(f"cannot list the artifacts: {exc}") from exc
        info = entries.get(path)
        if info is None:
            raise ArtifactNotFound(path)
        if info.is_dir:
            raise ArtifactIsDirectory(path)
        try:
            local = client.download_artifacts(run_id, path, dst_path=str(dst_dir))
        except Exception as exc:
            raise MlflowUnavailable(f"cannot download artifact {path!r}: {exc}") from exc
        return Path(local)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _is_not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) in NOT_FOUND_CODES
