"""How `v1_data_dir/` was made: run with the shelfwatch of commit b630d20 (schema 1, before projects) on PYTHONPATH.

    git archive b630d20 | tar -x -C /tmp/old && PYTHONPATH=/tmp/old python tests/store/data/make_v1_data_dir.py OUT

The folder is kept as files, not regenerated, so the migration test always opens a data dir written by the old
code itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from edge.config import ZoneConfig
from edge.datasets.model import Box
from edge.store import DatasetStore


def picture(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    noise = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.GaussianBlur(noise, (0, 0), 4), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def main(out: Path) -> None:
    with DatasetStore(out) as store:
        store.create_label("low_stock", "a shelf part with little left", "#112233")
        store.create_label("none", "anything else")
        store.create_label("Price Tag")
        ids = [store.add_image(picture(i), filename=f"shelf{i}.jpg", camera="aisle3").id for i in range(6)]
        store.set_annotations(ids[0], [], [Box("low_stock", 0.1, 0.2, 0.5, 0.6), Box("Price Tag", 0.6, 0.6, 0.7, 0.7)])
        store.set_annotations(ids[1], ["none"], [])
        store.set_annotations(ids[2], ["low_stock"], [Box("low_stock", 0.0, 0.0, 1.0, 0.5)])
        store.set_split([ids[0], ids[1]], "train")
        store.set_split([ids[2]], "test")
        store.set_setting("studio.task", "detection")
        store.set_zones("aisle3", [ZoneConfig(id="left", polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])])
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
