"""The base requirements of igm-lab (see build_backend/igm_build.py): the `client` extra's in a
wheel, the `all` extra's as well in an editable install of a checkout. The extras build on each
other ("igm-lab[client]" in `server`): here such a reference is replaced by that extra's own
requirements, so that the base never names igm-lab itself. Everything else about the distribution
is in pyproject.toml."""

import os
import re
import tomllib
from pathlib import Path

from setuptools import setup

project = tomllib.loads((Path(__file__).parent / "pyproject.toml").read_text())["project"]
extras = project["optional-dependencies"]
SELF = re.compile(re.escape(project["name"]) + r"\[([a-z,]+)\]")


def requirements(extra: str) -> list[str]:
    """An extra's requirements, in order, with its references to other extras followed."""
    found: list[str] = []
    for req in extras[extra]:
        ref = SELF.fullmatch(req.strip())
        for r in [r for e in ref.group(1).split(",") for r in requirements(e)] if ref else [req]:
            if r not in found:
                found.append(r)
    return found


base = requirements("client")
if os.environ.get("IGM_BUILD_EDITABLE") == "1":
    base += [r for r in requirements("all") if r not in base]
setup(install_requires=base)
