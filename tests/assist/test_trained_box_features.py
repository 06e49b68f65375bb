"""A detection bundle trained by the real trainer exports its trunk's feature map (manifest outputs.feature_map) and a
suggested box's similarity to the drawn boxes comes from it (real training from the shared SqueezeNet weights, real
onnxruntime, the real web app)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.assist import appearance, room
from edge.assist import suggest as suggest_module
from edge.assist.suggest import box_features, embedding_output
from edge.datasets.model import Box, Dataset, LabelInfo, Sample
from edge.runtime.wrappers import DetectionModel, load_model
from tests.assist.conftest import Bundles, open_rig
from trainer.pipeline import TrainSpec, run_training

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[3] / "shared"
WEIGHTS = SHARED / "weights" / "squeezenet1_1_torchvision" / "squeezenet1_1_imagenet_norm_fp32.npz"
BLUE, RED = (200, 60, 20), (20, 40, 210)  # BGR


def shelf(seed: int) -> tuple[np.ndarray, list[Box]]:
    """A grey 96 x 64 photo with a blue patch on the left half and a red one on the right, and their boxes."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(140, 12, (64, 96, 3)), 0, 255).astype(np.uint8)
    bx, by = int(rng.integers(2, 14)), int(rng.integers(2, 26))
    rx, ry = int(rng.integers(52, 62)), int(rng.integers(2, 26))
    cv2.rectangle(image, (bx, by), (bx + 32, by + 34), BLUE, -1)
    cv2.rectangle(image, (rx, ry), (rx + 32, ry + 34), RED, -1)
    boxes = [
        Box("blue", bx / 96, by / 64, (bx + 32) / 96, (by + 34) / 64),
        Box("red", rx / 96, ry / 64, (rx + 32) / 96, (ry + 34) / 64),
    ]
    return image, boxes


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not WEIGHTS.is_file():
        pytest.skip(f"the shared SqueezeNet weights are absent ({WEIGHTS})")
    root = tmp_path_factory.mktemp("det-features")
    ds = Dataset(labels=[LabelInfo("blue"), LabelInfo("red")])
    (root / "photos").mkdir()
    for i in range(10):
        image, boxes = shelf(i)
        path = root / "photos" / f"shelf{i:02d}.jpg"
        cv2.imwrite(str(path), image)
        ds.samples.append(Sample(path, path.name, boxes=boxes))
    spec = TrainSpec(
        data=root / "photos", fmt=None, task="detection", out=root / "bundle", backbone="squeezenet1_1",
        weights=str(WEIGHTS), epochs=1, input_size=96, views=1, threads=2,
    )  # fmt: skip
    result = run_training(spec, dataset=ds)
    assert result.report["parity"]["passed"]
    return result.bundle_dir, root / "keys" / "bundle-signing.pub"


def test_the_detection_bundle_exports_its_feature_map_and_boxes_pool_it(trained: tuple[Path, Path]) -> None:
    bundle_dir, _ = trained
    model = load_model(bundle_dir, engine="onnxruntime", threads=1, batch_budget_ms=None)
    assert isinstance(model, DetectionModel)
    assert embedding_output(model, "feature_map") == "features"
    assert model.engine.output_names[:2] == ["boxes", "scores"]  # the detection contract's order is unchanged
    drawn = [shelf(20 + i) for i in range(3)]
    vectors = box_features(model, [im for im, _ in drawn], [[(b.x1, b.y1, b.x2, b.y2) for b in bs] for _, bs in drawn])
    blue = np.stack([v[0] for v in vectors])
    red = np.stack([v[1] for v in vectors])
    assert np.allclose(np.linalg.norm(blue, axis=1), 1.0, atol=1e-4)
    same = float(np.mean(blue[1:] @ blue[0]))
    other = float(np.mean(red @ blue[0]))
    assert same > other + 0.1, "a blue box's features are closer to the other blue boxes than to the red ones"


def test_a_suggested_box_is_similar_by_the_models_features(
    tmp_path: Path, trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle_dir, keys = trained
    with open_rig(tmp_path / "data", Bundles(keys, bundle_dir, bundle_dir, bundle_dir)) as rig:
        for name in ("blue", "red"):
            assert rig.admin.post("/api/v1/labels", json={"name": name}).status_code == 201
        rig.models.install(bundle_dir, activate=True, project=1)
        photos = [shelf(30 + i) for i in range(3)]
        files = [(io.BytesIO(cv2.imencode(".jpg", im)[1].tobytes()), f"s{i}.jpg") for i, (im, _) in enumerate(photos)]
        resp = rig.admin.post("/api/v1/images", data={"file": files}, content_type="multipart/form-data")
        assert resp.status_code == 201, resp.get_json()
        ids = [item["id"] for item in resp.get_json()["items"]]
        for image_id, (_, boxes) in zip(ids[:2], photos[:2], strict=True):  # a person drew two photos' patches
            rig.store.set_annotations(image_id, [], boxes)
        body = rig.admin.get(f"/api/v1/images/{ids[2]}/suggestions").get_json()
        assert body["boxes"], body
        assert all(b["similar_source"] == "model" and "embedding" not in b for b in body["boxes"])
        blue_box, red_box = photos[2][1]

        def inside(b: dict[str, float], box: Box) -> bool:
            cx, cy = (b["x1"] + b["x2"]) / 2, (b["y1"] + b["y2"]) / 2
            return box.x1 <= cx <= box.x2 and box.y1 <= cy <= box.y2

        on_blue = [b for b in body["boxes"] if inside(b, blue_box) and set(b["similar"]) == {"blue", "red"}]
        on_red = [b for b in body["boxes"] if inside(b, red_box) and set(b["similar"]) == {"blue", "red"}]
        assert on_blue and on_red, body["boxes"]
        # per box: more like the drawn boxes of the patch it sits on than like the other label's
        assert np.mean([b["similar"]["blue"] - b["similar"]["red"] for b in on_blue]) > 0.1
        assert np.mean([b["similar"]["red"] - b["similar"]["blue"] for b in on_red]) > 0.1
        record = room.get(rig.store, ids[2])
        assert record is not None and room.box_source(record) == record.version  # the model's, not the pixels'
        # After a restart no suggestion has run the model in the new process: the stored box vectors are still
        # compared with drawn boxes pooled by the same version's model (loaded on demand), not left without `similar`.
        monkeypatch.setattr(suggest_module, "_FEATURE_MODELS", {})
        monkeypatch.setattr(room, "BOX_EXAMPLES", appearance.ExampleCache())
        assert suggest_module.feature_model(record.version) is None
        again = rig.admin.get(f"/api/v1/images/{ids[2]}/suggestions").get_json()
        assert [b["similar"] for b in again["boxes"]] == [b["similar"] for b in body["boxes"]]
        assert suggest_module.feature_model(record.version) is not None
