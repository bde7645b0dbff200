"""Small specs the tests train in seconds."""

from __future__ import annotations

from igm_core import catalog

SMALL = {"n_train": 240, "n_val": 80, "n_test": 80, "dims": [12, 10]}
SCHEDULES = {"stages": {"stage_epochs": [1, 1, 1]}, "epochs": {"epochs": 3}}


def schedule_kind(name: str, params: dict | None = None) -> str:
    """The schedule form ("stages" or "epochs") of method `name` with these parameters."""
    entry = catalog.METHODS.get(name)
    resolved = entry.params.model_validate(params or {}).model_dump()
    return catalog.method_rules(name).schedule_kind(resolved)


def spec_for(name: str, **extra) -> dict:
    """A small synthetic spec for method `name`, three epochs in the method's schedule form."""
    spec = {
        "name": f"t-{name}",
        "dataset": {"name": "synthetic", "params": SMALL},
        "method": {"name": name},
        "schedule": SCHEDULES[schedule_kind(name, (extra.get("method") or {}).get("params"))],
        "batch_size": 32,
        "model": {
            "head_hidden": [32, 16],
            "encoders": {
                m: {"name": "mlp", "params": {"hidden": [32], "out_dim": 24}}
                for m in ("strong", "weak")
            },
        },
        "log_every": 1,
    }
    spec.update(extra)
    return spec
