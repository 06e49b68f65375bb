"""`snapshot`: an annotated JPEG (zone outline, the item's box) for every firing upstream item, with retention.

Files: `<data_dir>/skills/snapshots/<camera>/<skill>/<block>/<UTC stamp>-<zone>.jpg`, newest `retention` kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
from pydantic import Field

from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item
from edge.timestamps import utc_stamp


class SnapshotSettings(BlockSettings):
    type: Literal["snapshot"] = "snapshot"
    retention: int = Field(100, ge=1, le=100_000, description="Snapshots kept; the oldest are deleted first.")
    quality: int = Field(85, ge=10, le=100, description="JPEG quality.")

    category: ClassVar[str] = "sink"


@block_type(SnapshotSettings)
class Snapshot(Block):
    settings: SnapshotSettings

    def __init__(self, settings: Any, ctx: Any) -> None:
        super().__init__(settings, ctx)
        base = ctx.data_dir if ctx.data_dir is not None else Path(".")
        self.directory = Path(base) / "skills" / "snapshots" / ctx.camera / ctx.skill / settings.id
        self.counter = 0

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        from edge.pipeline.camera_pipeline import annotate_snapshot

        out = []
        for i in items:
            if not i.fires:
                continue
            zone = next((z for z in frame.zones if z.id == i.zone), None)
            polygon = zone.polygon if zone is not None else ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
            image = annotate_snapshot(frame.image, polygon, i.state or "low_stock", i.bbox)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.quality])
            if not ok:
                continue
            self.directory.mkdir(parents=True, exist_ok=True)
            self.counter += 1
            final = self.directory / f"{utc_stamp()}-{self.counter:06d}-{i.zone}.jpg"
            tmp = final.with_suffix(".tmp")
            tmp.write_bytes(buf.tobytes())
            tmp.replace(final)
            out.append(i)
        if out:
            files = sorted(self.directory.glob("*.jpg"))
            for old in files[: max(0, len(files) - self.settings.retention)]:
                old.unlink(missing_ok=True)
        return out
