"""The studio's review inbox: frames a `collect` block sent, each a JPEG with a JSON sidecar saying why.

Layout: `<data_dir>/inbox/<UTC stamp>-<n>-<camera>.jpg` and `.json` beside it with
`{"camera", "skill", "block", "reason", "items", "ts"}`; the newest `retention` are kept. The assisted-labelling
work reads it (`Inbox.list()`); nothing is added to the dataset until someone accepts a frame.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.timestamps import utc_now_iso, utc_stamp


class Inbox:
    """Frames waiting for review (see the module docstring)."""

    def __init__(self, directory: Path, retention: int = 1000) -> None:
        self.directory = directory
        self.retention = retention
        self._lock = threading.Lock()
        self._n = 0

    def put(self, image: np.ndarray, **info: Any) -> Path | None:
        """Store one frame with its reason; None when it cannot be encoded."""
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            return None
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._n += 1
            stem = f"{utc_stamp()}-{self._n:06d}-{info.get('camera', 'camera')}"
            jpg = self.directory / f"{stem}.jpg"
            tmp = jpg.with_suffix(".tmp")
            tmp.write_bytes(buf.tobytes())
            tmp.replace(jpg)
            (self.directory / f"{stem}.json").write_text(
                json.dumps({**info, "ts": utc_now_iso("milliseconds"), "image": jpg.name}), encoding="utf-8"
            )
            files = sorted(self.directory.glob("*.jpg"))
            for old in files[: max(0, len(files) - self.retention)]:
                old.unlink(missing_ok=True)
                old.with_suffix(".json").unlink(missing_ok=True)
        return jpg

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest collected frames' sidecars, newest first."""
        out = []
        for side in sorted(self.directory.glob("*.json"), reverse=True)[:limit]:
            try:
                out.append(json.loads(side.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return out
