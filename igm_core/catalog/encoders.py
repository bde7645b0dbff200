"""Encoder entries: one per modality of a model, chosen by name in `model.encoders`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from igm_core.registry import Registry

ENCODERS = Registry("encoder")

Width = Annotated[int, Field(ge=1, le=8192)]


class _Params(BaseModel):
    # strict: no `true` as a batch size, no "3" or 2.5 as an int (an int is a float, though)
    model_config = ConfigDict(extra="forbid", strict=True)


class MLPParams(_Params):
    hidden: list[Width] = Field([256], max_length=16)
    out_dim: Width = 128


class ConvParams(_Params):
    channels: list[Width] = Field([32, 64], min_length=1, max_length=16)
    out_dim: Width = 128


class ResNet18Params(_Params):
    pretrained: str | None = Field(
        None, max_length=4096, description="path to a local ResNet-18 state dict (never fetched)"
    )


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
ENCODERS.register(
    "resnet18",
    "ResNet-18 in plain torch (512-d), the paper's encoder: spectrograms as C x H x W, frames as "
    "T x C x H x W pooled over time; optional local pretrained weights.",
    ResNet18Params,
    "igm_core.resnet:ResNet18Encoder",
)


def default_encoder(shape: tuple[int, ...]) -> str:
    return "conv" if len(shape) in (3, 4) else "mlp"
