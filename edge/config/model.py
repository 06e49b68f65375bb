"""The device's configuration tree (`edge.yaml`). Field names are a documented contract (docs/CONFIG.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from edge.cameras.sources import SourceConfig, SourceSettings, plain_source
from edge.config.secrets import Secret
from edge.errors import CameraError
from edge.runtime.engines import ENGINE_KINDS, EngineConfig, EngineSettings
from edge.skills.config import MAX_SKILLS_PER_CAMERA, SkillConfig, check_unique_skills
from edge.strict import StrictModel, first_repeat

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _slug(value: str, what: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-63 characters of lower-case letters, digits, '-' or '_' "
            "(it becomes part of MQTT topics and URLs)"
        )
    return value


class WebConfig(StrictModel):
    host: str = Field("0.0.0.0", description="Address the web studio and API listen on.")  # noqa: S104
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the web studio and API.")
    secret_key: Secret | None = Field(
        None,
        description="Key that signs session cookies; generated once and kept in data_dir when not given.",
    )
    max_upload_mb: float = Field(20.0, gt=0, description="Largest accepted upload (one image or archive), in MiB.")
    login_attempts_per_minute: int = Field(
        10, ge=1, description="Failed logins allowed per client address per minute before 429."
    )


class TlsConfig(StrictModel):
    ca_file: Path | None = Field(None, description="CA certificate that signed the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate, for brokers that require one.")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    insecure: bool = Field(False, description="Skip the broker host name check (testing only).")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(StrictModel):
    enabled: bool = Field(True, description="Publish states and events over MQTT.")
    host: str = Field("localhost", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    topic_prefix: str = Field("shelfwatch", description="First level of every topic this device publishes.")
    username: str | None = Field(None, description="Broker user name, if the broker requires one.")
    password: Secret | None = Field(None, description="Broker password: literal, ${ENV} or a systemd credential.")
    client_id: str | None = Field(None, description="MQTT client id; defaults to shelfwatch-<device_id>.")
    keepalive: int = Field(30, ge=5, le=3600, description="Seconds between keepalive pings.")
    tls: TlsConfig | None = Field(None, description="TLS settings; omit for a plain TCP connection.")
    discovery: bool = Field(True, description="Publish Home Assistant discovery messages.")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant discovery topic prefix.")

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not v or any(c in v for c in "#+") or v.startswith("/") or v.endswith("/"):
            raise ValueError("must be a non-empty topic level without '#', '+' or leading/trailing '/'")
        return v


# Every zone is a crop per evaluated frame and a retained MQTT topic: bounded, far past a real shelf camera.
MAX_ZONES_PER_CAMERA = 64
MAX_POLYGON_POINTS = 100


class ZoneConfig(StrictModel):
    id: str = Field(description="Zone id, unique within its camera (a slug used in topics).")
    name: str | None = Field(None, description="Human name shown on the page; defaults to the id.")
    polygon: list[tuple[float, float]] = Field(
        max_length=MAX_POLYGON_POINTS,
        description="Normalised [x, y] corners (0..1, origin top-left), at least 3 points.",
    )
    label: str | None = Field(
        None, description="Label that means 'low stock' in this zone; defaults to the model's low-stock label."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _slug(v, "zone id")

    @field_validator("polygon")
    @classmethod
    def _poly(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(v) < 3:
            raise ValueError("a zone polygon needs at least 3 points")
        for x, y in v:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point [{x}, {y}] is outside the normalised range 0..1")
        xs = [p[0] for p in v]
        ys = [p[1] for p in v]
        if max(xs) - min(xs) <= 0 or max(ys) - min(ys) <= 0:
            raise ValueError("a zone polygon must enclose an area")
        return v

    def bbox(self) -> tuple[float, float, float, float]:
        """Normalised bounding box x1, y1, x2, y2 of the polygon."""
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return min(xs), min(ys), max(xs), max(ys)


class CameraConfig(StrictModel):
    id: str = Field(description="Camera id (a slug used in topics and URLs).")
    name: str | None = Field(None, description="Human name shown on the page; defaults to the id.")
    source: SourceConfig = Field(
        description=(
            "Where frames come from: a V4L2 device path or index, an rtsp:// or http(s):// URL, a video file "
            "(looped), a folder of images (cycled in sorted order), or 'synthetic:' for the demo shelf; or a "
            "mapping with `kind:` (v4l2, stream, file, synthetic) and that kind's fields (docs/CAMERAS.md)."
        )
    )
    fps: float = Field(2.0, gt=0, le=60, description="How many frames per second are evaluated.")
    enabled: bool = Field(True, description="Start this camera.")
    zones: list[ZoneConfig] = Field(
        default_factory=list, max_length=MAX_ZONES_PER_CAMERA, description="Shelf regions evaluated separately."
    )
    reconnect_max_seconds: float = Field(
        30.0, gt=0, description="Upper bound of the exponential backoff between reconnect attempts."
    )
    skills: list[SkillConfig] | None = Field(
        None,
        max_length=MAX_SKILLS_PER_CAMERA,
        description="AI skills: graphs of blocks run on every frame (docs/SKILLS.md); omitted: today's zone rule.",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _slug(v, "camera id")

    @field_validator("source", mode="before", json_schema_input_type=str | int | SourceConfig)
    @classmethod
    def _plain_source(cls, v: object) -> object:
        """A plain string or number (`/dev/video0`, `rtsp://...`, a path, `synthetic:?...`) becomes its mapping."""
        if isinstance(v, str | int):
            try:
                return plain_source(v)
            except CameraError as err:
                raise ValueError(str(err)) from None
        return v

    @field_serializer("source")
    def _source_as_written(self, source: SourceSettings) -> object:
        """`config show` writes a source in its plain form when it has one."""
        plain = source.plain()
        return plain if plain is not None else source.model_dump(mode="json")

    @model_validator(mode="after")
    def _unique_zones(self) -> CameraConfig:
        if (twice := first_repeat(z.id for z in self.zones)) is not None:
            raise ValueError(f"zone id {twice!r} is used twice in camera {self.id!r}")
        check_unique_skills(self.skills or ())
        return self


class ModelConfig(StrictModel):
    bundle: Path | None = Field(None, description="Bundle directory or .tar.gz to install at start-up.")
    engine: EngineConfig = Field(
        "auto",
        description=(
            "Inference engine; auto takes ONNX Runtime (measured faster here), else OpenVINO; "
            "OpenVINO first for a non-fp32 precision. A name (onnxruntime, openvino) or a mapping with `kind:` "
            "and that engine's settings (docs/RUNTIME.md)."
        ),
    )
    threads: int | None = Field(None, ge=1, le=64, description="Inference threads; default: all cores.")
    precision: Literal["fp32", "fp16", "bf16"] = Field(
        "fp32", description="OpenVINO inference precision hint (bf16 changes numbers on CPUs that have it)."
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Ed25519 public keys allowed to sign bundles: PEM file paths or base64 raw keys.",
    )
    keep_versions: int = Field(5, ge=2, le=100, description="Installed model versions kept for rollback.")
    watchdog_seconds: float = Field(10.0, gt=0, description="An inference call longer than this is reported hung.")

    @field_validator("engine", mode="before", json_schema_input_type=str | EngineConfig)
    @classmethod
    def _engine_name(cls, v: object) -> object:
        """A plain engine name becomes its kind's mapping; an unknown name is refused with the known ones."""
        if isinstance(v, str) and v != "auto":
            if v not in ENGINE_KINDS:
                raise ValueError(f"unknown engine {v!r}; use auto, {', '.join(ENGINE_KINDS)}")
            return {"kind": v}
        return v

    @field_serializer("engine")
    def _engine_as_written(self, engine: str | EngineSettings) -> object:
        """`config show` writes an engine without settings of its own as its name."""
        if isinstance(engine, str) or engine.model_fields_set <= {"kind"}:
            return engine if isinstance(engine, str) else engine.kind
        return engine.model_dump(mode="json", exclude_unset=True) | {"kind": engine.kind}


class EventsConfig(StrictModel):
    on_threshold: float = Field(0.6, ge=0, le=1, description="Score at or above which a zone counts as low stock.")
    off_threshold: float = Field(0.4, ge=0, le=1, description="Score at or below which a zone counts as stocked.")
    min_frames: int = Field(3, ge=1, description="Consecutive evaluations needed to change a zone's state.")
    snapshot_retention: int = Field(500, ge=0, description="Event snapshots (JPEG) kept; oldest deleted first.")

    @model_validator(mode="after")
    def _order(self) -> EventsConfig:
        if self.off_threshold >= self.on_threshold:
            raise ValueError("off_threshold must be below on_threshold (hysteresis)")
        return self


class TrainerClientConfig(StrictModel):
    url: str | None = Field(None, description="Base URL of the trainer service, e.g. http://trainer:8700.")
    token: Secret | None = Field(None, description="Bearer token for the trainer: literal, ${ENV} or a credential.")
    timeout_seconds: float = Field(30.0, gt=0, description="HTTP timeout of one trainer request.")


class DatasetRulesConfig(StrictModel):
    min_images: int = Field(15, ge=1, description="Tagged images needed before training is allowed.")
    min_per_label_classification: int = Field(5, ge=1, description="Images needed per label (classification).")
    min_boxes_per_label_detection: int = Field(15, ge=1, description="Boxes needed per label (detection).")
    rare_label_ratio: float = Field(
        0.2, gt=0, lt=1, description="Warn when a label has fewer than this share of the largest label's count."
    )
    max_image_mb: float = Field(20.0, gt=0, description="Largest accepted image file, in MiB.")
    max_pixels: int = Field(50_000_000, gt=0, description="Largest accepted image, in pixels.")
    near_duplicate_distance: int = Field(
        4, ge=0, le=64, description="Perceptual-hash Hamming distance at or below which images are near-duplicates."
    )


class InboxConfig(StrictModel):
    """The device's inbox of frames worth review (edge.assist.inbox): which frames count as unsure or flipping, and
    how many are kept."""

    per_hour: int = Field(20, ge=0, description="Frames kept per camera in any hour (0: the inbox keeps none).")
    per_day: int = Field(100, ge=0, description="Frames kept per camera in any 24 hours.")
    min_interval_s: float = Field(30.0, ge=0, description="Seconds between two kept frames of one camera.")
    margin: float = Field(0.1, ge=0, le=1, description="A zone score within this of events.on_threshold: unsure.")
    flips: int = Field(3, ge=2, description="State changes of one zone within flip_window_s that count as flipping.")
    flip_window_s: float = Field(600.0, gt=0, description="The window, in seconds, in which flips are counted.")
    dedup_distance: int | None = Field(
        None,
        ge=0,
        le=64,
        description="A frame whose perceptual hash is within this Hamming distance of a project image is not kept "
        "(null: dataset.near_duplicate_distance).",
    )

    @model_validator(mode="after")
    def _day_holds_the_hour(self) -> InboxConfig:
        if self.per_day < self.per_hour:
            raise ValueError("inbox.per_day must be at least inbox.per_hour")
        return self


class EdgeConfig(StrictModel):
    """Everything the device agent needs; `shelfwatch config validate edge.yaml` checks a file against it."""

    device_id: str = Field("shelf-01", description="This device's id (a slug used in MQTT topics).")
    group: str | None = Field(
        None,
        description="Fleet group (a slug): the device follows the bundle announced on <prefix>/fleet/<group>/model.",
    )
    data_dir: Path = Field(Path("/var/lib/shelfwatch"), description="Where the dataset, models and outbox live.")
    web: WebConfig = Field(default_factory=WebConfig, description="Web studio and REST API.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT broker connection.")
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras this device reads.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model bundle and inference engine.")
    events: EventsConfig = Field(default_factory=EventsConfig, description="Zone state hysteresis and events.")
    trainer: TrainerClientConfig = Field(default_factory=TrainerClientConfig, description="Training service.")
    dataset: DatasetRulesConfig = Field(default_factory=DatasetRulesConfig, description="Dataset rules.")
    inbox: InboxConfig = Field(default_factory=InboxConfig, description="The inbox of frames worth review.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Logging verbosity.")

    @field_validator("device_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if v == "fleet":  # <prefix>/fleet/<group>/model are the fleet's announcements, not a device's subtree
            raise ValueError("device_id 'fleet' is reserved for the fleet's topics")
        return _slug(v, "device_id")

    @field_validator("group")
    @classmethod
    def _group(cls, v: str | None) -> str | None:
        return None if v is None else _slug(v, "group")

    @model_validator(mode="after")
    def _unique_cameras(self) -> EdgeConfig:
        if (twice := first_repeat(c.id for c in self.cameras)) is not None:
            raise ValueError(f"camera id {twice!r} is used twice")
        return self

    def camera(self, camera_id: str) -> CameraConfig | None:
        """The camera with this id, or None."""
        return next((c for c in self.cameras if c.id == camera_id), None)
