"""igm_core.sweep: grid and seeded random points, their product, and apply_values."""

from __future__ import annotations

import pytest

from igm_core import sweep
from igm_core.spec import SpecError, apply_overrides, resolve_spec
from igm_core.sweep import Distribution, RandomSearch

BASE = {"name": "s", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


def test_grid_is_the_cartesian_product_in_order() -> None:
    grid = {"method.params.tau": [0.2, 0.4], "seed": [0, 1, 2]}
    points = sweep.points(grid)
    assert len(points) == sweep.size(grid) == 6
    assert points[0] == {"method.params.tau": 0.2, "seed": 0}
    assert points[-1] == {"method.params.tau": 0.4, "seed": 2}


def test_random_draws_are_seeded_and_combine_with_every_grid_point() -> None:
    search = RandomSearch(
        samples=4,
        seed=7,
        params={
            "optimizer.lr": Distribution(log_uniform=(1e-4, 1e-1)),
            "batch_size": Distribution(int_uniform=(16, 64)),
            "method.params.sam": Distribution(choice=["standard", "none"]),
        },
    )
    grid = {"seed": [0, 1, 2]}
    points = sweep.points(grid, search)
    assert len(points) == sweep.size(grid, search) == 12
    assert points == sweep.points(grid, search)  # the same seed, the same draws
    draws = search.draws()
    assert [p for p in points if p["seed"] == 1] == [{"seed": 1, **d} for d in draws]
    assert all(1e-4 <= d["optimizer.lr"] <= 1e-1 and 16 <= d["batch_size"] <= 64 for d in draws)
    other = RandomSearch(samples=4, seed=8, params=search.params).draws()
    assert other != draws


def test_a_key_in_both_grid_and_random_is_an_error() -> None:
    search = RandomSearch(samples=1, params={"seed": Distribution(int_uniform=(0, 9))})
    with pytest.raises(SpecError, match="keys in both grid and random: seed"):
        sweep.points({"seed": [0]}, search)


def test_apply_values_copies_and_creates_mappings() -> None:
    out = sweep.apply_values(BASE, {"method.params.tau": 0.3, "model.head_hidden": [64]})
    assert out["method"] == {"name": "igm", "params": {"tau": 0.3}}
    assert out["model"] == {"head_hidden": [64]}
    assert "params" not in BASE["method"]  # the base is untouched
    with pytest.raises(SpecError, match="'name' is not a mapping"):
        sweep.apply_values(BASE, {"method.name.x": 1})


def test_expand_names_points_and_keeps_values_exact() -> None:
    # 1e-05 would come back as a string through YAML 1.1 text; values never go through text here
    points = sweep.expand(BASE, {"optimizer.lr": [1e-05, 0.1]})
    assert [raw["name"] for _, raw in points] == ["s-0", "s-1"]
    assert points[0][1]["optimizer"]["lr"] == 1e-05
    assert resolve_spec(points[0][1]).optimizer.lr == 1e-05
    unnamed = {k: v for k, v in BASE.items() if k != "name"}
    assert [raw["name"] for _, raw in sweep.expand(unnamed, {"seed": [0]}, name="grid")] == [
        "grid-0"
    ]


def test_overrides_parse_yaml_values() -> None:
    out = apply_overrides(BASE, ["method.params.tau=0.25", "model.head_hidden=[32, 16]"])
    assert out["method"]["params"]["tau"] == 0.25 and out["model"]["head_hidden"] == [32, 16]
    with pytest.raises(SpecError, match="expected key=value"):
        apply_overrides(BASE, ["novalue"])
