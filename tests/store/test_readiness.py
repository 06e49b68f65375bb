"""The readiness verdict on its own: counts in, (ready, problems, warnings) out."""

from __future__ import annotations

from pathlib import Path

from edge.config import DatasetRulesConfig
from edge.store import readiness


def counts(**images: int) -> dict[str, dict[str, int]]:
    return {name: {"images": n, "boxes": 0} for name, n in images.items()}


def boxes(**per_label: int) -> dict[str, dict[str, int]]:
    return {name: {"images": 0, "boxes": n} for name, n in per_label.items()}


def test_classification_ready_at_the_default_minimums() -> None:
    ready, problems, warnings = readiness(counts(low=8, none=7), "classification")
    assert ready and problems == []
    assert warnings == []


def test_classification_needs_fifteen_images_in_all() -> None:
    ready, problems, _ = readiness(counts(low=7, none=7), "classification")
    assert not ready
    assert problems == ["14 tagged images; at least 15 are needed (tag 1 more)"]


def test_classification_needs_five_per_label_and_names_the_label() -> None:
    ready, problems, _ = readiness(counts(low=16, none=3), "classification")
    assert not ready
    assert problems == ["label 'none' has 3 images; at least 5 are needed (2 more, or delete the label)"]


def test_classification_needs_two_labels() -> None:
    ready, problems, warnings = readiness(counts(low=20), "classification")
    assert not ready and any("at least 2 labels" in p for p in problems)
    assert any("no NONE/other label" in w for w in warnings)


def test_no_labels_at_all() -> None:
    ready, problems, _ = readiness({}, "classification", tagged_images=0)
    assert not ready and any("no labels yet" in p for p in problems)


def test_detection_counts_boxes_per_label() -> None:
    ready, problems, warnings = readiness(boxes(empty_shelf=743), "detection", tagged_images=252)
    assert ready and problems == [] and warnings == []
    ready, problems, _ = readiness(boxes(empty=15, gap=14), "detection", tagged_images=20)
    assert not ready
    assert problems == ["label 'gap' has 14 boxes; at least 15 are needed (1 more, or delete the label)"]


def test_the_store_figure_for_tagged_images_wins_over_the_sum() -> None:
    # 40 boxes on 10 images: the per-label sums cannot tell how many images are tagged.
    ready, problems, _ = readiness(boxes(empty=40), "detection", tagged_images=10)
    assert not ready and problems[0].startswith("10 tagged images")


def test_rare_labels_are_warned_about_with_the_merge_advice() -> None:
    ready, _, warnings = readiness(counts(ok=100, low=40, odd=6, other=30), "classification")
    assert ready
    rare = [w for w in warnings if "rare" in w]
    assert rare == [
        "label 'odd' is rare (6 images against 100 for the largest label): add more examples or merge it into a "
        "NONE/other class"
    ]


def test_rules_are_configurable() -> None:
    rules = DatasetRulesConfig(
        min_images=4, min_per_label_classification=2, min_boxes_per_label_detection=3, rare_label_ratio=0.5
    )
    assert readiness(counts(a=2, none=2), "classification", rules)[0]
    assert readiness(boxes(a=3), "detection", rules, tagged_images=4)[0]
    _, _, warnings = readiness(counts(a=10, none=4), "classification", rules)
    assert any("'none' is rare" in w for w in warnings)


def test_near_duplicates_are_a_warning_not_a_problem() -> None:
    ready, problems, warnings = readiness(counts(low=8, none=8), "classification", near_duplicates=3)
    assert ready and problems == []
    assert any(w.startswith("3 images are near-duplicates") for w in warnings)
    _, _, one = readiness(counts(low=8, none=8), "classification", near_duplicates=1)
    assert any(w.startswith("1 image is a near-duplicate of another:") for w in one), one


def test_zone_classifier_is_judged_by_its_crops(tmp_path: Path) -> None:
    """With zones, one image gives one example per zone: boxes make low-stock crops, the rest are the none class."""
    from edge.config import ZoneConfig
    from edge.datasets.model import Box
    from edge.store import DatasetStore
    from tests.store.helpers import image_bytes

    store = DatasetStore(tmp_path)
    store.create_label("low_stock")
    store.create_label("none")
    rows = [
        ZoneConfig(id=f"row-{i}", polygon=[(0, i / 4), (1, i / 4), (1, (i + 1) / 4), (0, (i + 1) / 4)])
        for i in range(4)
    ]
    for n in range(15):
        record = store.add_image(image_bytes(n))
        if n < 2:  # a whole stocked photo: every zone is `none`
            store.set_annotations(record.id, ["none"], [])
        else:  # one empty row per photo, boxed
            row = n % 4
            store.set_annotations(record.id, [], [Box("low_stock", 0.0, row / 4, 1.0, (row + 1) / 4)])
    # Boxes exist, so with no task chosen the store would train a detector; the summary agrees.
    assert store.default_task() == "detection" == store.summary()["task"]
    # By whole images, `none` has 2 images: not ready.
    plain = store.summary("classification")
    assert plain["ready"] is False and plain["unit"] == "images"
    assert any("'none' has 2 images" in p for p in plain["problems"])
    # By the crops the trainer will get: 13 low-stock crops, 2 * 4 + 13 * 3 = 47 none crops.
    zoned = store.summary("classification", rows)
    assert zoned["unit"] == "crops" and zoned["zones"] == 4
    assert zoned["per_label"]["low_stock"]["crops"] == 13 and zoned["per_label"]["none"]["crops"] == 47
    assert zoned["ready"] is True, zoned["problems"]
    # Without a none label of its own, the crops go to the trainer's NONE class, which is judged too.
    store.delete_label("none", force=True)
    no_none = store.summary("classification", rows)
    assert no_none["per_label"]["low_stock"]["crops"] == 13 and "NONE" not in no_none["per_label"]
    # (deleting `none` untagged its 2 photos, so only the image count falls short, no label does)
    assert not any("label" in p for p in no_none["problems"]), no_none["problems"]
