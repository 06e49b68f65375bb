"""Zone scoring: how a frame's model output becomes one score per zone (their state over time is
edge.pipeline.zone_state).

- classifier: each zone's polygon bounding box is cropped from the frame, pixels outside the polygon are painted
  black (so a neighbouring shelf does not leak into the crop), the crops go to the model as one batch, and the
  zone's score is the highest probability among the zone's alert labels.
- detector: the zone's score is the highest score of an alert-label box whose overlap with the zone is at least
  `min_overlap`, where overlap = intersection area / box area (the share of the detected box that lies inside the
  zone). Dividing by the box area, not the zone area, lets a small "empty slot" box in a wide zone count fully,
  while a box that merely touches the zone's edge does not. The best box's bbox goes into the event.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.events import Snapshot, SnapshotImage

if TYPE_CHECKING:
    from edge.pipeline.model_slot import ActiveModel

log = logging.getLogger(__name__)

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Zone:
    """A zone as the pipeline evaluates it: normalised polygon and the labels that mean low stock in it."""

    id: str
    polygon: tuple[tuple[float, float], ...]
    alert_labels: tuple[str, ...]

    def bbox(self) -> BBox:
        """Normalised bounding box x1, y1, x2, y2 of the polygon."""
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class ZoneScore:
    """One evaluation of one zone: the score, the alert label that produced it and (detector) its box."""

    score: float
    label: str | None
    bbox: BBox | None = None


def zone_pixel_rect(zone: Zone, width: int, height: int) -> tuple[int, int, int, int]:
    """The zone's bounding box in pixels (x1, y1, x2, y2), at least one pixel each way."""
    x1, y1, x2, y2 = zone.bbox()
    px1 = min(max(int(np.floor(x1 * width)), 0), width - 1)
    py1 = min(max(int(np.floor(y1 * height)), 0), height - 1)
    px2 = max(min(int(np.ceil(x2 * width)), width), px1 + 1)
    py2 = max(min(int(np.ceil(y2 * height)), height), py1 + 1)
    return px1, py1, px2, py2


def crop_zone(image_bgr: np.ndarray, zone: Zone) -> np.ndarray:
    """The zone's bounding-box crop with pixels outside its polygon set to black (a new array the caller owns;
    the pipeline uses zone_crop, the same pixels without the copy)."""
    crop = zone_crop(image_bgr, zone)
    return crop.copy() if np.may_share_memory(crop, image_bgr) else crop


@dataclass(frozen=True, eq=False)
class ZoneCut:
    """Where a zone's crop lies in frames of one size: its pixel rectangle (x1, y1, x2, y2) and, when the polygon
    does not fill that rectangle, the mask of the polygon at the rectangle's size (read-only, 255 inside)."""

    rect: tuple[int, int, int, int]
    mask: np.ndarray | None


# Zone cuts by (polygon, frame width, frame height): a camera's zones and frame size rarely change, so their
# rectangles and masks are computed once, not per frame. Bounded: a mask is its zone's bounding box (at most a
# frame, 0.9 MB at 720p), and 64 of them cover 16 cameras x 4 zones.
ZONE_CUT_CACHE = 64


@functools.lru_cache(maxsize=ZONE_CUT_CACHE)
def zone_cut(polygon: tuple[tuple[float, float], ...], width: int, height: int) -> ZoneCut:
    """The zone's rectangle and polygon mask in a width x height frame (cached: ZONE_CUT_CACHE)."""
    x1, y1, x2, y2 = zone_pixel_rect(Zone("", polygon, ()), width, height)
    pts = np.array([[px * width - x1, py * height - y1] for px, py in polygon], dtype=np.float32)
    mask = np.zeros((y2 - y1, x2 - x1), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    if mask.all():
        return ZoneCut((x1, y1, x2, y2), None)
    mask.flags.writeable = False
    return ZoneCut((x1, y1, x2, y2), mask)


def zone_crop(image_bgr: np.ndarray, zone: Zone) -> np.ndarray:
    """The zone's bounding-box crop with pixels outside its polygon black, as cheaply as it comes: a read-only
    view into the image when the polygon fills its bounding box (a rectangle zone), else a new array masked with
    the zone's cached mask (zone_cut). The same pixels as crop_zone, bit for bit."""
    h, w = image_bgr.shape[:2]
    cut = zone_cut(tuple((float(x), float(y)) for x, y in zone.polygon), w, h)
    x1, y1, x2, y2 = cut.rect
    view = image_bgr[y1:y2, x1:x2]
    if cut.mask is None:
        view = view.view()
        view.flags.writeable = False
        return view
    return cv2.bitwise_and(view, view, dst=np.zeros(view.shape, dtype=view.dtype), mask=cut.mask)


def score_classification(label_scores: Sequence[dict[str, float]], zones: Sequence[Zone]) -> list[ZoneScore]:
    """Per-zone probability dicts (same order as zones) -> the highest alert-label probability per zone."""
    out: list[ZoneScore] = []
    for probs, zone in zip(label_scores, zones, strict=True):
        best_label, best = None, 0.0
        for label in zone.alert_labels:
            p = float(probs.get(label, 0.0))
            if best_label is None or p > best:
                best_label, best = label, p
        out.append(ZoneScore(best, best_label))
    return out


def box_overlap(box: BBox, zone_box: BBox, polygon: Sequence[tuple[float, float]] | None = None) -> float:
    """Share of `box` inside the zone: intersection area / box area (polygon rasterised when not a rectangle)."""
    bx1, by1, bx2, by2 = box
    area = max(bx2 - bx1, 0.0) * max(by2 - by1, 0.0)
    if area <= 0:
        return 0.0
    zx1, zy1, zx2, zy2 = zone_box
    ix1, iy1, ix2, iy2 = max(bx1, zx1), max(by1, zy1), min(bx2, zx2), min(by2, zy2)
    if ix2 <= ix1 or iy2 <= iy1:
        return 0.0
    rect_share = (ix2 - ix1) * (iy2 - iy1) / area
    if polygon is None or _is_axis_rectangle(polygon):
        return rect_share
    # A non-rectangular zone: measure the polygon's share of the box on a small grid (cheap and exact enough).
    grid = 64
    pts = np.array([[(x - bx1) / (bx2 - bx1) * grid, (y - by1) / (by2 - by1) * grid] for x, y in polygon])
    mask = np.zeros((grid, grid), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return float(mask.mean())


def _is_axis_rectangle(polygon: Sequence[tuple[float, float]]) -> bool:
    xs = {round(p[0], 6) for p in polygon}
    ys = {round(p[1], 6) for p in polygon}
    return len(polygon) == 4 and len(xs) == 2 and len(ys) == 2


@dataclass(frozen=True)
class DetectedBox:
    """The part of a detection the zone logic needs (any object with label, score and bbox fits)."""

    label: str
    score: float
    bbox: BBox


def score_detections(detections: Sequence[DetectedBox], zones: Sequence[Zone], min_overlap: float) -> list[ZoneScore]:
    """Detections of one frame -> per zone the best alert-label box overlapping it by at least `min_overlap`."""
    out: list[ZoneScore] = []
    for zone in zones:
        zbox = zone.bbox()
        best: DetectedBox | None = None
        for det in detections:
            if det.label not in zone.alert_labels:
                continue
            if best is not None and det.score <= best.score:
                continue
            if box_overlap(tuple(det.bbox), zbox, zone.polygon) >= min_overlap:  # type: ignore[arg-type]
                best = det
        if best is None:
            out.append(ZoneScore(0.0, zone.alert_labels[0] if zone.alert_labels else None, None))
        else:
            bbox = tuple(round(float(v), 4) for v in best.bbox)
            out.append(ZoneScore(float(best.score), best.label, bbox))  # type: ignore[arg-type]
    return out


def zones_with_labels(zones: Sequence[Zone], model: ActiveModel | None) -> list[Zone]:
    """The zones with the labels that mean low stock in them: a zone's own label (its `alert_labels` as the camera
    gives them) when the model has it, else the model's alert labels (a zone naming a label the model lacks is
    warned about)."""
    out: list[Zone] = []
    for z in zones:
        own = z.alert_labels[0] if z.alert_labels else None
        if own and (model is None or own in model.labels):
            labels: tuple[str, ...] = (own,)
        else:
            if own and model is not None:
                log.warning(
                    "zone %s names label %r that model %s lacks; using its alert labels", z.id, own, model.version
                )
            labels = tuple(model.alert_labels) if model is not None else ()
        out.append(Zone(z.id, z.polygon, labels))
    return out


def evaluate_frame(
    active: ActiveModel, image: np.ndarray, zones: Sequence[Zone], min_overlap: float
) -> tuple[list[ZoneScore], list[DetectedBox]]:
    """The zone scores and, for a detector, every box it found (normalised), of one frame (zones with their alert
    labels: zones_with_labels)."""
    if not zones:
        return [], []
    model = active.model
    if active.task == "detection":
        detections = model.predict(image)
        boxes = [DetectedBox(d.label, float(d.score), tuple(d.bbox)) for d in detections]
        return score_detections(boxes, zones, min_overlap), boxes
    # One batch (the runtime's batching sees a camera's crops at once), of views where no pixel needs masking.
    crops = [zone_crop(image, z) for z in zones]
    results = model.predict_batch(crops)
    return score_classification([dict(r.label_scores) for r in results], zones), []


# BGR colours of the states on snapshots (the studio's CSS uses the same hues).
STATE_COLOURS_BGR = {"low_stock": (38, 38, 220), "ok": (94, 197, 34), "unknown": (184, 163, 148)}
BOX_COLOUR_BGR = (36, 191, 251)


def annotate_snapshot(
    image: np.ndarray, polygon: Sequence[tuple[float, float]], state: str, bbox: Sequence[float] | None
) -> np.ndarray:
    """A copy of the frame with the zone outline (in its state's colour) and the box that raised the event."""
    out = image.copy()
    h, w = out.shape[:2]
    thick = max(2, round(min(w, h) / 240))
    pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in polygon], dtype=np.int32)
    cv2.polylines(out, [pts], isClosed=True, color=STATE_COLOURS_BGR.get(state, (255, 255, 255)), thickness=thick)
    if bbox is not None and len(bbox) == 4:
        x1, y1, x2, y2 = (float(v) for v in bbox)
        p1 = (round(x1 * (w - 1)), round(y1 * (h - 1)))
        p2 = (round(x2 * (w - 1)), round(y2 * (h - 1)))
        cv2.rectangle(out, p1, p2, BOX_COLOUR_BGR, thickness=thick)
    return out


def event_snapshot(
    image: np.ndarray, polygon: Sequence[tuple[float, float]], state: str, bbox: Sequence[float] | None
) -> SnapshotImage:
    """An event's annotated snapshot for the event writer: drawn later on its thread (edge.events.Snapshot) when
    the frame is read-only (a capture's: nobody changes it meanwhile, and no copy is made here), else drawn now."""
    if image.flags.writeable:
        return annotate_snapshot(image, polygon, state, bbox)
    box = None if bbox is None else tuple(float(v) for v in bbox)
    return Snapshot(image, functools.partial(annotate_snapshot, polygon=tuple(polygon), state=state, bbox=box))


def frame_snapshot(
    image: object, polygon: Sequence[tuple[float, float]], state: str, bbox: Sequence[float] | None
) -> SnapshotImage | None:
    """`event_snapshot` of a skill frame's image when it is a colour frame; None when there is no picture to keep."""
    if isinstance(image, np.ndarray) and image.ndim == 3:
        return event_snapshot(image, polygon, state, bbox)
    return None
