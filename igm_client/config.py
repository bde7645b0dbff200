"""Which IGM Lab server the client talks to, and the token it sends: the client's one reader of
environment variables.

The server URL, first found wins: an explicit value (`--url`, `IGMClient(base_url=...)`), the
IGM_URL environment variable, the config file, http://127.0.0.1:8000. The token: an explicit
value, IGM_TOKEN, the config file's token for that URL, none.

The config file is YAML, $XDG_CONFIG_HOME/igm/config.yaml (~/.config/igm/config.yaml when
XDG_CONFIG_HOME is unset), written by `igm login URL` and by `igm up`; readable by its owner only
(mode 600, in a folder of mode 700), since it may hold tokens:

    url: http://127.0.0.1:8765          # the server the igm commands talk to
    tokens:                             # one token per server, kept when switching servers
      https://igm.lab.example: igm_...
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV, TOKEN_ENV = "IGM_URL", "IGM_TOKEN"
MAX_FILE_BYTES = 64_000


class ConfigError(ValueError):
    """A malformed URL, token or config file; the message names which."""


@dataclass(frozen=True)
class Resolved:
    """The URL and token in use, and where each came from ("--url", "IGM_URL", the file's path,
    "default"; for the token also None when there is none)."""

    url: str
    url_source: str
    token: str | None
    token_source: str | None


def config_path() -> Path:
    """$XDG_CONFIG_HOME/igm/config.yaml, or ~/.config/igm/config.yaml."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base.strip() and Path(base).is_absolute() else Path.home() / ".config"
    return root / "igm" / "config.yaml"


def check_url(url: str, source: str = "the URL") -> str:
    """`url` without its trailing slash; ConfigError unless it is an http(s) URL with a host."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{source}: {text[:200]!r} is not a server URL; give one like http://127.0.0.1:8000"
        )
    return text.rstrip("/")


def _check_token(token: str, source: str) -> str:
    token = token.strip()
    if not token or len(token) > 512 or not token.isprintable() or " " in token:
        raise ConfigError(f"{source}: not a token (printable, no spaces, at most 512 characters)")
    return token


def load(path: Path | None = None) -> dict[str, Any]:
    """The config file as {"url": str | None, "tokens": {url: token}}; empty when there is none;
    ConfigError naming the file when it cannot be used."""
    path = path or config_path()
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes; not a config file")
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {"url": None, "tokens": {}}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot be read: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with `url` and `tokens`")
    url, tokens = data.get("url"), data.get("tokens") or {}
    if url is not None and not isinstance(url, str):
        raise ConfigError(f"{path}: `url` must be a string")
    if not isinstance(tokens, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tokens.items()
    ):
        raise ConfigError(f"{path}: `tokens` must map server URLs to token strings")
    url = check_url(url, f"{path}: url") if url else None
    return {"url": url, "tokens": {k.rstrip("/"): v for k, v in tokens.items()}}


def _write(path: Path, data: dict[str, Any]) -> None:
    """Replace the file atomically; the new file is created with mode 600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".yaml", dir=path.parent)  # mode 600
    try:
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(data, out, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(url: str, token: str | None = None, *, path: Path | None = None) -> Path:
    """Make `url` the server the client talks to; with `token`, keep it for that URL (a token
    kept earlier for the URL stays otherwise). Returns the file's path."""
    path = path or config_path()
    url = check_url(url)
    data = load(path)
    data["url"] = url
    if token is not None:
        data["tokens"][url] = _check_token(token, "the token")
    _write(path, {"url": data["url"], "tokens": data["tokens"]})
    return path


def forget_token(url: str, *, path: Path | None = None) -> bool:
    """Remove the token kept for `url`; whether there was one."""
    path = path or config_path()
    url, data = check_url(url), load(path)
    if data["tokens"].pop(url, None) is None:
        return False
    _write(path, {"url": data["url"], "tokens": data["tokens"]})
    return True


def resolve(url: str | None = None, token: str | None = None) -> Resolved:
    """The URL and token to use, each from the first place that has one (see the module)."""
    path = config_path()
    env_url, env_token = os.environ.get(URL_ENV, "").strip(), os.environ.get(TOKEN_ENV, "").strip()
    file: dict[str, Any] | None = None
    if url:
        chosen, url_source = check_url(url, "the server URL"), "--url"
    elif env_url:
        chosen, url_source = check_url(env_url, URL_ENV), URL_ENV
    else:
        file = load(path)
        chosen, url_source = (file["url"], str(path)) if file["url"] else (DEFAULT_URL, "default")
    if token:
        return Resolved(chosen, url_source, _check_token(token, "token"), "argument")
    if env_token:
        return Resolved(chosen, url_source, _check_token(env_token, TOKEN_ENV), TOKEN_ENV)
    kept = (file or load(path))["tokens"].get(chosen)
    if kept:
        return Resolved(chosen, url_source, _check_token(kept, str(path)), str(path))
    return Resolved(chosen, url_source, None, None)
