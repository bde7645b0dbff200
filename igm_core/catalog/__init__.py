"""The built-in registry entries: datasets, encoders and methods, with their parameter models.

Torch-free on purpose (see igm_core.registry): the server lists and validates these without
loading torch. Each entry names its factory as "module:attribute", imported only when built.
Adding a dataset, an encoder or a method is one entry in datasets.py, encoders.py or methods.py
next to its module; the tests run over every registered name.
"""

from __future__ import annotations

from typing import Any

from igm_core.catalog import baselines as _baselines  # noqa: F401  (registers its methods)
from igm_core.catalog.datasets import DATASETS, dataset_meta
from igm_core.catalog.encoders import ENCODERS, default_encoder
from igm_core.catalog.methods import METHODS, MethodRules, method_rules
from igm_core.registry import Registry

__all__ = [
    "DATASETS",
    "ENCODERS",
    "METHODS",
    "MethodRules",
    "Registry",
    "build_dataset",
    "dataset_meta",
    "default_encoder",
    "method_rules",
]


def build_dataset(name: str, params: dict[str, Any], seed: int) -> Any:
    """Load a registered dataset (a MultimodalData) from its parameters; imports its loader."""
    entry = DATASETS.get(name)
    return entry.load()(entry.params.model_validate(params), seed)
