"""Dataset review (counts per label, readiness verdict, splits), import/export, and the Train button's verdict."""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePath
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, send_file, url_for
from pydantic import BaseModel, Field

from edge.errors import DatasetError
from edge.vocabulary import TASK_CHOICES, TaskChoice
from edge.web.http import ApiError, read_model
from edge.web.projects import project_ref
from edge.web.security import requires
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("dataset", __name__)
NAV = [("dataset.review", "Review", 50)]

TASK_SETTING = "studio.task"
EXPORT_FORMATS = ("coco", "yolo", "voc", "csv", "folders")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
# The training blueprint (added by the runtime side) exposes this endpoint; the Train button posts to it.
TRAINING_START_ENDPOINT = "training.start"
TRAINING_PAGE_ENDPOINT = "training.page"


class TaskBody(BaseModel):
    task: TaskChoice


class AutoSplitBody(BaseModel):
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    reassign: bool = Field(False, description="Also re-split images already in train/val/test.")
    seed: int = 0


def chosen_task(project_task: str | None = None) -> str | None:
    """The task the summary is judged for: ?task=, else the project's task, else the review page's choice (the
    default project's "auto"); None lets the store decide."""
    chosen = request.args.get("task") or project_task or current_services().store.get_setting(TASK_SETTING, "auto")
    if chosen not in TASK_CHOICES:
        raise ApiError(400, "task must be auto, classification or detection")
    return None if chosen == "auto" else chosen


def dataset_summary(task: str | None = None) -> dict[str, Any]:
    """The store's summary plus what the review page needs: minimums per label and the chosen task mode.

    A classifier is judged by the zone crops it will be trained on when the cameras have zones (the same zones the
    Train button sends to the trainer); several cameras with different zone layouts: judged by whole images.
    """
    from edge.training.plan import training_plan

    store = current_services().store
    config = current_app.config["SHELFWATCH_CONFIG"]
    project = store.get_project(project_ref())
    summary = training_plan(config, store, task or chosen_task(project.task), strict=False, project=project.id).summary
    rules = store.rules
    summary["task_setting"] = project.task or store.get_setting(TASK_SETTING, "auto")
    summary["min_images"] = rules.min_images
    summary["min_per_label"] = (
        rules.min_boxes_per_label_detection if summary["task"] == "detection" else rules.min_per_label_classification
    )
    summary["training_available"] = TRAINING_START_ENDPOINT in current_app.view_functions and bool(
        config.trainer.url or current_services().trainer is not None
    )
    return summary


@bp.get("/review")
@requires("viewer")
def review() -> str:
    """The review page: per-label bar chart, verdict with reasons, splits, import/export, Train."""
    views = current_app.view_functions
    training_url = url_for(TRAINING_START_ENDPOINT) if TRAINING_START_ENDPOINT in views else None
    progress_url = url_for(TRAINING_PAGE_ENDPOINT) if TRAINING_PAGE_ENDPOINT in views else None
    return render_template("review.html", formats=EXPORT_FORMATS, training_url=training_url, progress_url=progress_url)


@bp.get("/api/v1/dataset/summary")
@requires("viewer")
def summary() -> Any:
    """{"images", "tagged", "per_label", "ready", "problems", "warnings", "splits", "task", ...}."""
    return jsonify(dataset_summary())


@bp.put("/api/v1/dataset/task")
@requires("labeller")
def set_task() -> Any:
    """Choose what the dataset trains: classification, detection, or auto (detection once any box exists)."""
    body = read_model(TaskBody)
    store = current_services().store
    project = store.get_project(project_ref())
    if project.is_default:  # its choice stays where it was before projects ("auto" allowed)
        store.set_setting(TASK_SETTING, body.task)
    else:
        store.set_project_task(project.id, None if body.task == "auto" else body.task)
    return jsonify(dataset_summary())


@bp.post("/api/v1/dataset/split")
@requires("labeller")
def auto_split() -> Any:
    """Assign train/test by label-stratified 80/20 (or test_fraction) to images whose split is auto."""
    body = read_model(AutoSplitBody)
    counts = current_services().store.auto_split(
        body.test_fraction, body.seed, only_auto=not body.reassign, project=project_ref()
    )
    return jsonify({"assigned": counts, "summary": dataset_summary()})


@bp.get("/api/v1/dataset/export")
@requires("viewer")
def export() -> Response:
    """The dataset as a zip in a format: coco, yolo, voc, csv or folders (`?tagged=true` for tagged images only)."""
    from edge.datasets.formats import write_dataset

    fmt = request.args.get("format", "coco")
    if fmt not in EXPORT_FORMATS:
        raise ApiError(400, f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    only_tagged = request.args.get("tagged", "").lower() in ("1", "true", "yes")
    dataset = current_services().store.export_dataset(only_tagged=only_tagged, project=project_ref())
    work = Path(tempfile.mkdtemp(prefix="shelfwatch-export-"))
    try:
        out = work / "dataset"
        write_dataset(dataset, out, fmt)
        archive = tempfile.TemporaryFile(suffix=".zip")  # send_file closes it
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(out).as_posix())
        archive.seek(0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    name = f"{current_app.config['SHELFWATCH_CONFIG'].device_id}-dataset-{fmt}.zip"
    log.info("exported %s images as %s", len(dataset.samples), fmt)
    return send_file(archive, mimetype="application/zip", as_attachment=True, download_name=name)


def _csv_options(fmt: str, root: Path) -> dict[str, Any]:
    """The import dialog's CSV choices: image column, optional label column (names, or numbers 0, 1, 2 that map to
    the project's labels in order when the table brings no labels.txt)."""
    image_column = (request.form.get("image_column") or "").strip() or None
    label_column = (request.form.get("label_column") or "").strip() or None
    if fmt != "csv":
        if image_column or label_column:
            raise ApiError(400, f"image_column and label_column apply to CSV tables, not {fmt}")
        return {}
    from edge.datasets.csvtable import find_table
    from edge.datasets.sidecars import read_label_order

    options: dict[str, Any] = {"path_column": image_column, "label_column": label_column}
    table = root if root.is_file() else find_table(root)
    names = [label.name for label in current_services().store.list_labels(project=project_ref())]
    if names and table is not None and read_label_order(table.parent) is None:
        options["labels"] = names
    return options


@bp.post("/api/v1/dataset/import")
@requires("labeller")
def import_archive() -> Any:
    """Import a dataset archive (multipart `file`: .zip or .tar.gz) in `format` (or auto); all or nothing."""
    from edge.datasets.archive import extract_archive, uploader_message
    from edge.datasets.formats import FORMATS, detect_format, read_dataset

    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "no archive in the multipart field 'file'")
    fmt = request.form.get("format", "auto") or "auto"
    if fmt != "auto" and fmt not in FORMATS:
        raise ApiError(400, f"format must be auto or one of {', '.join(FORMATS)}, got {fmt!r}")
    # The client's name is shown in messages only (NUL and control characters escaped, length capped): the upload is
    # saved under a name of ours, so a NUL or a 300-character name cannot turn into a 500.
    filename = PurePath((upload.filename or "").replace("\\", "/")).name
    filename = "".join(c if c.isprintable() else repr(c)[1:-1] for c in filename)
    filename = filename if len(filename) <= 120 else f"{filename[:100]}...{filename[-16:]}"  # keeps the suffix
    if not filename.lower().endswith(ARCHIVE_SUFFIXES):
        raise ApiError(400, f"{filename or 'the upload'}: expected a .zip or .tar.gz archive")
    # Images barely compress, so ten times the upload limit is generous for real data and stops a bomb early.
    max_bytes = 10 * int(current_app.config["MAX_CONTENT_LENGTH"])
    store = current_services().store
    # Under data_dir, not /tmp: a process killed mid-import leaves a folder the next start removes.
    with store.scratch("import") as work:
        archive = work / ("upload" + next(s for s in ARCHIVE_SUFFIXES if filename.lower().endswith(s)))
        upload.save(archive)
        try:
            root = extract_archive(archive, work / "extracted", max_bytes=max_bytes)
            if fmt == "auto":
                fmt = detect_format(root)
            dataset = read_dataset(root, fmt, **_csv_options(fmt, root))
        except DatasetError as err:
            # Name the uploaded file, not the temporary folder it was saved in.
            message = uploader_message(
                str(err), archive=archive, extracted=work / "extracted", name=filename, format_hint="choose the format"
            )
            raise DatasetError(message) from err
        stats = store.import_dataset(dataset, project=project_ref())
    log.info("imported %s (%s): %s", filename, fmt, stats)
    return jsonify({"format": fmt, "imported": stats, "summary": dataset_summary()}), 201
