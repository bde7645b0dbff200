"""The registries: which datasets, methods and encoders a spec may name, with parameter schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from igm_core import catalog
from server.schemas import RegistryEntryPublic

router = APIRouter(tags=["registry"])

_LIST = {"response_model": list[RegistryEntryPublic], "response_model_exclude_none": True}


@router.get("/methods", **_LIST)
def list_methods() -> list[dict[str, Any]]:
    """Training methods; `kind` says how they train (joint, unimodal, alternating)."""
    return catalog.METHODS.describe()


@router.get("/datasets", **_LIST)
def list_datasets() -> list[dict[str, Any]]:
    """Datasets a spec may name under `dataset.name`."""
    return catalog.DATASETS.describe()


@router.get("/encoders", **_LIST)
def list_encoders() -> list[dict[str, Any]]:
    """Encoders a spec may name under `model.encoders.<modality>.name`."""
    return catalog.ENCODERS.describe()
