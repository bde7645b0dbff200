"""The metric glossary (igm_core/catalog/glossary.py): every key any registered method logs has
its line, and the README's metric glossary is the one rendered from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from igm_core import catalog
from igm_core.catalog.glossary import METRIC_GLOSSARY, explain, glossary_markdown
from igm_core.trainer import train
from tests.specs import spec_for

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- metric-glossary:start -->", "<!-- metric-glossary:end -->"
# parameters that make a method log keys its defaults do not
VARIANTS = [
    ("igm", {"sam": "reference"}),
    ("mla", {"alternation": "stage"}),
]


class Keys:
    """A tracker that keeps the metric keys it is given."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.keys.update(metrics)

    def log_artifact(self, path: Any, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


@pytest.mark.parametrize(
    "method,params", [(name, {}) for name in catalog.METHODS.names()] + VARIANTS
)
def test_every_key_a_method_logs_is_explained(method: str, params: dict) -> None:
    tracker = Keys()
    spec = spec_for(method, method={"name": method, "params": params})
    train(spec, tracker=tracker)
    assert tracker.keys, "the method logged nothing"
    missing = sorted(k for k in tracker.keys if explain(k) is None)
    assert missing == [], f"add these to igm_core/catalog/glossary.py: {missing}"


def test_per_layer_keys_are_explained_by_their_last_part() -> None:
    assert explain("gm/weak/encoders.weak.net.0.min_gain") == METRIC_GLOSSARY["gm/min_gain"]
    assert explain("gm/min_gain") == METRIC_GLOSSARY["gm/min_gain"]
    assert explain("val/fused/modality_gap") == METRIC_GLOSSARY["val/modality_gap"]
    assert explain("nope/weak/x") is None and explain("loss") is None


def test_the_readme_glossary_is_the_one_rendered_from_the_catalog() -> None:
    readme = (ROOT / "README.md").read_text()
    assert START in readme and END in readme, f"the README lacks its {START} ... {END} block"
    block = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == glossary_markdown(), (
        "the README's metric glossary differs from igm_core/catalog/glossary.py; "
        f"put this between the markers:\n{glossary_markdown()}"
    )
    for key in METRIC_GLOSSARY:
        assert f"| `{key}` |" in block
