"""The `igm` command, and the one package that knows server, worker and client together.

cli.py dispatches: service commands (`up`, `worker`, `db`) live here, remote commands (submit, ls,
show, ...) in igm_client, local commands (train, validate, compare, ...) in igm_core.cli. Nothing
else imports this package.
"""
