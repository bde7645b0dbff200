"""A cache folder written whole or not at all: a temporary folder beside it, renamed into place."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomically(final: Path, write: Callable[[Path], None], manifest: dict[str, Any]) -> None:
    """`write(tmp)` into a temporary folder beside `final`, add manifest.json, rename it into
    place; a `final` another process finished first is kept."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        try:
            tmp.rename(final)
        except OSError:
            # another `prepare` finished the same cache first; its copy is as good as ours
            if not (final / "manifest.json").is_file():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
