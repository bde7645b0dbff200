"""The built-in registry entries: datasets, encoders and methods, with their parameter models.

Torch-free on purpose (see registry.py): the server lists and validates these without loading
torch. Each factory named here lives in a module that may import torch.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from igm_core.data.av_meta import (
    CremaDParams,
    KineticsSoundsParams,
    crema_d_meta,
    kinetics_sounds_meta,
)
from igm_core.registry import Registry

DATASETS = Registry("dataset")
ENCODERS = Registry("encoder")
METHODS = Registry("method")

MODALITY_NAME = r"^[a-z][a-z0-9_]{0,31}$"
ModalityName = Annotated[str, Field(pattern=MODALITY_NAME)]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- datasets


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


def _nvgesture_meta(p: NVGestureParams) -> dict[str, Any]:
    from igm_core.data.npz import read_meta  # numpy only

    meta = read_meta(p.root, p.n_classes)
    missing = [m for m in NVGESTURE_MODALITIES if m not in meta["modalities"]]
    if missing:
        raise ValueError(
            f"{p.root}: train.npz lacks the NVGesture modalities {missing}; it has "
            f"{meta['modalities']}"
        )
    meta["modalities"] = list(NVGESTURE_MODALITIES)
    return meta


def _synthetic_meta(p: SyntheticParams) -> dict[str, Any]:
    return {
        "modalities": list(p.modalities),
        "shapes": {m: (d,) for m, d in zip(p.modalities, p.dims, strict=True)},
        "n_classes": p.n_classes,
    }


def _digits_meta(p: DigitsParams) -> dict[str, Any]:
    shapes = {"top": (1, 4, 8), "bottom": (1, 4, 8), "coarse": (1, 4, 4)}
    names = list(DIGIT_VIEWS[: p.views])
    return {"modalities": names, "shapes": {m: shapes[m] for m in names}, "n_classes": 10}


def _features_meta(p: FeaturesParams) -> dict[str, Any]:
    from igm_core.data.npz import read_meta  # numpy only

    return read_meta(p.root, p.n_classes)


DATASETS.register(
    "synthetic",
    "Generated on the fly from the seed: Gaussian classes per modality with per-modality signal "
    "and difficulty, so that one modality dominates joint training.",
    SyntheticParams,
    "igm_core.data.synthetic:load",
    meta=_synthetic_meta,
)
DATASETS.register(
    "digits",
    "scikit-learn's handwritten digits (1,797 images, 10 classes) as 2 or 3 image views with "
    "different noise; shipped with scikit-learn, no download.",
    DigitsParams,
    "igm_core.data.digits:load",
    meta=_digits_meta,
)
DATASETS.register(
    "features",
    "A lab's own pre-extracted features: root/train.npz, val.npz, test.npz, each with an integer "
    "`label` array and one float array per modality (N x D or N x C x H x W).",
    FeaturesParams,
    "igm_core.data.features:load",
    meta=_features_meta,
)


DATASETS.register(
    "nvgesture_features",
    "NVGesture's three modalities (rgb, depth, flow) as pre-extracted per-clip features in the "
    "`features` layout (raw I3D needs weights that are not fetched here).",
    NVGestureParams,
    "igm_core.data.nvgesture:load",
    meta=_nvgesture_meta,
)


DATASETS.register(
    "crema_d",
    "CREMA-D clips: root/annotations/{train,valid?,test}.csv (clip, NEU/HAP/SAD/FEA/DIS/ANG or "
    "0-5), root/AudioWAV/<clip>.wav, root/Image-01-FPS/<clip>/*.jpg -> audio 1x257x188 log "
    "spectrogram (22,050 Hz, 3 s), visual frames x 3 x 224 x 224. `igm prepare crema_d` caches "
    "the decoding.",
    CremaDParams,
    "igm_core.data.av:load_crema_d",
    meta=crema_d_meta,
)
DATASETS.register(
    "kinetics_sounds",
    "Kinetics-Sounds clips: root/annotations/{train,valid?,test}.csv (clip, class name), "
    "root/{train,test}_wav/<clip>.wav, root/Image-01-FPS/<clip>/*.jpg -> audio 1x257x1003 "
    "(10 s, hop 220), visual 3 x 3 x 224 x 224. `igm prepare kinetics_sounds` caches the decoding.",
    KineticsSoundsParams,
    "igm_core.data.av:load_kinetics_sounds",
    meta=kinetics_sounds_meta,
)


def dataset_meta(name: str, params: BaseModel) -> dict[str, Any]:
    """Modalities, input shapes and class count of a dataset, computed without torch."""
    return DATASETS.get(name).extra["meta"](params)


# ----------------------------------------------------------------------------- encoders

Width = Annotated[int, Field(ge=1, le=8192)]


class MLPParams(Params):
    hidden: list[Width] = Field([256], max_length=16)
    out_dim: Width = 128


class ConvParams(Params):
    channels: list[Width] = Field([32, 64], min_length=1, max_length=16)
    out_dim: Width = 128


ENCODERS.register(
    "mlp",
    "Flatten, then Linear-ReLU layers to out_dim (for feature vectors).",
    MLPParams,
    "igm_core.models:MLPEncoder",
)
ENCODERS.register(
    "conv",
    "Small conv net for image-like arrays (C x H x W): 3x3 conv-BatchNorm-ReLU blocks with "
    "max pooling between them, average pooling to a 2x2 grid, Linear to out_dim.",
    ConvParams,
    "igm_core.models:ConvEncoder",
)


class ResNet18Params(Params):
    pretrained: str | None = Field(
        None, max_length=4096, description="path to a local ResNet-18 state dict (never fetched)"
    )


ENCODERS.register(
    "resnet18",
    "ResNet-18 in plain torch (512-d), the paper's encoder: spectrograms as C x H x W, frames as "
    "T x C x H x W pooled over time; optional local pretrained weights.",
    ResNet18Params,
    "igm_core.resnet:ResNet18Encoder",
)


def default_encoder(shape: tuple[int, ...]) -> str:
    return "conv" if len(shape) in (3, 4) else "mlp"


# ----------------------------------------------------------------------------- methods

_SCOPE = re.compile(r"^(head|all|none|head\+([1-9][0-9]?))$")


def _check_scope(value: str | float) -> str | float:
    if isinstance(value, float | int) and not isinstance(value, bool):
        if not 0.0 < float(value) <= 1.0:
            raise ValueError("a fraction of parameters must lie in (0, 1]")
        return float(value)
    if isinstance(value, str) and _SCOPE.match(value):
        return value
    raise ValueError(
        f"scope must be 'head', 'all', 'none', 'head+K' (K last encoder layers) "
        f"or a fraction in (0, 1], got {value!r}"
    )


Fusion = Literal["mean", "entropy"]


class JointParams(Params):
    pass


class UnimodalParams(Params):
    modality: ModalityName | None = Field(None, description="default: the first modality")


class AlternatingParams(Params):
    fusion: Fusion = "mean"


class MLAParams(AlternatingParams):
    scope: str | float = "head"
    alpha: float = Field(
        1.0, gt=0.0, le=1e6, description="OWM regulariser in P -= k k^T/(alpha + x^T k)"
    )

    _scope = field_validator("scope")(_check_scope)


class IGMParams(AlternatingParams):
    tau: float = Field(0.4, ge=0.0, le=50.0)
    gm_scope: str | float = "head"
    sam: Literal["standard", "reference", "none"] = "standard"
    rho: float | None = Field(
        None,
        ge=0.0,
        le=10.0,
        description="SAM radius; default 0.05 (standard) or the authors' 1e-10 (reference, where "
        "it perturbs the head and is never undone: a large value walks the weights uphill)",
    )
    rho_encoder: float = Field(
        0.0, ge=0.0, le=10.0, description="reference mode only: encoder perturbation radius"
    )
    flat_ratio: float = Field(0.3, ge=0.0, le=1.0, description="reference mode: beta")
    mixup_alpha: float = Field(1.0, ge=0.0, le=100.0, description="reference mode: Beta(a, a)")

    _scope = field_validator("gm_scope")(_check_scope)

    @model_validator(mode="after")
    def _default_rho(self) -> IGMParams:
        if self.rho is None:
            self.rho = 1e-10 if self.sam == "reference" else 0.05
        return self


class OGMGEParams(Params):
    alpha: float = Field(0.5, ge=0.0, le=100.0, description="modulation strength")
    modulation_start: int = Field(0, ge=0, le=100_000, description="first modulated epoch")
    modulation_end: int | None = Field(None, ge=0, le=100_000, description="last modulated epoch")
    ge: bool = Field(True, description="generalization enhancement: Gaussian noise on gradients")


METHODS.register(
    "joint",
    "All modalities trained together on the loss of the fused (mean) logits.",
    JointParams,
    "igm_core.methods.joint:Joint",
    kind="joint",
)
METHODS.register(
    "unimodal",
    "One modality alone (the 'Unimodal' rows of the paper's table).",
    UnimodalParams,
    "igm_core.methods.unimodal:Unimodal",
    kind="unimodal",
)
METHODS.register(
    "alternating",
    "Stage-wise alternation between modalities, no gradient modification (MLA/IGM without GM).",
    AlternatingParams,
    "igm_core.methods.alternating:Alternating",
    kind="alternating",
)
METHODS.register(
    "mla",
    "Alternation with MLA's orthogonal (OWM) projection of head gradients, really applied.",
    MLAParams,
    "igm_core.methods.alternating:MLA",
    kind="alternating",
)
METHODS.register(
    "igm",
    "Alternation with flat projection gradient modification (T = V diag(exp(-tau*norm eig)) V^T "
    "from the previous modality) and sharpness-aware minimisation.",
    IGMParams,
    "igm_core.methods.alternating:IGM",
    kind="alternating",
)
METHODS.register(
    "ogm_ge",
    "Joint training with on-the-fly gradient modulation and generalization enhancement "
    "(Peng et al., CVPR 2022), extended to any number of modalities.",
    OGMGEParams,
    "igm_core.methods.joint:OGMGE",
    kind="joint",
)
