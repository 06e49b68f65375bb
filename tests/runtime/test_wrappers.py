"""Model wrappers on real tiny bundles: classification and detection decoding, letterbox, NMS, batching."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from edge.errors import EngineError, ImageError
from edge.runtime.wrappers import ClassificationModel, ClassificationResult, DetectionModel, crop, load_model
from tests.helpers.tiny_bundle import TinyBundle, solid_image

RED, GREEN, BLUE, BLACK, WHITE = (0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 0, 0), (255, 255, 255)


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def classifier(request: pytest.FixtureRequest, cls_bundle: TinyBundle) -> ClassificationModel:
    model = load_model(cls_bundle.bundle_dir, engine=request.param, threads=1)
    assert isinstance(model, ClassificationModel)
    assert model.engine.name == request.param
    return model


def test_classification_by_colour(classifier: ClassificationModel) -> None:
    red = classifier.predict(solid_image(RED))
    assert isinstance(red, ClassificationResult)
    assert red.label == "red" and red.score > 0.99
    assert set(red.label_scores) == {"red", "green", "blue"}
    assert sum(red.label_scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert classifier.predict(solid_image(GREEN)).label == "green"
    assert classifier.predict(solid_image(BLUE)).label == "blue"
    assert red.as_dict() == {"label": "red", "score": red.score, "label_scores": red.label_scores}


def test_batch_of_mixed_sizes_and_chunking(cls_bundle: TinyBundle) -> None:
    images = [solid_image(c, w, h) for c, w, h in [(RED, 10, 20), (GREEN, 300, 40), (BLUE, 7, 7)] * 3]
    expected = ["red", "green", "blue"] * 3
    model = load_model(cls_bundle.bundle_dir, engine="onnxruntime", max_batch=2)
    assert [r.label for r in model.predict_batch(images)] == expected
    assert model.timing.images == 9
    assert model.timing.infer_ms > 0 and model.timing.total_ms >= model.timing.infer_ms
    assert model.predict_batch([]) == []


def test_crops_are_classified_separately(classifier: ClassificationModel) -> None:
    image = solid_image(RED, 100, 50)
    image[:, 50:] = GREEN
    image[25:, :] = BLUE
    results = classifier.predict_crops(image, [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5), (0.0, 0.5, 1.0, 1.0)])
    assert [r.label for r in results] == ["red", "green", "blue"]


def test_grey_and_bgra_images_are_accepted(classifier: ClassificationModel) -> None:
    grey = np.full((20, 20), 128, np.uint8)
    assert classifier.predict(grey).score == pytest.approx(1 / 3, abs=1e-3)
    bgra = np.dstack([solid_image(GREEN, 20, 20), np.full((20, 20), 255, np.uint8)])
    assert classifier.predict(bgra).label == "green"


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10, 5), np.uint8), "H x W x 3"),
    ],
)
def test_bad_images_are_refused(classifier: ClassificationModel, image: np.ndarray, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        classifier.predict(image)


def test_crop_rectangles() -> None:
    image = np.arange(100 * 50 * 3, dtype=np.uint32).astype(np.uint8).reshape(50, 100, 3)
    assert crop(image, (0.0, 0.0, 0.5, 1.0)).shape == (50, 50, 3)
    assert crop(image, (-1.0, -1.0, 2.0, 2.0)).shape == (50, 100, 3)  # clipped to the image
    assert crop(image, (0.999, 0.999, 1.0, 1.0)).shape == (1, 1, 3)
    with pytest.raises(ImageError, match="empty"):
        crop(image, (0.5, 0.5, 0.5, 0.9))


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_detection_dark_half(det_bundle: TinyBundle, engine: str) -> None:
    model = load_model(det_bundle.bundle_dir, engine=engine, threads=1)  # type: ignore[arg-type]
    assert isinstance(model, DetectionModel)
    image = solid_image(WHITE, 64, 64)
    image[:, :32] = BLACK
    detections = model.predict(image)
    by_label = {d.label: d for d in detections}
    assert set(by_label) == {"empty", "stocked"}
    assert by_label["empty"].bbox == pytest.approx((0.05, 0.05, 0.45, 0.95), abs=1e-5)
    assert by_label["empty"].score > 0.95
    assert by_label["stocked"].bbox == pytest.approx((0.55, 0.05, 0.95, 0.95), abs=1e-5)
    assert model.describe()["engine"] == engine


def test_detection_letterbox_is_undone(det_top_bundle: TinyBundle) -> None:
    """A 2:1 image fills the top half of the square input; boxes come back normalised to the image itself."""
    model = load_model(det_top_bundle.bundle_dir, engine="onnxruntime")
    assert isinstance(model, DetectionModel)
    image = solid_image(WHITE, 200, 100)
    image[:, :100] = BLACK
    detections = model.predict(image)
    empty = [d for d in detections if d.label == "empty"]
    stocked = [d for d in detections if d.label == "stocked"]
    assert len(empty) == 1 and len(stocked) == 1
    assert empty[0].bbox == pytest.approx((0.0, 0.0, 0.5, 1.0), abs=1e-5)
    assert stocked[0].bbox == pytest.approx((0.5, 0.0, 1.0, 1.0), abs=1e-5)


def test_detection_nms_and_threshold(det_overlap_bundle: TinyBundle) -> None:
    model = load_model(det_overlap_bundle.bundle_dir, engine="openvino", threads=1)
    assert isinstance(model, DetectionModel)
    dark = solid_image(BLACK, 80, 60)
    detections = model.predict(dark)
    # the two overlapping dark boxes merge into one; the separate box stays; bright scores are 0 < threshold
    assert [d.label for d in detections] == ["empty", "empty"]
    assert sorted(round(d.bbox[0], 2) for d in detections) == [0.1, 0.6]
    # a threshold of 0 also reports the zero-scored 'stocked' boxes (after their own NMS)
    low = model.predict(dark, score_threshold=0.0)
    assert sorted(d.label for d in low) == ["empty", "empty", "stocked", "stocked"]
    grey = solid_image((128, 128, 128), 80, 60)
    # darkness 0.498 is below the manifest threshold of 0.5, brightness 0.502 above it
    assert [d.label for d in model.predict(grey)] == ["stocked", "stocked"]


def test_engines_agree_on_detections(det_bundle: TinyBundle) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8) for i in range(4)]
    for image in images:
        image[:, : image.shape[1] // 2] //= 4  # left side darker
    a = load_model(det_bundle.bundle_dir, engine="onnxruntime").predict_batch(images, score_threshold=0.0)
    b = load_model(det_bundle.bundle_dir, engine="openvino").predict_batch(images, score_threshold=0.0)
    assert len(a) == len(b) == 4
    for da, db in zip(a, b, strict=True):
        assert [d.label for d in da] == [d.label for d in db]
        for x, y in zip(da, db, strict=True):
            assert x.score == pytest.approx(y.score, abs=1e-4)
            assert x.bbox == pytest.approx(y.bbox, abs=1e-5)


def test_manifest_tensor_names_must_exist(cls_bundle: TinyBundle) -> None:
    from edge.bundle import read_manifest
    from edge.runtime.engines import create_engine

    manifest = read_manifest(cls_bundle.bundle_dir)
    engine = create_engine(cls_bundle.bundle_dir, manifest, "onnxruntime")
    wrong = manifest.model_copy(update={"outputs": manifest.outputs.model_copy(update={"logits": "probs"})})
    with pytest.raises(EngineError, match="output tensor"):
        ClassificationModel(cls_bundle.bundle_dir, wrong, engine)


def _bundle_with_input_dims(tmp_path: Path, dims: list[int | str], manifest_size: int) -> Path:
    """A classification bundle whose ONNX input dims are set by hand (a trainer mistake the device must catch)."""
    import onnx

    from edge.bundle import ONNX_FILE, inspect_bundle, write_bundle
    from tests.helpers.tiny_bundle import classification_graph, ensure_keys, make_classification_bundle

    base = make_classification_bundle(tmp_path / "base", openvino=False, size=manifest_size)
    model = classification_graph(["red", "green"], manifest_size)
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, dims, strict=True):
        if isinstance(value, int):
            dim.dim_value = value
        else:
            dim.dim_param = value
    onnx_path = tmp_path / "model.onnx"
    onnx.save_model(model, str(onnx_path))
    private, _ = ensure_keys(tmp_path / "base" / "keys")
    return write_bundle(tmp_path / "custom", inspect_bundle(base.bundle_dir), {ONNX_FILE: onnx_path}, private)


def test_fixed_batch_model_is_fed_in_fixed_chunks(tmp_path: Path) -> None:
    bundle = _bundle_with_input_dims(tmp_path, [2, 3, 32, 32], 32)
    model = load_model(bundle, engine="onnxruntime")
    assert isinstance(model, ClassificationModel) and model.max_batch == 2
    images = [solid_image(RED), solid_image(GREEN), solid_image(RED)]  # 3 = one full chunk + one padded
    assert [r.label for r in model.predict_batch(images)] == ["red", "green", "red"]


def test_model_input_size_must_match_manifest(tmp_path: Path) -> None:
    bundle = _bundle_with_input_dims(tmp_path, ["N", 3, 16, 16], 32)
    with pytest.raises(EngineError, match=r"model input is \[None, 3, 16, 16\], the manifest says \[N, 3, 32, 32\]"):
        load_model(bundle, engine="onnxruntime")


@pytest.mark.parametrize("color", ["RGB", "BGR"])
def test_to_tensor_is_bit_identical_to_the_whole_stack_formula(color: str) -> None:
    """The in-place, channel-by-channel tensor equals `(x * scale - mean) / std` on the stack, bit for bit."""
    from edge.bundle import InputSpec
    from edge.runtime.preprocess import to_tensor

    spec = InputSpec(width=40, height=24, color=color, scale=1 / 255, mean=[0.485, 0.456, 0.406],
                     std=[0.229, 0.224, 0.225])  # fmt: skip
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(3)]
    want = np.stack(images).astype(np.float32)
    if color == "RGB":
        want = want[..., ::-1]
    want *= np.float32(spec.scale)
    want = (want - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    want = np.ascontiguousarray(want.transpose(0, 3, 1, 2))
    got = to_tensor(images, spec)
    assert got.dtype == np.float32 and got.shape == (3, 3, 24, 40) and got.flags.c_contiguous
    assert np.array_equal(got, want)
    with pytest.raises(ValueError, match="not 40x24"):
        to_tensor([images[0], images[1][:10]], spec)


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_preprocess_into_kept_buffers_is_bit_identical(resize: str) -> None:
    """preprocess() into a thread's kept arrays (what the model wrappers do) gives the fresh-array tensor and
    placements bit for bit, call after call, whatever sizes and row counts come (a smaller call after a larger
    one, a letterbox's padding after a wider image), and each thread gets its own arrays."""
    from edge.bundle import InputSpec
    from edge.runtime.preprocess import PreprocessBuffers, preprocess

    spec = InputSpec(width=48, height=32, color="RGB", scale=1 / 255, mean=[0.485, 0.456, 0.406],
                     std=[0.229, 0.224, 0.225], resize=resize)  # fmt: skip
    rng = np.random.default_rng(11)
    buffers = PreprocessBuffers()
    calls = [[(30, 90), (64, 40)], [(20, 20), (33, 47), (100, 12), (48, 32)], [(5, 200)], [(90, 30), (32, 48)]]
    for sizes in calls:
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
        images[0] = images[0][:, ::1]  # and a view with a row stride of its own
        want, want_boxes = preprocess(images, spec)
        got, got_boxes = preprocess(images, spec, buffers)
        assert got.shape == want.shape and got.dtype == np.float32 and got.flags.c_contiguous
        assert np.array_equal(got, want) and got_boxes == want_boxes
    view = rng.integers(0, 256, (60, 200, 3), dtype=np.uint8)[:, 50:130]  # a zone crop: a view into a frame
    assert np.array_equal(preprocess([view], spec, buffers)[0], preprocess([np.ascontiguousarray(view)], spec)[0])
    mine = preprocess([view], spec, buffers)[0]
    other: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: other.append(preprocess([view], spec, buffers)[0]))
    worker.start()
    worker.join()
    assert not np.shares_memory(mine, other[0])
    assert preprocess([view], spec, buffers)[0].__array_interface__["data"] == mine.__array_interface__["data"]
