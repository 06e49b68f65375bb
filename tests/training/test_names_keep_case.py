"""Names keep their case (issue 11): the user's own none class is what zone crops, the trainer and the model use."""

from __future__ import annotations

from edge.config import ZoneConfig
from edge.datasets.model import Box
from edge.datasets.zone_crops import zone_crop_counts
from edge.vocabulary import NONE_LABEL

LEFT = ZoneConfig(id="left", polygon=[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)])
RIGHT = ZoneConfig(id="right", polygon=[(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)])
EMPTY_LEFT = [((), [Box("low_stock", 0.0, 0.0, 0.5, 1.0)])]


def test_the_users_none_keeps_its_case_in_zone_crops() -> None:
    for users in ("none", "None", "Other"):
        counts = zone_crop_counts(EMPTY_LEFT, [LEFT, RIGHT], ["low_stock", users])
        assert counts == {"low_stock": 1, users: 1}, users


def test_without_a_none_label_the_crops_get_the_vocabularys() -> None:
    assert zone_crop_counts(EMPTY_LEFT, [LEFT, RIGHT], ["low_stock"]) == {"low_stock": 1, NONE_LABEL: 1}
