"""`igm compare`: seed statistics, published numbers, and the specs in configs/paper."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from igm_core import catalog, cli, paper
from igm_core.compare import (
    METRICS,
    BaselineError,
    CompareError,
    Run,
    SeedsError,
    already_done,
    build_report,
    group_runs,
    load_result,
    mean_ci,
    paired_diff,
    parse_seeds,
    report_from_results,
    seed_specs,
)
from igm_core.compare.labels import describe, short_names
from igm_core.spec import Spec, SpecError, load_spec_file, resolve_spec

ROOT = Path(__file__).resolve().parent.parent
PAPER_CONFIGS = sorted((ROOT / "configs" / "paper").glob("*.yaml"))
SEEDS = (0, 1, 2)

# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    "values", [[0.81, 0.79, 0.80], [0.5, 0.7], [0.1, 0.2, 0.4, 0.8, 0.3, 0.25]]
)
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_mean_ci_equals_scipy_t_interval(values: list[float], confidence: float) -> None:
    mean, std, lo, hi = mean_ci(values, confidence)
    assert mean == pytest.approx(np.mean(values))
    assert std == pytest.approx(np.std(values, ddof=1))
    ref = stats.t.interval(
        confidence, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
    )
    assert (lo, hi) == pytest.approx(ref)


def test_mean_ci_by_hand_and_edge_cases() -> None:
    # n = 3, mean 2, std 1: half width t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051 = 2.484138
    mean, std, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert (mean, std) == pytest.approx((2.0, 1.0))
    assert (lo, hi) == pytest.approx((2.0 - 2.484138, 2.0 + 2.484138), abs=1e-6)
    one = mean_ci([0.7])
    assert one[0] == 0.7 and all(math.isnan(v) for v in one[1:])
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.0, 0.5, 0.5)
    with pytest.raises(ValueError):
        mean_ci([])


def test_paired_diff_equals_scipy_paired_t() -> None:
    a = {0: 0.70, 1: 0.72, 2: 0.69, 3: 0.75}
    b = {0: 0.74, 1: 0.73, 2: 0.73, 3: 0.78, 9: 0.1}  # seed 9 has no partner: ignored
    mean, lo, hi, n = paired_diff(a, b)
    d = np.array([b[s] - a[s] for s in range(4)])
    assert n == 4 and mean == pytest.approx(d.mean())
    ref = stats.t.interval(0.95, 3, loc=d.mean(), scale=stats.sem(d))
    assert (lo, hi) == pytest.approx(ref)
    # the paired t-test agrees: the interval excludes 0 exactly when p < 0.05
    assert (lo > 0) == (stats.ttest_rel(list(b.values())[:4], list(a.values())).pvalue < 0.05)
    with pytest.raises(ValueError, match="no seed in common"):
        paired_diff({0: 1.0}, {1: 1.0})


@pytest.mark.parametrize(
    "text,seeds", [("0,1,2", [0, 1, 2]), ("0-4", [0, 1, 2, 3, 4]), (" 3, 0-1 ", [3, 0, 1])]
)
def test_parse_seeds(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "bad seed ''"),
        ("0,,1", "bad seed ''"),
        ("a", "bad seed 'a'"),
        ("-1", "bad seed '-1'"),
        ("1,1", "seed 1 is given twice"),
        ("0-2,2", "seed 2 is given twice"),
        ("5-3", "end is below the start"),
        ("4294967296", "seeds lie in"),
    ],
)
def test_parse_seeds_rejects(text: str, needle: str) -> None:
    with pytest.raises(SeedsError, match=re.escape(needle)):
        parse_seeds(text)


def test_seed_specs_keep_the_name_and_set_the_seed(tmp_path: Path) -> None:
    runs = seed_specs({"name": "x", "seed": 9}, [0, 2], tmp_path)
    assert [(s, d["seed"], d["name"], o) for s, d, o in runs] == [
        (0, 0, "x", tmp_path / "seed-0"),
        (2, 2, "x", tmp_path / "seed-2"),
    ]


def test_already_done(tmp_path: Path) -> None:
    assert not already_done(tmp_path, "abc")
    (tmp_path / "result.json").write_text('{"spec_hash": "abc"}')
    assert already_done(tmp_path, "abc") and not already_done(tmp_path, "abd")
    (tmp_path / "result.json").write_text("{broken")
    assert not already_done(tmp_path, "abc")


# ----------------------------------------------------------------------------- published numbers


def test_published_numbers() -> None:
    assert paper.PUBLISHED["crema_d/igm"]["acc"] == 0.8105
    assert paper.PUBLISHED["crema_d/igm"]["map"] == 0.8948
    assert paper.PUBLISHED["nvgesture/igm"] == {"acc": 0.8693, "macro_f1": 0.8703}
    assert paper.PUBLISHED["crema_d/ablation_sam_only"]["modality_acc"]["audio"] == 0.5860
    for row in paper.PUBLISHED.values():
        assert all(0 < v < 1 for k, v in row.items() if k != "modality_acc")


@pytest.mark.parametrize(
    "name,cid",
    [
        ("paper-crema_d-igm_reference", "crema_d/igm"),  # the authors' code made the row
        ("paper-crema_d-igm_reference-seed2", "crema_d/igm"),
        ("paper-crema_d-igm", None),  # the paper's equations: not the published run
        ("paper-crema_d-igm-seed2", None),
        ("paper-crema_d-igm_no_sam", "crema_d/igm_no_sam"),
        ("paper-crema_d-mla_release", "crema_d/mla"),
        ("paper-crema_d-mla", None),
        ("paper-nvgesture-igm_reference", "nvgesture/igm"),
        ("paper-nvgesture-igm", None),
        ("paper-sarcasm-igm_reference", "sarcasm/igm"),
        ("paper-sarcasm-igm", None),
        ("paper-twitter2015-igm_reference-seed1", "twitter2015/igm"),
        ("paper-twitter2015-mla", None),  # no published number
        ("paper-crema_d-joint", None),  # no published number
        ("paper-crema_d-igm-tau03", None),  # a variant, not the paper's run
        ("crema_d-igm", None),
    ],
)
def test_paper_config(name: str, cid: str | None) -> None:
    assert paper.paper_config({"name": name}) == cid


# ----------------------------------------------------------------------------- results


def _tiny_spec(method: str, seed: int, name: str) -> dict[str, Any]:
    schedule = {"stage_epochs": [1, 1]} if method == "igm" else {"epochs": 2}
    enc = {"name": "mlp", "params": {"hidden": [16], "out_dim": 16}}
    return {
        "name": name,
        "seed": seed,
        "device": "cpu",
        "dataset": {
            "name": "synthetic",
            "params": {
                "modalities": ["audio", "visual"],
                "dims": [8, 8],
                "signal": [3.0, 2.0],
                "difficulty": [0.0, 0.0],
                "n_train": 200,
                "n_val": 50,
                "n_test": 100,
            },
        },
        "method": {"name": method},
        "schedule": schedule,
        "optimizer": {"lr": 0.1},
        "batch_size": 50,
        "model": {"head_hidden": [16], "encoders": {"audio": enc, "visual": enc}},
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Real results of two tiny runs, seeds 0-2: igm named as the paper's CREMA-D IGM (the spec
    held to the published row), and joint."""
    from igm_core.trainer import train

    root = tmp_path_factory.mktemp("results")
    out: dict[str, list[Path]] = {}
    for method, name in (("igm", "paper-crema_d-igm_reference"), ("joint", "tiny-joint")):
        for seed in SEEDS:
            res = train(_tiny_spec(method, seed, name)).result
            path = root / name / f"seed-{seed}" / "result.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(res))
            out.setdefault(method, []).append(path)
    return out


def _run(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *args: Any):
    monkeypatch.setenv("COLUMNS", "220")
    code = cli.main(["compare", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_groups_by_seed_with_statistics(results: dict[str, list[Path]]) -> None:
    report = build_report(results["igm"] + results["joint"])
    groups = {g["label"]: g for g in report["groups"]}
    assert set(groups) == {"paper-crema_d-igm_reference", "tiny-joint"}
    igm = groups["paper-crema_d-igm_reference"]
    accs = [load_result(p).result["test"]["acc"] for p in results["igm"]]
    assert igm["n"] == 3 and igm["seeds"] == [0, 1, 2]
    mean, std, lo, hi = mean_ci(accs)
    assert igm["metrics"]["acc"] == pytest.approx({"mean": mean, "std": std, "lo": lo, "hi": hi})
    assert set(igm["modality_acc"]) == {"audio", "visual"}
    assert igm["wall_time_s"] > 0
    assert igm["paper_config"] == "crema_d/igm" and igm["paper"]["acc"] == 0.8105
    assert igm["paper_label"] == paper.SPECS["crema_d/igm_reference"].label
    assert igm["paper_diff"]["acc"] == pytest.approx(mean - 0.8105)
    assert groups["tiny-joint"]["paper"] is None and groups["tiny-joint"]["paper_label"] is None


def test_names_with_a_seed_suffix_group_together(results, tmp_path: Path) -> None:
    paths = []
    for seed, src in zip(SEEDS, results["joint"], strict=True):
        data = json.loads(src.read_text())
        data["spec"]["name"] = f"tiny-joint-seed{seed}"
        paths.append(tmp_path / f"{seed}.json")
        paths[-1].write_text(json.dumps(data))
    report = build_report(paths)
    assert [(g["label"], g["n"]) for g in report["groups"]] == [("tiny-joint", 3)]


def test_a_spec_change_other_than_the_seed_makes_another_group(results, tmp_path: Path) -> None:
    data = json.loads(results["joint"][0].read_text())
    data["spec"]["batch_size"] = 25
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    report = build_report([*results["joint"], other])
    labels = [(g["label"], g["n"]) for g in report["groups"]]
    # named by what tells them apart, never by a hash
    assert labels == [("tiny-joint (batch_size=25)", 1), ("tiny-joint (batch_size=50)", 3)]
    assert report["baseline"] == "tiny-joint (batch_size=50)"  # joint, with the most seeds
    assert {p["n"] for p in report["pairs"]} == {1} and report["unpaired"] == []
    assert all(p["lo_pp"] is None and "too few seeds" in p["note"] for p in report["pairs"])


def test_table_shows_groups_ci_paper_and_paired_comparison(results, capsys, monkeypatch) -> None:
    code, out, err = _run(capsys, monkeypatch, *results["igm"], *results["joint"])
    assert code == 0, err
    assert "paper-crema_d-igm_reference" in out and "tiny-joint (baseline)" in out
    assert "seeds 0,1,2" in out and "│ 3 " in out
    assert re.search(r"0\.\d{4} ± 0\.\d{4}", out) and re.search(r"\[0\.\d{4}, 0\.\d{4}\]", out)
    assert "crema_d/igm" in out and "acc 0.8105" in out and "mAP 0.8948" in out
    assert "paired by seed: B - baseline (tiny-joint), percentage points" in out
    report = build_report(results["igm"] + results["joint"])
    assert report["baseline"] == "tiny-joint" and report["baseline_rule"] == "joint training"
    pairs = {p["metric"]: p for p in report["pairs"]}
    assert list(pairs) == ["acc", "macro_f1", "map", "modality_acc.audio", "modality_acc.visual"]
    assert {(p["a"], p["b"], p["n"]) for p in pairs.values()} == {
        ("tiny-joint", "paper-crema_d-igm_reference", 3)
    }
    for metric, pair in pairs.items():
        key = metric.removeprefix("modality_acc.")
        a, b = (
            {
                s: (t["modality_acc"][key] if metric != key else t[metric])
                for s, p in zip(SEEDS, results[m], strict=True)
                if (t := load_result(p).result["test"])
            }
            for m in ("joint", "igm")
        )
        d = np.array([b[s] - a[s] for s in SEEDS])
        lo, hi = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
        assert pair["diff_pp"] == pytest.approx(100 * d.mean())
        assert pair["lo_pp"] == pytest.approx(max(100 * lo, -100.0))
        assert pair["hi_pp"] == pytest.approx(min(100 * hi, 100.0))
    verdict = "not significant" if pairs["acc"]["lo_pp"] <= 0 <= pairs["acc"]["hi_pp"] else "better"
    assert verdict in out and "audio acc" in out


# ----------------------------------------------------------------------------- labels and pairs


def _result(name: str, seed: int, acc: float, **extra: Any) -> tuple[str, dict[str, Any]]:
    """A result mapping: method igm on synthetic unless `extra` says otherwise; modalities
    strong (acc + 0.05) and weak (acc - 0.3), or `mods`."""
    mods = extra.pop("mods", {"strong": acc + 0.05, "weak": acc - 0.3})
    spec = {"name": name, "seed": seed, "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
    spec.update(extra)
    test = {"acc": acc, "macro_f1": acc - 0.01, "map": acc + 0.01, "modality_acc": mods}
    return f"{name}/{seed}", {"spec": spec, "test": test, "run": {"wall_time_s": 1.0}}


def _method(method: str, **params: Any) -> dict[str, Any]:
    return {"name": method, "params": params} if params else {"name": method}


def test_labels_name_what_differs_never_a_hash() -> None:
    results = [
        _result("band", s, 0.8, method=_method("igm", tau=tau)) for tau in (0.4, 0.8) for s in SEEDS
    ] + [_result("band", s, 0.7, method=_method("joint")) for s in SEEDS]
    report = report_from_results(results)
    labels = [g["label"] for g in report["groups"]]
    assert labels == ["band (method=igm, tau=0.4)", "band (method=igm, tau=0.8)",
                      "band (method=joint)"]  # fmt: skip
    assert [g["color_index"] for g in report["groups"]] == [0, 1, 2]
    assert report["baseline"] == "band (method=joint)"
    # distinct names stay as they are; a name shared with a group of the selection that is not
    # among the results (a running experiment) is told apart all the same, in the same order
    alone = report_from_results(results[:3], others=[results[3][1]["spec"]])
    (group,) = alone["groups"]
    assert group["label"] == "band (tau=0.4)" and group["color_index"] == 0
    assert report_from_results(results[:3])["groups"][0]["label"] == "band"
    keys = ("model.encoders.audio.params.out_dim", "model.encoders.visual.params.out_dim")
    assert short_names([*keys, "method.name", "optimizer.lr"]) == {
        keys[0]: "audio.params.out_dim",
        keys[1]: "visual.params.out_dim",
        "method.name": "method",
        "optimizer.lr": "lr",
    }
    assert describe({"method.params.tau": 0.4, "method.name": "igm"}) == "tau=0.4, method=igm"
    files = group_runs([Run(Path("x"), {"spec": r["spec"]}) for _, r in results[:1]])
    assert files[0].label == "band" and files[0].index == 0


def test_intervals_stay_in_range_and_need_three_seeds() -> None:
    accs = [0.97, 0.99, 1.0]
    results = [_result("top", s, a, mods={"m": a}) for s, a in zip(SEEDS, accs, strict=True)]
    results += [_result("two", s, 0.5, mods={"m": 0.5 + s / 10}) for s in (0, 1)]
    groups = {g["label"]: g for g in report_from_results(results)["groups"]}
    top = groups["top"]["metrics"]["acc"]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(accs), scale=stats.sem(accs))
    assert hi > 1.0 and top["hi"] == 1.0 and top["lo"] == pytest.approx(lo)  # clipped above
    # by hand: mean 0.9866667, std 0.0152753, t_{0.975,2} = 4.302653, half width 0.0379458
    assert top["lo"] == pytest.approx(0.9487209, abs=1e-6)
    assert groups["top"]["interval_note"] is None
    two = groups["two"]
    assert two["interval_note"] == "too few seeds for an interval"
    assert two["metrics"]["acc"]["lo"] is None and two["modality_acc"]["m"]["hi"] is None
    assert two["modality_acc"]["m"]["std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    assert mean_ci(accs, bounds=(0.0, 1.0))[3] == 1.0 and mean_ci(accs)[3] == pytest.approx(hi)


def test_pairs_against_the_baseline_per_modality_in_points() -> None:
    joint = [_result("j", s, a, method=_method("joint"), mods={"strong": 0.9, "weak": w})
             for s, a, w in ((0, 0.70, 0.30), (1, 0.72, 0.35), (2, 0.71, 0.32))]  # fmt: skip
    igm = [_result("i", s, a, mods={"strong": 0.88, "weak": w})
           for s, a, w in ((0, 0.80, 0.60), (1, 0.83, 0.62), (2, 0.79, 0.61))]  # fmt: skip
    report = report_from_results(joint + igm)
    assert report["baseline"] == "j" and report["baseline_rule"] == "joint training"
    pairs = {(p["b"], p["metric"]): p for p in report["pairs"]}
    assert set(pairs) == {("i", m) for m in report["pair_metrics"]}
    assert report["pair_metrics"] == [*METRICS, "modality_acc.strong", "modality_acc.weak"]
    weak = pairs[("i", "modality_acc.weak")]
    d = np.array([0.60 - 0.30, 0.62 - 0.35, 0.61 - 0.32])
    lo, hi = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    assert (weak["a"], weak["seeds"], weak["n"]) == ("j", [0, 1, 2], 3)
    assert weak["diff_pp"] == pytest.approx(86 / 3) and weak["significant"] is True
    assert (weak["lo_pp"], weak["hi_pp"]) == pytest.approx((100 * lo, 100 * hi))
    # differences 0.99, 0.20, 0.99: the t-interval [-40.6, +185.9] points is clipped at +100
    near_zero = [
        _result("z", s, a, method=_method("joint"))
        for s, a in zip(SEEDS, (0.005, 0.5, 0.005), strict=True)
    ]
    wild = [_result("w", s, a) for s, a in zip(SEEDS, (0.995, 0.7, 0.995), strict=True)]
    clipped = next(
        p for p in report_from_results(near_zero + wild)["pairs"] if p["metric"] == "acc"
    )
    d = np.array([0.99, 0.20, 0.99])
    lo, hi = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    assert hi > 1 and clipped["hi_pp"] == 100.0 and clipped["lo_pp"] == pytest.approx(100 * lo)
    assert clipped["significant"] is False
    mine = report_from_results(joint + igm, baseline="i")
    assert mine["baseline"] == "i" and {p["a"] for p in mine["pairs"]} == {"i"}
    assert report_from_results(joint + igm, baseline="joint")["baseline"] == "j"  # a method


def test_groups_that_cannot_be_paired_say_why() -> None:
    base = [_result("j", s, 0.7, method=_method("joint")) for s in SEEDS]
    other_data = [_result("d", s, 0.8, dataset={"name": "digits"}) for s in SEEDS]
    other_seeds = [_result("s", s, 0.8) for s in (5, 6, 7)]
    two = [_result("t", s, 0.9 + s / 100) for s in (0, 1)]
    report = report_from_results(base + other_data + other_seeds + two)
    assert report["unpaired"] == [
        {"group": "d", "reason": "another dataset (digits; j: synthetic)"},
        {"group": "s", "reason": "no seed in common (seeds 5, 6, 7; j: 0, 1, 2)"},
    ]
    paired = [p for p in report["pairs"] if p["b"] == "t"]
    assert len(paired) == 5 and all(p["n"] == 2 and p["lo_pp"] is None for p in paired)
    assert paired[0]["note"] == "too few seeds for an interval; seed 2 not in both"
    # the 2-seed group has the best mean: no interval against its runner-up, so no star
    lead = next(x for x in report["leads"] if x["metric"] == "acc")
    assert (lead["group"], lead["runner_up"], lead["star"]) == ("t", "d", False)
    assert "another dataset" in lead["reason"]


def test_a_star_only_for_a_lead_whose_paired_interval_excludes_zero() -> None:
    low = [_result("a", s, 0.70 + s / 100, method=_method("joint")) for s in SEEDS]
    high = [_result("b", s, 0.80 + s / 100) for s in SEEDS]
    near = [_result("c", s, a) for s, a in zip(SEEDS, (0.69, 0.75, 0.71), strict=True)]
    report = report_from_results(low + high + near)
    acc = next(x for x in report["leads"] if x["metric"] == "acc")
    assert (acc["group"], acc["runner_up"], acc["n"]) == ("b", "c", 3)
    d = np.array([0.80 - 0.69, 0.81 - 0.75, 0.82 - 0.71])
    lo, _ = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    assert lo > 0 and acc["lo_pp"] == pytest.approx(100 * lo) and acc["star"] is True
    tie = report_from_results(low + near)
    lead = next(x for x in tie["leads"] if x["metric"] == "acc")
    assert lead["star"] is False and "includes 0" in lead["reason"]


def test_baseline_errors_and_the_default_without_joint() -> None:
    results = [_result(n, s, 0.7, method=_method(m)) for n, m in (("x", "mla"), ("y", "mla"),
               ("z", "ogm_ge")) for s in SEEDS]  # fmt: skip
    report = report_from_results(results)
    assert report["baseline"] == "x"
    assert report["baseline_rule"] == "no joint-training group: the first group by label"
    with pytest.raises(
        BaselineError, match=re.escape("baseline 'nope' names no group; the groups: x, y, z")
    ):
        report_from_results(results, baseline="nope")
    with pytest.raises(BaselineError, match=re.escape("baseline 'mla' names 2 groups (x, y)")):
        report_from_results(results, baseline="mla")
    assert report_from_results(results, baseline="ogm_ge")["baseline"] == "z"
    single = report_from_results(results[:3])
    assert single["baseline"] is None and single["pairs"] == [] and single["leads"] == []


def test_cli_baseline_on_files(results, capsys, monkeypatch) -> None:
    files = [*results["igm"], *results["joint"]]
    igm = "paper-crema_d-igm_reference"
    code, out, _ = _run(capsys, monkeypatch, *files, "--json", "--baseline", igm)
    report = json.loads(out)
    assert code == 0 and report["baseline"] == igm
    assert {p["b"] for p in report["pairs"]} == {"tiny-joint"}
    code, _, err = _run(capsys, monkeypatch, *files, "--baseline", "nope")
    assert code == 2 and "baseline 'nope' names no group" in err


def test_paper_equation_variant_keeps_its_row_with_its_label(
    results, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Named as the paper-equation spec (sam: standard), the same runs are shown with what they
    run and no published number: the IGM row belongs to the authors' code (igm_reference)."""
    paths = []
    for seed, src in zip(SEEDS, results["igm"], strict=True):
        data = json.loads(src.read_text())
        data["spec"]["name"] = "paper-crema_d-igm"
        paths.append(tmp_path / f"{seed}.json")
        paths[-1].write_text(json.dumps(data))
    code, out, _ = _run(capsys, monkeypatch, *paths, "--json")
    (group,) = json.loads(out)["groups"]
    assert code == 0 and group["label"] == "paper-crema_d-igm" and group["n"] == 3
    assert group["paper_config"] is None and group["paper"] is None
    assert group["paper_label"] == paper.SPECS["crema_d/igm"].label
    assert "paper's equations" in group["paper_label"] and "igm_reference" in group["paper_label"]
    code, out, _ = _run(capsys, monkeypatch, *paths)
    words = " ".join(re.sub(r"[│┃─━┼╋┏┓┗┛┡┩└┘┌┐├┤]", " ", out).split())
    assert code == 0 and "IGM by the paper's equations" in words and "0.8105" not in out


def test_json_output(results, capsys, monkeypatch) -> None:
    code, out, _ = _run(capsys, monkeypatch, *results["igm"], "--json", "--metric", "macro_f1")
    assert code == 0
    report = json.loads(out)
    (group,) = report["groups"]
    assert report["metric"] == "macro_f1" and group["n"] == 3
    assert group["paper"]["map"] == 0.8948 and group["metrics"]["acc"]["lo"] is not None


def test_one_seed_shows_the_value_without_interval(results, capsys, monkeypatch) -> None:
    code, out, _ = _run(capsys, monkeypatch, results["joint"][0], "--json")
    (group,) = json.loads(out)["groups"]
    assert code == 0 and group["n"] == 1 and group["metrics"]["acc"]["std"] is None
    code, out, _ = _run(capsys, monkeypatch, results["joint"][0])
    assert code == 0 and "paper-" not in out
    assert not re.search(r"0\.\d{4} ± ", out) and not re.search(r"\[0\.\d{4}, ", out)


def test_duplicate_seed_is_reported(results, capsys, monkeypatch) -> None:
    code, _, err = _run(capsys, monkeypatch, results["joint"][0], results["joint"][0])
    assert code == 0 and "seed 0 has 2 results" in err


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "cannot read"),
        ("{not json", "not a JSON file"),
        ("[1, 2]", "not an igm result.json (the top level is not an object)"),
        ('{"spec": {"name": "x", "seed": 0, "dataset": {}}}', "no test metrics"),
    ],
)
def test_bad_file_exits_2_naming_it(
    results, tmp_path: Path, capsys, monkeypatch, content: str | None, needle: str
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    code, out, err = _run(capsys, monkeypatch, results["igm"][0], bad)
    assert code == 2
    assert str(bad) in err and needle in err and "Traceback" not in err + out
    with pytest.raises(CompareError, match=re.escape(str(bad))):
        build_report([bad])


def test_usage_errors_exit_2(capsys, monkeypatch) -> None:
    assert _run(capsys, monkeypatch)[0] == 2
    assert _run(capsys, monkeypatch, "x.json", "--metric", "nope")[0] == 2


# ----------------------------------------------------------------------------- configs/paper

EXPECTED_DATASETS = {
    "crema_d": (["audio", "visual"], {"audio": (1, 257, 188), "visual": (1, 3, 224, 224)}, 6),
    "kinetics_sounds": (
        ["audio", "visual"],
        {"audio": (1, 257, 1003), "visual": (3, 3, 224, 224)},
        31,
    ),
    "nvgesture_features": (
        ["rgb", "depth", "flow"],
        {"rgb": (1024,), "depth": (1024,), "flow": (1024,)},
        25,
    ),
    "sarcasm": (["text", "image"], {"text": (2, 50), "image": (3, 224, 224)}, 2),
    "twitter2015": (["text", "image"], {"text": (2, 50), "image": (3, 224, 224)}, 3),
}


def _fake_meta(name: str):
    modalities, shapes, n_classes = EXPECTED_DATASETS[name]
    return lambda params: {"modalities": modalities, "shapes": shapes, "n_classes": n_classes}


@pytest.mark.parametrize("config", PAPER_CONFIGS, ids=[c.stem for c in PAPER_CONFIGS])
def test_paper_config_is_valid(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = load_spec_file(config)
    spec = Spec.model_validate(raw)  # structure, without the registries
    assert spec.name == config.stem and spec.name.startswith("paper-")
    assert spec.dataset.name in EXPECTED_DATASETS
    assert spec.method.name in catalog.METHODS
    catalog.METHODS.get(spec.method.name).params.model_validate(spec.method.params)
    cid = paper.config_id(spec.name)
    assert cid is not None and paper.DATASETS[cid.split("/")[0]] == spec.dataset.name
    missing = [spec.dataset.name] if spec.dataset.name not in catalog.DATASETS else []
    missing += [e.name for e in spec.model.encoders.values() if e.name not in catalog.ENCODERS]
    if missing:
        pytest.xfail(f"dataset not registered yet: {', '.join(missing)}")
    try:  # with the real data under root, if it is there
        resolve_spec(raw)
    except SpecError as err:  # only the data may be missing
        assert {path for path, _ in err.errors} == {"dataset.params"}, err
    entry = catalog.DATASETS.get(spec.dataset.name)
    monkeypatch.setitem(entry.extra, "meta", _fake_meta(spec.dataset.name))
    resolved = resolve_spec(raw)  # everything else, on the dataset's expected shapes
    assert resolved.method.name == spec.method.name


def test_paper_readme_lists_every_config() -> None:
    text = (ROOT / "configs" / "paper" / "README.md").read_text()
    for config in PAPER_CONFIGS:
        assert f"configs/paper/{config.name}" in text, config.name
        cid = paper.paper_config({"name": config.stem})
        if cid is not None:
            assert f"{paper.PUBLISHED[cid]['acc']:.4f}" in text


# ----------------------------------------------------------------------------- through `igm`


def test_igm_train_seeds_then_igm_compare(tmp_path: Path, capsys, monkeypatch) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(json.dumps(_tiny_spec("igm", 0, "tiny-igm")))
    monkeypatch.setenv("COLUMNS", "220")
    out = tmp_path / "runs"
    assert cli.main(["train", str(spec), "--seeds", "0,1", "--out", str(out), "--quiet"]) == 0
    files = sorted(out.glob("seed-*/result.json"))
    assert [json.loads(f.read_text())["spec"]["seed"] for f in files] == [0, 1]
    capsys.readouterr()
    assert cli.main(["train", str(spec), "--seeds", "0,1", "--out", str(out), "--quiet"]) == 0
    assert "done already" in capsys.readouterr().err
    assert cli.main(["compare", *map(str, files)]) == 0
    assert "tiny-igm" in capsys.readouterr().out
    assert cli.main(["train", str(spec), "--seeds", "1,1"]) == 2
    assert "seed 1 is given twice" in capsys.readouterr().err
