"""A procedurally drawn store shelf whose rows deplete and get restocked: the demo's camera.

Everything is deterministic for a seed and a time `t` (seconds), so tests can check what a frame shows:
`SyntheticShelf.ground_truth(t)` says which shelf rows are low, and those rows' zones are mostly back wall
(tests/helpers/shelf_dataset.py builds labelled datasets from it).

Layout (normalised, independent of resolution): a dark store header on top, metal uprights on both sides, `rows`
shelf rows each ending in a shelf board, a kick plate at the bottom. Products stand on the boards in facings (the
same product repeated side by side); a row at stock s shows round(s * items) of them, removed in a fixed
per-row order, so the gaps grow monotonically as a row depletes. Where products are missing the back wall (a light
pegboard, `BACK_WALL_BGR`) shows.

Rendering is cheap (a few ms at 1280x720): the full shelf and the empty shelf are drawn once per
(size, rows, seed); a frame copies the empty-shelf rectangle over every missing item, then adds a little sensor
noise and lighting flicker.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.cameras.pacing import Pacer
from edge.config.model import ZoneConfig
from edge.errors import CameraError

BACK_WALL_BGR: tuple[int, int, int] = (186, 198, 208)
"""Colour of the pegboard behind the products (BGR); empty shelf space is mostly this colour."""

LOW_STOCK_LEVEL = 0.3
"""A row whose share of items present is below this is low stock (the ground truth)."""

EMPTY_LABEL = "empty_shelf"
CLASS_LOW = "low_stock"
CLASS_OK = "ok"

# Normalised layout (fractions of the image height / width).
_HEADER = 0.07
_KICK = 0.04
_BOARD = 0.032
_POST = 0.025
# Headroom between the tallest product and the board above, as a share of a row's product space.
_HEADROOM = 0.08


def _row_spans(rows: int) -> list[tuple[float, float]]:
    """Normalised (top, board_top) of each row's product space."""
    row_h = (1.0 - _HEADER - _KICK) / rows
    return [(_HEADER + i * row_h, _HEADER + (i + 1) * row_h - _BOARD) for i in range(rows)]


def default_zones(rows: int = 4) -> list[ZoneConfig]:
    """One zone per shelf row (ids row-1 .. row-N, top to bottom), covering the row's product space."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    zones = []
    for i, (top, bottom) in enumerate(_row_spans(rows)):
        x1, x2 = _POST, 1.0 - _POST
        zones.append(
            ZoneConfig(
                id=f"row-{i + 1}",
                name=f"Shelf row {i + 1}",
                polygon=[(x1, round(top, 4)), (x2, round(top, 4)), (x2, round(bottom, 4)), (x1, round(bottom, 4))],
            )
        )
    return zones


@dataclass(frozen=True)
class _Item:
    """One product on a row: its pixel slot (the x-range it owns including half the gaps) and drawn box."""

    row: int
    slot_x1: int
    slot_x2: int
    x1: int
    x2: int
    y1: int


@dataclass
class _Layout:
    """Pre-rendered full and empty shelf plus every item's place; built once per (width, height, rows, seed)."""

    width: int
    height: int
    rows: int
    full: np.ndarray
    empty: np.ndarray
    row_px: list[tuple[int, int]]
    items: list[list[_Item]]
    removal_order: list[list[int]]
    noise_pos: np.ndarray
    noise_neg: np.ndarray
    noise_margin: int = field(default=0)

    def present(self, row: int, stock: float) -> list[bool]:
        """Which items of a row are on the shelf at this stock level (missing ones are a prefix of the order)."""
        n = len(self.items[row])
        keep = round(min(1.0, max(0.0, stock)) * n)
        missing = set(self.removal_order[row][: n - keep])
        return [j not in missing for j in range(n)]


# ----------------------------------------------------------------------------------------------------------- drawing


def _palette_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """A saturated product colour (BGR floats), never close to the grey back wall."""
    hue = int(rng.integers(0, 180))
    sat = int(rng.integers(130, 256))
    val = int(rng.integers(90, 240))
    bgr = cv2.cvtColor(np.array([[[hue, sat, val]]], dtype=np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return float(bgr[0]), float(bgr[1]), float(bgr[2])


def _cylinder_shading(w: int) -> np.ndarray:
    """Per-column brightness of a lit cylinder: dark edges, highlight left of centre."""
    x = (np.arange(w, dtype=np.float32) + 0.5) / max(w, 1)
    base = 0.45 + 0.6 * np.sin(np.pi * x)
    spec = 0.35 * np.exp(-(((x - 0.32) / 0.07) ** 2))
    return np.asarray(base + spec, dtype=np.float32)


def _flat_shading(w: int) -> np.ndarray:
    """Per-column brightness of a box lit from the left."""
    x = (np.arange(w, dtype=np.float32) + 0.5) / max(w, 1)
    return np.asarray(1.08 - 0.28 * x, dtype=np.float32)


def _brand(rng: np.random.Generator) -> str:
    letters = "ABCDEFGHKLMNOPRSTUVZ"
    return "".join(letters[int(i)] for i in rng.integers(0, len(letters), int(rng.integers(3, 6))))


def _put_label_text(img: np.ndarray, text: str, y1: int, y2: int, colour: tuple[float, float, float]) -> None:
    """Write brand text centred in a band, scaled to fit (skipped when the band is too small to read)."""
    _h, w = img.shape[:2]
    band_h = y2 - y1
    if band_h < 7 or w < 12:
        return
    scale = 1.0
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    scale = min((w * 0.85) / max(tw, 1), (band_h * 0.6) / max(th, 1))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = ((w - tw) // 2, y1 + (band_h + th) // 2)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _draw_product(kind: str, w: int, h: int, rng_seed: int, style: dict[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """One product sprite (BGR uint8) and its mask (uint8 0/255)."""
    rng = np.random.default_rng(rng_seed)
    body = np.asarray(style["body"], dtype=np.float32)
    accent = np.asarray(style["accent"], dtype=np.float32)
    img = np.empty((h, w, 3), dtype=np.float32)
    img[:] = body
    mask = np.full((h, w), 255, dtype=np.uint8)
    shade = _flat_shading(w) if kind == "box" else _cylinder_shading(w)
    if kind == "box":
        band = (int(h * 0.38), int(h * 0.66))
        img[band[0] : band[1]] = accent
        img[: max(1, h // 40)] *= 0.7  # top edge catches less light
    elif kind == "can":
        band = (int(h * 0.3), int(h * 0.72))
        img[band[0] : band[1]] = accent
        rim = max(2, h // 14)
        img[:rim] = (205, 205, 210)
        img[h - rim // 2 :] = (170, 170, 175)
    elif kind == "bottle":
        band = (int(h * 0.5), int(h * 0.78))
        img[band[0] : band[1]] = accent
        neck_w = max(2, int(w * 0.36))
        nx1 = (w - neck_w) // 2
        cap_h = max(2, int(h * 0.09))
        neck_h = int(h * 0.3)
        mask[:neck_h, :nx1] = 0
        mask[:neck_h, nx1 + neck_w :] = 0
        img[:cap_h] = np.asarray(style["cap"], dtype=np.float32)
        # A rounded shoulder between neck and body.
        for y in range(neck_h, min(h, neck_h + max(1, h // 10))):
            f = (y - neck_h) / max(1, h // 10)
            inset = int((1 - f) * (w - neck_w) / 2)
            mask[y, :inset] = 0
            mask[y, w - inset :] = 0
    else:  # jar
        band = (int(h * 0.28), int(h * 0.75))
        img[band[0] : band[1]] = accent
        lid = max(2, int(h * 0.16))
        img[:lid] = np.asarray(style["cap"], dtype=np.float32)
        mask[:lid, : max(1, w // 16)] = 0
        mask[:lid, w - max(1, w // 16) :] = 0
    img *= shade[None, :, None]
    img += rng.normal(0.0, 3.0, size=(1, w, 1)).astype(np.float32)  # slight print variation per item
    out = np.clip(img, 0, 255).astype(np.uint8)
    text_colour = (245.0, 245.0, 245.0) if float(np.mean(accent)) < 140 else (30.0, 30.0, 30.0)
    _put_label_text(out, str(style["brand"]), band[0], band[1], text_colour)
    cv2.rectangle(out, (0, 0), (w - 1, h - 1), (0, 0, 0), 1)
    out = np.where(mask[..., None] > 0, out, 0).astype(np.uint8)
    return out, mask


@functools.lru_cache(maxsize=8)
def _background(width: int, height: int, rows: int) -> np.ndarray:
    """The empty shelf: header, pegboard wall with board shadows, uprights, boards with price rails, kick plate."""
    img = np.empty((height, width, 3), dtype=np.float32)
    img[:] = BACK_WALL_BGR
    # Pegboard holes on a regular grid.
    pitch = max(6, int(height * 0.035))
    radius = max(1, pitch // 7)
    wall = img.astype(np.uint8)
    for y in range(pitch // 2, height, pitch):
        for x in range(pitch // 2, width, pitch):
            cv2.circle(wall, (x, y), radius, (140, 150, 158), -1, cv2.LINE_AA)
    img = wall.astype(np.float32)
    # Light falls off towards both sides of the wall.
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)
    img *= (1.0 - 0.06 * xs**2)[None, :, None]
    spans = _row_spans(rows)
    board_px = max(2, round(_BOARD * height))
    for top, bottom in spans:
        y_top, y_board = round(top * height), round(bottom * height)
        # The board above casts a shadow on the top of this row's wall.
        sh = max(1, int((y_board - y_top) * 0.12))
        ramp = np.linspace(0.78, 1.0, sh, dtype=np.float32)
        img[y_top : y_top + sh] *= ramp[:, None, None]
        # Shelf board: front face with a darker lower lip and a price rail.
        y2 = min(height, y_board + board_px)
        img[y_board:y2] = (222, 224, 226)
        img[max(y_board, y2 - max(1, board_px // 4)) : y2] = (150, 152, 155)
    out = np.clip(img, 0, 255).astype(np.uint8)
    out[round((1.0 - _KICK) * height) :] = (60, 62, 66)
    post_px = max(2, round(_POST * width))
    metal = (np.linspace(0.75, 1.1, post_px, dtype=np.float32)[None, :, None] * np.float32(150)).astype(np.uint8)
    out[:, :post_px] = metal
    out[:, width - post_px :] = metal[:, ::-1]
    # Price tags along each board's front.
    tag_w, tag_h = max(3, round(width * 0.035)), max(1, round(board_px * 0.6))
    for _top, bottom in spans:
        y = round(bottom * height) + max(0, (board_px - tag_h) // 3)
        for x in range(post_px + tag_w, width - post_px - 2 * tag_w, max(2 * tag_w, round(width * 0.11))):
            cv2.rectangle(out, (x, y), (x + tag_w, y + tag_h), (250, 250, 250), -1)
            cv2.rectangle(out, (x, y), (x + tag_w // 3, y + tag_h), (40, 200, 250), -1)
    header_px = round(_HEADER * height)
    out[:header_px] = (46, 42, 40)
    stripe = max(1, header_px // 6)
    out[header_px - stripe : header_px] = (40, 110, 220)
    if header_px >= 10:
        scale = header_px / 40.0
        cv2.putText(
            out, "AISLE 3  -  GROCERY", (int(width * 0.04), int(header_px * 0.68)),
            cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), max(1, int(scale * 1.5)), cv2.LINE_AA,
        )  # fmt: skip
    out.flags.writeable = False  # shared by every layout of this size
    return out


@functools.lru_cache(maxsize=8)
def _noise(width: int, height: int, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor noise drawn once per size as (positive, negative) uint8 parts; a frame uses a random window."""
    noise = np.random.default_rng(7919).standard_normal((height, width + margin, 3), dtype=np.float32) * 2.2
    return np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _layout(width: int, height: int, rows: int, seed: int) -> _Layout:
    """Draw the full and the empty shelf once and remember where each item stands."""
    if width < 32 or height < 32:
        raise ValueError(f"synthetic shelf needs at least 32x32 pixels, got {width}x{height}")
    if not 1 <= rows <= 12:
        raise ValueError(f"rows must be 1..12, got {rows}")
    rng = np.random.default_rng(seed)
    empty = _background(width, height, rows)
    full = empty.copy()
    post_px = max(2, round(_POST * width))
    x_lo, x_hi = post_px + 2, width - post_px - 2
    row_px: list[tuple[int, int]] = []
    items: list[list[_Item]] = []
    removal: list[list[int]] = []
    for r, (top, bottom) in enumerate(_row_spans(rows)):
        y_top, y_board = round(top * height), round(bottom * height)
        row_px.append((y_top, y_board))
        space = y_board - y_top
        # Pick facings until the row is full, then spread the leftover width into the gaps.
        sprites: list[tuple[np.ndarray, np.ndarray]] = []
        used = 0
        min_gap = max(1, width // 400)
        while True:
            kind = str(rng.choice(["box", "can", "bottle", "jar"], p=[0.35, 0.25, 0.25, 0.15]))
            rel_h = {"box": (0.7, 0.95), "can": (0.55, 0.72), "bottle": (0.78, 0.95), "jar": (0.55, 0.72)}[kind]
            h = max(4, int(space * (1 - _HEADROOM) * rng.uniform(*rel_h)))
            aspect = {"box": (0.45, 0.8), "can": (0.5, 0.62), "bottle": (0.3, 0.4), "jar": (0.7, 0.9)}[kind]
            w = max(4, int(h * rng.uniform(*aspect)))
            style: dict[str, object] = {
                "body": _palette_colour(rng),
                "accent": _palette_colour(rng) if rng.random() < 0.6 else (238.0, 238.0, 232.0),
                "cap": _palette_colour(rng),
                "brand": _brand(rng),
            }
            facings = int(rng.integers(2, 6))
            drawn = _draw_product(kind, w, h, int(rng.integers(0, 2**31)), style)
            stop = False
            for _ in range(facings):
                if used + w + min_gap > x_hi - x_lo:
                    stop = True
                    break
                sprites.append(drawn)
                used += w + min_gap
            if stop:
                break
        n = len(sprites)
        widths = [s[0].shape[1] for s in sprites]
        gap = (x_hi - x_lo - sum(widths)) / n
        row_items: list[_Item] = []
        x = float(x_lo) + gap / 2
        for j, (sprite, mask) in enumerate(sprites):
            w = widths[j]
            h = sprite.shape[0]
            ix1 = round(x)
            ix2 = ix1 + w
            iy1 = y_board - h
            region = full[iy1:y_board, ix1:ix2]
            np.copyto(region, sprite, where=mask[..., None] > 0)
            # A slot spans half the gap on each side, so neighbouring missing items merge into one empty region.
            slot_x1 = x_lo if j == 0 else round(x - gap / 2)
            slot_x2 = x_hi if j == n - 1 else round(x + w + gap / 2)
            row_items.append(_Item(r, slot_x1, slot_x2, ix1, ix2, iy1))
            x += w + gap
        items.append(row_items)
        removal.append([int(i) for i in rng.permutation(n)])
    margin = 61
    noise_pos, noise_neg = _noise(width, height, margin)
    return _Layout(width, height, rows, full, empty, row_px, items, removal, noise_pos, noise_neg, margin)


def render_shelf(width: int, height: int, stock: Sequence[float], seed: int = 0, t: float = 0.0) -> np.ndarray:
    """Draw the shelf (BGR uint8, height x width) with len(stock) rows; stock[i] in 0..1 is how full row i is."""
    lay = _layout(int(width), int(height), len(stock), int(seed))
    img = lay.full.copy()
    for r, level in enumerate(stock):
        y_top, y_board = lay.row_px[r]
        for item, here in zip(lay.items[r], lay.present(r, level), strict=True):
            if not here:
                img[y_top:y_board, item.slot_x1 : item.slot_x2] = lay.empty[y_top:y_board, item.slot_x1 : item.slot_x2]
    # Noise and flicker depend only on (seed, t), so a frame is reproducible.
    frame_rng = np.random.default_rng([int(seed) & 0x7FFFFFFF, round(t * 1000) & 0x7FFFFFFF])
    off = int(frame_rng.integers(0, lay.noise_margin))
    cv2.add(img, lay.noise_pos[:, off : off + lay.width], dst=img)
    cv2.subtract(img, lay.noise_neg[:, off : off + lay.width], dst=img)
    gain = 1.0 + 0.025 * math.sin(t * 2.1) + float(frame_rng.normal(0.0, 0.006))
    if abs(gain - 1.0) > 1e-3:
        cv2.convertScaleAbs(img, dst=img, alpha=gain, beta=0)
    return img


def empty_regions(
    width: int, height: int, stock: Sequence[float], seed: int = 0
) -> list[tuple[float, float, float, float]]:
    """Normalised x1, y1, x2, y2 of every run of missing items (what a detector should call `empty_shelf`)."""
    lay = _layout(int(width), int(height), len(stock), int(seed))
    boxes: list[tuple[float, float, float, float]] = []
    for r, level in enumerate(stock):
        y_top, y_board = lay.row_px[r]
        run_start: int | None = None
        row_items = lay.items[r]
        present = lay.present(r, level)
        for j, here in enumerate([*present, True]):
            if not here and run_start is None:
                run_start = j
            elif here and run_start is not None:
                x1, x2 = row_items[run_start].slot_x1, row_items[j - 1].slot_x2
                boxes.append((x1 / width, y_top / height, x2 / width, y_board / height))
                run_start = None
    return boxes


def present_fraction(width: int, height: int, stock: Sequence[float], seed: int = 0) -> list[float]:
    """Per row, the share of items actually drawn at these stock levels (rounded to whole items)."""
    lay = _layout(int(width), int(height), len(stock), int(seed))
    out = []
    for r, level in enumerate(stock):
        present = lay.present(r, level)
        out.append(sum(present) / len(present))
    return out


# ------------------------------------------------------------------------------------------------------- the source


def _stock_curve(phase: float) -> float:
    """Stock over one restock cycle: shoppers empty the row, it sits empty a while, then staff refill it."""
    if phase < 0.75:
        return 1.0 - phase / 0.75
    if phase < 0.9:
        return 0.0
    return (phase - 0.9) / 0.1


@dataclass
class SyntheticShelf:
    """The shelf's behaviour over time: per-row stock, ground truth and frames, all pure functions of (seed, t)."""

    width: int = 1280
    height: int = 720
    rows: int = 4
    period: float = 60.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.period <= 0:
            raise ValueError("period must be positive")
        _layout(self.width, self.height, self.rows, self.seed)  # validate size and rows early
        rng = np.random.default_rng(self.seed + 104729)
        # Rows run out at different speeds and out of phase, so states change one at a time.
        self._row_period = [self.period * float(rng.uniform(0.8, 1.25)) for _ in range(self.rows)]
        self._row_offset = [float(rng.uniform(0.0, 1.0)) for _ in range(self.rows)]

    def stock_at(self, t: float) -> list[float]:
        """Stock level (0..1) of every row at time t (seconds)."""
        return [_stock_curve((t / p + o) % 1.0) for p, o in zip(self._row_period, self._row_offset, strict=True)]

    def zones(self) -> list[ZoneConfig]:
        """One zone per row, matching this shelf's layout."""
        return default_zones(self.rows)

    def ground_truth(self, t: float) -> dict[str, bool]:
        """Zone id -> True when that row is low stock at time t (fewer than LOW_STOCK_LEVEL of its items)."""
        fractions = present_fraction(self.width, self.height, self.stock_at(t), self.seed)
        return {z.id: f < LOW_STOCK_LEVEL for z, f in zip(self.zones(), fractions, strict=True)}

    def render(self, t: float) -> np.ndarray:
        """The frame at time t."""
        return render_shelf(self.width, self.height, self.stock_at(t), self.seed, t)


class SyntheticShelfSource:
    """A camera FrameSource (edge.cameras.sources) showing the synthetic shelf.

    Realtime: frames at `fps`, time t = wall-clock seconds (time.time()), so anyone holding a frame's `ts` can ask
    `shelf.ground_truth(ts)`. Not realtime: unpaced, t = start_t + frame_index / fps (fully reproducible).
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        rows: int = 4,
        period: float = 60.0,
        seed: int = 0,
        fps: float = 10.0,
        *,
        realtime: bool = True,
        start_t: float = 0.0,
    ) -> None:
        if fps <= 0:
            raise CameraError("synthetic source: fps must be positive")
        try:
            self.shelf = SyntheticShelf(width, height, rows, period, seed)
        except ValueError as err:
            raise CameraError(f"synthetic source: {err}") from err
        self.fps = fps
        self.realtime = realtime
        self.start_t = start_t
        self.description = f"synthetic:?width={width}&height={height}&rows={rows}&period={period:g}&seed={seed}"
        self.last_t = start_t
        self._index = 0
        self._pacer: Pacer | None = None

    def open(self) -> None:
        """Start the clock (nothing to connect to)."""
        self._index = 0
        self._pacer = Pacer(1.0 / self.fps) if self.realtime else None

    def read(self) -> np.ndarray:
        """The next frame (waits for its turn when realtime)."""
        if self._pacer is not None:
            self._pacer.wait()
            t = time.time()
        else:
            t = self.start_t + self._index / self.fps
        self._index += 1
        self.last_t = t
        return self.shelf.render(t)

    def close(self) -> None:
        """Nothing to release."""
        self._pacer = None

    @property
    def frame_interval(self) -> float:
        """Seconds between frames (0 when not realtime)."""
        return 1.0 / self.fps if self.realtime else 0.0

    def interrupt(self) -> None:
        """Cut short a pacing wait (called from another thread by CameraCapture.stop)."""
        pacer = self._pacer
        if pacer is not None:
            pacer.interrupt()
