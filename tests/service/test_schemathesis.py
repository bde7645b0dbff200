"""Schemathesis against the live OpenAPI schema of a real server (uvicorn on a loopback port,
SQLite, embedded broker, tokens required): generated requests to every operation, a bounded
number each, never get a 5xx, and every response matches its declared schema and content type.

A few experiments exist first (queued, one of them finished) so that generated ids sometimes
hit rows: the prefixes of ids are what the generator cannot guess.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from server import auth
from server.db import session_factory
from server.main import create_app
from tests.service.conftest import make_settings, served, sqlite_url

EXAMPLES = 25  # per operation: the whole test stays well under a minute
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
SPEC = {"name": "live", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("schemathesis")
    config = make_settings(
        folder,
        database_url=sqlite_url(folder),
        require_tokens=True,
        write_rate_per_minute=100_000,
    )
    with session_factory(config.resolved_database_url())() as session:
        secret = auth.create_token(session, name="schemathesis")
    with served(create_app(config)) as url:
        yield url, secret


@pytest.fixture(scope="module")
def api_schema(live: tuple[str, str]):
    url, secret = live
    import httpx

    headers = {"Authorization": f"Bearer {secret}"}
    for _ in range(3):
        httpx.post(f"{url}/experiments", json=SPEC, headers=headers).raise_for_status()
    return schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers)


def test_api_conforms_to_its_schema(api_schema, live: tuple[str, str]) -> None:
    _, secret = live
    headers = {"Authorization": f"Bearer {secret}"}
    failures, operations = [], 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def exercise(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            exercise()
        except Exception as err:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {err}")
    assert operations >= 15
    assert failures == [], "\n\n".join(failures)


def test_the_schema_names_the_routes(api_schema) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {"/experiments", "/experiments/{experiment_id}", "/health"} <= paths
