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


def staged(name: str, n_train: int = 300, n_val: int = 100, n_test: int = 100, **extra) -> dict:
    """A small synthetic IGM spec in three one-epoch stages (batches of 32 unless `extra` says)."""
    sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    spec = {
        "name": name,
        "dataset": {"name": "synthetic", "params": sizes},
        "method": {"name": "igm"},
        "schedule": {"stage_epochs": [1, 1, 1]},
        "batch_size": 32,
    }
    return {**spec, **extra}


# Specs within every field's own bound that the cost caps refuse: 8 modalities x 4,096 dims x
# 10^6 samples in each split (about 393 GB of float32), a 1.6e9-parameter MLP (two branches of
# 12 hidden layers 8,192 wide), and 1,000 stages x 10,000 epochs.
_NAMES = [f"m{i}" for i in range(8)]
BIG_DATA = {
    "name": "big",
    "dataset": {
        "name": "synthetic",
        "params": {
            "modalities": _NAMES,
            "dims": [4096] * 8,
            "signal": [1.0] * 8,
            "difficulty": [0.0] * 8,
            "n_train": 10**6,
            "n_val": 10**6,
            "n_test": 10**6,
        },
    },
    "method": {"name": "joint"},
    "model": {"encoders": {m: {"name": "mlp", "params": {"hidden": [8]}} for m in _NAMES}},
}
_WIDE = {"name": "mlp", "params": {"hidden": [8192] * 12, "out_dim": 8192}}
BIG_MODEL = {
    "name": "huge",
    "dataset": {"name": "synthetic", "params": {"dims": [4096, 32]}},
    "method": {"name": "joint"},
    "model": {"encoders": {"strong": _WIDE, "weak": _WIDE}},
}
LONG = {
    "name": "long",
    "dataset": {"name": "synthetic"},
    "method": {"name": "igm"},
    "schedule": {"stage_epochs": [10_000] * 1000},
}


def image_text_spec(
    name: str,
    dataset: str,
    params: dict,
    method: str,
    method_params: dict,
    *,
    schedule: tuple[list[int], int],
    batch_size: int,
    channels: list[int],
    head_hidden: list[int],
    **extra,
) -> dict:
    """An image-text spec: text through the BERT folder of the dataset's tokenizer, images through
    a small conv net; `schedule` is (stage epochs, epochs), whichever form `method` takes."""
    stages, epochs = schedule
    staged = schedule_kind(method, method_params) == "stages"
    text = {"name": "bert", "params": {"pretrained": params["tokenizer"]}}
    image = {"name": "conv", "params": {"channels": channels, "out_dim": 32}}
    return {
        "name": name,
        "dataset": {"name": dataset, "params": params},
        "method": {"name": method, "params": method_params},
        "schedule": {"stage_epochs": stages} if staged else {"epochs": epochs},
        "batch_size": batch_size,
        "log_every": 1,
        "optimizer": {"name": "adam", "lr": 1e-3},
        "model": {"encoders": {"text": text, "image": image}, "head_hidden": head_hidden},
        **extra,
    }
