"""`igm up`: the API, one worker and everything they need on one machine.

Embedded (the default): a SQLite database, an MLflow SQLite store with its artifacts, run
directories and a filesystem broker, all under one data directory; nothing else to install. With
IGM_DATABASE_URL / IGM_BROKER_URL / MLFLOW_TRACKING_URI set it uses PostgreSQL, Redis and an MLflow
server instead. Ctrl-C stops the API and the worker; an experiment cut off that way is sent again
by the API once its heartbeat is older than IGM_STALE_AFTER_S (server/reconcile.py) and resumes
from its last checkpoint. Once the API answers, its URL is saved in the client's config file
(igm_client.config), so that the `igm` commands and IGMClient() in other shells talk to it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from igm_client import config as client_config
from igm_client.format import progress_text
from server import migrations
from server.settings import Settings, get_settings
from worker.command import worker_command

ROOT = Path(__file__).resolve().parent.parent
DEMO_SPEC = ROOT / "configs" / "synthetic_igm.yaml"


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a worker process the same settings as this one."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)  # replaced by the resolved IGM_ value below
    env.update(
        IGM_DATA_DIR=str(settings.data_dir.resolve()),
        IGM_DATABASE_URL=settings.resolved_database_url(),
        IGM_BROKER_URL=settings.resolved_broker_url(),
        IGM_MLFLOW_TRACKING_URI=settings.resolved_mlflow_uri(),
        IGM_QUEUES=json.dumps(settings.queues),
        IGM_DEFAULT_QUEUE=settings.default_queue,
        IGM_DATA_ROOTS=json.dumps([str(p) for p in settings.data_roots]),
    )
    return env


def start_worker(settings: Settings, queues: list[str]) -> subprocess.Popen:
    cmd = worker_command(queues, f"embedded-{os.getpid()}@{socket.gethostname()}")
    log = settings.data_dir.resolve() / "worker.log"
    # its own session: Ctrl-C in the terminal reaches us, and we stop it in order; its output
    # goes to a log file so that the terminal shows the service's own lines
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            env=worker_env(settings),
            cwd=ROOT,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_worker(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGQUIT)  # cold shutdown: a long job is not waited for
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_demo(base_url: str, server_started: threading.Event) -> None:
    from igm_client.client import FINISHED, IGMClient, IGMClientError

    if not server_started.wait(60):
        print("demo: the API did not start", file=sys.stderr)
        return

    def on_update(exp: dict) -> None:  # the line `igm logs --follow` prints
        if exp.get("status") not in FINISHED:
            print(f"demo: {progress_text(exp)}", flush=True)

    try:
        with IGMClient(base_url) as client:
            exp = client.submit(DEMO_SPEC)
            print(
                f"demo: submitted {exp['id']} ({exp['name']}); its progress as the worker "
                f"reports it (`igm logs {exp['id'][:8]} -f` shows the same):",
                flush=True,
            )
            done = client.wait(exp["id"], timeout=1800, on_update=on_update)
    except (IGMClientError, TimeoutError) as err:
        print(f"demo: {err}", file=sys.stderr)
        return
    test = (done.get("summary") or {}).get("test") or {}
    mods = ", ".join(f"{m} {a:.4f}" for m, a in test.get("modality_acc", {}).items())
    print(
        f"demo: {done['status']}: test acc {test.get('acc', float('nan')):.4f}, macro-F1 "
        f"{test.get('macro_f1', float('nan')):.4f}, mAP {test.get('map', float('nan')):.4f}; "
        f"per modality: {mods}",
        flush=True,
    )
    print(
        f"demo: GET {base_url}/experiments/{exp['id']} for the whole record; "
        f"{base_url}/docs for the API. Ctrl-C stops.",
        flush=True,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igm up", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--data-dir", help="embedded data directory (default: IGM_DATA_DIR or ./igm-data)"
    )
    parser.add_argument(
        "--data-root",
        action="append",
        metavar="DIR",
        help="a folder that dataset roots and weights files in specs may lie under "
        "(repeatable; default IGM_DATA_ROOTS)",
    )
    parser.add_argument("--no-worker", action="store_true", help="serve the API only")
    parser.add_argument(
        "--demo", action="store_true", help="submit the demo experiment and print its result"
    )
    parser.add_argument(
        "--no-save-url",
        action="store_true",
        help="do not make this server the one the igm commands talk to (the client config file)",
    )
    return parser


def configured(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command line's data directory and data roots (made
    absolute: the worker runs elsewhere); a root that is not a folder yet gets a warning."""
    settings = get_settings()
    update: dict[str, object] = {}
    if args.data_dir:
        update["data_dir"] = Path(args.data_dir)
    # the address it serves is a trusted Host; on every address, so are this machine's names
    wildcard = args.host in ("0.0.0.0", "::", "")
    names = [socket.gethostname(), socket.getfqdn()] if wildcard else [args.host]
    extra = [n for n in dict.fromkeys(names) if n and n not in settings.trusted_hosts]
    if extra:
        update["trusted_hosts"] = [*settings.trusted_hosts, *extra]
    if args.data_root:
        roots = [Path(r).expanduser().resolve() for r in args.data_root]
        for given, root in zip(args.data_root, roots, strict=True):
            if not root.is_dir():
                print(f"warning: --data-root {given}: no such folder (yet)", flush=True)
        update["data_roots"] = roots
    return settings.model_copy(update=update) if update else settings


def client_url(host: str, port: int) -> str:
    """The URL a client on this machine uses: a wildcard address means the loopback one."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def save_url(base_url: str, started: threading.Event) -> None:
    """Once the API answers: make it the server of the igm commands, and say so."""
    if not started.wait(60):
        return
    try:
        path = client_config.save(base_url)
    except (OSError, ValueError) as err:
        print(f"warning: could not save the server URL for the igm commands: {err}", flush=True)
        return
    print(
        f"igm commands and IGMClient() now talk to {base_url} (saved in {path}; "
        "IGM_URL, --url or `igm login URL` choose another).",
        flush=True,
    )
    env_url = os.environ.get(client_config.URL_ENV, "").strip()
    if env_url and env_url.rstrip("/") != base_url:
        print(f"warning: {client_config.URL_ENV}={env_url} wins in shells that set it", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import uvicorn

    from server.main import create_app

    settings = configured(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not schema_ready(settings):
        return 2
    worker = None if args.no_worker else start_worker(settings, settings.queues)
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    )
    base_url = client_url(args.host, args.port)
    print(banner(settings, base_url), flush=True)
    start_helpers(args, server, base_url)
    serve(server, worker)
    print("IGM Lab stopped.", flush=True)
    return 0


def schema_ready(settings: Settings) -> bool:
    """The database at the code's schema: the embedded one created or upgraded, another one
    checked (its owner upgrades it: `igm db upgrade`); False, with the error printed, if not."""
    db_url = settings.resolved_database_url()
    try:
        if settings.database_url is None:
            migrations.upgrade(db_url)  # the embedded database is ours to create
        migrations.check_schema(db_url)
    except migrations.SchemaError as err:
        print(f"error: {err}", file=sys.stderr)
        return False
    return True


def start_helpers(args: argparse.Namespace, server: object, base_url: str) -> None:
    """Threads that wait for the API to answer: then save its URL and run the demo."""
    started = threading.Event()
    threading.Thread(target=_watch_started, args=(server, started), daemon=True).start()
    if not args.no_save_url:
        threading.Thread(target=save_url, args=(base_url, started), daemon=True).start()
    if args.demo:
        threading.Thread(target=run_demo, args=(base_url, started), daemon=True).start()


def serve(server: Any, worker: subprocess.Popen | None) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop the worker too."""
    # uvicorn handles SIGINT/SIGTERM while it serves, then raises the signal again once it has
    # shut down: turn that into an exception here so the worker is always stopped too.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if worker is not None:
            stop_worker(worker)


def banner(settings: Settings, base_url: str) -> str:
    data = settings.data_dir.resolve()
    roots = ", ".join(map(str, settings.data_roots)) or "none (specs naming a path are refused)"
    text = (
        f"IGM Lab at {base_url} (data: {data}; database "
        f"{settings.resolved_database_url().split('@')[-1]}; broker "
        f"{settings.resolved_broker_url()}; MLflow {settings.resolved_mlflow_uri()}; worker log "
        f"{data / 'worker.log'}; data roots: {roots}). API docs at {base_url}/docs. Ctrl-C stops."
    )
    mlflow_uri = settings.resolved_mlflow_uri()
    if mlflow_uri.startswith("sqlite:"):  # MLflow's own UI over the embedded store
        text += f"\nMLflow UI: mlflow ui --backend-store-uri {mlflow_uri} --port 5000"
    return text


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watch_started(server: object, started: threading.Event) -> None:
    while not getattr(server, "started", False):
        time.sleep(0.05)
    started.set()
