"""Datasets for the training service: an uploaded archive, or a device's dataset pulled page by page.

Either way the result is a folder under data_dir/datasets/<id> that the formats reader reads and whose every image
decodes within the size limits, or nothing at all: a refused upload leaves no folder and no record. Errors name the
file that is wrong (DatasetError / ImageError, which the API answers with 400; 413 for size limits).
"""

from __future__ import annotations

import json
import logging
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import Field

from edge.datasets.model import Box, Dataset, LabelInfo, Sample
from edge.errors import DatasetError, ImageError
from edge.strict import StrictModel
from trainer.service.store import DatasetRecord, JobStore, new_id, now_iso

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DATASETS_DIR = "datasets"
UPLOADS_DIR = "uploads"
# Image archives barely compress; anything that inflates far past its own size is refused as a bomb.
INFLATION_FACTOR = 4
MAX_PIXELS = 50_000_000
PULLED_FORMAT = "coco"  # the one format that keeps both image tags and boxes
_CHUNK = 1 << 20


class ArchiveTooLarge(DatasetError):
    """The upload is over the configured archive size limit."""

    http_status = 413


@dataclass
class Limits:
    """Size limits for datasets, from the server config."""

    max_archive_bytes: int
    max_image_mb: float
    max_pixels: int = MAX_PIXELS
    # Device origins a pull may reach (server.pull_sources): anything else, loopback included, is refused.
    pull_sources: tuple[str, ...] = ()


class PullSource(StrictModel):
    """Where to pull a dataset from: a Shelfwatch device's API base URL (`.../api/v1`) and a bearer token."""

    url: str = Field(min_length=8, max_length=2000)
    token: str = Field(min_length=1, max_length=4096)
    page_size: int = Field(100, ge=1, le=500)
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    project: str | None = Field(None, min_length=1, max_length=64, description="The device's project (id or name).")


class PullRequest(StrictModel):
    """The JSON body of POST /v1/datasets that pulls from a device."""

    source: PullSource
    tagged_only: bool = True


def save_upload(stream: IO[bytes], dest: Path, max_bytes: int) -> int:
    """Copy an upload stream to dest, refusing (and removing dest) past max_bytes; returns the size."""
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with dest.open("wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ArchiveTooLarge(f"the archive is over the limit of {max_bytes / MIB:g} MiB")
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    if size == 0:
        dest.unlink(missing_ok=True)
        raise DatasetError("the upload is empty: send a .zip or .tar.gz archive of a dataset")
    return size


def validate_dataset(root: Path, fmt: str | None, limits: Limits) -> tuple[str, Dataset]:
    """Read root with the formats reader and decode every image; (format, dataset) or an error naming the file."""
    from edge.datasets.formats import detect_format, read_dataset
    from edge.store.images import validate_image

    fmt = fmt or detect_format(root)
    dataset = read_dataset(root, fmt)
    if not dataset.samples:
        raise DatasetError(f"the {fmt} dataset holds no images")
    check_label_names(dataset)
    for sample in dataset.samples:
        try:
            data = sample.path.read_bytes()
        except OSError as err:
            raise ImageError(f"{sample.name}: cannot be read: {err.strerror}") from err
        validate_image(data, sample.name, max_image_mb=limits.max_image_mb, max_pixels=limits.max_pixels)
    return fmt, dataset


def check_label_names(dataset: Dataset) -> None:
    """Every label name (declared, tagged, boxed) passes the device's own rule; DatasetError naming it otherwise."""
    from edge.errors import AnnotationError
    from edge.store.validation import check_label_name

    names = [info.name for info in dataset.labels]
    for sample in dataset.samples:
        names += sample.tags
        names += [box.label for box in sample.boxes]
    for name in dict.fromkeys(names):
        try:
            check_label_name(name)
        except AnnotationError as err:
            raise DatasetError(f"the dataset's {err}") from err


def _record(store: JobStore, dataset_id: str, fmt: str, dataset: Dataset, root: Path, *, source: str) -> DatasetRecord:
    """Record a validated dataset folder in the job store."""
    record = DatasetRecord(
        id=dataset_id,
        created=now_iso(),
        format=fmt,
        images=len(dataset.samples),
        labels=dataset.label_names,
        path=root,
        source=source,
    )
    store.add_dataset(record)
    return record


def ingest_archive(store: JobStore, archive: Path, fmt: str | None, limits: Limits) -> DatasetRecord:
    """Extract an uploaded archive safely, validate it, and record it; nothing is kept when it is refused."""
    from edge.datasets.archive import extract_archive, uploader_message

    dataset_id = new_id("ds")
    dest = store.data_dir / DATASETS_DIR / dataset_id
    try:
        try:
            root = extract_archive(archive, dest, max_bytes=limits.max_archive_bytes * INFLATION_FACTOR)
            fmt, dataset = validate_dataset(root, fmt, limits)
        except DatasetError as err:
            # The client knows its archive, not this server's folders.
            message = uploader_message(
                str(err), archive=archive, extracted=dest, name="the archive", format_hint="pass ?format="
            )
            raise type(err)(message) from err
        record = _record(store, dataset_id, fmt, dataset, root, source="upload")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    log.info("dataset %s: %d images, %d labels (%s)", dataset_id, record.images, len(record.labels), fmt)
    return record


# -------------------------------------------------------------------------------------------- pull from a device


# A page of image records or the label list: far more than a real device answers.
MAX_JSON_ANSWER_BYTES = 16 * MIB


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an http(s) URL, the port filled in; None when the URL is not one."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    try:
        port = parsed.port
    except ValueError:
        return None
    return parsed.scheme, parsed.hostname.lower(), port or (443 if parsed.scheme == "https" else 80)


def pull_allowed(url: str, allowed: tuple[str, ...] | list[str]) -> bool:
    """Whether url's origin is one of `allowed` (`http://device:8080`; `http://host:*` takes any port)."""
    origin = _origin(url)
    if origin is None:
        return False
    for entry in allowed:
        wildcard = entry.rstrip("/").endswith(":*")
        listed = _origin(entry.rstrip("/")[:-2] if wildcard else entry)
        if listed is not None and listed[:2] == origin[:2] and (wildcard or listed[2] == origin[2]):
            return True
    return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A device answers; it never sends the trainer elsewhere (a redirect could point at loopback)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to another address refused ({msg})", headers, fp)


class DeviceClient:
    """Reads a device's dataset through its REST API (`GET images?page=&page_size=`, `GET images/<id>/file`).

    Only origins on the server's `pull_sources` are reached, redirects are refused, answers are size-capped, and
    what a device answers is never echoed in an error (a token holder must not read arbitrary URLs through it).
    """

    def __init__(self, source: PullSource, allowed: tuple[str, ...] | list[str] = (), max_file_bytes: int = 0) -> None:
        parsed = urllib.parse.urlparse(source.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DatasetError(f"source url {source.url!r} must be an http(s) URL such as http://device:8080/api/v1")
        if not pull_allowed(source.url, allowed):
            origin = f"{parsed.scheme}://{parsed.netloc}"
            raise DatasetError(
                f"pulling from {origin} is not allowed: the trainer pulls only from the devices listed in "
                "server.pull_sources of trainer.yaml"
            )
        self.base = source.url.rstrip("/")
        self.source = source
        # `&project=` on the list calls (images by id are found in their own project on the device).
        self._project = f"project={urllib.parse.quote(source.project, safe='')}" if source.project else ""
        self.max_file_bytes = max_file_bytes or MAX_JSON_ANSWER_BYTES
        self._opener = urllib.request.build_opener(_NoRedirects)

    def _get(self, path: str, max_bytes: int = MAX_JSON_ANSWER_BYTES) -> bytes:
        url = f"{self.base}/{path}"
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.source.token}"})  # noqa: S310
        try:
            with self._opener.open(req, timeout=self.source.timeout_seconds) as resp:
                data = bytes(resp.read(max_bytes + 1))
        except urllib.error.HTTPError as err:
            # The status only: echoing the body would let a token holder read any URL through the trainer.
            raise DatasetError(f"the device answered {err.code} for {path.split('?')[0]}") from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise DatasetError(f"cannot reach the device at {self.base}: {reason}") from err
        if len(data) > max_bytes:
            raise DatasetError(f"the device's answer to {path.split('?')[0]} is larger than {max_bytes // MIB} MiB")
        return data

    def _get_json(self, path: str) -> Any:
        try:
            return json.loads(self._get(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            # Where it failed, not what it said.
            raise DatasetError(f"the device's answer to {path.split('?')[0]} is not JSON") from err

    def pages(self, *, tagged_only: bool) -> Iterator[list[dict[str, Any]]]:
        """The generator of pages: page 1, 2, ... of image records, until the device has no more."""
        page = 1
        seen = 0
        tagged = "&tagged=true" if tagged_only else ""
        while True:
            project = f"&{self._project}" if self._project else ""
            query = f"page={page}&page_size={self.source.page_size}&order=oldest{tagged}{project}"
            body = self._get_json(f"images?{query}")
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise DatasetError(f"page {page} of the device's images has no 'items' list")
            if not items:
                return
            yield items
            seen += len(items)
            total = body.get("total")
            if (isinstance(total, int) and seen >= total) or len(items) < self.source.page_size:
                return
            page += 1

    def labels(self) -> list[LabelInfo]:
        """The device's labels with descriptions, in its order."""
        body = self._get_json(f"labels?{self._project}" if self._project else "labels")
        items = body.get("items", []) if isinstance(body, dict) else []
        try:
            return [LabelInfo(str(i["name"]), str(i.get("description") or ""), i.get("color")) for i in items]
        except (KeyError, TypeError, AttributeError) as err:
            raise DatasetError(f"the device's label list is malformed: {err!r}") from err

    def image_file(self, image_id: int) -> bytes:
        """One image's stored file."""
        return self._get(f"images/{int(image_id)}/file", max_bytes=self.max_file_bytes)


def _image_id(item: Any) -> int:
    """The numeric id of one image record of the device; DatasetError when the record has none."""
    try:
        return int(item["id"])
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"the device's image record {str(item)[:80]} has no numeric id") from err


def _sample_from(item: dict[str, Any], path: Path) -> Sample:
    try:
        boxes = [
            Box(str(b["label"]), float(b["x1"]), float(b["y1"]), float(b["x2"]), float(b["y2"]))
            for b in item.get("boxes", [])
        ]
        split = str(item.get("split") or "auto")
        return Sample(
            path=path,
            name=path.name,
            tags=[str(t) for t in item.get("tags", [])],
            boxes=boxes,
            split=split if split in ("train", "val", "test") else "auto",
            width=item.get("width"),
            height=item.get("height"),
            nothing_to_box=item.get("nothing_to_box") is True and not boxes,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"the device's record of image {item.get('id')!r} is malformed: {err}") from err


def pull_dataset(store: JobStore, request: PullRequest, limits: Limits) -> DatasetRecord:
    """Pull a device's (tagged) images page by page, write them as a COCO dataset, validate and record it."""
    from edge.datasets.formats import write_dataset
    from edge.store.images import validate_image

    client = DeviceClient(request.source, limits.pull_sources, int(limits.max_image_mb * MIB) + 1)
    dataset_id = new_id("ds")
    download = store.data_dir / UPLOADS_DIR / f"{dataset_id}.pull"
    dest = store.data_dir / DATASETS_DIR / dataset_id
    total_bytes = 0
    try:
        download.mkdir(parents=True)
        labels = client.labels()
        samples: list[Sample] = []
        for page in client.pages(tagged_only=request.tagged_only):
            for item in page:
                image_id = _image_id(item)
                data = client.image_file(image_id)
                total_bytes += len(data)
                if total_bytes > limits.max_archive_bytes:
                    raise ArchiveTooLarge(
                        f"the device's dataset is over the limit of {limits.max_archive_bytes / MIB:g} MiB"
                    )
                name = f"image-{image_id}"
                facts = validate_image(data, name, max_image_mb=limits.max_image_mb, max_pixels=limits.max_pixels)
                path = download / f"{name}.{facts.ext}"
                path.write_bytes(data)
                samples.append(_sample_from(item, path))
        if not samples:
            raise DatasetError("the device has no tagged images to train on")
        write_dataset(Dataset(labels=labels, samples=samples), dest, PULLED_FORMAT)
        fmt, dataset = validate_dataset(dest, PULLED_FORMAT, limits)
        record = _record(store, dataset_id, fmt, dataset, dest, source=client.base)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(download, ignore_errors=True)
    log.info("dataset %s: pulled %d images from %s", dataset_id, record.images, client.base)
    return record
