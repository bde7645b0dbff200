"""igm_client.config: which server and token the client uses (flag > environment > file >
default), the file `igm login` and `igm up` write (mode 600), and what a bad one says."""

from __future__ import annotations

import http.server
import json
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from igm_client import IGMClient, config
from igm_client.cli import main as igm

FILE_URL, ENV_URL, FLAG_URL = "http://file-host:8001", "http://env-host:8002", "http://flag:8003"


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("IGM_URL", raising=False)
    monkeypatch.delenv("IGM_TOKEN", raising=False)
    return tmp_path / "igm" / "config.yaml"


def test_url_precedence_flag_env_file_default(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.resolve() == config.Resolved(config.DEFAULT_URL, "default", None, None)
    assert config.save(FILE_URL + "/") == xdg
    assert config.resolve().url == FILE_URL and config.resolve().url_source == str(xdg)
    monkeypatch.setenv("IGM_URL", ENV_URL)
    assert (config.resolve().url, config.resolve().url_source) == (ENV_URL, "IGM_URL")
    flag = config.resolve(FLAG_URL)
    assert (flag.url, flag.url_source) == (FLAG_URL, "--url")
    with IGMClient() as client:  # the client takes the same defaults
        assert client.base_url == ENV_URL
    with IGMClient(FLAG_URL) as client:
        assert client.base_url == FLAG_URL


def test_tokens_are_kept_per_server_and_the_environment_wins(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.save(FILE_URL, "tok-file")
    config.save(ENV_URL)  # switching servers keeps the first one's token
    assert config.resolve().token is None
    assert config.resolve(FILE_URL).token == "tok-file"
    assert config.resolve(FILE_URL).token_source == str(xdg)
    monkeypatch.setenv("IGM_TOKEN", "tok-env")
    assert (config.resolve(FILE_URL).token, config.resolve(FILE_URL).token_source) == (
        "tok-env",
        "IGM_TOKEN",
    )
    assert config.resolve(FILE_URL, token="tok-arg").token == "tok-arg"
    assert config.forget_token(FILE_URL) and not config.forget_token(FILE_URL)
    monkeypatch.delenv("IGM_TOKEN")
    assert config.resolve(FILE_URL).token is None


def test_the_file_is_private_and_replaced_whole(xdg: Path) -> None:
    config.save(FILE_URL, "secret")
    assert stat.S_IMODE(xdg.stat().st_mode) == 0o600
    assert stat.S_IMODE(xdg.parent.stat().st_mode) == 0o700
    config.save(ENV_URL)
    assert stat.S_IMODE(xdg.stat().st_mode) == 0o600
    assert [p.name for p in xdg.parent.iterdir()] == ["config.yaml"]  # no temporary left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("url: [1, 2]\n", "`url` must be a string"),
        ("url: ftp://x\n", "is not a server URL"),
        ("- a\n- b\n", "expected a mapping"),
        ("tokens: {http://a: 3}\n", "`tokens` must map server URLs to token strings"),
        ("url: 'unclosed\n", "cannot be read"),
    ],
)
def test_a_bad_file_is_named_in_the_error(
    xdg: Path, content: str, message: str, capsys: pytest.CaptureFixture
) -> None:
    xdg.parent.mkdir(parents=True)
    xdg.write_text(content)
    with pytest.raises(config.ConfigError, match=message) as info:
        config.resolve()
    assert str(info.value).startswith(str(xdg))
    assert igm(["ls"]) == 2  # the command says so, without a traceback
    err = capsys.readouterr().err
    assert "error: " in err and str(xdg) in err.replace("\n", "") and "Traceback" not in err


def test_bad_urls_and_tokens(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGM_URL", "localhost:8000")  # no scheme
    with pytest.raises(config.ConfigError) as info:
        config.resolve()
    assert str(info.value).startswith("IGM_URL: 'localhost:8000' is not a server URL")
    with pytest.raises(config.ConfigError, match="not a token"):
        config.save(FILE_URL, "two words")
    assert not xdg.exists()


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"authorization": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_token_goes_out_as_a_bearer_header(xdg: Path, echo: str) -> None:
    config.save(echo, "tok-123")
    with IGMClient() as client:
        assert client.health() == {"authorization": "Bearer tok-123"}
    with IGMClient(token="other") as client:
        assert client.health() == {"authorization": "Bearer other"}
    config.forget_token(echo)
    with IGMClient() as client:
        assert client.health() == {"authorization": None}


@pytest.fixture
def closed_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback URL where nothing listens, whatever runs on this machine: a port bound by
    this test and never listened on (connections are refused while it is held). It is also the
    client's default URL for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setattr(config, "DEFAULT_URL", url)
        yield url


def test_unreachable_says_where_the_url_came_from(
    xdg: Path, closed_url: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert igm(["ls"]) == 1
    assert "(the server URL is the default: `igm login URL`, `igm up`" in capsys.readouterr().err
    config.save(closed_url)
    assert igm(["ls"]) == 1
    err = capsys.readouterr().err.replace("\n", "")
    assert f"cannot reach the IGM Lab server at {closed_url}" in err and str(xdg) in err
    monkeypatch.setenv("IGM_URL", closed_url)
    assert igm(["ls"]) == 1
    assert "(the server URL is from IGM_URL)" in capsys.readouterr().err
