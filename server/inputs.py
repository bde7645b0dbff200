"""What the API accepts, checked: spec bodies (JSON or YAML), specs resolved within the data
roots, tags, queues (the list filters: server.filters). Each check turns request input into a
trusted value or a 4xx in the API's one error shape: {"detail": [{"loc": "a.b", "msg": ...}]}.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import yaml
from fastapi import Depends, HTTPException, Request

from igm_core import cost, paths
from igm_core.spec import ResolvedSpec, SpecError, resolve_spec
from server.guards import JSON_TYPES, YAML_TYPES
from server.queue import MAX_PRIORITY
from server.schemas import MAX_TAGS, TAG_PATTERN
from server.settings import Settings

T = TypeVar("T")


def unprocessable(loc: str, msg: str) -> HTTPException:
    """A 422 in the API's one error shape: {"detail": [{"loc", "msg"}]}."""
    return HTTPException(status_code=422, detail=[{"loc": loc, "msg": msg}])


class _NoAliasLoader(yaml.SafeLoader):
    """yaml.safe_load without anchors and aliases: nested aliases blow up exponentially
    ("billion laughs") once the mapping is walked, and a spec never needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not accepted", mark)
        return super().compose_node(parent, index)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse(body: bytes, media: str) -> Any:
    if media in YAML_TYPES:
        try:
            return yaml.load(body, Loader=_NoAliasLoader)
        except (yaml.YAMLError, ValueError, RecursionError) as err:
            raise unprocessable("body", f"malformed YAML: {err}") from None
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError too
        raise unprocessable("body", f"malformed JSON: {err}") from None


def plain_json(data: Any, loc: str = "body") -> Any:
    """`data` as strict JSON data (string keys, finite numbers), or 422 naming the problem."""
    try:
        return json.loads(json.dumps(data, allow_nan=False))
    except ValueError:
        raise unprocessable(loc, "numbers must be finite (no NaN or infinity)") from None
    except (TypeError, RecursionError) as err:
        raise unprocessable(loc, f"holds a value JSON cannot carry: {err}") from None


async def spec_body(request: Request) -> dict[str, Any]:
    """The request body as a spec mapping: JSON (application/json) or YAML (application/yaml,
    application/x-yaml, text/yaml); not yet validated as a spec."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in JSON_TYPES + YAML_TYPES and not media.endswith("+json"):
        raise HTTPException(
            status_code=415,
            detail=f"unsupported content type {media[:100]!r}; send the spec as "
            f"{', '.join(JSON_TYPES + YAML_TYPES)}",
        )
    body = await request.body()
    if not body.strip():
        raise unprocessable("body", "the body is empty; send a spec mapping as JSON or YAML")
    data = _parse(body, media)
    if not isinstance(data, dict):
        kind = "null" if data is None else type(data).__name__
        raise unprocessable("body", f"a spec is a mapping (JSON object), got {kind}")
    return plain_json(data)


SpecBodyDep = Annotated[dict[str, Any], Depends(spec_body)]


# ----------------------------------------------------------------------------- input checks

_TAG = re.compile(TAG_PATTERN)


def check_tags(tags: Sequence[str], loc: str = "query.tags") -> list[str]:
    """The tags, deduplicated, or 422 naming every bad one."""
    if len(tags) > MAX_TAGS:
        raise unprocessable(loc, f"at most {MAX_TAGS} tags, got {len(tags)}")
    bad = [
        {"loc": f"{loc}.{i}", "msg": f"invalid tag {tag[:80]!r}: 1-64 of A-Z a-z 0-9 _ . : -"}
        for i, tag in enumerate(tags)
        if not _TAG.fullmatch(tag)
    ]
    if bad:
        raise HTTPException(status_code=422, detail=bad)
    return list(dict.fromkeys(tags))


def check_priority(priority: int, loc: str = "query.priority") -> int:
    """The priority, if it lies in 0..9 (higher runs first)."""
    if not 0 <= priority <= MAX_PRIORITY:
        raise unprocessable(
            loc, f"priority must lie in 0..{MAX_PRIORITY} (higher runs first), got {priority}"
        )
    return priority


class Checks:
    """Runs input checks and keeps the 422 details of every one that fails, so that a request
    learns all its problems at once; `raise_if_any` ends the request with them."""

    def __init__(self) -> None:
        self.detail: list[dict[str, Any]] = []

    def run(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """check(*args, **kwargs), or None when it refused (its details kept)."""
        try:
            return check(*args, **kwargs)
        except HTTPException as err:
            if err.status_code != 422:
                raise
            self.detail.extend(err.detail if isinstance(err.detail, list) else [err.detail])
        except SpecError as err:
            self.detail.extend(spec_errors(err))
        return None

    def raise_if_any(self) -> None:
        if self.detail:
            raise HTTPException(status_code=422, detail=self.detail)


def check_queue(queue: str | None, settings: Settings, loc: str) -> str:
    """The queue asked for (default: settings.default_queue), if settings.queues has it."""
    queue = queue or settings.default_queue
    if queue not in settings.queues:
        raise unprocessable(
            loc, f"unknown queue {queue[:80]!r}; choose one of: {', '.join(settings.queues)}"
        )
    return queue


def resolve_checked(raw: dict[str, Any], settings: Settings) -> ResolvedSpec:
    """The resolved spec, or SpecError with every problem found: each path the spec names is
    resolved inside settings.data_roots (igm_core.paths) before anything opens it, and a
    refused one is reported with the spec's other problems (the dataset's files are not read
    then); the cost is checked once the spec resolves. The worker checks the stored paths again
    before it opens them."""
    refused: list[paths.PathRefused] = []
    confined = paths.confine_spec(raw, settings.data_roots, refused)
    spec = resolve_spec(confined, found=[(err.loc, err.message) for err in refused])
    check_cost(spec, settings)
    return spec


def check_cost(spec: ResolvedSpec, settings: Settings) -> None:
    """SpecError naming the estimate and the cap when the spec would cost more than this
    deployment allows (igm_core.cost: data in memory, parameters, steps)."""
    caps = cost.Caps(
        max_data_bytes=settings.max_data_bytes,
        max_parameters=settings.max_parameters,
        max_steps=settings.max_steps,
    )
    try:
        errors = cost.check(cost.estimate_spec(spec), caps)
    except (OSError, ValueError, KeyError) as err:  # the meta was readable a moment ago
        errors = [("dataset.params", f"cannot estimate the cost: {type(err).__name__}")]
    if errors:
        raise SpecError(errors)


def spec_errors(err: SpecError, prefix: str = "", **extra: Any) -> list[dict[str, Any]]:
    """SpecError's (path, message) pairs as 422 details: [{"loc": "a.b", "msg": ...}]."""
    return [
        {"loc": f"{prefix}{path}" if path else prefix.rstrip(".") or "body", "msg": msg, **extra}
        for path, msg in err.errors
    ]


def no_nul(**params: str | None) -> None:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the driver
    for name, value in params.items():
        if value is not None and "\x00" in value:
            raise unprocessable(f"query.{name}", "must not contain NUL characters")
