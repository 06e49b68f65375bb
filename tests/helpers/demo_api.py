"""Driving `shelfwatch demo` over its REST API the way the pages (or a script) do, for the demo-loop test and the
Train -> evaluating benchmark: a JSON client with a bearer token, and tagging a captured frame as a person would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.cameras.synthetic import SyntheticShelf
from tests.helpers.broker import wait_port

USER, PASSWORD = "staff", "a long enough password"


class Api:
    """JSON over HTTP; `token` (once set) is sent as a bearer token."""

    def __init__(self, base: str, timeout: float = 60) -> None:
        self.base, self.token, self.timeout = base, "", timeout

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, method=method, data=data)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as err:
                # A 503 with Retry-After ("camera has not delivered a frame yet") asks a client to try again: do
                # as a well-behaved client would, for a bounded time; every other error stands.
                retry = err.headers.get("Retry-After") if err.code == 503 else None
                if retry is None or time.monotonic() > deadline:
                    raise
                time.sleep(min(float(retry), 2.0))


def start_demo(data: Path, web: int, mq: int, *flags: str, **popen: Any) -> subprocess.Popen[Any]:
    """`shelfwatch demo` over data_dir `data`, the studio on loopback port `web` and MQTT on `mq`, after creating
    the account USER; `flags`: more demo flags (--period, --seconds, --weights); `popen`: where its output goes."""
    subprocess.run(
        [sys.executable, "-m", "edge", "users", "add", USER, "--password-stdin", "--data-dir", str(data)],
        input=PASSWORD, text=True, check=True, capture_output=True,
    )  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "demo", "--data-dir", str(data), "--port", str(web), "--mqtt-port", str(mq),
         *flags],
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen,
    )  # fmt: skip


def signed_in(web: int, timeout: float = 60) -> Api:
    """Once the studio on port `web` answers: a client with USER's API token."""
    wait_port(web, timeout=timeout)
    api = Api(f"http://127.0.0.1:{web}", timeout=timeout)
    api.token = api("POST", "/api/v1/auth/token", {"username": USER, "password": PASSWORD})["token"]
    return api


def capture_and_tag(api: Api, shelf: SyntheticShelf, zones: list[dict[str, Any]], query: str = "") -> int:
    """Capture a frame of the demo's camera `shelf` and tag it as a person looking at it would: a low_stock box
    around every zone the synthetic shelf shows mostly empty at the capture time, the `none` tag when no zone is.
    `query` is added to the capture URL (e.g. ?project=2). Returns the image id."""
    image_id = int(api("POST", f"/api/v1/cameras/shelf/capture{query}", {})["id"])
    captured = api("GET", f"/api/v1/images/{image_id}")["captured_at"]
    low = shelf.ground_truth(datetime.fromisoformat(captured.replace("Z", "+00:00")).timestamp())
    boxes = []
    for z in zones:
        if low[z["id"]]:
            xs, ys = [p[0] for p in z["polygon"]], [p[1] for p in z["polygon"]]
            boxes.append({"label": "low_stock", "x1": min(xs), "y1": min(ys), "x2": max(xs), "y2": max(ys)})
    api("PUT", f"/api/v1/images/{image_id}/annotations", {"tags": [] if boxes else ["none"], "boxes": boxes})
    return image_id


def tagged_project(api: Api, images: int, period: float) -> int:
    """The first-run zone-classifier project (`low_stock` + `none`) as the page posts it, with `images` captures of
    the demo camera tagged by capture_and_tag, period/12 s apart (so they see full and low rows of a demo shelf
    cycling every `period` s); returns the project id."""
    project = api(
        "POST",
        "/api/v1/projects",
        {
            "name": "Shelf rows",
            "task": "classification",
            "labels": [{"name": "low_stock", "description": "little or no stock"}, {"name": "none"}],
        },
    )
    query = f"?project={project['id']}"
    zones = api("GET", "/api/v1/cameras/shelf/zones")["zones"]
    shelf = SyntheticShelf(1280, 720, 4, period, 0)
    for _ in range(images):
        capture_and_tag(api, shelf, zones, query)  # as Live's Capture button and the Tag page save it
        time.sleep(period / 12)
    return int(project["id"])
