"""The base requirements of igm-lab (see build_backend/igm_build.py): the `client` extra's in a
wheel, the `all` extra's as well in an editable install of a checkout. Everything else about the
distribution is in pyproject.toml."""

import os
import tomllib
from pathlib import Path

from setuptools import setup

extras = tomllib.loads((Path(__file__).parent / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]
base = list(extras["client"])
if os.environ.get("IGM_BUILD_EDITABLE") == "1":
    base += [r for r in extras["all"] if r not in base]
setup(install_requires=base)
