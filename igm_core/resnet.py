"""ResNet-18 in plain torch, as the paper's audio and visual encoders (D = 512).

Spectrograms arrive as C x H x W (1 x 257 x 188 for CREMA-D); frames as T x C x H x W, run through
the network as a batch of B*T images and pooled over time and space, as the paper does. Nothing is
downloaded: `pretrained` names a local state dict (a torchvision-style ResNet-18 checkpoint or one
of this module's), loaded with weights_only once igm_core.encoder_check has found in it, without
torch, the tensors this network needs (the API runs the same check before queuing). The layer
sizes live there too, torch-free.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from igm_core.encoder_check import RESNET18_LAYERS as LAYERS
from igm_core.encoder_check import RESNET18_WIDTHS as WIDTHS
from igm_core.encoder_check import check_input, check_weights, loadable


def finish_init(net: nn.Module, pretrained: str | None) -> None:
    """He-initialise a ResNet's convolutions, load `pretrained` when given, go channels-last."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if pretrained:
        net.load_pretrained(pretrained)
    net.to(memory_format=torch.channels_last)


def shortcut(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """The 1 x 1 projection of a block's skip path where the block changes stride or width."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


def pooled_trunk(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A ResNet's stem and four stages on images (B x C x H x W) or frames (B x T x C x H x W),
    mean-pooled over space, and over time too for frames."""
    frames = x.dim() == 5
    if frames:  # B x T x C x H x W -> (B*T) x C x H x W
        b, t = x.shape[:2]
        x = x.flatten(0, 1)
    x = x.contiguous(memory_format=torch.channels_last)
    x = net.maxpool(torch.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    if frames:  # pool over time and space together
        return x.unflatten(0, (b, t)).mean(dim=(1, 3, 4))
    return x.mean(dim=(2, 3))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + skip)


class ResNet18Encoder(nn.Module):
    """ResNet-18 trunk (no classifier) -> 512-d features; frames are pooled over time."""

    def __init__(self, in_shape: tuple[int, ...], pretrained: str | None = None) -> None:
        super().__init__()
        check_input("resnet18", in_shape)  # the API ran the same check before queuing
        self.in_shape = tuple(in_shape)
        channels = in_shape[-3]
        self.conv1 = nn.Conv2d(channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks, c_in = [], 64
        for i, (n, width) in enumerate(zip(LAYERS, WIDTHS, strict=True)):
            stage = [BasicBlock(c_in, width, 1 if i == 0 else 2)]
            stage += [BasicBlock(width, width, 1) for _ in range(n - 1)]
            blocks.append(nn.Sequential(*stage))
            c_in = width
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.out_dim = WIDTHS[-1]
        finish_init(self, pretrained)

    def load_pretrained(self, path: str) -> None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"pretrained state dict {file} does not exist")
        check_weights("resnet18", self.in_shape, file)  # as the API did, before torch reads it
        state = loadable(torch.load(file, map_location="cpu", weights_only=True))
        if state["conv1.weight"].shape[1] != self.conv1.in_channels:
            # an RGB checkpoint for a 1-channel spectrogram: average the input filters
            state["conv1.weight"] = (
                state["conv1.weight"].mean(1, keepdim=True).repeat(1, self.conv1.in_channels, 1, 1)
            )
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{file}: not a ResNet-18 state dict (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pooled_trunk(self, x)
