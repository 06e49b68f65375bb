"""Peak memory of the process handling each hostile input of issue 14, and what it answers.

Each case runs in a fresh subprocess (`--case NAME`) that builds its hostile file in a temporary folder, sets up the
real part that receives it (the device's web app with a store and model repository, the trainer's app, the model
repository), hands the input over and reports `resource.getrusage(RUSAGE_SELF).ru_maxrss` (the process's peak RSS)
and the answer. The `baseline-*` cases do the same set-up with a harmless input: the difference is what the hostile
input cost. The target is <= 300 MB per case.

    .venv/bin/python benchmarks/hostile_inputs.py            # every case, a table
    .venv/bin/python benchmarks/hostile_inputs.py --case tiff-upload
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import hostile  # noqa: E402 - the builders live with the tests that use them

LIMIT_MB = 300
PASSWORD = "long enough password"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ------------------------------------------------------------------------------------------------ receivers


def _device(work: Path, *, with_model: bool = False) -> tuple[Any, dict[str, str]]:
    """The device's web app over a fresh data_dir (store, accounts, model repository) and an admin bearer token."""
    from edge.config import EdgeConfig
    from edge.model_repository import ModelRepository
    from edge.store import DatasetStore
    from edge.web import Services, create_app

    raw: dict[str, Any] = {"data_dir": str(work / "device")}
    bundle = None
    if with_model:
        from tests.helpers.tiny_bundle import make_classification_bundle

        bundle = make_classification_bundle(work / "bundles", openvino=False)
        raw["model"] = {"trusted_keys": [str(bundle.public_key)], "engine": "onnxruntime", "threads": 1}
    config = EdgeConfig.model_validate(raw)
    store = DatasetStore(config.data_dir, config.dataset)
    models = ModelRepository.from_config(config)
    if bundle is not None:
        models.install(bundle.bundle_dir, activate=True)
    services = Services(store=store, models=models)
    app = create_app(config, services)
    assert services.users is not None
    token, _ = services.users.issue_token(services.users.create_first_admin("admin", PASSWORD).id)
    return app.test_client(), {"Authorization": f"Bearer {token}"}


def _trainer(work: Path) -> tuple[Any, dict[str, str]]:
    from trainer.config import TrainerConfig
    from trainer.service.app import create_app

    token = "bench-token-0123456789"
    config = TrainerConfig.model_validate(
        {"data_dir": str(work / "trainer"), "server": {"tokens": [token]}, "workers": 1}
    )
    app = create_app(config, runner=None)
    return app.test_client(), {"Authorization": f"Bearer {token}"}


def _answer(resp: Any) -> str:
    body = resp.get_json(silent=True) or {}
    return f"{resp.status_code} {str(body.get('error', ''))[:90]}".strip()


def _upload(client: Any, auth: dict[str, str], name: str, data: bytes) -> str:
    resp = client.post(
        "/api/v1/images", data={"file": [(io.BytesIO(data), name)]}, headers=auth, content_type="multipart/form-data"
    )
    return _answer(resp)


def _import(client: Any, auth: dict[str, str], name: str, data: bytes, fmt: str = "auto") -> str:
    form = {"file": (io.BytesIO(data), name), "format": fmt}
    return _answer(client.post("/api/v1/dataset/import", data=form, headers=auth, content_type="multipart/form-data"))


def _trainer_upload(data: bytes, work: Path, fmt: str) -> str:
    client, auth = _trainer(work)
    resp = client.post(
        "/v1/datasets", data=data, headers=auth, content_type="application/zip", query_string={"format": fmt}
    )
    return _answer(resp)


# ------------------------------------------------------------------------------------------------ hostile files


def _tiff_bomb() -> bytes:
    return hostile.tiff_declaring(30000, 30000)  # complete: ~900 KB of deflate for 900 MB of pixels


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tiff_zip() -> bytes:
    bomb = _tiff_bomb()
    return _zip({f"empty/bomb{i}.tif": bomb for i in range(3)} | {"full/ok.jpg": hostile.small_image(".jpg")})


def _bundle_bomb(work: Path, gib: float) -> tuple[Path, Path]:
    """An unsigned tar.gz: a tiny bundle's files (no manifest.sig) plus two unlisted members of `gib` GiB zeros."""
    from tests.helpers.tiny_bundle import make_classification_bundle

    signed = make_classification_bundle(work / "bundles", openvino=False)
    out = work / "unsigned.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        for path in sorted(signed.bundle_dir.rglob("*")):
            rel = path.relative_to(signed.bundle_dir).as_posix()
            if path.is_file() and rel != "manifest.sig":
                tar.add(path, arcname=rel)
                if rel == "manifest.json":
                    for name in ("pad-a.bin", "pad-b.bin"):
                        hostile.zeros_member(tar, name, int(gib * (1 << 30)))
    return out, signed.public_key


# ------------------------------------------------------------------------------------------------ cases


def case_baseline_device(work: Path) -> dict[str, Any]:
    client, auth = _device(work)
    return {"answer": _upload(client, auth, "ok.jpg", hostile.small_image(".jpg", 640, 480))}


def case_baseline_device_model(work: Path) -> dict[str, Any]:
    client, auth = _device(work, with_model=True)
    data = hostile.small_image(".jpg", 640, 480)
    return {"answer": _answer(client.post("/api/v1/predict", data=data, headers=auth))}


def case_baseline_trainer(work: Path) -> dict[str, Any]:
    zipped = _zip({"empty/a.jpg": hostile.small_image(".jpg"), "full/b.jpg": hostile.small_image(".jpg", seed=1)})
    return {"answer": _trainer_upload(zipped, work, "folders")}


def case_tiff_upload(work: Path) -> dict[str, Any]:
    client, auth = _device(work)
    data = _tiff_bomb()
    return {"input": f"{len(data) // 1024} KB deflate TIFF 30000x30000", "answer": _upload(client, auth, "b.tif", data)}


def case_tiff_predict(work: Path) -> dict[str, Any]:
    client, auth = _device(work, with_model=True)
    data = _tiff_bomb()
    answer = _answer(client.post("/api/v1/predict", data=data, headers=auth))
    return {"input": f"{len(data) // 1024} KB deflate TIFF 30000x30000", "answer": answer}


def case_tiff_import(work: Path) -> dict[str, Any]:
    client, auth = _device(work)
    data = _tiff_zip()
    return {"input": f"{len(data) // 1024} KB zip of 3 such TIFFs", "answer": _import(client, auth, "t.zip", data)}


def case_tiff_trainer(work: Path) -> dict[str, Any]:
    data = _tiff_zip()
    return {"input": f"{len(data) // 1024} KB zip of 3 such TIFFs", "answer": _trainer_upload(data, work, "folders")}


def case_yaml_bomb_trainer(work: Path) -> dict[str, Any]:
    data = hostile.yolo_zip_with(hostile.yaml_alias_bomb(depth=8, width=10))
    return {"input": f"{len(data) // 1024} KB YOLO zip, aliases 8 deep", "answer": _trainer_upload(data, work, "yolo")}


def case_yaml_bomb_device(work: Path) -> dict[str, Any]:
    client, auth = _device(work)
    data = hostile.yolo_zip_with(hostile.yaml_alias_bomb(depth=8, width=10))
    return {"input": f"{len(data) // 1024} KB YOLO zip, aliases 8 deep", "answer": _import(client, auth, "y.zip", data)}


def case_half_jpeg_upload(work: Path) -> dict[str, Any]:
    client, auth = _device(work)
    return {
        "input": "half a JPEG + FFD9",
        "answer": _upload(client, auth, "half.jpg", hostile.half_jpeg_with_end_marker()),
    }


def case_coco_list_ids(work: Path) -> dict[str, Any]:
    client, auth = _device(work)
    doc = {"images": [{"id": [1], "file_name": "a.jpg"}], "annotations": [], "categories": [{"id": 1, "name": "g"}]}
    data = _zip({"annotations.json": json.dumps(doc).encode(), "a.jpg": hostile.small_image(".jpg")})
    return {"input": "COCO with a list-valued id", "answer": _import(client, auth, "c.zip", data, "coco")}


def case_unsigned_bundle(work: Path) -> dict[str, Any]:
    from edge.errors import BundleError
    from edge.model_repository import ModelRepository

    gib = float(os.environ.get("HOSTILE_BUNDLE_GIB", "1"))
    archive, key = _bundle_bomb(work, gib)
    models = work / "models"
    repo = ModelRepository(models, [str(key)])
    peak_disk = 0
    watching = True

    def watch() -> None:  # the most bytes ever under models/ while the install runs
        nonlocal peak_disk
        while watching:
            used = sum(p.stat().st_size for p in models.rglob("*") if p.is_file()) if models.exists() else 0
            peak_disk = max(peak_disk, used)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        repo.install(archive)
        answer = "installed"
    except BundleError as err:
        answer = f"BundleError {err}"
    seconds = time.perf_counter() - started
    watching = False
    watcher.join()
    return {
        "input": f"{archive.stat().st_size // 1024} KB unsigned tar.gz, 2 unlisted members of {gib:g} GiB",
        "answer": answer,
        "peak_disk_mb": round(peak_disk / (1 << 20), 1),
        "seconds": round(seconds, 2),
    }


CASES: dict[str, Callable[[Path], dict[str, Any]]] = {
    name.removeprefix("case_").replace("_", "-"): fn for name, fn in globals().items() if name.startswith("case_")
}


def run_case(name: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="shelfwatch-hostile-"))
    try:
        result = CASES[name](work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["peak_rss_mb"] = round(_peak_mb(), 1)
    print(json.dumps({"case": name, **result}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=sorted(CASES), help="run one case in this process and print its JSON")
    args = parser.parse_args()
    if args.case:
        run_case(args.case)
        return
    worst = 0.0
    print(f"{'case':<22} {'peak RSS MB':>11}  answer")
    for name in CASES:
        done = subprocess.run(
            [sys.executable, __file__, "--case", name], capture_output=True, text=True, cwd=ROOT, check=False
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            print(f"{name:<22} {'failed':>11}  rc={done.returncode} {done.stderr.strip()[-300:]}")
            continue
        result = json.loads(lines[-1])
        extra = "".join(f" [{k}={result[k]}]" for k in ("peak_disk_mb", "seconds") if k in result)
        print(f"{name:<22} {result['peak_rss_mb']:>11.1f}  {result['answer']}{extra}")
        if "input" in result:
            print(f"{'':<22} {'':>11}  ({result['input']})")
        if not name.startswith("baseline"):
            worst = max(worst, result["peak_rss_mb"])
    print(f"worst hostile case: {worst:.1f} MB peak RSS (target <= {LIMIT_MB} MB)")


if __name__ == "__main__":
    main()
