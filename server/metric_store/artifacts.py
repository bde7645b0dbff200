"""A run's artifacts, listed and downloaded through MlflowClient (every store keeps them in its
artifact repository, whatever holds its metrics)."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from server.metric_store.base import ArtifactIsDirectory, ArtifactNotFound, is_not_found
from server.metric_store.client import LazyClient, unavailable

MAX_ARTIFACTS = 10_000
CANNOT_LIST = "cannot list the artifacts"


class ArtifactStore:
    """Lists and copies the artifacts of runs; safe to share between threads."""

    def __init__(self, tracking_uri: str, *, timeout_s: float = 10.0) -> None:
        self.client = LazyClient(tracking_uri, timeout_s)

    def list(self, run_id: str) -> list[dict[str, Any]]:
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
            if is_not_found(exc):
                return []
            raise unavailable(exc, CANNOT_LIST) from exc
        return sorted(out[:MAX_ARTIFACTS], key=lambda a: a["path"])

    def download(self, run_id: str, path: str, dst_dir: Path) -> Path:
        """Copy one artifact file into `dst_dir` and return its local path."""
        client = self.client()
        parent = posixpath.dirname(path) or None
        try:
            entries = {info.path: info for info in client.list_artifacts(run_id, parent)}
        except Exception as exc:
            if is_not_found(exc):
                raise ArtifactNotFound(path) from None
            raise unavailable(exc, CANNOT_LIST) from exc
        info = entries.get(path)
        if info is None:
            raise ArtifactNotFound(path)
        if info.is_dir:
            raise ArtifactIsDirectory(path)
        try:
            local = client.download_artifacts(run_id, path, dst_path=str(dst_dir))
        except Exception as exc:
            raise unavailable(exc, f"cannot download artifact {path!r}") from exc
        return Path(local)
