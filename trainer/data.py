"""Training data for classification: samples from tags or zone crops, grouped stratified splits, augmentation.

Samples. Without zones, every image tagged with exactly one label is one sample of that label (images with no tag
are skipped as untagged, images with several tags are skipped as ambiguous; both are counted in the warnings).
With zones (the regions drawn per camera, normalised polygons), every image gives one crop per zone: the crop is
the polygon's bounding box, labelled by

1. the box label covering the largest share of the zone, when that share is at least `ZONE_BOX_COVERAGE`
   (a box drawn around an empty shelf part makes the zone over it "empty");
2. otherwise, when the image has boxes, `NONE_LABEL` (the image was annotated and nothing is wrong in this zone);
3. otherwise the image's single tag (a whole photo tagged "ok" makes every zone "ok"); untagged images give nothing.

So 15 captured images of a shelf with 4 zones give 60 labelled crops, which is what makes 15 images enough.

Splits. When the dataset carries its own split (any sample not "auto"), it is used: samples marked val are the
validation set, test the test set; when there is no test split the val samples become the test set, and validation
is carved out of train. Otherwise samples are split per label (stratified): 80% train, 10% validation, 10% test, at
least one of each per label. Splits are by group, never by sample: copies of one photo (file names sharing the
prefix before `_jpg.rf.`, as Roboflow exports them) and all crops of one image stay on the same side.

Minimums: at least `min_per_label` (10 by default) samples per label, so 8 train, 1 validation and 1
test; fewer is refused with the counts, unless the caller lowers the minimum (tiny test runs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.config.model import ZoneConfig
from edge.datasets.model import Dataset, Sample
from edge.datasets.zone_crops import zone_box, zone_crop_label
from edge.vocabulary import none_label
from trainer.errors import TrainingError

log = logging.getLogger(__name__)

_COPY_SUFFIX = re.compile(r"_(?:jpe?g|png|bmp|webp|tiff?)\.rf\.", re.IGNORECASE)


@dataclass(frozen=True)
class ClassSample:
    """One classification example: an image (or a crop of it) and its label index."""

    path: Path
    label: int
    group: str
    crop: tuple[float, float, float, float] | None = None  # normalised x1, y1, x2, y2
    name: str = ""
    polygon: tuple[tuple[float, float], ...] | None = None  # the zone's polygon: pixels outside it are blacked out


@dataclass
class ClassificationData:
    """Labels and the three splits, plus what was skipped and why."""

    labels: list[str]
    train: list[ClassSample]
    val: list[ClassSample]
    test: list[ClassSample]
    split_source: str  # "dataset" or "stratified"
    warnings: list[str] = field(default_factory=list)

    def counts(self, which: str | None = None) -> dict[str, int]:
        """Samples per label in one split, or in all of them."""
        parts = [getattr(self, which)] if which else [self.train, self.val, self.test]
        counter: Counter[int] = Counter(s.label for part in parts for s in part)
        return {lab: counter.get(i, 0) for i, lab in enumerate(self.labels)}


def read_any(src: Path, fmt: str | None) -> Dataset:
    """Read a dataset in any supported format (the foundation's readers)."""
    try:
        from edge.datasets.formats import read_dataset
    except ImportError as err:  # the formats module is part of the edge package; a broken install lands here
        raise TrainingError(f"dataset readers are not available: {err}") from err
    if not Path(src).exists():
        raise TrainingError(f"dataset {src} does not exist")
    if fmt is None:
        from edge.datasets.formats import detect_format

        fmt = detect_format(Path(src))
    return read_dataset(Path(src), fmt)


def group_key(name: str) -> str:
    """Copies of one photo share a group: the name up to `_jpg.rf.` (Roboflow), else the name without extension."""
    base = Path(name).name
    match = _COPY_SUFFIX.search(base)
    return base[: match.start()] if match else Path(name).with_suffix("").as_posix()


def _zone_box(zone: ZoneConfig) -> tuple[float, float, float, float]:
    return zone_box(zone)


def _polygon(zone: ZoneConfig) -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in zone.polygon)


def classification_samples(
    ds: Dataset, zones: Sequence[ZoneConfig] | None = None
) -> tuple[list[str], list[tuple[ClassSample, str]], list[str]]:
    """(labels, [(sample, dataset split)], warnings) for classification, from tags or zone crops."""
    raw: list[
        tuple[
            Path, str, str, tuple[float, float, float, float] | None, str, str, tuple[tuple[float, float], ...] | None
        ]
    ] = []
    untagged = ambiguous = 0
    none = none_label(ds.label_names)
    for s in ds.samples:
        if zones:
            for z in zones:
                box = _zone_box(z)
                label = zone_crop_label(s.tags, s.boxes, box, none)
                if label is None:
                    untagged += 1
                    continue
                raw.append((s.path, label, group_key(s.name), box, f"{s.name}#{z.id}", s.split, _polygon(z)))
            continue
        tags = sorted(set(s.tags))
        if not tags:
            untagged += 1
        elif len(tags) > 1:
            ambiguous += 1
        else:
            raw.append((s.path, tags[0], group_key(s.name), None, s.name, s.split, None))
    warnings = []
    if untagged:
        what = "zone crops" if zones else "images"
        warnings.append(f"{untagged} {what} had no usable tag and were skipped")
    if ambiguous:
        warnings.append(f"{ambiguous} images carry several tags and were skipped (classification is one label each)")
    used = {r[1] for r in raw}
    labels = [n for n in ds.label_names if n in used]
    labels += sorted(used - set(labels) - {none})
    if none in used and none not in labels:
        labels.append(none)
    index = {n: i for i, n in enumerate(labels)}
    out = [(ClassSample(p, index[lab], g, crop, name, poly), split) for p, lab, g, crop, name, split, poly in raw]
    return labels, out, warnings


def _stratified_groups(
    samples: list[ClassSample], fractions: Sequence[float], rng: np.random.Generator
) -> list[list[ClassSample]]:
    """Split samples into len(fractions)+1 parts by group, per label; each later part gets >= 1 group per label."""
    by_group: dict[str, list[ClassSample]] = defaultdict(list)
    for s in samples:
        by_group[s.group].append(s)
    by_label: dict[int, list[str]] = defaultdict(list)
    for g, members in sorted(by_group.items()):
        # A group goes with the label most of its members carry (crops of one image may differ).
        major = Counter(m.label for m in members).most_common(1)[0][0]
        by_label[major].append(g)
    parts: list[list[ClassSample]] = [[] for _ in range(len(fractions) + 1)]
    for label in sorted(by_label):
        groups = by_label[label]
        order = rng.permutation(len(groups))
        n = len(groups)
        takes = []
        for frac in fractions:
            # At least one group per held-out part when there are enough groups for train to keep one.
            k = max(1, round(frac * n)) if n > len(fractions) else 0
            takes.append(k)
        pos = 0
        for i, k in enumerate(takes):
            for j in order[pos : pos + k]:
                parts[i + 1].extend(by_group[groups[j]])
            pos += k
        for j in order[pos:]:
            parts[0].extend(by_group[groups[j]])
    return parts


def _split(
    samples: list[tuple[ClassSample, str]], seed: int
) -> tuple[list[ClassSample], list[ClassSample], list[ClassSample], str]:
    """(train, val, test, source): the samples' own split when it holds out any val/test images, else stratified
    grouped 80/10/10.

    With the dataset's own split, a missing test split takes the validation images, and a missing validation split
    is an eighth of train (by group, stratified).
    """
    rng = np.random.default_rng(seed)
    # A split that names only training images (a YOLO root with just train/, say) holds nothing out: split it here.
    if any(split in ("val", "test") for _, split in samples):
        train = [s for s, sp in samples if sp in ("train", "auto", "")]
        val = [s for s, sp in samples if sp == "val"]
        test = [s for s, sp in samples if sp == "test"]
        if not test:
            test, val = val, []
        if not val:
            train, val = _stratified_groups(train, [0.125], rng)
        return train, val, test, "dataset"
    train, val, test = _stratified_groups([s for s, _ in samples], [0.1, 0.1], rng)
    return train, val, test, "stratified"


def split_classification(
    labels: list[str],
    samples: list[tuple[ClassSample, str]],
    *,
    seed: int = 0,
    min_per_label: int = 10,
    warnings: list[str] | None = None,
) -> ClassificationData:
    """Train/val/test for classification: the dataset's own split, or stratified grouped 80/10/10."""
    warnings = list(warnings or [])
    if len(labels) < 2:
        found = labels[0] if labels else "none"
        raise TrainingError(f"classification needs at least 2 labels with tagged images; found {len(labels)} ({found})")
    counts = Counter(s.label for s, _ in samples)
    short = {labels[i]: counts.get(i, 0) for i in range(len(labels)) if counts.get(i, 0) < min_per_label}
    if short:
        listed = ", ".join(f"{k!r}: {v}" for k, v in short.items())
        raise TrainingError(
            f"too few images per label ({listed}); at least {min_per_label} are needed per label so that "
            "one lands in validation and one in test (8 train / 1 val / 1 test). Add images, merge rare labels, "
            "or lower --min-per-label for a tiny test run."
        )
    train, val, test, source = _split(samples, seed)
    leaked = {s.group for s in train} & {s.group for s in test}
    if leaked and source == "dataset":
        warnings.append(
            f"{len(leaked)} photo groups appear in both the dataset's train and test splits (copies of one "
            "photo); test accuracy will look better than it is"
        )
    for name, part in (("train", train), ("test", test)):
        missing = [labels[i] for i in range(len(labels)) if not any(s.label == i for s in part)]
        if missing:
            raise TrainingError(f"no {name} images for labels {missing}; add images or fix the dataset's split")
    if len(test) < 10 * len(labels):
        warnings.append(
            f"tiny test set ({len(test)} samples for {len(labels)} labels): each test sample moves accuracy by "
            f"{100.0 / max(1, len(test)):.0f} points; treat the metrics as rough"
        )
    return ClassificationData(labels, train, val, test, source, warnings)


# ------------------------------------------------------------------------------------------------ images


def load_image(path: Path) -> np.ndarray:
    """Decode an image file into BGR uint8; TrainingError naming the file when it cannot be read."""
    from edge.datasets.imaging import MAX_FRAME_PIXELS, decode_image
    from edge.errors import ImageError

    # The device's one intake: header first (allow-list, pixel limit), so a local dataset cannot smuggle in a bomb.
    try:
        _, image = decode_image(Path(path).read_bytes(), str(path), max_pixels=MAX_FRAME_PIXELS)
    except (OSError, ImageError) as err:
        raise TrainingError(f"cannot decode image {path}: {err}") from err
    return image


def crop_image(image: np.ndarray, crop: tuple[float, float, float, float] | None) -> np.ndarray:
    """The normalised crop of an image, cut exactly as the device cuts zone crops, or the image itself."""
    from edge.runtime.wrappers import crop as device_crop

    return image if crop is None else device_crop(image, crop)


def sample_image(sample: ClassSample, cache: dict[Path, np.ndarray] | None = None) -> np.ndarray:
    """The pixels of one sample (its crop when it has one); decoded images are shared through `cache`."""
    if cache is not None and sample.path in cache:
        image = cache[sample.path]
    else:
        image = load_image(sample.path)
        if cache is not None:
            cache[sample.path] = image
    if sample.polygon is not None:
        # Cut exactly what the device's pipeline classifies: the zone's box with the outside of its polygon black.
        from edge.pipeline.zone_scoring import Zone, crop_zone

        return crop_zone(image, Zone(sample.name, sample.polygon, ()))
    return crop_image(image, sample.crop)


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random shelf-plausible view: scale/crop, small rotation, horizontal flip, colour and light jitter.

    No vertical flips (shelves have a floor), rotations within 7 degrees (cameras are mounted roughly level),
    crops keep at least 70% of each side (a zone must still show the shelf it covers).
    """
    h, w = image.shape[:2]
    scale = rng.uniform(0.7, 1.0)
    cw, ch = max(1, round(w * scale)), max(1, round(h * rng.uniform(max(0.7, scale - 0.1), min(1.0, scale + 0.1))))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    out = image[y0 : y0 + ch, x0 : x0 + cw]
    angle = rng.uniform(-7.0, 7.0)
    if abs(angle) > 0.5:
        m = cv2.getRotationMatrix2D((cw / 2.0, ch / 2.0), angle, 1.0)
        out = cv2.warpAffine(out, m, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    hsv = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-4, 4)) % 180  # small hue shift: colour is often the signal
    hsv[..., 1] *= rng.uniform(0.75, 1.25)
    hsv[..., 2] *= rng.uniform(0.7, 1.3)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    contrast = rng.uniform(0.8, 1.2)
    mean = float(out.mean())
    return np.clip((out.astype(np.float32) - mean) * contrast + mean, 0, 255).astype(np.uint8)


def dataset_sha256(labels: list[str], samples: Sequence[ClassSample]) -> str:
    """Hash over the training material: every image's bytes, its crop and label (order-independent)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(labels).encode())
    file_hashes: dict[Path, str] = {}
    rows = []
    for s in samples:
        if s.path not in file_hashes:
            file_hashes[s.path] = hashlib.sha256(Path(s.path).read_bytes()).hexdigest()
        rows.append(f"{file_hashes[s.path]} {labels[s.label]} {s.crop}")
    for row in sorted(rows):
        digest.update(row.encode())
    return digest.hexdigest()


def dataset_sha256_samples(samples: Sequence[Sample]) -> str:
    """Hash over box-annotated images: every image's bytes with its boxes and tags (order-independent)."""
    digest = hashlib.sha256()
    rows = []
    for s in samples:
        boxes = sorted((b.label, *(round(v, 6) for v in b.as_tuple())) for b in s.boxes)
        rows.append(f"{hashlib.sha256(Path(s.path).read_bytes()).hexdigest()} {sorted(s.tags)} {boxes}")
    for row in sorted(rows):
        digest.update(row.encode())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ detection


NEGATIVE_STRATUM = -1  # a detector's negative photos: split like a label, but need not reach every fold


def detection_stratum(sample: Sample, index: dict[str, int]) -> int:
    """What a detection split stratifies a photo by: the index of its most frequent box label, or NEGATIVE_STRATUM
    for a negative (a photo marked "nothing to box")."""
    if not sample.boxes:
        return NEGATIVE_STRATUM
    return index[Counter(b.label for b in sample.boxes).most_common(1)[0][0]]


@dataclass
class DetectionData:
    """Labels (those with boxes) and the three splits of box-annotated images."""

    labels: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    split_source: str
    warnings: list[str] = field(default_factory=list)

    def box_counts(self, which: str | None = None) -> dict[str, int]:
        """Boxes per label in one split, or in all of them."""
        parts = [getattr(self, which)] if which else [self.train, self.val, self.test]
        counter = Counter(b.label for part in parts for s in part for b in s.boxes)
        return {lab: counter.get(lab, 0) for lab in self.labels}


def split_detection(ds: Dataset, *, seed: int = 0, min_images: int = 10) -> DetectionData:
    """Train/val/test of the images with boxes and of those marked "nothing to box" (negatives: a detector learns
    from them what is not a gap): the dataset's own split, or 80/10/10 by photo group (copies of a photo stay
    together), stratified by each photo's most frequent box label, the negatives as one more stratum."""
    with_boxes = [s for s in ds.samples if s.boxes]
    negatives = [s for s in ds.samples if s.nothing_to_box and not s.boxes]
    warnings = []
    skipped = len(ds.samples) - len(with_boxes) - len(negatives)
    if skipped:
        warnings.append(
            f"{skipped} images without boxes were not used for detection (mark a photo with nothing to box as "
            "such to train on it as a negative)"
        )
    used = {b.label for s in with_boxes for b in s.boxes}
    labels = [n for n in ds.label_names if n in used] + sorted(used - set(ds.label_names))
    groups = {group_key(s.name) for s in with_boxes}
    if len(groups) < min_images:
        raise TrainingError(
            f"too few photos with boxes ({len(groups)} distinct photos); at least {min_images} are needed so that "
            "one lands in validation and one in test. Draw boxes on more photos, or lower --min-per-label "
            "for a tiny test run."
        )
    index = {n: i for i, n in enumerate(labels)}
    used_samples = with_boxes + negatives
    # Reuse the grouped stratified splitter with one stand-in sample per image, labelled by its main box label
    # (a negative by NEGATIVE_STRATUM: with fewer than three they all train).
    stand_ins = [
        (ClassSample(Path(str(i)), detection_stratum(s, index), group_key(s.name)), s.split)
        for i, s in enumerate(used_samples)
    ]
    train_i, val_i, test_i, source = _split(stand_ins, seed)
    if not all(any(used_samples[int(str(c.path))].boxes for c in part) for part in (train_i, test_i)):
        raise TrainingError("detection needs photos with boxes in both train and test; fix the dataset's split")

    def pick(part: list[ClassSample]) -> list[Sample]:
        return [used_samples[int(str(c.path))] for c in part]

    if len(test_i) < 10:
        warnings.append(f"tiny test set ({len(test_i)} photos): treat mAP as rough")
    return DetectionData(labels, pick(train_i), pick(val_i), pick(test_i), source, warnings)
