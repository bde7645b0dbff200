"""Service settings: the one place that reads environment variables (prefix IGM_).

Embedded default: everything under one data directory (SQLite database, MLflow SQLite store and
artifacts, a filesystem broker, run directories). A lab sets IGM_DATABASE_URL (PostgreSQL),
IGM_BROKER_URL (Redis) and MLFLOW_TRACKING_URI (an MLflow server) instead.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IGM_", extra="ignore")

    data_dir: Path = Field(Path("igm-data"), description="embedded database, stores and runs")
    database_url: str | None = None
    broker_url: str | None = None
    mlflow_tracking_uri: str | None = Field(
        None, validation_alias=AliasChoices("IGM_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI")
    )
    project: str = Field("igm-lab", description="the MLflow experiment that holds the runs")
    default_queue: str = Field("cpu", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    queues: list[str] = Field(["cpu", "gpu"], description="queues a spec may ask for")
    max_attempts: int = Field(3, ge=1, le=100)
    max_body_bytes: int = Field(1_000_000, ge=1_000)
    max_sweep_size: int = Field(
        200, ge=1, le=100_000, description="experiments one sweep request may create"
    )
    max_data_bytes: int = Field(
        64 * 10**9, ge=10**6, description="cap on a spec's estimated in-memory data (bytes)"
    )
    max_parameters: int = Field(
        500_000_000, ge=1_000, description="cap on a spec's estimated model parameters"
    )
    max_steps: int = Field(
        5_000_000, ge=100, description="cap on a spec's estimated training steps"
    )
    worker_seen_within_s: float = Field(
        300.0,
        ge=10,
        description="a worker counts toward its queues' cost caps while it has reported within "
        "this long (it reports at start and every fifth of this); none: the caps above apply",
    )
    worker_memory_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="the share of a worker's memory and GPU memory a spec's estimate may take "
        "(the rest: the system, Python, activations)",
    )
    task_time_limit_s: int = Field(
        7 * 24 * 3600,
        ge=1,
        description="a run's time limit on a queue not in queue_time_limits_s (seconds)",
    )
    queue_time_limits_s: dict[str, int] = Field(
        default_factory=dict,
        description='per-queue time limits, e.g. {"cpu": 86400, "gpu": 604800} (seconds)',
    )
    data_roots: list[Path] = Field(
        default_factory=list, description="folders a `features` dataset root may lie under"
    )
    heartbeat_s: float = Field(3.0, gt=0)
    stale_after_s: float = Field(120.0, gt=0, description="a running row this quiet is lost")
    reconcile_s: float = Field(
        60.0, gt=0, description="how often the API re-sends the ids of rows whose worker was lost"
    )
    requeue_queued_after_s: float = Field(
        300.0,
        gt=0,
        description="a queued row unclaimed this long is sent again once its broker queue is empty",
    )
    broker_lost_after_s: float = Field(
        600.0,
        gt=0,
        description="/health reports lost broker messages when a row has been queued this long "
        "while the broker's queues are empty",
    )
    mlflow_timeout_s: float = Field(
        10.0, gt=0, le=600, description="the API's limit on one call to the MLflow store"
    )
    mlflow_threads: int = Field(
        8, ge=1, le=64, description="MLflow calls the API runs at once (more wait, then 503)"
    )
    mlflow_start_wait_s: float = Field(
        600.0,
        ge=0,
        description="how long a worker waits for an unreachable MLflow store before a run fails",
    )
    visibility_timeout_s: int = Field(14 * 24 * 3600, ge=60)
    broker_poll_s: float = Field(0.1, gt=0, description="embedded broker polling interval")
    worker_max_tasks_per_child: int = Field(1, ge=1)
    require_tokens: bool = Field(
        False, description="lab mode: every write needs an API token (igm token create)"
    )
    public_reads: bool = Field(False, description="with require_tokens: reads (GET) need no token")
    write_rate_per_minute: int = Field(
        120, ge=1, le=1_000_000, description="writes one API token may make per minute (429)"
    )
    trusted_hosts: list[str] = Field(
        ["localhost", "127.0.0.1", "::1"],
        description="Host headers the API answers (400 otherwise); `igm up --host` adds its "
        'host; "*" allows any',
    )
    mlflow_allowed_hosts: list[str] = Field(
        ["mlflow:5000", "localhost:5000", "127.0.0.1:5000"],
        description="Host headers the lab's MLflow server answers (`igm mlflow-server`, its "
        '--allowed-hosts; 403 otherwise): host:port as clients send it, "*" patterns allowed',
    )
    mlflow_secret_key: str | None = Field(
        None,
        validation_alias=AliasChoices("IGM_MLFLOW_SECRET_KEY", "MLFLOW_FLASK_SERVER_SECRET_KEY"),
        description="the lab MLflow server's Flask secret (CSRF of its login and user pages); "
        "none: `igm mlflow-server` draws one per start",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins allowed cross-origin requests (none: CORS stays closed)",
    )
    mlflow_ui_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s<>\"']{1,500}$",
        description="the MLflow UI the dashboard links each run to (http or https)",
    )

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'igm.db'}"

    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    def broker_folder(self) -> Path:
        return self.data_dir.resolve() / "broker"

    def resolved_mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_dir.resolve() / 'mlflow.db'}"

    def mlflow_artifact_root(self) -> str | None:
        """Where runs of a local MLflow store keep artifacts (None: the server decides)."""
        if self.mlflow_tracking_uri and not self.mlflow_tracking_uri.startswith("sqlite"):
            return None
        return (self.data_dir.resolve() / "mlartifacts").as_uri()

    def time_limit_s(self, queue: str) -> int:
        """The soft time limit of a run on `queue`; the hard one is a minute later."""
        return max(1, int(self.queue_time_limits_s.get(queue, self.task_time_limit_s)))

    def runs_dir(self) -> Path:
        return self.data_dir.resolve() / "runs"


@functools.cache
def get_settings() -> Settings:
    return Settings()
