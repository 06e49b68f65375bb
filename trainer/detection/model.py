"""The detector: a pretrained backbone trunk, a two-level pyramid (stride 16 and 32) and an FCOS-style head.

The graph ends with decoded boxes and probabilities, exactly the bundle's detection tensor contract
(edge/bundle.py): `boxes` [N, K, 4] normalised x1, y1, x2, y2 and `scores` [N, K, C] in 0..1; NMS is left to the
device (edge.runtime.postprocess.decode_detections). K is the number of cells over both levels. With
`export_features` set (the recipe sets it on a trained detector, so the bundle has it) a third output follows: the
stride-16 trunk map the pyramid reads, [N, C, h, w] (manifest `outputs.feature_map`; the studio's per-box similarity
to drawn boxes, edge.assist.suggest).

The trunk is split at `cut`: `features[:cut]` is frozen and may be run once per augmented view and cached
(`Detector.frozen_features`), `features[cut:]` and everything after it trains (`Detector.forward_from_cache`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from trainer.detection.targets import Level, level_cells, level_points


@dataclass(frozen=True)
class Taps:
    """Which trunk outputs feed the pyramid: stride-16 index, optional stride-32 index, their channels."""

    index16: int
    channels16: int
    index32: int | None
    channels32: int | None


def taps_for(backbone: nn.Module) -> Taps:
    """The stride-16 and (if the trunk has one) stride-32 stage of a trainer.backbones network."""
    by_stride = {st.stride: st for st in backbone.stages}  # type: ignore[union-attr]
    if 16 not in by_stride:
        raise ValueError("the backbone has no stride-16 stage to detect on")
    s16 = by_stride[16]
    s32 = by_stride.get(32)
    return Taps(s16.index, s16.channels, s32.index if s32 else None, s32.channels if s32 else None)


def _conv_gn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    # GroupNorm rather than BatchNorm: batches of a few cached views would make batch statistics noisy.
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(8, cout),
        nn.ReLU(inplace=True),
    )


class Scale(nn.Module):
    """A learnable scalar per level (FCOS), so one shared head can regress distances at both strides."""

    def __init__(self) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value


class Detector(nn.Module):
    """Backbone trunk + pyramid + shared FCOS head, decoding to normalised boxes and probabilities."""

    def __init__(
        self,
        features: nn.Sequential,
        taps: Taps,
        num_classes: int,
        input_size: int,
        width: int = 96,
        head_depth: int = 2,
        cut: int | None = None,
        top_down: bool = False,
    ) -> None:
        super().__init__()
        self.features = features
        self.taps = taps
        self.num_classes = num_classes
        self.input_size = input_size
        self.top_down = top_down  # FPN's top-down path: the stride-16 level also sees the stride-32 level's context
        last = taps.index32 if taps.index32 is not None else taps.index16
        # Modules past the last tap never run (torchvision's last 1x1 conv of MobileNet, for example).
        self.trunk_end = last + 1
        self.cut = self.trunk_end if cut is None else max(0, min(cut, self.trunk_end))
        self.lateral16 = nn.Conv2d(taps.channels16, width, 1)
        if taps.index32 is not None and taps.channels32 is not None:
            self.lateral32: nn.Module = nn.Conv2d(taps.channels32, width, 1)
        else:
            self.lateral32 = _conv_gn_relu(width, width, stride=2)
        self.cls_tower = nn.Sequential(*[_conv_gn_relu(width, width) for _ in range(head_depth)])
        self.reg_tower = nn.Sequential(*[_conv_gn_relu(width, width) for _ in range(head_depth)])
        self.cls_out = nn.Conv2d(width, num_classes, 3, padding=1)
        self.reg_out = nn.Conv2d(width, 4, 3, padding=1)
        self.ctr_out = nn.Conv2d(width, 1, 3, padding=1)
        self.scales = nn.ModuleList([Scale(), Scale()])
        for m in [self.cls_tower, self.reg_tower, self.cls_out, self.reg_out, self.ctr_out]:
            for conv in m.modules():
                if isinstance(conv, nn.Conv2d):
                    nn.init.normal_(conv.weight, std=0.01)
                    if conv.bias is not None:
                        nn.init.zeros_(conv.bias)
        # Focal-loss prior: every cell starts as background with probability 0.99, so early losses stay sane.
        assert self.cls_out.bias is not None
        nn.init.constant_(self.cls_out.bias, -math.log(99.0))

        self.export_features = False  # forward also returns the stride-16 trunk map (see the module docstring)
        # forward also runs the horizontally flipped input and averages the two's logits (test-time flip: twice
        # the inference per image, docs/DETECTION.md)
        self.tta_flip = False
        self.levels = self._probe_levels()
        self.points: torch.Tensor
        self.cells: torch.Tensor
        self.register_buffer("points", torch.cat([level_points(lv) for lv in self.levels]), persistent=False)
        self.register_buffer("cells", level_cells(self.levels), persistent=False)

    def _probe_levels(self) -> list[Level]:
        """Grid sizes for this input size, found by running the trunk once (SqueezeNet's ceil-mode pools make
        strides nominal). Size ranges follow FCOS: boxes reaching further than 8 fine cells go to the coarse level."""
        with torch.no_grad():
            was_training = self.training
            self.eval()
            p16, p32 = self._pyramid_from_taps(*self._run_trunk(torch.zeros(1, 3, self.input_size, self.input_size)))
            self.train(was_training)
        split = 8.0 / max(p16.shape[-1], p16.shape[-2])
        return [
            Level(p16.shape[-2], p16.shape[-1], 0.0, split),
            Level(p32.shape[-2], p32.shape[-1], split, math.inf),
        ]

    def _run_trunk(
        self, x: torch.Tensor, start: int = 0, tap16: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run features[start:trunk_end] on x and return (stride-16 output, stride-32 output or None)."""
        out16 = tap16
        out32 = None
        # When the trunk resumes right after a tap, its input is that tap's output.
        if start == self.taps.index16 + 1 and out16 is None:
            out16 = x
        if self.taps.index32 is not None and start == self.taps.index32 + 1:
            out32 = x
        for i in range(start, self.trunk_end):
            x = self.features[i](x)
            if i == self.taps.index16:
                out16 = x
            if i == self.taps.index32:
                out32 = x
        if out16 is None:  # start was past the stride-16 tap and no cached tap was given
            raise ValueError("the stride-16 features are missing")
        return out16, out32

    def _pyramid_from_taps(self, c16: torch.Tensor, c32: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        p16 = self.lateral16(c16)
        p32 = self.lateral32(c32) if c32 is not None else self.lateral32(p16)
        if self.top_down:
            p16 = p16 + nn.functional.interpolate(p32, size=p16.shape[-2:], mode="nearest")
        return p16, p32

    def _head_maps(self, p16: torch.Tensor, p32: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per level (stride 16, then 32): class logits [N, C, h, w], distance logits [N, 4, h, w], centre-ness
        logits [N, 1, h, w]."""
        maps = []
        for level_index, p in enumerate((p16, p32)):
            c = self.cls_tower(p)
            r = self.reg_tower(p)
            maps.append((self.cls_out(c), self.scales[level_index](self.reg_out(r)), self.ctr_out(r)))
        return maps

    @staticmethod
    def _flatten(maps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        """Level maps -> raw outputs over all cells: class logits [N, K, C], distance logits [N, K, 4], centre-ness
        [N, K]."""
        cls_all, reg_all, ctr_all = [], [], []
        for cls, reg, ctr in maps:
            n = cls.shape[0]
            cls_all.append(cls.flatten(2).transpose(1, 2))
            reg_all.append(reg.flatten(2).transpose(1, 2).reshape(n, -1, 4))
            ctr_all.append(ctr.flatten(1))
        return torch.cat(cls_all, 1), torch.cat(reg_all, 1), torch.cat(ctr_all, 1)

    @staticmethod
    def _merge_flipped(
        maps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        flipped: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Average each level's logits with those of the horizontally flipped input, mapped back: the flipped maps
        are mirrored along the width and their left / right distances swapped (the grids are mirror images of each
        other when the input size is a multiple of both strides)."""
        merged = []
        for (cls, reg, ctr), (fcls, freg, fctr) in zip(maps, flipped, strict=True):
            freg = torch.flip(freg, [3])[:, [2, 1, 0, 3]]  # (l, t, r, b) of the mirror is (r, t, l, b) here
            merged.append(((cls + torch.flip(fcls, [3])) / 2, (reg + freg) / 2, (ctr + torch.flip(fctr, [3])) / 2))
        return merged

    def raw_from_cache(
        self,
        cached: torch.Tensor,
        cached16: torch.Tensor | None = None,
        flipped: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Raw head outputs from the output of features[:cut] (and the stride-16 tap when cut is past it); with
        `flipped` (the same of the horizontally flipped inputs) the two are merged as `tta_flip` merges them."""
        maps = self._head_maps(*self._pyramid_from_taps(*self._run_trunk(cached, start=self.cut, tap16=cached16)))
        if flipped is not None:
            fmaps = self._head_maps(
                *self._pyramid_from_taps(*self._run_trunk(flipped[0], start=self.cut, tap16=flipped[1]))
            )
            maps = self._merge_flipped(maps, fmaps)
        return self._flatten(maps)

    def frozen_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output of the frozen part features[:cut], plus the stride-16 tap when the cut lies past it."""
        tap16 = None
        for i in range(self.cut):
            x = self.features[i](x)
            if i == self.taps.index16:
                tap16 = x
        return x, (tap16 if self.cut > self.taps.index16 + 1 else None)

    def decode(self, raw: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw head outputs -> (boxes [N, K, 4] normalised x1, y1, x2, y2, scores [N, K, C] in 0..1)."""
        cls_logits, reg, ctr = raw
        # Clamp before exp: an untrained or diverging head must not produce inf boxes in an exported graph.
        distances = torch.exp(reg.clamp(max=8.0)) * self.cells.repeat(1, 2)
        boxes = torch.cat([self.points - distances[..., :2], self.points + distances[..., 2:]], dim=-1)
        # FCOS's ranking score: geometric mean of class probability and centre-ness, still a probability.
        scores = torch.sqrt(torch.sigmoid(cls_logits) * torch.sigmoid(ctr).unsqueeze(-1))
        return boxes, scores

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c16, c32 = self._run_trunk(x)
        maps = self._head_maps(*self._pyramid_from_taps(c16, c32))
        if self.tta_flip:
            flipped = self._head_maps(*self._pyramid_from_taps(*self._run_trunk(torch.flip(x, [3]))))
            maps = self._merge_flipped(maps, flipped)
        boxes, scores = self.decode(self._flatten(maps))
        return (boxes, scores, c16) if self.export_features else (boxes, scores)
