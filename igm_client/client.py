"""A small HTTP client of the IGM Lab service, for scripts and the `igm` command.

Only httpx and PyYAML: no torch, no igm_core, no server code, so it installs and imports anywhere a
script runs. Every method returns the parsed JSON answer; any non-2xx answer raises IGMClientError
with the HTTP status and the server's `detail`, and an unreachable server raises it with status 0.
The server URL and the token default to igm_client.config's (IGM_URL / IGM_TOKEN, else the file
that `igm login` and `igm up` write); a token goes out as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from igm_client import config
from igm_client.config import DEFAULT_URL

__all__ = ["DEFAULT_URL", "FILTERS", "FINISHED", "IGMClient", "IGMClientError", "read_spec"]
FINISHED = ("succeeded", "failed", "cancelled")
# the filters of a list of experiments: the fields of the server's ExperimentFilters (server/
# filters.py), which this package cannot import; tests/test_filters.py keeps them equal. `match`
# takes several conditions (a list), the others one value each.
FILTERS = ("status", "method", "dataset", "tag", "q", "sweep", "match")


def _format_loc(loc: Any) -> str:
    if isinstance(loc, list | tuple):
        parts = [str(p) for p in loc]
        if parts and parts[0] == "body":  # FastAPI prefixes request-body fields with "body"
            parts = parts[1:]
        return ".".join(parts) or "(spec)"
    return str(loc) if loc not in (None, "") else "(spec)"


def format_detail(detail: Any) -> str:
    """One line per error for a list of {"loc", "msg"} details; the text itself otherwise."""
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                lines.append(f"{_format_loc(item.get('loc'))}: {item['msg']}")
            else:
                lines.append(str(item))
        return "\n".join(lines)
    if isinstance(detail, dict):
        return json.dumps(detail)
    return str(detail)


class IGMClientError(Exception):
    """A failed request: `status_code` is the HTTP status (0: no answer), `detail` the reason."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(status_code, detail)

    def __str__(self) -> str:
        if self.status_code == 0:
            return str(self.detail)
        return f"HTTP {self.status_code}: {format_detail(self.detail)}"


class _StrictYaml(yaml.SafeLoader):
    """YAML whose mappings may not name a key twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.YAMLError(f"duplicate key {str(key)[:80]!r} (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:80]!r}")
        out[key] = value
    return out


def read_spec(path: str | Path) -> dict[str, Any]:
    """A spec file as a mapping: `.json` as JSON, anything else as YAML; a key given twice in
    one mapping is an error (the server refuses it too, but it would never see the lost one)."""
    path = Path(path)
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text, object_pairs_hook=_strict_object)
        else:
            data = yaml.load(text, Loader=_StrictYaml)  # a SafeLoader subclass
    except (ValueError, yaml.YAMLError) as err:
        raise ValueError(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping at the top level")
    return data


def _params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones (httpx would send None as an empty value)."""
    return {k: v for k, v in values.items() if v is not None and v != [] and v != ()}


def _filters(given: dict[str, Any]) -> dict[str, Any]:
    """`given` if every key is one of FILTERS; TypeError naming the first that is not."""
    for name in given:
        if name not in FILTERS:
            raise TypeError(f"unknown filter {name!r}; the filters are: {', '.join(FILTERS)}")
    return given


def _quote_path(path: str) -> str:
    # httpx escapes spaces and the like; these three would end the path or mean an escape
    return path.lstrip("/").replace("%", "%25").replace("?", "%3F").replace("#", "%23")


class IGMClient:
    """The IGM Lab REST API; use as a context manager, or call close().

    `base_url` and `token` default to igm_client.config's: IGM_URL / IGM_TOKEN, else the config
    file, else http://127.0.0.1:8000 without a token; `settings` says which and from where.
    """

    def __init__(
        self, base_url: str | None = None, timeout: float = 30.0, *, token: str | None = None
    ) -> None:
        self.settings = config.resolve(base_url, token)
        self.base_url = self.settings.url
        headers = {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)

    def __enter__(self) -> IGMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------------- plumbing

    def _unreachable(self, err: httpx.TransportError) -> IGMClientError:
        if isinstance(err, httpx.ConnectError):
            return IGMClientError(0, f"cannot reach the IGM Lab server at {self.base_url}: {err}")
        return IGMClientError(
            0, f"request to the IGM Lab server at {self.base_url} failed: {err!r}"
        )

    @staticmethod
    def _error(response: httpx.Response) -> IGMClientError:
        try:
            body = response.json()
            detail = body.get("detail", body) if isinstance(body, dict) else body
        except ValueError:
            detail = response.text.strip()[:500] or response.reason_phrase
        return IGMClientError(response.status_code, detail)

    def _send(
        self, method: str, url: str, *, accept: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as err:
            raise self._unreachable(err) from None
        if response.is_success or response.status_code in accept:
            return response
        raise self._error(response)

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._send(method, url, **kwargs)
        return response.json() if response.content else None

    # ------------------------------------------------------------------------- experiments

    def submit(
        self,
        spec: dict[str, Any] | str | Path,
        *,
        priority: int | None = None,
        tags: list[str] | tuple[str, ...] = (),
        queue: str | None = None,
        overrides: list[str] | tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Queue one experiment; `spec` is a mapping or the path of a YAML/JSON spec file;
        `overrides` are "key.path=value" strings the server applies (value read as YAML)."""
        body = spec if isinstance(spec, dict) else read_spec(spec)
        params = _params(priority=priority, tags=list(tags), queue=queue, set=list(overrides))
        return self._json("POST", "/experiments", json=body, params=params)

    def sweep(
        self,
        base: dict[str, Any],
        grid: dict[str, Any],
        *,
        random: dict[str, Any] | None = None,
        name: str | None = None,
        priority: int | None = None,
        tags: list[str] | tuple[str, ...] = (),
        queue: str | None = None,
    ) -> dict[str, Any]:
        """Queue one experiment per point of `grid` (dotted keys -> value lists) over `base`,
        times each of `random`'s seeded draws ({"samples", "seed", "params"})."""
        body = {
            "base": base,
            "grid": grid,
            "random": random,
            "name": name,
            "priority": priority,
            "tags": list(tags),
            "queue": queue,
        }
        # unset fields are left out, so that the server's defaults apply
        body = {k: v for k, v in body.items() if v is not None}
        return self._json("POST", "/experiments/sweep", json=body)

    def sweep_preview(
        self,
        base: dict[str, Any],
        grid: dict[str, Any],
        *,
        random: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """The points a sweep would queue (validated, nothing written): {count, points}."""
        body = {"base": base, "grid": grid, "random": random, "name": name}
        body = {k: v for k, v in body.items() if v is not None}
        return self._json("POST", "/experiments/sweep/preview", json=body)

    def list(
        self,
        *,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
        columns: list[str] | tuple[str, ...] = (),
        **filters: str | list[str] | None,
    ) -> dict[str, Any]:
        """A page of experiments, {"data": [...], "count": total matching the filters,
        "columns": [...]}; the filters are FILTERS (status, method, dataset, tag, q: text in the
        name, sweep: an id or a unique prefix, match: conditions such as "test.acc>=0.8" or
        "optimizer.lr<0.01"), all of them at once. `columns` are spec or result keys
        ("optimizer.lr", "test.modality_acc.weak"): each item's "values" holds their values.
        `sort` is a field or such a key, "-" first for descending."""
        params = _params(
            **_filters(filters), columns=list(columns), sort=sort, limit=limit, offset=offset
        )
        return self._json("GET", "/experiments", params=params)

    def get(self, experiment_id: str) -> dict[str, Any]:
        return self._json("GET", f"/experiments/{experiment_id}")

    def cancel(self, experiment_id: str) -> dict[str, Any]:
        return self._json("POST", f"/experiments/{experiment_id}/cancel")

    def retry(self, experiment_id: str) -> dict[str, Any]:
        return self._json("POST", f"/experiments/{experiment_id}/retry")

    def delete(self, experiment_id: str) -> None:
        self._send("DELETE", f"/experiments/{experiment_id}")

    def metrics(
        self, experiment_id: str, keys: list[str] | None = None, max_points: int = 1000
    ) -> dict[str, Any]:
        """Downsampled metric histories of `keys`; without keys, {"keys": [the logged keys]}."""
        params = _params(keys=list(keys or []), max_points=max_points)
        return self._json("GET", f"/experiments/{experiment_id}/metrics", params=params)

    def compare(
        self,
        ids: list[str] | tuple[str, ...] = (),
        *,
        tag: str | None = None,
        sweep: str | None = None,
        metric: str = "acc",
        baseline: str | None = None,
    ) -> dict[str, Any]:
        """The `igm compare` report of succeeded experiments chosen by ids, a tag or a sweep;
        every other group paired with `baseline` (a group label; default: joint training)."""
        params = _params(ids=list(ids), tag=tag, sweep=sweep, metric=metric, baseline=baseline)
        return self._json("GET", "/compare", params=params)

    def artifacts(self, experiment_id: str) -> dict[str, Any]:
        return self._json("GET", f"/experiments/{experiment_id}/artifacts")

    def download_artifact(self, experiment_id: str, path: str, dest: str | Path) -> Path:
        """Stream one artifact to `dest` (a file, or an existing folder to put it in)."""
        url = f"/experiments/{experiment_id}/artifacts/{_quote_path(path)}"
        target = Path(dest)
        if target.is_dir():
            target = target / Path(path).name
        partial = target.with_name(target.name + ".part")
        try:
            with self._http.stream("GET", url) as response:
                if not response.is_success:
                    response.read()
                    raise self._error(response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            partial.replace(target)
        except httpx.TransportError as err:
            raise self._unreachable(err) from None
        finally:
            partial.unlink(missing_ok=True)
        return target

    def wait(
        self,
        experiment_id: str,
        *,
        timeout: float | None = None,
        poll: float = 1.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the experiment has finished and return it; TimeoutError after `timeout` s.

        `on_update(experiment)` is called with the first answer and whenever status or progress
        changes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: tuple[Any, Any] | None = None
        while True:
            exp = self.get(experiment_id)
            state = (exp.get("status"), exp.get("progress"))
            if on_update is not None and state != seen:
                on_update(exp)
            seen = state
            if exp.get("status") in FINISHED:
                return exp
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"experiment {experiment_id} is still {exp.get('status')} after {timeout} s"
                )
            pause = poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)

    # ------------------------------------------------------------------------- service

    def health(self) -> dict[str, Any]:
        """The service's checks; a degraded service (HTTP 503) answers too, with status set."""
        return self._json("GET", "/health", accept=(503,))

    def methods(self) -> Any:
        return self._json("GET", "/methods")

    def datasets(self) -> Any:
        return self._json("GET", "/datasets")
