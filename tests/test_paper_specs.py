"""The specs of configs/paper: each is mapped, explicitly, to the published row it is held to or to
none, with a label saying what it runs; the published IGM rows are held by the `*_reference`
specs (the authors' code); every spec runs in fp32; the clip specs say how to read the authors'
frame; MLA's own recipe is what its release runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from igm_core import catalog, paper
from igm_core.spec import Spec, apply_overrides, load_spec_file

ROOT = Path(__file__).resolve().parent.parent
PAPER_CONFIGS = sorted((ROOT / "configs" / "paper").glob("*.yaml"))

# every spec of the three datasets of this branch, and the row it is held to
ROWS: dict[str, str | None] = {
    "paper-crema_d-igm_reference": "crema_d/igm",
    "paper-crema_d-igm": None,
    "paper-crema_d-igm_no_sam": "crema_d/igm_no_sam",
    "paper-crema_d-ablation_none": "crema_d/ablation_none",
    "paper-crema_d-ablation_sam_only_reference": "crema_d/ablation_sam_only",
    "paper-crema_d-ablation_sam_only": None,
    "paper-crema_d-mla_release": "crema_d/mla",
    "paper-crema_d-mla": None,
    "paper-crema_d-unimodal_audio": "crema_d/unimodal_audio",
    "paper-crema_d-unimodal_visual": "crema_d/unimodal_visual",
    "paper-crema_d-joint": None,
    "paper-crema_d-ogm_ge": None,
    "paper-kinetics_sounds-igm_reference": "kinetics_sounds/igm",
    "paper-kinetics_sounds-igm": None,
    "paper-kinetics_sounds-mla_release": "kinetics_sounds/mla",
    "paper-kinetics_sounds-mla": None,
    "paper-nvgesture-igm_reference": "nvgesture/igm",
    "paper-nvgesture-igm": None,
    "paper-nvgesture-mla": None,
}
CLIP_DATASETS = ("crema_d", "kinetics_sounds")


def _raw(path: Path) -> dict[str, Any]:
    return load_spec_file(path)


def _method_params(raw: dict[str, Any]) -> dict[str, Any]:
    entry = catalog.METHODS.get(raw["method"]["name"])
    return entry.params.model_validate(raw["method"].get("params", {})).model_dump()


def test_every_spec_of_these_datasets_has_its_expected_row() -> None:
    ours = {c.stem for c in PAPER_CONFIGS if c.stem.split("-")[1] in ("crema_d",
            "kinetics_sounds", "nvgesture")}  # fmt: skip
    assert ours == set(ROWS)
    for name, row in ROWS.items():
        assert paper.paper_config({"name": name}) == row, name
        assert paper.paper_config({"name": f"{name}-seed3"}) == row, name
        assert paper.published({"name": name}) == (None if row is None else paper.PUBLISHED[row])


@pytest.mark.parametrize("config", PAPER_CONFIGS, ids=[c.stem for c in PAPER_CONFIGS])
def test_every_paper_spec_is_mapped_with_a_label(config: Path) -> None:
    cid = paper.config_id(config.stem)
    assert cid in paper.SPECS, f"{config.name}: add it to igm_core.paper.SPECS"
    entry = paper.SPECS[cid]
    assert entry.row is None or entry.row in paper.PUBLISHED
    assert len(entry.label) > 20 and paper.paper_label({"name": config.stem}) == entry.label
    if entry.row is None:  # says why it has no published number
        assert "not" in entry.label or "no published" in entry.label, entry.label


def test_each_published_igm_row_is_held_by_the_reference_spec_only() -> None:
    igm_rows = [key for key in paper.PUBLISHED if key.endswith("/igm")]
    assert {"crema_d/igm", "kinetics_sounds/igm", "nvgesture/igm"} <= set(igm_rows)
    for row in igm_rows:
        holders = [cid for cid, e in paper.SPECS.items() if e.row == row]
        assert holders == [row.replace("/igm", "/igm_reference")], (row, holders)


@pytest.mark.parametrize("config", PAPER_CONFIGS, ids=[c.stem for c in PAPER_CONFIGS])
def test_reference_specs_run_the_authors_loss_and_equation_specs_are_labelled(
    config: Path,
) -> None:
    raw = _raw(config)
    if raw["method"]["name"] != "igm":
        return
    params = _method_params(raw)
    label = paper.SPECS[paper.config_id(config.stem)].label
    if config.stem.endswith("_reference"):
        # the authors' configs: mixup alpha 1.0, but 0.9 in configs/twitter.json
        alpha = 0.9 if config.stem.startswith("paper-twitter2015") else 1.0
        assert (params["sam"], params["flat_ratio"], params["mixup_alpha"]) == (
            "reference",
            0.3,
            alpha,
        )
        assert params["rho"] == params["rho_encoder"] > 0  # noise_ratio and noise_ratio_cls
        assert "sam: reference" in label
    elif params["sam"] == "standard":
        assert "paper's equations" in label and "sam: standard" in label
        twin = paper.config_id(config.stem) + "_reference"
        assert (ROOT / "configs" / "paper" / f"{config.stem}_reference.yaml").is_file(), twin


@pytest.mark.parametrize("config", PAPER_CONFIGS, ids=[c.stem for c in PAPER_CONFIGS])
def test_every_paper_spec_runs_in_fp32(config: Path) -> None:
    raw = _raw(config)
    assert raw.get("precision") == "fp32", f"{config.name}: the authors train in fp32"
    assert Spec.model_validate(raw).precision == "fp32"
    bf16 = Spec.model_validate(apply_overrides(raw, ["precision=bf16"]))  # a named choice
    assert bf16.precision == "bf16"


@pytest.mark.parametrize(
    "config",
    [c for c in PAPER_CONFIGS if c.stem.split("-")[1] in CLIP_DATASETS],
    ids=lambda c: c.stem,
)
def test_clip_specs_say_how_to_read_the_authors_frames(config: Path) -> None:
    raw, text = _raw(config), config.read_text()
    ds = catalog.DATASETS.get(raw["dataset"]["name"]).params
    params = ds.model_validate(raw["dataset"]["params"])
    if raw["method"]["name"] == "mla" and config.stem.endswith("_release"):
        assert (params.frame_train, params.frame_eval, params.frames) == ("strided", "strided", 3)
        return
    assert (params.frame_train, params.frame_eval) == ("random", "centre")  # the defaults
    if raw["method"]["name"] in ("igm", "alternating", "unimodal"):  # the IGM authors' loop
        note = "--set dataset.params.frame_train=first --set\n# dataset.params.frame_eval=first"
        assert note in text, config.name
        exact = apply_overrides(
            raw, ["dataset.params.frame_train=first", "dataset.params.frame_eval=first"]
        )
        first = ds.model_validate(exact["dataset"]["params"])
        assert (first.frame_train, first.frame_eval) == ("first", "first")


@pytest.mark.parametrize("dataset", CLIP_DATASETS)
def test_mla_release_spec_is_the_releases_recipe(dataset: str) -> None:
    raw = _raw(ROOT / "configs" / "paper" / f"paper-{dataset}-mla_release.yaml")
    params = _method_params(raw)
    assert (params["alternation"], params["project"], params["fusion"]) == (
        "step",
        False,
        "entropy_logits",
    )
    assert raw["model"]["head_hidden"] == []  # one Linear shared head
    assert raw["dataset"]["params"]["frames"] == 3
    opt = raw["optimizer"]
    assert (opt["lr"], opt["lr_step"], raw["batch_size"], raw["schedule"]) == (
        0.001,
        70,
        64,
        {"epochs": 100},
    )
    like = _raw(ROOT / "configs" / "paper" / f"paper-{dataset}-mla.yaml")
    assert like["model"]["head_hidden"] == [256, 64]  # the like-for-like twin: IGM's head
