"""Few-shot object detection: an anchor-free head on a pretrained backbone, trained from a handful of photos.

Public API (used by trainer.pipeline):

    DetectorConfig                       input size, schedule, freeze policy, augmentation
    build_detector(backbone_name, weights, num_classes, cfg) -> nn.Module
    train_detector(train, val, labels, backbone_name, weights, cfg, progress, should_cancel) -> (model, info)
    detection_metrics(predictions, ground_truth, labels, ...) -> dict        (trainer.detection.metrics)
    compare_detections(a, b) -> dict                                          (trainer.detection.metrics)
    predict_detections(infer, images, spec, labels, ...) -> detections      (trainer.detection.predict)

The model's outputs follow the bundle's detection contract (edge/bundle.py); NMS runs on the device.
See docs/DETECTION.md.
"""

from __future__ import annotations

from trainer.detection.augment import AugmentConfig
from trainer.detection.metrics import compare_detections, detection_metrics
from trainer.detection.predict import onnx_infer, predict_detections, torch_infer
from trainer.detection.train import DetectorConfig, build_detector, train_detector

__all__ = [
    "AugmentConfig",
    "DetectorConfig",
    "build_detector",
    "compare_detections",
    "detection_metrics",
    "onnx_infer",
    "predict_detections",
    "torch_infer",
    "train_detector",
]
