"""The `igm` entry point: one command line for the service, the client and the library.

- service: `igm up` (API and a worker on this machine), `igm worker`, `igm db`, `igm token`,
  `igm mlflow-server` (the lab's MLflow server);
- `igm compare`: result.json files here, or experiments through the server (launcher.compare);
- remote: submit, sweep, ls, show, cancel, retry, rm, logs, login, logout (igm_client.cli);
- local: train, validate, prepare, export-features, methods, datasets, encoders
  (igm_core.cli; no server needed).
Each part is imported only when its command runs, so `igm ls` never loads torch or the server.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

SERVICE = {
    "up": "start the service on this machine: API and a worker (embedded stores by default)",
    "worker": "run a worker (one per GPU: --gpu N) against the configured services",
    "db": "the service database schema: upgrade, check, current",
    "token": "API tokens of the server: create --name NAME [--read-only], ls, revoke NAME",
    "mlflow-server": "the lab's MLflow server: mlflow server with basic auth and allowed hosts",
}
RESULTS = {
    "compare": "seed statistics and paired differences: result.json files, or ids, --tag, --sweep",
}
LOCAL = {
    "train": "train an experiment spec here, without a server",
    "validate": "print the resolved spec",
    "prepare": "decode an audio-visual dataset once into its cache",
    "export-features": "write a built-in dataset as train/val/test.npz",
    "methods": "list the registered methods",
    "datasets": "list the registered datasets",
    "encoders": "list the registered encoders",
}


def _service_entry(command: str) -> Callable[[list[str]], int]:
    if command == "up":
        from launcher.embedded import main
    elif command == "compare":
        from launcher.compare import main
    elif command == "worker":
        from worker.__main__ import main
    elif command == "token":
        from launcher.tokens import main
    elif command == "mlflow-server":
        from launcher.mlflow_server import main
    else:
        from launcher.db import main
    return main


def usage() -> str:
    from igm_client.cli import COMMANDS as REMOTE

    lines = ["usage: igm COMMAND [options]   (igm COMMAND --help for its options)", ""]
    for title, commands in (
        ("service", SERVICE),
        ("results (files here, or experiments on the server)", RESULTS),
        ("remote (talk to a server: --url, IGM_URL, igm login)", REMOTE),
        ("local (no server needed)", LOCAL),
    ):
        lines.append(f"{title}:")
        lines += [f"  {name:<16} {text}" for name, text in commands.items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one `igm` command; returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    if command in SERVICE or command in RESULTS:
        try:
            entry = _service_entry(command)
        except ImportError as err:  # a client-only installation
            print(f"error: `igm {command}` is not available in this installation: {err}")
            return 1
        return entry(argv[1:])
    if command in LOCAL:
        from igm_core.cli import main as local_main

        return local_main(argv)
    if command in (None, "-h", "--help", "help"):
        print(usage())
        return 0 if command else 2
    from igm_client.cli import main as remote_main

    return remote_main(argv)


if __name__ == "__main__":
    sys.exit(main())
