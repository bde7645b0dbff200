"""The build backend of igm-lab: setuptools, with one twist for source checkouts.

A wheel (`pip install igm-lab`, `pip install "igm-lab[client]"`, `pip install ".[server]"`) has the
client's requirements as its base (httpx, PyYAML, rich) and everything else behind extras:
`server` (the API and the MLflow server, no torch), `worker` (the trainer, torch), `all`, `dev`.
An editable install of a checkout (`pip install -e .`, what the README's first command runs before
`igm up --demo`) is a developer's or a newcomer's machine: it gets every part, as if `[all]` had
been asked. Extras alone cannot express both (an extra can add requirements, never remove them),
so the editable hooks set IGM_BUILD_EDITABLE for setup.py, which then adds the `all` extra's
requirements to the base.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _orig
from setuptools.build_meta import *  # noqa: F403  the other hooks unchanged

FLAG = "IGM_BUILD_EDITABLE"


def _editable(hook_name: str):
    hook = getattr(_orig, hook_name)

    def wrapped(*args, **kwargs):
        os.environ[FLAG] = "1"
        try:
            return hook(*args, **kwargs)
        finally:
            os.environ.pop(FLAG, None)

    wrapped.__name__ = hook_name
    return wrapped


get_requires_for_build_editable = _editable("get_requires_for_build_editable")
prepare_metadata_for_build_editable = _editable("prepare_metadata_for_build_editable")
build_editable = _editable("build_editable")
