"""Between the trainer (events, should_stop) and the experiment row (progress, cancel).

A heartbeat thread writes progress and liveness to the row every few seconds and reads the cancel
flag, so a long evaluation or stage transition never looks like a lost worker, and a cancel is
seen within one heartbeat.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from igm_core.events import Event
from server import crud

log = logging.getLogger("worker.bridge")


class Bridge:
    """Between the trainer (events, should_stop) and the experiment row (progress, cancel)."""

    def __init__(
        self, sessions: sessionmaker[Session], experiment_id: str, worker: str, interval: float
    ) -> None:
        self.sessions, self.experiment_id, self.worker = sessions, experiment_id, worker
        self.interval = interval
        self.progress: dict[str, Any] = {}
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def __enter__(self) -> Bridge:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.beat()  # the last progress, before the outcome is written

    def on_event(self, event: Event) -> None:
        """Fold the event's progress fields (igm_core.events.PROGRESS_KEYS) into the record."""
        self.progress = {**self.progress, **event.progress()}

    def should_stop(self) -> bool:
        return self.cancel.is_set()

    def beat(self) -> None:
        try:
            with self.sessions() as s:
                if crud.heartbeat(
                    s,
                    experiment_id=self.experiment_id,
                    worker=self.worker,
                    progress=dict(self.progress) or None,
                ):
                    self.cancel.set()
        except Exception:  # the database may blip; the next beat tries again
            log.exception("heartbeat for %s failed", self.experiment_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
