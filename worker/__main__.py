"""Start a worker: `python -m worker [--queues gpu] [--gpu 0]`.

One worker process per GPU: --gpu sets CUDA_VISIBLE_DEVICES for it (before anything touches CUDA),
and the Celery worker runs one task at a time. Settings come from IGM_* variables as for the API.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.split("\n")[0])
    parser.add_argument("--queues", default=None, help="comma-separated (default: all queues)")
    parser.add_argument("--gpu", help="the GPU index this worker owns (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--name", help="worker name (default: <queues>-<gpu>@<host>)")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    from server.settings import get_settings
    from worker.command import worker_command

    queues = args.queues or ",".join(get_settings().queues)
    env = dict(os.environ)
    if args.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = args.gpu
    name = args.name or f"{queues.replace(',', '+')}-{args.gpu or 'any'}@{socket.gethostname()}"
    cmd = worker_command(queues.split(","), name, args.loglevel)
    os.execvpe(cmd[0], cmd, env)  # replaces this process: signals go straight to Celery
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
