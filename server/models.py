"""Database tables. The experiments table is authoritative for an experiment's state:
queued -> running -> succeeded | failed | cancelled; the broker only carries ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from server import attempts

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    base_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    grid: Mapped[dict[str, Any]] = mapped_column(JSON)
    random: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # seeded samples, if any
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    method: Mapped[str] = mapped_column(String(64), index=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # resolved
    spec_hash: Mapped[str] = mapped_column(String(64))  # indexed with created_at, id (twins)
    status: Mapped[str] = mapped_column(String(16), index=True, default=QUEUED)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    queue: Mapped[str] = mapped_column(String(32))
    sweep_id: Mapped[str | None] = mapped_column(ForeignKey("sweeps.id"), index=True)
    sweep_values: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # this point's values
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(255))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))  # the latest attempt's
    # the API token's name, or "local" on a server that runs without tokens
    submitted_by: Mapped[str | None] = mapped_column(String(64), index=True)
    # every attempt's run, in attempt order: server.attempts (record_run, runs_of)
    attempt_runs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # every write sets it (ORM flushes and UPDATE statements alike): what changed since T
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )

    tags: Mapped[list[ExperimentTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ExperimentTag.tag"
    )

    # (migration 0007) an experiment's twins in order: the read stops after MAX_TWINS; a
    # queue's next row to claim (crud.claim_next): one index entry, not a sort of the queue
    __table_args__ = (
        Index("ix_experiments_spec_hash_created_at", "spec_hash", "created_at", "id"),
        Index("ix_experiments_claim", "queue", "status", text("priority DESC"), "created_at", "id"),
    )

    @property
    def tag_names(self) -> list[str]:
        return [t.tag for t in self.tags]

    def runs(self) -> list[tuple[str, int | None]]:
        """(MLflow run id, step it resumed from) of each attempt that has a run, in order."""
        return attempts.runs_of(self.attempt_runs, self.mlflow_run_id)


class ExperimentTag(Base):
    __tablename__ = "experiment_tags"

    experiment_id: Mapped[str] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class ApiToken(Base):
    """An API token: only the SHA-256 of its secret is kept (the secret is shown once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Worker(Base):
    """A worker process as it reported itself (server.workers): the queues it serves and the
    memory a run may use there. The API sizes each queue's cost caps from the workers seen
    lately (settings.worker_seen_within_s); one that stopped or went silent no longer counts."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # Celery's node name
    host: Mapped[str] = mapped_column(String(255))
    queues: Mapped[list[str]] = mapped_column(JSON)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)  # RAM, or the cgroup limit if lower
    gpu_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)  # None: no CUDA device
    gpu_name: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
