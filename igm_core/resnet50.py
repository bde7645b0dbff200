"""ResNet-50 in plain torch, the image encoder of the IGM paper's image-text runs.

The layers and their names are torchvision's (bottleneck blocks with the stride on the 3x3
convolution, "v1.5"), so a torchvision-format state dict (such as the ImageNet weights the IGM
authors load) loads into it; its keys and shapes are checked and any difference is a clear error
naming the file and the keys. As in the authors' model, the 1000-way ImageNet classifier `fc` is
kept by default: the encoder's output is its 1000 logits, and `proj_dim` adds a Linear layer
(no activation) from them, the authors' first image-head layer (1000 -> 768). Images arrive as
C x H x W, or T x C x H x W frames pooled over time before `fc`. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from igm_core.encoder_check import check_input
from igm_core.resnet import finish_init, pooled_trunk, shortcut

LAYERS = (3, 4, 6, 3)
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
IMAGENET_CLASSES = 1000


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * EXPANSION
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample = shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + skip)


class ResNet50Encoder(nn.Module):
    """ResNet-50 -> 1000 ImageNet logits (fc kept) or 2048 pooled features, then an optional
    Linear to proj_dim."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        pretrained: str | None = None,
        fc: bool = True,
        proj_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_input("resnet50", tuple(in_shape))
        self.conv1 = nn.Conv2d(in_shape[-3], 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, c_in = [], 64
        for i, (n, width) in enumerate(zip(LAYERS, WIDTHS, strict=True)):
            blocks = [Bottleneck(c_in, width, 1 if i == 0 else 2)]
            c_in = width * EXPANSION
            blocks += [Bottleneck(c_in, width, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(c_in, IMAGENET_CLASSES) if fc else None
        width = IMAGENET_CLASSES if fc else c_in
        self.proj = nn.Linear(width, proj_dim) if proj_dim else None
        self.out_dim = proj_dim or width
        finish_init(self, pretrained)

    def load_pretrained(self, path: str) -> None:
        """Load a torchvision-format ResNet-50 state dict (trunk, and fc when kept)."""
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"{file}: no such file (resnet50 pretrained state dict)")
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle, zip and torch errors alike
            raise ValueError(f"{file}: cannot read a state dict ({type(err).__name__})") from None
        if not isinstance(state, dict):
            raise ValueError(f"{file}: not a state dict (a {type(state).__name__})")
        state = {str(k).removeprefix("module."): v for k, v in state.items()}
        if self.fc is None:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = {k: v for k, v in self.state_dict().items() if not k.startswith("proj.")}
        if self.conv1.in_channels != 3 and "conv1.weight" in state:
            # an RGB checkpoint for another channel count: average the input filters
            w = state["conv1.weight"]
            state["conv1.weight"] = w.mean(1, keepdim=True).repeat(1, self.conv1.in_channels, 1, 1)
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if tuple(state[k].shape) != own[k].shape)
        if missing or unexpected or wrong:
            raise ValueError(
                f"{file}: not a torchvision-format ResNet-50 state dict: "
                f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys "
                f"{unexpected[:3]}, {len(wrong)} of another shape {wrong[:3]}"
            )
        self.load_state_dict(state, strict=False)  # every key but proj.* is checked above

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = pooled_trunk(self, x)
        if self.fc is not None:
            z = self.fc(z)
        return self.proj(z) if self.proj is not None else z
