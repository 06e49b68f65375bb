"""What `count` and `coverage` share: one value per zone from the upstream items of a label, with the best box
inside the zone (edge.skills.values.zone_value)."""

from __future__ import annotations

from pydantic import Field

from edge.pipeline.zone_scoring import Zone
from edge.skills.registry import Block, BlockSettings
from edge.skills.values import Frame, Item, zone_value


class ZoneMeasureSettings(BlockSettings):
    label: str | None = Field(None, description="Label of the items that count (e.g. empty_shelf); default: all.")


class ZoneMeasure(Block):
    """Per zone of the frame: `measure(zone, the items of the label)` as the value."""

    settings: ZoneMeasureSettings

    def measure(self, zone: Zone, items: list[Item]) -> float:
        """The zone's value."""
        raise NotImplementedError

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        label = self.settings.label
        chosen = [i for i in items if label is None or i.label == label]
        return [
            zone_value(z.id, self.measure(z, chosen), [i for i in chosen if i.zone == z.id], label) for z in frame.zones
        ]
