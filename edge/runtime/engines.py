"""Inference engines: run tensors through a model file, nothing more (model wrappers give them meaning).

An engine has one required method, `infer(inputs) -> outputs` (name -> float32 array), and describes itself with
`name`, `precision`, `input_names` and `output_names`. Both also expose `input_shapes` (name -> dims, None where
dynamic), an optional capability the model wrappers use to check a model against its manifest.

Engines are registered, one entry per kind pairing a config model (`kind: Literal[...]` plus the settings only
that engine has) with the bundle file it runs, the precisions it can compute in and the function that opens it:
ENGINE_KINDS feeds both `model.engine` in edge.yaml (a discriminated union; a plain `onnxruntime` still works)
and `create_engine` (a bundle) / `open_engine` (one model file). Three are registered: ONNX Runtime
(`model.onnx`), OpenVINO (`openvino/model.xml`) and OpenVINO INT8 (`openvino/int8/model.xml`, which `auto` prefers
when the bundle has it). A new engine is one more config model and opener (docs/RUNTIME.md).

Threading: an engine serves one caller at a time. `infer` holds a per-engine lock, so concurrent callers are
safe but serialise; a pipeline that wants parallel inference creates one engine per worker.

Lanes: besides `infer` on its `threads` threads, an engine with two or more threads offers `lanes` (= its threads, at
most MAX_LANES) concurrent one-thread calls, `infer_lane`. ONNX Runtime: on a second session of the same model
opened when first used (no lock: ONNX Runtime runs concurrent calls of one session). OpenVINO: on a second compiled
model of `lanes` streams of one thread each, one infer request per stream, compiled when first used (a caller
waits for a free request); OpenVINO INT8, the 384 px detector alone: 58-75 calls/s on two threads against 112-122
on two one-thread streams (its two-thread call barely beats one thread and keeps both cores busy). On
a small CPU two one-thread calls side by side do more than one two-thread call: the 320 px Lite0 detector on the
two-core VM, 1 frame a call, 57.8-62.4 calls/s on two threads against 78.7-80.0 for two one-thread lanes
(docs/BENCHMARKS.md, issue 15): a two-thread call waits at every operator for its slower half, which the
camera's decoding also slows. The batching service (edge.runtime.batching) uses the lanes when several callers'
requests queue and `infer` for a lone caller (one two-thread call is the shorter wait). The second session
costs the model's weights once more (e.g. ~15 MB for that detector); both share the arena.

Memory (the device's allocator sends every block of 128 KiB or more to a fresh mmap, edge.cameras.memory, so memory
an engine does not keep faults in again on every call; what it keeps it keeps for good):

- ONNX Runtime: every ONNX Runtime engine of the process shares ONE CPU arena whose first region is `arena_mb`
  (default ORT_ARENA_MB); after every call the arena is shrunk, which returns every region but the first. So a
  call whose activations fit in the first region allocates nothing (no page faults), a larger one (a big merged
  batch) runs as without an arena and gives its memory back: the arena never holds more than `arena_mb`. Without
  an arena every call paid its page faults (SqueezeNet 224, 4 crops: ~1.7x the time); the default arena kept the
  largest batch's peak for good (6.4 MB a row for SqueezeNet 224, 205 MB for 32 rows). `arena_mb: 0` runs that
  engine without an arena.
- OpenVINO keeps the buffers of the largest input it has run (~7 MB a row for SqueezeNet 224), so a dynamic-batch
  model runs at most `max_rows` rows per request (default OV_MAX_ROWS): a larger batch runs in slices, outputs
  concatenated. docs/BENCHMARKS.md, issue 15.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, TypeVar, Union, runtime_checkable

import numpy as np
from pydantic import Discriminator, Field, Tag

from edge.bundle import ONNX_FILE, OPENVINO_XML, Manifest
from edge.errors import EngineError
from edge.strict import StrictModel

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "bf16"]

# ONNX Runtime's shared CPU arena: MiB of its first region, the part it keeps (module docstring). SqueezeNet 224
# needs 6.4 MB a row, so 96 MiB holds a 15-row call (merged zone crops of 3 cameras); the Lite0 384 px detector
# ~70 MB a frame, so one frame. 8 cameras x 4 zones paced: 64 / 96 / 128 MiB kept 284 / 285 / 361 MB RSS at the
# same CPU (docs/BENCHMARKS.md, issue 15); 0 = no arena.
ORT_ARENA_MB = 96
# Most concurrent one-thread calls (lanes) an engine offers (module docstring).
MAX_LANES = 4
# OpenVINO: rows per inference request of a dynamic-batch model (module docstring).
OV_MAX_ROWS = 8
# ONNX Runtime run option: shrink the CPU arena at the end of the run (frees every region but the first).
_ORT_SHRINK = ("memory.enable_memory_arena_shrinkage", "cpu:0")
_ort_arena_lock = threading.Lock()
_ort_arena: dict[str, int] = {}  # {"mb": the shared arena's first region} once registered

# OpenVINO's element type names <-> ours.
_OV_HINT = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
_FROM_OV = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}


@runtime_checkable
class Engine(Protocol):
    """Runs a model: named float32 inputs in, named outputs out."""

    name: str
    precision: str  # what the engine actually computes in: fp32, fp16 or bf16
    input_names: list[str]
    output_names: list[str]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; every output by name."""
        ...


class OnnxRuntimeEngine:
    """ONNX Runtime on the CPU (always fp32)."""

    name = "onnxruntime"

    def __init__(self, model_path: str | Path, threads: int | None = None, arena_mb: int | None = None) -> None:
        import onnxruntime as ort

        self.model_path = Path(model_path)
        wanted_arena = ORT_ARENA_MB if arena_mb is None else arena_mb
        self._run_options: Any = None
        registered_now = False
        if wanted_arena > 0:
            # The process's shared arena (first region kept, the rest shrunk after every call: module docstring).
            self.arena_mb, registered_now = _shared_ort_arena(ort, wanted_arena)
            self._run_options = ort.RunOptions()
            self._run_options.add_run_config_entry(*_ORT_SHRINK)
        else:
            # No arena: every call allocates (and page-faults) its activations anew, keeps nothing.
            self.arena_mb = 0
        self._session = self._open_session(threads or 0)  # 0 = ONNX Runtime's default (physical cores)
        self.threads = threads
        # Concurrent one-thread calls on a second session, opened on first use (module docstring, "Lanes").
        self.lanes = max(1, min(MAX_LANES, threads or _cores()))
        self._narrow: Any = None
        self._narrow_lock = threading.Lock()
        self.precision = "fp32"
        self.requested_precision = "fp32"
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.input_shapes = {
            i.name: tuple(d if isinstance(d, int) and d > 0 else None for d in i.shape)
            for i in self._session.get_inputs()
        }
        self.output_names = [o.name for o in self._session.get_outputs()]
        self._lock = threading.Lock()
        if registered_now:
            self._prime_arena()

    def _open_session(self, threads: int) -> Any:
        """An InferenceSession of the model with `threads` intra-op threads (0 = ONNX Runtime's default) on this
        engine's arena (the shared one, or none)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads must not spin: on a small device they would steal the CPU from video decoding.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = self.arena_mb > 0
        if self.arena_mb > 0:
            options.add_session_config_entry("session.use_env_allocators", "1")
        try:
            return ort.InferenceSession(str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped exceptions for bad or missing models
            raise EngineError(f"ONNX Runtime cannot load {self.model_path.name}: {err}") from err

    def _prime_arena(self) -> None:
        """One call of a single row on the new shared arena, so that its first region (the one it keeps) is
        `arena_mb` and not the first request of a large first call (the first region is the larger of the two)."""
        inputs: dict[str, np.ndarray] = {}
        for spec in self._session.get_inputs():
            dims = list(spec.shape)
            if spec.type != "tensor(float)" or not dims or any(not (isinstance(d, int) and d > 0) for d in dims[1:]):
                return  # only models whose inputs are float tensors with a fixed shape but the batch
            inputs[spec.name] = np.zeros([1, *dims[1:]], np.float32)
        try:
            self._session.run(None, inputs, self._run_options)
        except Exception as err:  # a model that cannot run a zero row: its first real call sets the region
            log.debug("priming the ONNX Runtime arena with %s failed: %s", self.model_path.name, err)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch through the session."""
        with self._lock:
            try:
                values = self._session.run(self.output_names, inputs, self._run_options)
            except Exception as err:
                raise EngineError(f"ONNX Runtime inference failed: {err}") from err
        return {name: np.asarray(v) for name, v in zip(self.output_names, values, strict=True)}

    def infer_lane(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch on ONE thread (the caller's), side by side with other `infer_lane` calls and with `infer`
        (no lock; module docstring, "Lanes"); the same outputs as `infer` within float tolerance."""
        with self._narrow_lock:
            if self._narrow is None:
                self._narrow = self._open_session(1)
            session = self._narrow
        try:
            values = session.run(self.output_names, inputs, self._run_options)
        except Exception as err:
            raise EngineError(f"ONNX Runtime inference failed: {err}") from err
        return {name: np.asarray(v) for name, v in zip(self.output_names, values, strict=True)}

    def __repr__(self) -> str:
        return (
            f"OnnxRuntimeEngine({self.model_path}, threads={self.threads}, arena_mb={self.arena_mb}, "
            f"lanes={self.lanes})"
        )


def _cores() -> int:
    """CPUs this process may run on (what ONNX Runtime's default thread count follows, near enough)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _shared_ort_arena(ort: Any, mb: int) -> tuple[int, bool]:
    """The process's shared ONNX Runtime CPU arena, registered on first use with a first region of `mb` MiB
    (power-of-two growth: the strategy whose first region a shrink keeps). ONNX Runtime registers one per process,
    so the first engine's size holds for all; returns (its size, whether this call registered it)."""
    with _ort_arena_lock:
        if "mb" in _ort_arena:
            if _ort_arena["mb"] != mb:
                log.warning("ONNX Runtime's shared arena is %d MiB (the first engine's), not %d", _ort_arena["mb"], mb)
            return _ort_arena["mb"], False
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        config = ort.OrtArenaCfg(
            {
                "max_mem": 0,  # no limit: a call larger than the first region extends it (and gives it back)
                "arena_extend_strategy": 0,  # kNextPowerOfTwo: its first region is never shrunk
                "initial_chunk_size_bytes": mb * 1024 * 1024,
                "max_dead_bytes_per_chunk": -1,
            }
        )
        ort.create_and_register_allocator(info, config)
        _ort_arena["mb"] = mb
        return mb, True


class OpenVinoEngine:
    """OpenVINO on the CPU with an explicit inference precision, read back from the compiled model."""

    name = "openvino"

    def __init__(
        self,
        xml_path: str | Path,
        threads: int | None = None,
        precision: Precision = "fp32",
        max_rows: int | None = None,
    ) -> None:
        if precision not in _OV_HINT:
            raise EngineError(f"unknown OpenVINO precision {precision!r}; use one of {sorted(_OV_HINT)}")
        import openvino as ov

        self.model_path = Path(xml_path)
        config: dict[str, Any] = {
            # Explicit, always: OpenVINO silently computes in bf16 on CPUs that have it, which changes numbers.
            "INFERENCE_PRECISION_HINT": _OV_HINT[precision],
            "PERFORMANCE_HINT": "LATENCY",
            # Pinned inference threads wait for cores that video decoding and the web server also use; unpinned
            # measured 2-5x faster p50 on the shared 2-core box (docs/BUNDLE.md, "Engine notes").
            "ENABLE_CPU_PINNING": False,
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._core = ov.Core()
            self._compiled = self._core.compile_model(self._core.read_model(str(self.model_path)), "CPU", config)
        except Exception as err:  # OpenVINO raises RuntimeError for everything, from bad XML to a missing plugin
            raise EngineError(f"OpenVINO cannot load {self.model_path.name}: {err}") from err
        self._config = config
        actual = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        type_name = actual.get_type_name() if hasattr(actual, "get_type_name") else str(actual)
        self.threads = threads
        self.requested_precision: str = precision
        self.precision = _FROM_OV.get(type_name, type_name)
        if self.precision != precision:
            log.warning(
                "OpenVINO computes %s in %s, not the requested %s (what this CPU offers)",
                self.model_path.name,
                self.precision,
                precision,
            )
        self.input_names = [i.get_any_name() for i in self._compiled.inputs]
        self.input_shapes = {
            i.get_any_name(): tuple(d.get_length() if d.is_static else None for d in i.get_partial_shape())
            for i in self._compiled.inputs
        }
        self.output_names = [o.get_any_name() for o in self._compiled.outputs]
        # Rows per request of a dynamic-batch model (OpenVINO keeps the largest input's buffers: module docstring).
        dynamic = all(shape and shape[0] is None for shape in self.input_shapes.values())
        self.max_rows: int | None = (max_rows or OV_MAX_ROWS) if dynamic else None
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()
        # Concurrent one-thread calls on a second compiled model of `lanes` streams, one thread each, compiled on
        # first use (module docstring, "Lanes").
        self.lanes = max(1, min(MAX_LANES, threads or _cores()))
        self._lane_requests: queue.SimpleQueue[Any] | None = None
        self._lane_compiled: Any = None
        self._lane_lock = threading.Lock()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch on the engine's infer request (in slices of at most `max_rows` rows); outputs are copies
        the caller may keep."""
        with self._lock:
            return self._sliced(self._request, inputs)

    def infer_lane(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch on one stream of one thread, side by side with other `infer_lane` calls (at most `lanes`
        at once; one more waits for a free stream) and with `infer`; the same outputs as `infer` within float
        tolerance (module docstring, "Lanes")."""
        with self._lane_lock:
            if self._lane_requests is None:
                self._lane_requests = self._open_lanes()
            requests = self._lane_requests
        request = requests.get()
        try:
            # Each lane's request keeps the buffers of its largest slice: `max_rows` shared among the lanes holds
            # what they keep to about what one request of `max_rows` rows keeps.
            return self._sliced(request, inputs, max(1, self.max_rows // self.lanes) if self.max_rows else None)
        finally:
            requests.put(request)

    def _open_lanes(self) -> queue.SimpleQueue[Any]:
        """The lanes' compiled model (`lanes` streams of one thread: NUM_STREAMS and INFERENCE_NUM_THREADS both
        `lanes`) and one infer request per stream."""
        config = {k: v for k, v in self._config.items() if k != "PERFORMANCE_HINT"}
        config.update({"NUM_STREAMS": self.lanes, "INFERENCE_NUM_THREADS": self.lanes})
        try:
            # read again rather than kept: an engine that never runs a lane does not hold the model's graph twice
            compiled = self._core.compile_model(self._core.read_model(str(self.model_path)), "CPU", config)
        except Exception as err:
            raise EngineError(f"OpenVINO cannot compile {self.model_path.name} for lanes: {err}") from err
        requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.lanes):
            requests.put(compiled.create_infer_request())
        self._lane_compiled = compiled
        return requests

    def _sliced(self, request: Any, inputs: dict[str, np.ndarray], step: int | None = None) -> dict[str, np.ndarray]:
        """One batch on `request`, in slices of at most `step` rows (default `max_rows`; the caller holds the
        request)."""
        rows = {a.shape[0] if np.ndim(a) else 1 for a in inputs.values()}
        total = rows.pop() if len(rows) == 1 else 0
        step = step or self.max_rows
        if not step or total <= step:
            return self._infer(request, inputs)
        parts = [self._infer(request, {k: v[i : i + step] for k, v in inputs.items()}) for i in range(0, total, step)]
        # An output with a row per input row is concatenated; any other (no batch axis) is the first slice's.
        return {
            name: np.concatenate([p[name] for p in parts])
            if parts[0][name].ndim and sum(p[name].shape[0] for p in parts) == total
            else parts[0][name]
            for name in self.output_names
        }

    def _infer(self, request: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            # share_inputs: the request reads the caller's arrays in place (no copy of a 1.7 MB frame tensor);
            # share_outputs: the results are views of the request's buffers, copied once below (OpenVINO's own
            # copy plus ours was two).
            result = request.infer(inputs, share_inputs=True, share_outputs=True)
        except Exception as err:
            raise EngineError(f"OpenVINO inference failed: {err}") from err
        # The request reuses its output buffers on the next call: copy before it goes back to other callers.
        # By position: the lanes' compiled model has the same outputs in the same order, not the same port objects.
        return {
            name: np.array(value, copy=True) for name, value in zip(self.output_names, result.to_tuple(), strict=True)
        }

    def __repr__(self) -> str:
        return (
            f"OpenVinoEngine({self.model_path}, threads={self.threads}, precision={self.precision}, "
            f"max_rows={self.max_rows}, lanes={self.lanes})"
        )


# --- the registry: one config model, model file and opener per engine kind ----------------------------------


class EngineSettings(StrictModel):
    """What every engine's config has: its `kind` and an optional thread count (default: `model.threads`)."""

    kind: str
    threads: int | None = Field(None, ge=1, le=64, description="Inference threads; default: model.threads.")


E = TypeVar("E", bound=EngineSettings)
EngineOpener = Callable[[Path, Any, int | None, Precision], "Engine"]


@dataclass(frozen=True)
class EngineKindInfo:
    """A registered engine: its config model, the bundle file it runs, what it computes in, and its opener."""

    config: type[EngineSettings]
    model_file: str
    file_type: str  # what the file is, for messages: "ONNX", "OpenVINO"
    precisions: tuple[str, ...]
    open: EngineOpener


ENGINE_KINDS: dict[str, EngineKindInfo] = {}


def engine_kind(
    config: type[E], model_file: str, file_type: str, precisions: tuple[str, ...]
) -> Callable[[Callable[[Path, E, int | None, Precision], Engine]], Any]:
    """Register `config` (its `kind` literal names it) with the decorated opener(path, settings, threads, precision)."""
    kind = config.model_fields["kind"].default
    if not isinstance(kind, str) or kind in ENGINE_KINDS or kind == "auto":
        raise ValueError(f"engine kind {kind!r} needs a unique `kind` literal with a default (not auto)")

    def register(opener: Callable[[Path, E, int | None, Precision], Engine]) -> Any:
        ENGINE_KINDS[kind] = EngineKindInfo(config, model_file, file_type, precisions, opener)
        return opener

    return register


class OnnxRuntimeSettings(EngineSettings):
    """ONNX Runtime on the CPU (always fp32)."""

    kind: Literal["onnxruntime"] = "onnxruntime"
    arena_mb: int | None = Field(
        None,
        ge=0,
        le=1024,
        description="MiB of the CPU arena kept between calls, shared by the process's ONNX Runtime engines (the "
        "first engine's size holds); 0 = no arena; default 96.",
    )


@engine_kind(OnnxRuntimeSettings, ONNX_FILE, "ONNX", ("fp32",))
def _open_onnxruntime(path: Path, cfg: OnnxRuntimeSettings, threads: int | None, precision: Precision) -> Engine:
    return OnnxRuntimeEngine(path, cfg.threads or threads, cfg.arena_mb)


class OpenVinoSettings(EngineSettings):
    """OpenVINO on the CPU with an explicit inference precision."""

    kind: Literal["openvino"] = "openvino"
    precision: Precision | None = Field(None, description="Inference precision; default: model.precision.")
    max_rows: int | None = Field(
        None, ge=1, le=256, description="Rows per inference request (a larger batch runs in slices); default 8."
    )


@engine_kind(OpenVinoSettings, OPENVINO_XML, "OpenVINO", ("fp32", "fp16", "bf16"))
def _open_openvino(path: Path, cfg: OpenVinoSettings, threads: int | None, precision: Precision) -> Engine:
    return OpenVinoEngine(path, cfg.threads or threads, cfg.precision or precision, cfg.max_rows)


OPENVINO_INT8_XML = "openvino/int8/model.xml"


class OpenVinoInt8Settings(EngineSettings):
    """OpenVINO on the bundle's INT8 IR (NNCF post-training quantisation; the trainer ships it only when its
    accuracy or mAP on the evaluation images is within 1 point of FP32). Quantised layers compute in INT8, the
    others in FP32."""

    kind: Literal["openvino_int8"] = "openvino_int8"
    max_rows: int | None = Field(
        None, ge=1, le=256, description="Rows per inference request (a larger batch runs in slices); default 8."
    )


@engine_kind(OpenVinoInt8Settings, OPENVINO_INT8_XML, "OpenVINO INT8", ("int8",))
def _open_openvino_int8(path: Path, cfg: OpenVinoInt8Settings, threads: int | None, precision: Precision) -> Engine:
    engine = OpenVinoEngine(path, cfg.threads or threads, "fp32", cfg.max_rows)
    engine.name = "openvino_int8"
    engine.precision = "int8"
    engine.requested_precision = "int8"
    return engine


EngineChoice = str | EngineSettings  # "auto", a registered kind's name, or its config


def _engine_tag(value: object) -> object:
    if isinstance(value, dict):
        return value.get("kind")
    return value if isinstance(value, str) else getattr(value, "kind", None)


if TYPE_CHECKING:
    EngineConfig = EngineChoice
else:
    # `model.engine`: "auto" or a registered engine's config, told apart by `kind`.
    EngineConfig = Annotated[
        Union[
            (Annotated[Literal["auto"], Tag("auto")], *(Annotated[k.config, Tag(n)] for n, k in ENGINE_KINDS.items()))
        ],
        Discriminator(_engine_tag),
    ]


def engine_settings(choice: EngineChoice) -> EngineSettings | None:
    """The config for an engine choice (a plain kind name gets its defaults); None for auto."""
    if isinstance(choice, EngineSettings):
        return choice
    if choice == "auto":
        return None
    info = ENGINE_KINDS.get(choice)
    if info is None:
        raise EngineError(f"unknown engine {choice!r}; use auto, {' or '.join(ENGINE_KINDS)}")
    return info.config(kind=choice)


def open_engine(
    choice: EngineChoice, model_path: str | Path, threads: int | None = None, precision: Precision = "fp32"
) -> Engine:
    """The engine of one kind for one model file (not a whole bundle: e.g. an exported model the trainer checks)."""
    cfg = engine_settings(choice)
    if cfg is None:
        raise EngineError("open_engine needs an engine kind, not auto (auto chooses among a bundle's files)")
    return ENGINE_KINDS[cfg.kind].open(Path(model_path), cfg, threads, precision)


def create_engine(
    bundle_dir: str | Path,
    manifest: Manifest,
    kind: EngineChoice = "auto",
    threads: int | None = None,
    precision: Precision = "fp32",
) -> Engine:
    """The engine for a bundle: `auto` tries the engines that compute `precision` first, in registry order (ONNX
    Runtime first for fp32, OpenVINO first for another precision), then the others."""
    bundle_dir = Path(bundle_dir)
    cfg = engine_settings(kind)
    if cfg is not None:
        info = ENGINE_KINDS[cfg.kind]
        if info.model_file not in manifest.files:
            raise EngineError(f"bundle {manifest.version} has no {info.file_type} model ({info.model_file})")
        return info.open(bundle_dir / info.model_file, cfg, threads, precision)
    # ONNX Runtime measured faster than OpenVINO fp32 for every bundle we measured (docs/BUNDLE.md, "Engine
    # notes"); a precision other than fp32 only OpenVINO computes, so asking for one puts OpenVINO first. An INT8
    # IR in the bundle comes first of all for fp32: the trainer ships it only when it is as accurate (within 1
    # point) and it is the fastest (docs/BENCHMARKS.md, "INT8").
    order = sorted(
        ENGINE_KINDS,
        key=lambda name: (
            not (precision == "fp32" and "int8" in ENGINE_KINDS[name].precisions),
            precision not in ENGINE_KINDS[name].precisions,
        ),
    )
    reasons: list[str] = []
    for candidate in order:
        info = ENGINE_KINDS[candidate]
        if info.model_file not in manifest.files:
            reasons.append(f"the bundle has no {info.model_file}")
            continue
        try:
            engine = info.open(bundle_dir / info.model_file, info.config(kind=candidate), threads, precision)
        except (EngineError, ImportError) as err:
            reasons.append(str(err))
            continue
        why = f" (not {order[0]}: {'; '.join(reasons)})" if reasons else ""
        log.info("engine auto: %s (%s) for %s%s", engine.name, engine.precision, manifest.version, why)
        return engine
    raise EngineError(f"no engine can run bundle {manifest.version}: {'; '.join(reasons)}")
