"""Golden numbers: every registered method, trained on a small built-in spec, gives the training
losses at fixed steps and the final validation and test accuracies stored in tests/golden.json.

The determinism tests compare two runs of the same code, so a change that shifts every loss
passes them; this test does not. A changed number must be a deliberate, reviewed update:
`pytest tests/test_golden.py --update-golden` rewrites the file from the current code, and the
diff shows what moved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from igm_core import catalog
from igm_core.tracking import JsonlTracker, read_jsonl_metrics
from igm_core.trainer import train
from tests.specs import image_text_spec, schedule_kind, spec_for

GOLDEN = Path(__file__).with_name("golden.json")
STEPS = (1, 24, 25, 48, 49, 72, 73, 96)  # first and last step of each 24-step stage
LOSS_TOL = 5e-5  # float32 on one kind of CPU; the methods differ from each other by far more
ACC_TOL = 1e-9  # accuracies are counts over 80 samples: equal, or a real change
# 96 steps at lr 0.1: enough to learn (val acc ~0.85-0.9) and for the methods to diverge
SCHEDULES = {"stages": {"stage_epochs": [3, 3, 3, 3]}, "epochs": {"epochs": 12}}


def case(name: str, **params: Any) -> dict[str, Any]:
    return spec_for(
        name,
        method={"name": name, "params": params},
        optimizer={"lr": 0.1},
        schedule=SCHEDULES[schedule_kind(name, params)],
    )


CASES: dict[str, dict[str, Any]] = {name: case(name) for name in catalog.METHODS.names()}
CASES["igm-reference"] = case("igm", sam="reference")
CASES["igm-no-sam"] = case("igm", sam="none")
CASES["mla-stage"] = case("mla", alternation="stage", fusion="mean")  # the earlier MLA
CASES["mla-project"] = case("mla", project=True)  # the paper's OWM rule on the shared head
# a head of one Linear layer (model.head_hidden: []): MLA's release, and IGM projecting it
for _name in ("mla", "igm"):
    CASES[f"{_name}-linear-head"] = case(_name)
    CASES[f"{_name}-linear-head"]["model"]["head_hidden"] = []
# G-Blending holds out part of the training split: 5% leaves 8 batches an epoch (96 steps)
CASES["gblending"] = case("gblending", holdout_fraction=0.05)
CASES["gblending-online"] = case("gblending", mode="online", super_epoch=4, holdout_fraction=0.05)
# the released schedule re-initialises after epoch 20; this run has 12
CASES["relearning-reinit"] = case("relearning", reinit_epoch=4)


def run_case(
    spec: dict[str, Any], tmp_path: Path, steps: tuple[int, ...] = STEPS
) -> dict[str, Any]:
    result = train(spec, tracker=JsonlTracker(tmp_path / "m.jsonl")).result
    history = read_jsonl_metrics(tmp_path / "m.jsonl")
    losses: dict[int, float] = {}
    for key, points in history.items():
        # the step loss of the trained modality ("train/weak/loss") or of all ("train/fused/loss")
        if key.startswith("train/") and key.endswith("/loss"):
            losses.update(points)
    return {
        "losses": {str(s): round(losses[s], 6) for s in steps},
        "val_acc": result["val"]["acc"],
        "test_acc": result["test"]["acc"],
    }


@pytest.fixture(scope="module")
def golden(request: pytest.FixtureRequest) -> dict[str, Any]:
    data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    yield data
    if request.config.getoption("--update-golden"):
        GOLDEN.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def check(name: str, got: dict[str, Any], golden: dict[str, Any], request) -> None:
    """`got` against the golden numbers of `name` (or recorded, with --update-golden)."""
    if request.config.getoption("--update-golden"):
        golden[name] = got
        return
    assert name in golden, f"no golden numbers for {name}: run with --update-golden"
    want = golden[name]
    for step, value in want["losses"].items():
        assert got["losses"][step] == pytest.approx(value, abs=LOSS_TOL), (name, step)
    assert got["val_acc"] == pytest.approx(want["val_acc"], abs=ACC_TOL), name
    assert got["test_acc"] == pytest.approx(want["test_acc"], abs=ACC_TOL), name


@pytest.mark.parametrize("name", list(CASES))
def test_golden_numbers(name: str, golden: dict[str, Any], request, tmp_path: Path) -> None:
    check(name, run_case(CASES[name], tmp_path), golden, request)


# ----------------------------------------------------------------------------- image-text

# The image-text pair on the catalog's examples (12 training pairs, a tiny BERT with random
# weights saved by the example, 32-pixel images through a small conv net): 3 steps per epoch,
# 4 stages of 2 epochs, the first and last step of each stage.
IT_STEPS = (1, 6, 7, 12, 13, 18, 19, 24)
IT_CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "image_text/sarcasm-igm": ("sarcasm", "igm", {}),
    "image_text/sarcasm-igm-reference": ("sarcasm", "igm", {"sam": "reference"}),
    "image_text/twitter2015-igm-reference": (
        "twitter2015",
        "igm",
        {"sam": "reference", "mixup_alpha": 0.9},
    ),
    "image_text/twitter2015-mla": ("twitter2015", "mla", {}),
}


@pytest.fixture(scope="module")
def image_text_params(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("golden-image-text")
    return {
        name: catalog.DATASETS.get(name).extra_loaded("example")(base / name)
        for name in ("sarcasm", "twitter2015")
    }


def image_text_case(
    dataset: str, params: dict[str, Any], method: str, method_params: dict
) -> dict[str, Any]:
    return image_text_spec(
        f"golden-{method}",
        dataset,
        params,
        method,
        method_params,
        schedule=([2, 2, 2, 2], 8),
        batch_size=4,
        channels=[8, 16],
        head_hidden=[32, 16],
    )


@pytest.mark.parametrize("name", list(IT_CASES))
def test_golden_numbers_image_text(
    name: str, golden: dict[str, Any], image_text_params, request, tmp_path: Path
) -> None:
    dataset, method, method_params = IT_CASES[name]
    spec = image_text_case(dataset, image_text_params[dataset], method, method_params)
    check(name, run_case(spec, tmp_path, IT_STEPS), golden, request)


def test_every_registered_method_has_golden_numbers() -> None:
    stored = json.loads(GOLDEN.read_text())
    assert set(catalog.METHODS.names()) <= set(stored)


def test_the_tolerance_tells_the_methods_apart() -> None:
    """A change as small as switching the gradient modification off moves a stored loss by many
    times the tolerance, so the test above would catch it."""
    stored = json.loads(GOLDEN.read_text())
    pairs = [("igm", "alternating"), ("igm", "igm-no-sam"), ("mla-stage", "alternating")]
    pairs += [(m, "joint") for m in ("gblending", "agm", "pmr", "mmpareto", "relearning-reinit")]
    pairs += [("gblending", "gblending-online"), ("reconboost", "alternating")]
    pairs += [("image_text/sarcasm-igm", "image_text/sarcasm-igm-reference")]
    for a, b in pairs:
        gap = max(abs(stored[a]["losses"][s] - stored[b]["losses"][s]) for s in stored[a]["losses"])
        assert gap > 20 * LOSS_TOL, (a, b, gap)
