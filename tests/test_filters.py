"""The experiment filters are declared once: the server's model (server.filters) checks them,
and the client, the `igm ls` options and the dashboard take their names from it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from igm_client import FILTERS, IGMClient
from igm_client.cli import build_parser
from server.filters import FILTER_NAMES, ExperimentFilters


def test_the_client_names_the_servers_filters() -> None:
    assert FILTERS == FILTER_NAMES == tuple(ExperimentFilters.model_fields)
    ls = build_parser().parse_args(["ls", *(f"--{name}=v" for name in FILTERS)])
    assert {name: getattr(ls, name) for name in FILTERS} == dict.fromkeys(FILTERS, "v")
    with IGMClient("http://127.0.0.1:9") as client, pytest.raises(TypeError, match="'state'"):
        client.list(state="queued")  # refused before anything is sent


@pytest.mark.parametrize(
    ("given", "loc", "msg"),
    [
        ({"status": "done"}, "status", "unknown status 'done'; choose one of: queued, running, "),
        ({"q": "a\x00b"}, "q", "must not contain NUL characters"),
        ({"tag": "t" * 65}, "tag", "String should have at most 64 characters"),
        ({"q": "q" * 129}, "q", "String should have at most 128 characters"),
        ({"sweep": "\x00"}, "sweep", "must not contain NUL characters"),
    ],
)
def test_bad_filters_are_refused_by_name(given: dict, loc: str, msg: str) -> None:
    with pytest.raises(ValidationError) as info:
        ExperimentFilters.model_validate(given)
    (error,) = info.value.errors()
    assert error["loc"] == (loc,) and error["msg"].startswith(msg)
