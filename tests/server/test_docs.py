"""The vendored copies /docs and /redoc serve (server/routes/docs.py): pinned versions, each with
its licence and where it came from."""

from __future__ import annotations

import re

from server.routes import docs


def test_vendored_libraries_are_pinned_and_licensed() -> None:
    vendor = docs.STATIC_DIR / "vendor"
    for prefix in (docs.SWAGGER_UI, docs.REDOC):
        folder = vendor / prefix.rsplit("/", 1)[-1]
        assert re.fullmatch(r"[a-z-]+-\d+\.\d+\.\d+", folder.name), folder  # a pinned version
        assert (folder / "LICENSE").stat().st_size > 500, folder
        assert f"npm pack {folder.name.rsplit('-', 1)[0]}@" in (folder / "SOURCE.txt").read_text()
