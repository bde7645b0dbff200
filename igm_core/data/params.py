"""Parameter models of the built-in datasets `synthetic`, `digits`, `features` and
`nvgesture_features` (the audio-visual ones live in av_meta).

Pydantic only, no torch and no igm_core.catalog: the catalog registers these models, the loaders
read them, and the web process validates specs with them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from igm_core.names import ModalityName


class Params(BaseModel):
    # strict: no `true` as a batch size, no "3" or 2.5 as an int (an int is a float, though)
    model_config = ConfigDict(extra="forbid", strict=True)


class SyntheticParams(Params):
    """Gaussian class clusters per modality; one strong, easily fitted modality dominates."""

    modalities: list[ModalityName] = Field(["strong", "weak"], min_length=1, max_length=8)
    dims: list[Annotated[int, Field(ge=2, le=4096)]] = Field([32, 32])
    signal: list[Annotated[float, Field(ge=0.0, le=100.0)]] = Field(
        [2.5, 1.5], description="class separation per modality, in units of the noise std"
    )
    difficulty: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        [0.0, 0.0],
        description="share of the class signal hidden behind a nonlinear (XOR-like) code",
    )
    n_classes: int = Field(4, ge=2, le=100)
    n_train: int = Field(2000, ge=10, le=1_000_000)
    n_val: int = Field(500, ge=10, le=1_000_000)
    n_test: int = Field(1000, ge=10, le=1_000_000)

    @model_validator(mode="after")
    def _lengths(self) -> SyntheticParams:
        m = len(self.modalities)
        if len(set(self.modalities)) != m:
            raise ValueError("modalities must be distinct")
        for name in ("dims", "signal", "difficulty"):
            if len(getattr(self, name)) != m:
                raise ValueError(
                    f"{name} needs one value per modality ({m}), got {getattr(self, name)}"
                )
        return self


DIGIT_VIEWS = ("top", "bottom", "coarse")
DIGIT_SHAPES = {"top": (1, 4, 8), "bottom": (1, 4, 8), "coarse": (1, 4, 4)}


class DigitsParams(Params):
    """scikit-learn's 8x8 digits, each image split into views with different noise."""

    views: int = Field(2, ge=2, le=3, description="2: top/bottom halves; 3: adds a coarse 4x4 view")
    noise: list[Annotated[float, Field(ge=0.0, le=10.0)]] = Field(
        [0.1, 0.6], description="Gaussian noise std per view (pixels scaled to [0, 1])"
    )
    val_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)

    @model_validator(mode="after")
    def _lengths(self) -> DigitsParams:
        if len(self.noise) != self.views:
            raise ValueError(f"noise needs one value per view ({self.views}), got {self.noise}")
        return self


class FeaturesParams(Params):
    """Pre-extracted features: root/{train,val,test}.npz with `label` and one array per modality."""

    root: str = Field(..., min_length=1, max_length=4096)
    n_classes: int | None = Field(None, ge=2, le=100_000)


NVGESTURE_MODALITIES = ("rgb", "depth", "flow")


class NVGestureParams(Params):
    """NVGesture as pre-extracted per-clip features: root/{train,val,test}.npz with `label` and
    `rgb`, `depth`, `flow` arrays (N x D, e.g. 1024-d I3D features)."""

    root: str = Field(..., min_length=1, max_length=4096)
    n_classes: int = Field(25, ge=2, le=100_000)
