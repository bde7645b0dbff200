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


class ResNet50Params(_Params):
    pretrained: str | None = Field(
        None,
        max_length=4096,
        description="path to a local torchvision-format ResNet-50 state dict (never fetched)",
    )
    fc: bool = Field(
        True, description="keep the 1000-way ImageNet classifier: the output is its logits"
    )
    proj_dim: Width | None = Field(
        None, description="a Linear layer (no activation) to this width after the trunk / fc"
    )


class BertParams(_Params):
    pretrained: str = Field(
        ...,
        min_length=1,
        max_length=4096,
        description="a local folder as save_pretrained writes it (config.json, weights, "
        "tokenizer files); never fetched",
    )


class TokenBagParams(_Params):
    buckets: int = Field(30522, ge=16, le=1_000_000, description="embedding rows (ids folded in)")
    dim: Width = 128
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
ENCODERS.register(
    "resnet18",
    "ResNet-18 in plain torch (512-d), the paper's encoder: spectrograms as C x H x W, frames as "
    "T x C x H x W pooled over time; optional local pretrained weights.",
    ResNet18Params,
    "igm_core.resnet:ResNet18Encoder",
)

ENCODERS.register(
    "resnet50",
    "ResNet-50 in plain torch with torchvision's layer names, the paper's image-text image "
    "encoder: the 1000-way ImageNet fc kept (1000-d output) or dropped (2048-d), an optional "
    "Linear to proj_dim; optional local torchvision-format weights, keys checked.",
    ResNet50Params,
    "igm_core.resnet50:ResNet50Encoder",
)
ENCODERS.register(
    "bert",
    "BERT from a local Hugging Face folder (transformers, never a hub): the [CLS] vector of the "
    "last hidden state, the paper's image-text text encoder. Token inputs (2 x L).",
    BertParams,
    "igm_core.text_encoders:BertEncoder",
    kind="tokens",
)
ENCODERS.register(
    "token_bag",
    "Mean of learned token embeddings, then Linear-ReLU to out_dim: a text encoder that needs no "
    "weights (the default for token inputs). Token inputs (2 x L).",
    TokenBagParams,
    "igm_core.text_encoders:TokenBagEncoder",
    kind="tokens",
)


def default_encoder(shape: tuple[int, ...]) -> str:
    return "conv" if len(shape) in (3, 4) else "mlp"
