"""HTTP client of the trainer service's REST API (docs/TRAINER_API.md), standard library only.

The device hands its dataset over in one of two ways: `upload_store()` exports the store as COCO (the one format
that carries image-level tags, boxes and splits together), zips it into a temporary file and streams it to
`POST /v1/datasets`; or `pull_dataset()` asks the trainer to fetch it page by page from this device's
`GET /api/v1/images?page=&page_size=` with an API token. Then `create_job()`, `job()` polled by `wait()`,
`cancel()`, `download_bundle()` (streamed to a file) and `report()`.

Every failure is a `TrainerError` carrying the trainer's own message (`{"error": ...}`) and the HTTP status.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from edge.errors import TrainerError

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from edge.store import DatasetStore

log = logging.getLogger(__name__)

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
# How long a run keeps following its job through a trainer outage (restart, network cut), and the longest pause
# between two polls while it is down.
OUTAGE_SECONDS = 1800.0
MAX_POLL_BACKOFF = 30.0
UPLOAD_FORMAT = "coco"
CHUNK = 1024 * 1024
USER_AGENT = "shelfwatch-edge"


class TrainerHttpError(TrainerError):
    """The trainer answered with an HTTP error; `status` is its code and the message is the trainer's.

    The device answers a trainer's refusal (4xx) with 400 and a trainer's fault (5xx) with 502.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.http_status = 502 if status >= 500 else 400


class TrainerUnreachable(TrainerError):
    """The trainer service did not answer (down, refused, timed out): 503 on the device."""

    http_status = 503


class WaitStopped(TrainerError):
    """Waiting for a job was given up because this process is stopping (the job itself goes on)."""


class TrainerUnavailable(TrainerError):
    """No trainer service is configured on this device."""

    http_status = 503


class _ChainedReader:
    """Byte strings and one open file read back to back: a multipart body streamed without copying the file.

    http.client sends any object with `read(size)` in blocks, so this stays a plain reader.
    """

    def __init__(self, parts: Iterable[bytes | IO[bytes]]) -> None:
        self._parts = list(parts)

    def read(self, size: int = -1) -> bytes:
        """Up to size bytes (all of the current part when size < 0); b"" at the end."""
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                if size < 0 or size >= len(part):
                    self._parts.pop(0)
                    if part:
                        return part
                    continue
                self._parts[0] = part[size:]
                return part[:size]
            chunk = part.read(CHUNK if size < 0 else size)
            if chunk:
                return bytes(chunk)
            self._parts.pop(0)
        return b""


class TrainerClient:
    """Talks to one trainer service with a bearer token; every method raises TrainerError on failure."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise TrainerError(f"trainer URL must be http(s)://host[:port], got {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: EdgeConfig) -> TrainerClient:
        """The client for an EdgeConfig's `trainer` section; TrainerUnavailable when no URL is configured."""
        section = config.trainer
        if not section.url:
            raise TrainerUnavailable("no trainer service configured on this device (trainer.url in edge.yaml)")
        token = section.token.get_secret_value() if section.token is not None else None
        return cls(section.url, token, section.timeout_seconds)

    # ------------------------------------------------------------------------------------------------ plumbing

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; the open response (caller closes) or TrainerError with the trainer's message."""
        all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        req = urllib.request.Request(self.url + path, data=body, headers=all_headers, method=method)  # noqa: S310 - scheme checked in __init__
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)  # noqa: S310 - scheme checked in __init__
        except urllib.error.HTTPError as err:
            with err:
                message = _error_message(err.read(), err.code, err.reason)
            log.info("trainer %s %s -> %s: %s", method, path, err.code, message)
            raise TrainerHttpError(err.code, f"trainer: {message}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise TrainerUnreachable(f"trainer at {self.url} cannot be reached: {reason}") from err

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._request(method, path, **kwargs) as resp:
            raw = resp.read()
        try:
            return json.loads(raw) if raw else {}
        except ValueError as err:
            raise TrainerError(f"trainer answered {method} {path} with something that is not JSON") from err

    # ------------------------------------------------------------------------------------------------ datasets

    def upload_archive(self, archive: str | Path, fmt: str = UPLOAD_FORMAT) -> dict[str, Any]:
        """POST a dataset archive (.zip/.tar.gz) as multipart `file` with its `format`; the trainer's dataset record."""
        archive = Path(archive)
        boundary = "shelfwatch-" + secrets.token_hex(12)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="format"\r\n\r\n{fmt}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{archive.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = len(head) + archive.stat().st_size + len(tail)
        with archive.open("rb") as fh:
            reader = _ChainedReader([head, fh, tail])
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(size)}
            # Uploads of a whole dataset can take longer than one API call.
            path = f"/v1/datasets?format={_quote(fmt)}"
            record = self._json("POST", path, body=reader, headers=headers, timeout=max(self.timeout, 600))
        log.info("uploaded dataset archive %s (%d bytes) to the trainer: %s", archive.name, size, record.get("id"))
        return _require_id(record, "dataset")

    def upload_store(
        self, store: DatasetStore, *, only_tagged: bool = True, project: int | str | None = None
    ) -> dict[str, Any]:
        """Export a project of the store (None: the default) as COCO, zip and upload it; the trainer's record."""
        from edge.datasets.formats import write_dataset

        dataset = store.export_dataset(only_tagged=only_tagged, project=project)
        if not dataset.samples:
            raise TrainerError("the dataset has no tagged images to train on")
        work = Path(tempfile.mkdtemp(prefix="shelfwatch-upload-"))
        try:
            out = work / "dataset"
            write_dataset(dataset, out, UPLOAD_FORMAT)
            archive = work / "dataset.zip"
            # Images are already compressed: storing them saves CPU on a two-core device for nearly no size.
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
                for path in sorted(out.rglob("*")):
                    if path.is_file():
                        zf.write(path, path.relative_to(out).as_posix())
            return self.upload_archive(archive, UPLOAD_FORMAT)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def pull_dataset(
        self, device_url: str, device_token: str, page_size: int = 100, project: int | str | None = None
    ) -> dict[str, Any]:
        """Ask the trainer to pull a project's dataset page by page; device_url is this device's API base (.../api/v1).

        The project travels as the source's `project` (the trainer adds `?project=` to the image and label URLs).
        """
        source: dict[str, Any] = {"url": device_url.rstrip("/"), "token": device_token, "page_size": page_size}
        if project is not None:
            source["project"] = str(project)
        body = {"source": source}
        record = self._json("POST", "/v1/datasets", json_body=body, timeout=max(self.timeout, 600))
        return _require_id(record, "dataset")

    def backbones(self) -> dict[str, Any]:
        """{"default", "usable", "all"}: the backbones the trainer can train with its weights (GET /v1/backbones)."""
        return dict(self._json("GET", "/v1/backbones"))

    # ------------------------------------------------------------------------------------------------ jobs

    def create_job(self, dataset_id: str, task: str, **params: Any) -> dict[str, Any]:
        """Start a training job on an uploaded dataset (params: backbone, epochs, seed, ...); the job status."""
        body = {"dataset": dataset_id, "task": task, **{k: v for k, v in params.items() if v is not None}}
        return _require_id(self._json("POST", "/v1/jobs", json_body=body), "job")

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's status: state, progress, eta_seconds, metrics, error."""
        result: dict[str, Any] = self._json("GET", f"/v1/jobs/{_quote(job_id)}")
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the trainer to cancel a job; its status."""
        result: dict[str, Any] = self._json("POST", f"/v1/jobs/{_quote(job_id)}/cancel")
        return result

    def report(self, job_id: str) -> dict[str, Any]:
        """The evaluation report (report.json) of a finished job."""
        result: dict[str, Any] = self._json("GET", f"/v1/jobs/{_quote(job_id)}/report")
        return result

    def download_bundle(self, job_id: str, dest: str | Path) -> Path:
        """Stream the job's bundle (.tar.gz) to dest (written beside it, renamed when complete)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".bundle-", suffix=".part", dir=dest.parent)
        try:
            with (
                os.fdopen(fd, "wb") as out,
                self._request(
                    "GET",
                    f"/v1/jobs/{_quote(job_id)}/bundle",
                    headers={"Accept": "application/gzip, application/octet-stream"},
                    timeout=max(self.timeout, 600),
                ) as resp,
            ):
                expected = resp.headers.get("Content-Length")
                written = 0
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
            if expected is not None and expected.isdigit() and int(expected) != written:
                raise TrainerError(f"bundle download of job {job_id} was cut short ({written} of {expected} bytes)")
            os.replace(tmp_name, dest)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        log.info("downloaded the bundle of job %s (%d bytes) to %s", job_id, written, dest)
        return dest

    def wait(
        self,
        job_id: str,
        *,
        poll_seconds: float = 3.0,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        outage_seconds: float = OUTAGE_SECONDS,
        max_delay: float = MAX_POLL_BACKOFF,
    ) -> dict[str, Any]:
        """Poll until the job reaches succeeded/failed/cancelled.

        A trainer that cannot be reached or answers 5xx (restarting, overloaded) is retried with capped exponential
        backoff for up to `outage_seconds` of continuous failure: the job runs on the trainer and survives its
        restarts, so a short outage must not abandon the run. A 4xx answer (unknown job, bad token) is final.
        """
        failing_since: float | None = None
        delay = poll_seconds
        while True:
            try:
                status = self.job(job_id)
                failing_since, delay = None, poll_seconds
            except TrainerError as err:
                if isinstance(err, TrainerHttpError) and err.status < 500:
                    raise
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= outage_seconds:
                    raise
                delay = min(max(delay, poll_seconds) * 2, max_delay)
                log.warning("polling job %s failed (%s); retrying in %.0f s", job_id, err, delay)
                status = None
            if status is not None:
                if on_status is not None:
                    on_status(status)
                if status.get("state") in TERMINAL_STATES:
                    return status
            # Sleep in slices so that a stopping device does not wait out a whole poll interval.
            deadline = time.monotonic() + (poll_seconds if status is not None else delay)
            while True:
                if should_stop is not None and should_stop():
                    raise WaitStopped(f"stopped waiting for job {job_id}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(remaining, 0.2))


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _require_id(record: Any, what: str) -> dict[str, Any]:
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise TrainerError(f"the trainer's answer for the new {what} has no id")
    return record


def _error_message(raw: bytes, status: int, reason: str) -> str:
    """The trainer's {"error": ...} text, else a short form of whatever it sent."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])
    text = raw.decode("utf-8", "replace").strip()
    return text[:300] if text else f"HTTP {status} {reason}"
