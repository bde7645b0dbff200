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
from sqlalchemy.orm import Session

from igm_core import catalog, cost, encoder_check, parsing, paths
from igm_core.spec import ResolvedSpec, SpecError, resolve_spec
from server import capacity, workers
from server.guards import JSON_TYPES, WRITES, YAML_TYPES, media_type
from server.queue import MAX_PRIORITY
from server.schemas import MAX_TAGS, TAG_PATTERN
from server.settings import Settings

T = TypeVar("T")


def unprocessable(loc: str, msg: str) -> HTTPException:
    """A 422 in the API's one error shape: {"detail": [{"loc", "msg"}]}."""
    return HTTPException(status_code=422, detail=[{"loc": loc, "msg": msg}])


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse(body: bytes, media: str) -> Any:
    """JSON, or YAML without aliases; a key given twice is refused (igm_core.parsing)."""
    kind = "YAML" if media in YAML_TYPES else "JSON"
    try:
        if kind == "YAML":
            return parsing.loads_yaml(body, aliases=False)
        return parsing.loads_json(body, parse_constant=_reject_constant)
    except parsing.DuplicateKey as err:
        raise unprocessable(f"body.{err.loc}", err.message) from None
    except (yaml.YAMLError, ValueError, RecursionError) as err:  # UnicodeDecodeError too
        raise unprocessable("body", f"malformed {kind}: {err}") from None


def _is_json(media: str) -> bool:
    return media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


async def unique_json_keys(request: Request) -> None:
    """422 naming the key when a JSON body names one key twice in an object, on every route
    (a sweep's `grid` and `random` among them): the JSON parser FastAPI uses keeps the last.
    A body that is not JSON at all is left to the route's own error."""
    media = media_type(request.headers.get("content-type", ""))
    if request.method not in WRITES or not _is_json(media):
        return
    body = await request.body()  # kept by the request: the route reads the same bytes
    try:
        parsing.loads_json(body)
    except parsing.DuplicateKey as err:
        raise unprocessable(f"body.{err.loc}", err.message) from None
    except (ValueError, RecursionError):
        return


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


def resolve_checked(
    raw: dict[str, Any], settings: Settings, fleet: capacity.Fleet | None = None
) -> ResolvedSpec:
    """The resolved spec, or SpecError with every problem found: each path the spec names is
    resolved inside settings.data_roots (igm_core.paths) before anything opens it, and a
    refused one is reported with the spec's other problems (the dataset's files are not read
    then); once the spec resolves, its cost is checked, and with the queue's `fleet`
    (queue_fleet) it must fit one of its live workers. The worker checks the stored paths again
    before it opens them."""
    refused: list[paths.PathRefused] = []
    confined = paths.confine_spec(raw, settings.data_roots, refused)
    spec = resolve_spec(confined, found=[(err.loc, err.message) for err in refused])
    check_fit(spec, settings, fleet)
    return spec


def queue_fleet(session: Session, settings: Settings, queue: str) -> capacity.Fleet:
    """The live workers of `queue` (server.workers' rule) that specs for it must fit."""
    within = settings.worker_seen_within_s
    return capacity.Fleet(
        queue=queue,
        workers=workers.live(session, queue=queue, within_s=within),
        share=settings.worker_memory_share,
        seen_within_s=within,
    )


MEMORY_FIELDS = ("dataset.params", "model")  # the caps the workers' memory would set


def _meta(spec: ResolvedSpec) -> dict[str, Any]:
    params = catalog.DATASETS.get(spec.dataset.name).params.model_validate(spec.dataset.params)
    return catalog.dataset_meta(spec.dataset.name, params)


def check_fit(spec: ResolvedSpec, settings: Settings, fleet: capacity.Fleet | None) -> None:
    """SpecError when an encoder does not fit its inputs or its weights file (igm_core.
    encoder_check: the check the worker runs as it builds the model), or when the spec would
    cost more than this deployment allows, naming the estimate and the cap (igm_core.cost:
    data in memory, parameters, steps), or more than any live worker of its queue holds
    (server.capacity; with none, the settings' caps alone, and their messages say so)."""
    caps = cost.Caps(
        max_data_bytes=settings.max_data_bytes,
        max_parameters=settings.max_parameters,
        max_steps=settings.max_steps,
    )
    mapping = spec.to_dict()
    try:
        meta = _meta(spec)
        errors = encoder_check.spec_errors(mapping, meta["shapes"])
        # the cost models assume inputs their encoders take
        est = None if errors else cost.estimate(mapping, meta)
    except (OSError, ValueError, KeyError) as err:  # the meta was readable a moment ago
        raise SpecError(
            [("dataset.params", f"cannot estimate the cost: {type(err).__name__}")]
        ) from None
    if est is None:
        raise SpecError(errors)
    capped = cost.check(est, caps)
    if fleet is not None and not fleet.workers:
        note = capacity.no_workers_note(fleet)
        capped = [(loc, f"{msg}; {note}" if loc in MEMORY_FIELDS else msg) for loc, msg in capped]
    errors += capped
    if fleet is not None:
        errors += capacity.errors(est, spec.device, fleet)
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
