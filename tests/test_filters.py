"""The experiment filters are declared once: the server's model (server.filters) checks them,
and the client, the `igm ls` options and the dashboard take their names from it."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from igm_client import FILTERS, IGMClient
from igm_client.cli import build_parser
from server.filters import FILTER_NAMES, ExperimentFilters


def _takes_many(name: str) -> bool:
    """Whether the server's filter takes several values (a list: repeated query parameters)."""
    annotation = ExperimentFilters.model_fields[name].annotation
    return any(typing.get_origin(a) is list for a in typing.get_args(annotation))


def test_the_client_names_the_servers_filters() -> None:
    assert FILTERS == FILTER_NAMES == tuple(ExperimentFilters.model_fields)
    ls = build_parser().parse_args(["ls", *(f"--{name}=v" for name in FILTERS)])
    given = {name: getattr(ls, name) for name in FILTERS}
    assert given == {name: ["v"] if _takes_many(name) else "v" for name in FILTERS}
    assert _takes_many("match") and not _takes_many("tag")
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
        ({"match": ["seed<2", "x.y<1"]}, "match.1", "bad key 'x.y': a key starts with a spec "),
        ({"match": ["test.acc=>1"]}, "match.0", "unknown operator '=>' in 'test.acc=>1'; use"),
        ({"match": ["test..acc<1"]}, "match.0", "bad key 'test..acc': write parts of letters"),
        ({"match": ["test.acc<high"]}, "match.0", "'<' compares numbers: 'high' in 'test.acc<"),
        ({"match": ["test.acc"]}, "match.0", "bad condition 'test.acc': write KEY OP VALUE"),
        ({"match": ["seed<1e999"]}, "match.0", "'1e999' in 'seed<1e999' is too large"),
        ({"match": ["seed>0"] * 21}, "match", "at most 20 conditions"),
    ],
)
def test_bad_filters_are_refused_by_name(given: dict, loc: str, msg: str) -> None:
    with pytest.raises(ValidationError) as info:
        ExperimentFilters.model_validate(given)
    (error,) = info.value.errors()
    assert ".".join(map(str, error["loc"])) == loc and error["msg"].startswith(msg)
