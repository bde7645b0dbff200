"""A tracker that appends JSON lines to a local file, and the reader of its metric history."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

from igm_core.tracking.base import to_float


class JsonlTracker:
    """Appends one JSON object per line to `path`, with "type" and "time" (unix seconds).

    Records: {"type": "params", "params": {...}}, {"type": "metrics", "step": N, "metrics":
    {...}} (non-finite or non-numeric values written as "nan", "inf", "-inf": strict JSON),
    {"type": "artifact", "path": ..., "artifact_path": ...}, {"type": "tags", "tags": {...}},
    {"type": "finish", "status": ...}.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8", buffering=1)  # line-buffered

    def _write(self, record: dict[str, Any]) -> None:
        record["time"] = time.time()
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    def log_params(self, params: dict[str, Any]) -> None:
        self._write({"type": "params", "params": params})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        values = {str(k): to_float(v) for k, v in metrics.items()}
        values = {k: v if math.isfinite(v) else str(v) for k, v in values.items()}
        self._write({"type": "metrics", "step": int(step), "metrics": values})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._write({"type": "artifact", "path": str(path), "artifact_path": artifact_path})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._write({"type": "tags", "tags": {str(k): str(v) for k, v in tags.items()}})

    def finish(self, status: str = "FINISHED") -> None:
        self._write({"type": "finish", "status": status})
        with self._lock:
            self._file = self._file and self._file.close()  # later calls write nothing


def read_jsonl_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """The (step, value) history per metric key from a `JsonlTracker` file, in logging order.

    Lines that do not parse (a record cut short by a crash) are skipped.
    """
    history: dict[str, list[tuple[int, float]]] = {}
    with Path(path).open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("type") == "metrics":
                for key, value in record["metrics"].items():
                    history.setdefault(key, []).append((int(record["step"]), float(value)))
    return history
