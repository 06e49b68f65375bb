"""`snapshot`: an annotated JPEG (zone outline, the item's box) for every firing upstream item, with retention.

Files: `<data_dir>/skills/snapshots/<camera>/<skill>/<block>/<UTC stamp>-<zone>.jpg`, newest `retention` kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import cv2
from pydantic import Field

from edge.pipeline.zone_scoring import annotate_snapshot
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
    counter = 0  # snapshots written (a file name part: two in one second stay apart)

    @property
    def directory(self) -> Path:
        """`<data_dir>/skills/snapshots/<camera>/<skill>/<block>`."""
        base = self.ctx.data_dir if self.ctx.data_dir is not None else Path(".")
        return Path(base) / "skills" / "snapshots" / self.ctx.camera / self.ctx.skill / self.id

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        out = []
        for i in items:
            if not i.fires:
                continue
            image = annotate_snapshot(frame.image, frame.polygon(i.zone), i.state or "low_stock", i.bbox)
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
