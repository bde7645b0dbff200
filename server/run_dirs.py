"""The run directories of experiments (checkpoints, result files) under settings.runs_dir()."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

logger = logging.getLogger("server.run_dirs")


def remove(runs_dir: Path, experiment_id: str) -> None:
    """Remove runs_dir/<id>, never anything outside runs_dir (a symlink is unlinked, not
    followed; the id is 32 hex digits, checked by the dependency that loaded the row)."""
    path = runs_dir / experiment_id
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir() and path.resolve().parent == runs_dir.resolve():
            shutil.rmtree(path)
    except OSError as exc:
        logger.warning("could not remove the run directory %s: %s", path, exc)
