"""The numbers the IGM paper publishes, keyed by a paper configuration id, and how a spec names one.

Source: Jiang, Chi, Yang, "Interactive Multimodal Learning via Flat Gradient Modification",
IJCAI 2025 (Table 1 and the CREMA-D ablation; see docs/igm-method.md). Values are fractions in
[0, 1] of the test set: fused `acc`, and the table's second metric, `map` (mean average precision)
or `macro_f1`; `modality_acc` holds the per-modality accuracies where the paper reports them.

A configuration id reads "<dataset>/<config>", e.g. "crema_d/igm". A spec names one through its
`name`: "paper-<dataset>-<config>", optionally followed by "-seed<k>" (see `paper_config`).
Torch-free: the comparison command and the service can import it cheaply.
"""

from __future__ import annotations

import re
from typing import Any

PUBLISHED: dict[str, dict[str, Any]] = {
    # Table 1, CREMA-D (audio + visual). The per-modality numbers of igm / igm_no_sam are the
    # ablation rows "both" and "GM only", which have the same fused accuracy.
    "crema_d/igm": {
        "acc": 0.8105,
        "map": 0.8948,
        "modality_acc": {"audio": 0.6116, "visual": 0.6782},
    },
    "crema_d/igm_no_sam": {
        "acc": 0.8026,
        "map": 0.8830,
        "modality_acc": {"audio": 0.6013, "visual": 0.6506},
    },
    "crema_d/mla": {"acc": 0.7943, "map": 0.8572},
    "crema_d/unimodal_visual": {"acc": 0.6317},
    "crema_d/unimodal_audio": {"acc": 0.4583},
    # Table 1, Kinetics-Sounds (audio + visual)
    "kinetics_sounds/igm": {"acc": 0.7403, "map": 0.7855},
    "kinetics_sounds/mla": {"acc": 0.7004, "map": 0.7413},
    # Table 1, image-text (BERT + ResNet-50) and gestures
    "twitter2015/igm": {"acc": 0.7489, "macro_f1": 0.6917},
    "sarcasm/igm": {"acc": 0.8468, "macro_f1": 0.8392},
    "nvgesture/igm": {"acc": 0.8693, "macro_f1": 0.8703},
    # Ablation on CREMA-D: which of the two components is on (audio / visual / fused acc)
    "crema_d/ablation_none": {"acc": 0.6452, "modality_acc": {"audio": 0.4583, "visual": 0.6317}},
    "crema_d/ablation_sam_only": {
        "acc": 0.7342,
        "modality_acc": {"audio": 0.5860, "visual": 0.6479},
    },
    "crema_d/ablation_gm_only": {
        "acc": 0.8026,
        "modality_acc": {"audio": 0.6013, "visual": 0.6506},
    },
    "crema_d/ablation_both": {
        "acc": 0.8105,
        "modality_acc": {"audio": 0.6116, "visual": 0.6782},
    },
}

# Where each row comes from in the paper.
SOURCE: dict[str, str] = {
    key: "ablation (CREMA-D)" if "/ablation_" in key else "Table 1" for key in PUBLISHED
}

# Configurations that are compared with another configuration's published row: the authors'
# code (`sam: reference`) produced the paper's IGM numbers, so it is held to the same row.
ALIASES: dict[str, str] = {
    "crema_d/igm_reference": "crema_d/igm",
    "kinetics_sounds/igm_reference": "kinetics_sounds/igm",
    "nvgesture/igm_reference": "nvgesture/igm",
    "sarcasm/igm_reference": "sarcasm/igm",
    "twitter2015/igm_reference": "twitter2015/igm",
}

# The datasets of the paper, by the id used in configuration ids, and igm_core's dataset names.
DATASETS: dict[str, str] = {
    "crema_d": "crema_d",
    "kinetics_sounds": "kinetics_sounds",
    "nvgesture": "nvgesture_features",
    "sarcasm": "sarcasm",
    "twitter2015": "twitter2015",
}

_NAME = re.compile(r"^paper-(?P<dataset>[a-z0-9_]+)-(?P<config>[a-z0-9_]+)(?:-seed[0-9]+)?$")


def config_id(name: str) -> str | None:
    """ "<dataset>/<config>" named by a spec name "paper-<dataset>-<config>[-seed<k>]", or None.

    The id is returned whether or not the paper publishes a number for it.
    """
    match = _NAME.match(name)
    if match is None:
        return None
    return f"{match['dataset']}/{match['config']}"


def paper_config(spec: dict[str, Any]) -> str | None:
    """The published configuration a spec (a mapping, resolved or raw) reproduces, or None.

    The spec's `name` must read "paper-<dataset>-<config>", optionally followed by "-seed<k>"
    and nothing else (a variant such as "paper-crema_d-igm-tau03" is not the paper's run). The id
    "<dataset>/<config>" is mapped through ALIASES, and returned only when PUBLISHED has it.
    """
    name = spec.get("name")
    if not isinstance(name, str):
        return None
    cid = config_id(name)
    if cid is None:
        return None
    cid = ALIASES.get(cid, cid)
    return cid if cid in PUBLISHED else None


def published(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The published numbers for a spec's paper configuration, or None."""
    cid = paper_config(spec)
    return None if cid is None else PUBLISHED[cid]
