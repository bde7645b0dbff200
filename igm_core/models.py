"""Multimodal classifiers: one encoder and one head per modality (or one shared head).

Head as in the paper: FC(D->h1)-ReLU-FC(h1->h2)-...-FC(->c), a ReLU after the first layer only;
with no hidden sizes, one Linear layer FC(D->c) (the MLA release's shared head), named "head.0"
like the first layer of any head, so gradient modification projects it from the encoder features.
Each modality's branch is addressed by layer names relative to the branch ("encoder.net.0",
"head.0"), so that gradient modification can pair a layer of one modality with the layer at the
same position in another.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from igm_core import catalog
from igm_core.encoder_check import check_input


class MLPEncoder(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], out_dim: int) -> None:
        super().__init__()
        dims = [math.prod(in_shape), *hidden, out_dim]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class ConvEncoder(nn.Module):
    """Small conv net for C x H x W inputs, or T x C x H x W frames pooled over time."""

    def __init__(self, in_shape: tuple[int, ...], channels: list[int], out_dim: int) -> None:
        super().__init__()
        check_input("conv", in_shape)  # the API ran the same check before queuing
        layers: list[nn.Module] = []
        c_in = in_shape[-3]
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c_in = c
        # a 2x2 pooled grid keeps coarse layout, which a global average would lose
        layers.append(nn.AdaptiveAvgPool2d(2))
        self.net = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in * 4, out_dim)
        self.out_dim = out_dim
        # channels-last runs conv, batch norm and pooling faster on a CPU (README, Benchmarks)
        # and suits tensor cores on a GPU
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.dim() == 5
        if frames:
            b, t = x.shape[:2]
            x = x.flatten(0, 1)
        x = x.contiguous(memory_format=torch.channels_last)
        z = torch.relu(self.fc(self.net(x).flatten(1)))
        return z.unflatten(0, (b, t)).mean(1) if frames else z


def make_head(in_dim: int, hidden: list[int], n_classes: int) -> nn.Sequential:
    """Linear layers in_dim -> *hidden -> n_classes, a ReLU after the first when hidden exist."""
    dims = [in_dim, *hidden, n_classes]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i == 0 and len(dims) > 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MultimodalModel(nn.Module):
    def __init__(
        self,
        encoders: dict[str, nn.Module],
        head_hidden: list[int],
        n_classes: int,
        shared_head: bool = False,
    ) -> None:
        super().__init__()
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.shared_head = shared_head
        if shared_head:
            dims = {m: e.out_dim for m, e in encoders.items()}
            if len(set(dims.values())) > 1:
                raise ValueError(
                    f"a shared head needs the same encoder output width for every modality, got "
                    f"{dims}"
                )
            dim = next(iter(encoders.values())).out_dim
            self.head = make_head(dim, head_hidden, n_classes)
        else:
            self.heads = nn.ModuleDict(
                {m: make_head(e.out_dim, head_hidden, n_classes) for m, e in encoders.items()}
            )

    def head_of(self, m: str) -> nn.Module:
        return self.head if self.shared_head else self.heads[m]

    def branch_modules(self, m: str) -> dict[str, nn.Module]:
        """Linear and Conv2d layers of modality m's branch, by branch-relative name, input first."""
        cache = self.__dict__.setdefault("_branch_cache", {})  # the layout never changes
        if m not in cache:
            cache[m] = self._find_branch_modules(m)
        return cache[m]

    def _find_branch_modules(self, m: str) -> dict[str, nn.Module]:
        out = {}
        for prefix, module in (("encoder", self.encoders[m]), ("head", self.head_of(m))):
            for name, layer in module.named_modules():
                if isinstance(layer, nn.Linear | nn.Conv2d):
                    out[f"{prefix}.{name}"] = layer
        return out

    def branch_parameters(self, m: str) -> list[nn.Parameter]:
        return [*self.encoders[m].parameters(), *self.head_of(m).parameters()]

    def features(self, m: str, x: torch.Tensor) -> torch.Tensor:
        return self.encoders[m](x)

    def logits(self, m: str, x: torch.Tensor) -> torch.Tensor:
        return self.head_of(m)(self.encoders[m](x))

    def forward(self, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.logits(m, x) for m, x in xs.items()}


def build_model(
    encoder_specs: dict[str, dict],
    shapes: dict[str, tuple[int, ...]],
    head_hidden: list[int],
    n_classes: int,
    shared_head: bool,
) -> MultimodalModel:
    encoders = {}
    for m, spec in encoder_specs.items():
        entry = catalog.ENCODERS.get(spec["name"])
        params = entry.params.model_validate(spec["params"]).model_dump()
        encoders[m] = entry.load()(shapes[m], **params)
    return MultimodalModel(encoders, head_hidden, n_classes, shared_head)
