"""A tiny detector learns to find a dark block on generated photos, and its ONNX export gives the same boxes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edge.datasets.model import Box, Sample
from edge.runtime.preprocess import preprocess
from trainer.detection import (
    DetectorConfig,
    build_detector,
    detection_metrics,
    onnx_infer,
    predict_detections,
    torch_infer,
    train_detector,
)
from trainer.detection.predict import read_image
from trainer.detection.views import ViewCache
from trainer.errors import TrainingCancelled, TrainingError
from trainer.export import export_onnx

LABELS = ["gap"]
TINY = DetectorConfig(input_size=128, views=4, epochs=12, batch=8, head_width=32, lr=5e-3, warmup_steps=5)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # On a CPU shared with other test processes, two spinning torch threads are slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _photos(root: Path, count: int, seed: int) -> list[Sample]:
    """Light noisy photos with one dark block of random size at a random place."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(count):
        h, w = 96, 128
        image = rng.integers(150, 230, (h, w, 3)).astype(np.uint8)
        bw, bh = int(rng.integers(30, 60)), int(rng.integers(25, 50))
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        image[y : y + bh, x : x + bw] = rng.integers(10, 50, (bh, bw, 3))
        path = root / f"photo{i:02d}.png"
        cv2.imwrite(str(path), image)
        samples.append(Sample(path, path.name, boxes=[Box("gap", x / w, y / h, (x + bw) / w, (y + bh) / h)]))
    return samples


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, _one_thread: None) -> tuple[torch.nn.Module, dict, list[Sample]]:
    root = tmp_path_factory.mktemp("photos")
    train = _photos(root / "train", 10, seed=1)
    test = _photos(root / "test", 10, seed=2)
    calls: list[tuple[float, int, int, float, str]] = []
    model, info = train_detector(
        train, test[:3], LABELS, "squeezenet1_1", None, TINY, progress=lambda *a: calls.append(a)
    )
    info["progress_calls"] = calls
    return model, info, test


@pytest.mark.slow
def test_tiny_detector_learns_to_find_the_block(trained: tuple[torch.nn.Module, dict, list[Sample]]) -> None:
    model, info, test = trained
    assert info["loss_history"][-1] < info["loss_history"][0] * 0.7
    predictions = predict_detections(torch_infer(model), [s.path for s in test], TINY.input_spec(), LABELS)
    metrics = detection_metrics(predictions, [s.boxes for s in test], LABELS)
    # chance (a box of typical size at a random place) scores far below this
    assert metrics["map50"] > 0.5, metrics
    calls = info["progress_calls"]
    assert calls[-1][0] == 1.0 and calls[-1][1] == TINY.epochs and calls[-1][4] == "train"
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert "val" in info and 0.0 < info["score_threshold"] <= 1.0


def _worst_overlap(detections: list) -> float:
    """The largest IoU between two same-label detections of one photo."""
    from edge.runtime.postprocess import iou_matrix

    worst = 0.0
    for label in {d.label for d in detections}:
        boxes = np.array([d.bbox for d in detections if d.label == label], dtype=np.float32)
        if len(boxes) > 1:
            ious = iou_matrix(boxes, boxes)
            np.fill_diagonal(ious, 0.0)
            worst = max(worst, float(ious.max()))
    return worst


def test_the_decode_suppresses_overlaps_above_the_configured_nms_iou(
    trained: tuple[torch.nn.Module, dict, list[Sample]],
) -> None:
    from trainer.detection.train import NMS_IOU

    model, info, test = trained
    assert DetectorConfig().nms_iou == NMS_IOU and info["nms_iou"] == TINY.nms_iou  # the report says what it used
    images, spec = [s.path for s in test], TINY.input_spec()
    strict = predict_detections(torch_infer(model), images, spec, LABELS, nms_iou=0.3)
    loose = predict_detections(torch_infer(model), images, spec, LABELS, nms_iou=0.9)
    assert max(_worst_overlap(d) for d in strict) <= 0.3 + 1e-6
    # the same raw outputs keep overlapping pairs at a looser IoU, so the threshold is what removed them
    assert max(_worst_overlap(d) for d in loose) > 0.3
    assert sum(map(len, strict)) < sum(map(len, loose))


def test_onnx_export_gives_the_same_boxes(trained: tuple[torch.nn.Module, dict, list[Sample]], tmp_path: Path) -> None:
    model, _, test = trained
    onnx_path = export_onnx(model, tmp_path / "model.onnx", TINY.input_size, ["boxes", "scores"])
    images = [s.path for s in test[:5]]
    spec = TINY.input_spec()
    reference = predict_detections(torch_infer(model), images, spec, LABELS)
    exported = predict_detections(onnx_infer(onnx_path), images, spec, LABELS, batch_size=3)  # batch is dynamic
    assert sum(len(d) for d in reference) > 0
    for ref, got in zip(reference, exported, strict=True):
        assert len(ref) == len(got)
        for a, b in zip(ref, got, strict=True):
            assert a.label == b.label
            assert np.allclose(a.bbox, b.bbox, atol=1e-4) and abs(a.score - b.score) < 1e-4


def test_graph_outputs_follow_the_bundle_contract() -> None:
    model = build_detector("squeezenet1_1", None, 3, DetectorConfig(input_size=96, head_width=16))
    model.eval()
    with torch.no_grad():
        boxes, scores = model(torch.randn(2, 3, 96, 96))
    k = sum(lv.height * lv.width for lv in model.levels)
    assert boxes.shape == (2, k, 4) and scores.shape == (2, k, 3)
    assert torch.all((scores >= 0) & (scores <= 1))
    assert torch.all(boxes[..., 2] > boxes[..., 0]) and torch.all(boxes[..., 3] > boxes[..., 1])
    # by default the trunk is frozen except its last module (SqueezeNet's last Fire), the head trains
    trainable = [i for i, m in enumerate(model.features) if any(p.requires_grad for p in m.parameters())]
    assert trainable == [12]
    assert all(p.requires_grad for p in model.cls_out.parameters())


def test_fine_tuning_the_last_blocks_trains_them(tmp_path: Path) -> None:
    train = _photos(tmp_path, 3, seed=3)
    cfg = DetectorConfig(input_size=96, views=2, epochs=1, batch=4, head_width=16, fine_tune_blocks=2)
    model, info = train_detector(train, [], LABELS, "squeezenet1_1", None, cfg)
    trainable = [i for i, m in enumerate(model.features) if any(p.requires_grad for p in m.parameters())]
    assert trainable == [11, 12] and info["frozen_trunk_modules"] == 11


def test_deep_fine_tuning_keeps_batchnorm_statistics_and_scales_the_trunk_rate(tmp_path: Path) -> None:
    train = _photos(tmp_path, 3, seed=4)
    base = DetectorConfig(input_size=96, views=2, epochs=2, batch=4, head_width=16, fine_tune_blocks=8, frozen_bn=1)
    torch.manual_seed(base.seed)  # what train_detector does before it builds its detector
    fresh = build_detector("efficientnet_lite0", None, 1, replace(base, backbone="efficientnet_lite0"))
    assert fresh.cut <= fresh.taps.index16  # the stride-16 stage trains: the channels-last path
    start = {k: v.clone() for k, v in fresh.features.state_dict().items()}

    still, _ = train_detector(train, [], LABELS, "efficientnet_lite0", None, replace(base, trunk_lr_scale=0.0))
    for key, value in still.features.state_dict().items():
        assert torch.equal(value, start[key]), key  # rate 0: no step, and BatchNorm kept its statistics
    head = next(still.cls_tower.parameters())
    assert not torch.equal(head, next(fresh.cls_tower.parameters()))  # the head trained at the full rate

    moved, _ = train_detector(train, [], LABELS, "efficientnet_lite0", None, base)
    state = moved.features.state_dict()
    trained = [k for k in state if k.startswith(f"{moved.cut}.") and not torch.equal(state[k], start[k])]
    assert trained and all("running" not in k for k in trained)  # weights moved, statistics did not
    assert all(p.is_contiguous() for p in moved.parameters())  # back in the layout the ONNX export expects
    frozen_keys = [k for k in state if int(k.split(".")[0]) < moved.cut]
    assert all(torch.equal(state[k], start[k]) for k in frozen_keys)


def test_views_per_image_shrink_when_the_cache_would_grow_too_large(tmp_path: Path) -> None:
    train = _photos(tmp_path, 4, seed=6)
    cfg = DetectorConfig(input_size=96, views=5, epochs=1, head_width=16, max_cached_views=10)
    _, info = train_detector(train, [], LABELS, "squeezenet1_1", None, cfg)
    assert info["views_per_image"] == 2 and info["views"] == 8


def test_cancel_stops_training_and_bad_input_is_refused(tmp_path: Path) -> None:
    train = _photos(tmp_path, 3, seed=4)
    cfg = DetectorConfig(input_size=96, views=2, epochs=50, head_width=16)
    with pytest.raises(TrainingCancelled):
        train_detector(train, [], LABELS, "squeezenet1_1", None, cfg, should_cancel=lambda: True)
    with pytest.raises(TrainingError, match="no training image has a box"):
        train_detector([Sample(train[0].path, "x.png")], [], LABELS, "squeezenet1_1", None, cfg)
    with pytest.raises(TrainingError, match="'shelf' is not among the labels"):
        bad = Sample(train[0].path, "x.png", boxes=[Box("shelf", 0.1, 0.1, 0.5, 0.5)])
        train_detector([bad], [], LABELS, "squeezenet1_1", None, cfg)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(TrainingError, match=r"broken\.png"):
        broken = Sample(tmp_path / "broken.png", "broken.png", boxes=[Box("gap", 0.1, 0.1, 0.5, 0.5)])
        train_detector([broken], [], LABELS, "squeezenet1_1", None, cfg)


def test_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    train = _photos(tmp_path, 3, seed=5)
    cfg = DetectorConfig(input_size=96, views=3, epochs=2, batch=4, head_width=16, seed=7)
    first, info_a = train_detector(train, [], LABELS, "squeezenet1_1", None, cfg)
    second, info_b = train_detector(train, [], LABELS, "squeezenet1_1", None, cfg)
    assert info_a["loss_history"] == info_b["loss_history"]
    assert torch.equal(first.cls_out.weight, second.cls_out.weight)
    other, _ = train_detector(train, [], LABELS, "squeezenet1_1", None, replace(cfg, seed=8))
    assert not torch.equal(first.cls_out.weight, other.cls_out.weight)
    # The same photos in another folder (a job's temporary copy) train the same model.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    copies = [replace(s, path=moved / s.path.name) for s in train]
    for s, c in zip(train, copies, strict=True):
        c.path.write_bytes(s.path.read_bytes())
    third, info_c = train_detector(copies, [], LABELS, "squeezenet1_1", None, cfg)
    assert info_c["loss_history"] == info_a["loss_history"]
    assert torch.equal(first.cls_out.weight, third.cls_out.weight)


@pytest.mark.parametrize("backbone", ["squeezenet1_1", "mobilenet_v3_small", "efficientnet_lite0"])
@pytest.mark.parametrize("fine_tune_blocks", [0, 1, 3])
def test_cached_features_resume_to_the_same_outputs(backbone: str, fine_tune_blocks: int) -> None:
    cfg = DetectorConfig(input_size=128, head_width=16, fine_tune_blocks=fine_tune_blocks)
    model = build_detector(backbone, None, 2, cfg)
    model.eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        cached, tap16 = model.frozen_features(x)
        resumed = model.decode(model.raw_from_cache(cached, tap16))
        full = model(x)
    assert torch.allclose(resumed[0], full[0], atol=1e-5) and torch.allclose(resumed[1], full[1], atol=1e-5)
    assert model.cut == model.trunk_end - fine_tune_blocks


def test_lite0_detector_uses_its_own_normalisation() -> None:
    """The manifest input of an EfficientNet-Lite0 detector carries Lite's mean/std (0.498/0.502), not ImageNet's."""
    cfg = DetectorConfig(input_size=96, head_width=16, backbone="squeezenet1_1")
    assert cfg.input_spec().mean == [0.485, 0.456, 0.406]  # SqueezeNet: ImageNet's
    cfg.backbone = "efficientnet_lite0"
    spec = cfg.input_spec()
    assert spec.mean == [0.498] * 3 and spec.std == [0.502] * 3 and spec.width == 96


def test_the_step_cap_shortens_the_schedule_and_explicit_epochs_lift_it(tmp_path: Path) -> None:
    train = _photos(tmp_path, 4, seed=10)
    cfg = DetectorConfig(input_size=96, views=3, epochs=5, batch=4, head_width=16, max_steps=7)
    _, info = train_detector(train, [], LABELS, "squeezenet1_1", None, cfg)
    # 12 views in batches of 4: 3 steps per epoch, so 7 steps end in the third epoch
    assert info["steps"] == 7 and info["epochs"] == 3 and len(info["loss_history"]) == 3
    _, info = train_detector(train, [], LABELS, "squeezenet1_1", None, replace(cfg, max_steps=None))
    assert info["steps"] == 15 and info["epochs"] == 5


def test_one_view_cache_serves_every_fit_of_a_run(tmp_path: Path) -> None:
    """Fits sharing a cache compute each photo's views once; a photo's views do not depend on which fit asked
    first; the cache predicts what the whole model predicts on the photo; another input size is refused."""
    photos = _photos(tmp_path, 4, seed=9)
    cfg = DetectorConfig(input_size=96, views=3, epochs=1, batch=4, head_width=16)
    cache = ViewCache(ViewCache.key_for("squeezenet1_1", None, cfg), LABELS, views=3)
    train_detector(photos[:2], [], LABELS, "squeezenet1_1", None, cfg, cache=cache)
    model, _ = train_detector(photos[1:], [], LABELS, "squeezenet1_1", None, cfg, cache=cache)
    assert len(cache.features) == 4 * 3  # the photo both fits trained on was cached once

    reverse = ViewCache(ViewCache.key_for("squeezenet1_1", None, cfg), LABELS, views=3)
    train_detector(photos[::-1], [], LABELS, "squeezenet1_1", None, cfg, cache=reverse)
    for photo in photos:
        a = torch.stack([cache.features[r] for r in cache.rows([photo], 3)]).float()
        b = torch.stack([reverse.features[r] for r in reverse.rows([photo], 3)]).float()
        assert torch.allclose(a, b, atol=1e-3)
    a_targets = [cache.targets[r].labels for r in cache.rows(photos, 3)]
    b_targets = [reverse.targets[r].labels for r in reverse.rows(photos, 3)]
    assert all(torch.equal(x, y) for x, y in zip(a_targets, b_targets, strict=True))

    model.eval()
    feats, tap16 = cache.batch([cache.photos[str(p.path)].rows[0] for p in photos])
    tensor, _ = preprocess([read_image(p.path) for p in photos], cfg.input_spec())
    with torch.no_grad():
        from_cache = model.decode(model.raw_from_cache(feats, tap16))
        whole = model(torch.from_numpy(tensor))
    assert torch.allclose(from_cache[0], whole[0], atol=2e-3) and torch.allclose(from_cache[1], whole[1], atol=2e-3)
    assert len(cache.predict(model, photos)) == len(photos)

    with pytest.raises(TrainingError, match="another backbone, input size"):
        train_detector(photos, [], LABELS, "squeezenet1_1", None, replace(cfg, input_size=128), cache=cache)


@pytest.mark.parametrize("backbone", ["squeezenet1_1", "efficientnet_lite0"])
def test_the_top_down_path_feeds_the_coarse_level_into_the_fine_one(backbone: str, tmp_path: Path) -> None:
    """With `top_down` the stride-16 cells' outputs depend on the stride-32 map (without it they do not), the
    cached-feature path still equals the whole model, and the ONNX export gives the same boxes and scores."""
    outputs = {}
    for top_down in (0, 1):
        cfg = DetectorConfig(input_size=128, head_width=16, top_down=top_down)
        model = build_detector(backbone, None, 1, cfg)
        model.eval()
        x = torch.randn(1, 3, 128, 128)
        with torch.no_grad():
            c16, c32 = model._run_trunk(x)
            p16, _ = model._pyramid_from_taps(c16, c32)
            # The fine level again with another coarse map (SqueezeNet has none: its coarse level comes from p16).
            q16 = p16 if c32 is None else model._pyramid_from_taps(c16, c32 + 1.0)[0]
            cached, tap16 = model.frozen_features(x)
            resumed = model.decode(model.raw_from_cache(cached, tap16))
            full = model(x)
        assert torch.allclose(resumed[1], full[1], atol=1e-5)
        outputs[top_down] = (p16, q16, c32 is None)
        path = export_onnx(model, tmp_path / f"{backbone}-{top_down}.onnx", 128, ["boxes", "scores"])
        import onnxruntime as ort

        onnx_boxes, onnx_scores = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"input": x.numpy()}
        )
        assert np.allclose(onnx_boxes, full[0].numpy(), atol=1e-4)
        assert np.allclose(onnx_scores, full[1].numpy(), atol=1e-5)
    p16, q16, no32 = outputs[0]
    assert no32 or torch.equal(p16, q16)  # no top-down: the fine level never sees the coarse map
    p16, q16, no32 = outputs[1]
    assert no32 or not torch.allclose(p16, q16)


def _mirror_cells(model: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
    """Reorder a [N, K, ...] tensor over the detector's cells as the horizontally mirrored input's cells."""
    parts, start = [], 0
    for lv in model.levels:
        n = lv.height * lv.width
        grid = t[:, start : start + n].reshape(t.shape[0], lv.height, lv.width, *t.shape[2:])
        parts.append(torch.flip(grid, [2]).reshape(t.shape[0], n, *t.shape[2:]))
        start += n
    return torch.cat(parts, 1)


@pytest.mark.parametrize("backbone", ["squeezenet1_1", "efficientnet_lite0"])
def test_the_test_time_flip_is_mirror_symmetric_and_exports(backbone: str, tmp_path: Path) -> None:
    """With `tta_flip` the detector's answer for a mirrored photo is exactly its answer for the photo, mirrored (which
    a single pass is not); the cached-feature path gives the same as the whole model, and so does the ONNX export."""
    cfg = DetectorConfig(input_size=128, head_width=16, fine_tune_blocks=2)
    model = build_detector(backbone, None, 2, cfg)
    model.eval()
    x = torch.randn(2, 3, 128, 128)
    mirrored = torch.flip(x, [3])

    def mirrored_answer(out: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, scores = out[0], out[1]
        boxes = torch.stack([1 - boxes[..., 2], boxes[..., 1], 1 - boxes[..., 0], boxes[..., 3]], -1)
        return _mirror_cells(model, boxes), _mirror_cells(model, scores)

    with torch.no_grad():
        single, single_m = model(x), mirrored_answer(model(mirrored))
        model.tta_flip = True
        both, both_m = model(x), mirrored_answer(model(mirrored))
        cached, tap16 = model.frozen_features(x)
        flipped = model.frozen_features(mirrored)
        resumed = model.decode(model.raw_from_cache(cached, tap16, flipped))
    assert not torch.allclose(single[1], single_m[1], atol=1e-4)  # one pass is not symmetric ...
    assert torch.allclose(both[1], both_m[1], atol=1e-5)  # ... the flip-averaged one is
    assert torch.allclose(both[0], both_m[0], atol=1e-5)
    assert not torch.allclose(both[1], single[1], atol=1e-4)
    assert torch.allclose(resumed[0], both[0], atol=1e-5) and torch.allclose(resumed[1], both[1], atol=1e-5)
    import onnxruntime as ort

    path = export_onnx(model, tmp_path / f"{backbone}-tta.onnx", 128, ["boxes", "scores"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_boxes, onnx_scores = session.run(None, {"input": x.numpy()})
    assert np.allclose(onnx_boxes, both[0].numpy(), atol=1e-4) and np.allclose(onnx_scores, both[1].numpy(), atol=1e-5)


def test_the_weight_average_is_what_the_model_keeps(tmp_path: Path) -> None:
    """With `ema` the returned weights are the running average: at a decay near 1 they stay next to the first step's
    (so next to the initial weights), far closer than the last step's; a moderate decay lands in between."""
    train = _photos(tmp_path, 3, seed=5)
    cfg = DetectorConfig(input_size=96, views=3, epochs=3, batch=4, head_width=16, seed=7, lr=1e-2, warmup_steps=1)
    start = build_detector("squeezenet1_1", None, 1, replace(cfg, backbone="squeezenet1_1")).reg_out.weight.detach()
    moved = {}
    for ema in (0.0, 0.5, 0.999999):
        model, info = train_detector(train, [], LABELS, "squeezenet1_1", None, replace(cfg, ema=ema))
        moved[ema] = float((model.reg_out.weight - start).norm())
        assert info["ema"] == (ema or None)
    assert moved[0.999999] < 0.5 * moved[0.0], moved
    assert moved[0.999999] < moved[0.5] and moved[0.5] != moved[0.0], moved
    assert not model.tta_flip and info["test_time_flip"] is False
    flipping, info = train_detector(train, [], LABELS, "squeezenet1_1", None, replace(cfg, tta_flip=1))
    assert flipping.tta_flip and info["test_time_flip"] is True
