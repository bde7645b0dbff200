"""`igm mlflow-server [MLFLOW SERVER OPTIONS]`: the lab's MLflow tracking server
(docker-compose.yml's `mlflow` service): `mlflow server` with MLflow's basic authentication and the
Host headers of IGM_MLFLOW_ALLOWED_HOSTS (server/settings.py), so that the names it answers to are
a setting beside the API's IGM_TRUSTED_HOSTS rather than part of a command line.

The authentication database and the admin account come from MLflow's own configuration:
MLFLOW_AUTH_CONFIG_PATH (docker/mlflow-auth.ini) and MLFLOW_AUTH_ADMIN_USERNAME /
MLFLOW_AUTH_ADMIN_PASSWORD, which the compose file sets from .env. The Flask secret that signs the
auth pages' forms is IGM_MLFLOW_SECRET_KEY, or a random one per start.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys

from server.settings import get_settings

OWN = ("--allowed-hosts", "--app-name")


def server_command(argv: list[str], allowed_hosts: list[str]) -> list[str]:
    """`mlflow`'s arguments: server, the caller's options, then the two this command owns."""
    for arg in argv:
        if arg.split("=")[0] in OWN:
            raise ValueError(f"{arg.split('=')[0]} is set by igm mlflow-server (see its --help)")
    if not allowed_hosts:
        raise ValueError("IGM_MLFLOW_ALLOWED_HOSTS is empty: the server would answer no one")
    hosts = ",".join(allowed_hosts)
    return ["server", *argv, "--app-name", "basic-auth", "--allowed-hosts", hosts]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    settings = get_settings()
    try:
        command = server_command(argv, settings.mlflow_allowed_hosts)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if importlib.util.find_spec("mlflow.server") is None:
        print("error: the MLflow server is not installed here (igm-lab[server])", file=sys.stderr)
        return 1
    # MLflow's auth app signs its forms (CSRF) with this key: one per start unless configured
    key = settings.mlflow_secret_key or secrets.token_hex(32)
    env = {**os.environ, "MLFLOW_FLASK_SERVER_SECRET_KEY": key}
    sys.stdout.flush()
    # this interpreter's MLflow, whatever PATH says; execve replaces this process
    os.execve(sys.executable, [sys.executable, "-m", "mlflow", *command], env)
    return 1  # not reached
