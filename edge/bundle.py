"""The model bundle contract (trainer -> device), schema 1. See docs/BUNDLE.md.

A bundle is a directory (shipped as .tar.gz):

    manifest.json            what the model is and how to feed it (`Manifest` below)
    manifest.sig             ed25519 signature over manifest.json's exact bytes (raw 64 bytes, base64 text)
    model.onnx               one file, no external data, dynamic batch
    openvino/model.xml, openvino/model.bin      FP32 IR (openvino/fp16/, openvino/int8/ optional)
    report.json              evaluation (confusion matrix, per-label P/R/F1, PR curve, mAP for detection)

Tensor contract. Input: float32 `input` of shape [N, 3, H, W] (NCHW), colour order, scale, mean and std as
`input` says; pixel = ((value * scale) - mean) / std per channel after resizing.
Classification output: `outputs.logits` [N, C]; `outputs.activation` says whether softmax is still to be applied.
Detection output: `outputs.boxes` [N, K, 4] normalised x1, y1, x2, y2 of the (unpadded) image, and
`outputs.scores` [N, K, C] per-class probabilities (sigmoid already applied). Non-maximum suppression is NOT in
the graph: the device applies per-class NMS at `thresholds.nms_iou` after dropping scores below
`thresholds.score` (`outputs.nms == "device"`).

The device refuses a bundle whose signature does not verify against a trusted key or whose file hashes or sizes
differ from `files`, keeps its running model, and says why.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ONNX_FILE = "model.onnx"
OPENVINO_XML = "openvino/model.xml"
OPENVINO_BIN = "openvino/model.bin"
REPORT = "report.json"


class _Open(BaseModel):
    # Newer trainers may add fields; an older device ignores what it does not know (schema bumps on breaks).
    model_config = ConfigDict(extra="allow")


class InputSpec(_Open):
    width: int = Field(gt=0, description="Network input width in pixels.")
    height: int = Field(gt=0, description="Network input height in pixels.")
    layout: Literal["NCHW"] = "NCHW"
    color: Literal["RGB", "BGR"] = Field("RGB", description="Channel order the network expects.")
    scale: float = Field(1.0 / 255.0, description="Multiplier applied to 0..255 pixel values before mean/std.")
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])
    resize: Literal["stretch", "letterbox"] = Field(
        "stretch", description="stretch: resize to width x height; letterbox: keep aspect, pad bottom/right with 0."
    )
    tensor: str = Field("input", description="Name of the input tensor.")


class ClassificationOutputs(_Open):
    type: Literal["classification"] = "classification"
    logits: str = Field("logits", description="Output tensor [N, C].")
    activation: Literal["softmax", "none"] = Field(
        "softmax", description="softmax: the device applies softmax; none: the tensor already holds probabilities."
    )


class DetectionOutputs(_Open):
    type: Literal["detection"] = "detection"
    boxes: str = Field("boxes", description="Output tensor [N, K, 4]: normalised x1, y1, x2, y2.")
    scores: str = Field("scores", description="Output tensor [N, K, C]: per-class probabilities.")
    nms: Literal["device"] = Field("device", description="Where NMS runs: on the device, per class.")
    max_detections: int = Field(100, gt=0, description="Detections kept per image after NMS.")


class Thresholds(_Open):
    score: float = Field(0.5, ge=0, le=1, description="Minimum score to report a label or detection.")
    nms_iou: float = Field(0.5, ge=0, le=1, description="IoU above which overlapping detections are suppressed.")


class FileEntry(_Open):
    sha256: str = Field(min_length=64, max_length=64)
    size: int = Field(ge=0)


class DatasetInfo(_Open):
    sha256: str = Field(description="Hash over the training images and annotations.")
    counts: dict[str, int] = Field(default_factory=dict, description="Images (classification) or boxes per label.")


class BaseInfo(_Open):
    backbone: str
    weights: str = Field(description="Where the initial weights came from: a file, a URL, or 'random'.")
    weights_sha256: str | None = None


class Manifest(_Open):
    """manifest.json, schema 1."""

    schema_: int = Field(SCHEMA_VERSION, alias="schema")
    name: str
    version: str = Field(description="Unique per training run, e.g. 20261121T143000Z-3f2a.")
    created: str = Field(description="ISO 8601 UTC.")
    task: Literal["classification", "detection"]
    labels: list[str] = Field(min_length=1)
    alert_labels: list[str] = Field(
        default_factory=list,
        description="Labels that mean 'low stock' (a zone's score is the highest of these); default: all but NONE.",
    )
    input: InputSpec
    outputs: ClassificationOutputs | DetectionOutputs = Field(discriminator="type")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    metrics: dict[str, Any] = Field(default_factory=dict)
    dataset: DatasetInfo
    base: BaseInfo
    files: dict[str, FileEntry]

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.schema_ != SCHEMA_VERSION:
            raise ValueError(f"unsupported manifest schema {self.schema_} (this device reads {SCHEMA_VERSION})")
        if self.outputs.type != self.task:
            raise ValueError(f"outputs.type {self.outputs.type!r} does not match task {self.task!r}")
        unknown = [a for a in self.alert_labels if a not in self.labels]
        if unknown:
            raise ValueError(f"alert_labels {unknown} are not in labels")
        for rel in self.files:
            if rel.startswith("/") or ".." in rel.split("/"):
                raise ValueError(f"file path {rel!r} escapes the bundle")
        return self

    def effective_alert_labels(self) -> list[str]:
        """alert_labels, or every label except NONE-like ones when the trainer did not name any."""
        if self.alert_labels:
            return list(self.alert_labels)
        none_like = {"none", "other", "ok", "background", "stocked", "full"}
        return [lab for lab in self.labels if lab.lower() not in none_like] or list(self.labels)
