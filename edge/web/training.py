"""The training round trip from the device: start (Train), live progress, the evaluation report, deploy decision.

A TrainingRunner (edge.training.runner) does the work on a background thread; the agent may inject one as
`Services.trainer`, else the first request builds one from the config (trainer.url / trainer.token) with the app's
store and model repository. Every route takes `project` (query parameter or JSON field; the default project when
absent): a run trains that project's dataset and its model version is tagged with it. The deploy threshold the user
sets is remembered per project in the store's settings; unset, it is the task's default (DEFAULT_DEPLOY_THRESHOLDS).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flask import Blueprint, g, jsonify, render_template, request
from pydantic import BaseModel, Field

from edge.errors import ShelfwatchError
from edge.training.client import TrainerClient, TrainerUnavailable
from edge.training.plan import training_plan
from edge.training.runner import TrainingRunner
from edge.training.runs import RunRequest, TrainingRun, default_deploy_threshold, manifest_name
from edge.vocabulary import BACKBONES, Backbone, Metric, TaskChoice
from edge.web.http import read_model
from edge.web.projects import project_ref
from edge.web.runtime_common import config, require_service
from edge.web.security import requires
from edge.web.services import current_services

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from edge.model_repository import ModelRepository
    from edge.store import DatasetStore

log = logging.getLogger(__name__)

bp = Blueprint("training", __name__)
NAV = [("training.page", "Train", 60)]

THRESHOLD_SETTING = "training.deploy_threshold"
_RUNNER_LOCK = threading.Lock()


class StartBody(BaseModel):
    task: TaskChoice = Field("auto", description="auto: the review page's task.")
    backbone: Backbone | None = None
    epochs: int | None = Field(None, ge=1, le=1000)
    seed: int | None = None
    input_size: int | None = Field(None, ge=32, le=1024, description="Network input size; trainer default if unset.")
    deploy_threshold: float | None = Field(None, ge=0.0, le=1.0, strict=True)
    metric: Metric | None = None
    source: Literal["upload", "pull"] = "upload"
    device_url: str | None = Field(None, max_length=2000, description="pull: this device's URL as the trainer sees it.")
    use_zones: bool = Field(True, description="classification: train on the cameras' zone crops (what is classified).")
    camera: str | None = Field(None, max_length=64, description="classification: whose zones, when cameras differ.")
    project: int | str | None = Field(None, description="The project trained (id or name); the default when unset.")


def runner() -> TrainingRunner:
    """The app's TrainingRunner (built on first use from the config when the agent did not inject one)."""
    services = current_services()
    if services.trainer is not None:
        return services.trainer
    with _RUNNER_LOCK:
        if services.trainer is None:
            services.trainer = build_runner(config(), services.store, require_service("models"))
    return services.trainer


def build_runner(cfg: EdgeConfig, store: DatasetStore, models: ModelRepository) -> TrainingRunner:
    """The device's TrainingRunner for an EdgeConfig (the agent builds it at start; else the first request does).

    Runs that a previous process left in progress are followed again at once.
    """
    runner = TrainingRunner(lambda: TrainerClient.from_config(cfg), store, models, cfg.data_dir)
    runner.resume_interrupted()
    return runner


def _threshold_key(project_id: int) -> str:
    from edge.store.schema import DEFAULT_PROJECT_ID

    # The default project keeps the key of the time before projects, so a threshold set then still holds.
    return THRESHOLD_SETTING if project_id == DEFAULT_PROJECT_ID else f"{THRESHOLD_SETTING}.{project_id}"


def deploy_threshold(project_id: int, task: str) -> float:
    """The project's deploy threshold: the one the user set, else the default of the task it trains."""
    value = current_services().store.get_setting(_threshold_key(project_id))
    return float(value) if isinstance(value, int | float) else default_deploy_threshold(task)


def _project() -> Any:
    """The request's project record (404 for an unknown one)."""
    return current_services().store.get_project(project_ref())


def _project_task(project: Any) -> str:
    from edge.web.dataset import chosen_task

    return project.task or chosen_task() or current_services().store.default_task(project=project.id)


def describe(r: TrainingRunner, run: TrainingRun) -> dict[str, Any]:
    """A run's JSON form with the display name of its model version (`Shelf rows v3 · 2026-12-01 19:53`)."""
    from edge.web.model_versions import display_name

    row = r.describe(run)
    row["display_name"] = display_name(run.version, run.project) if run.version else None
    return row


@bp.get("/training")
@requires("viewer")
def page() -> str:
    """The training page: readiness, Train with task/backbone/threshold, live progress, report, history."""
    return render_template("training.html", backbones=BACKBONES, trainer_url=config().trainer.url)


@bp.get("/api/v1/training")
@requires("viewer")
def overview() -> Any:
    """{current, items (newest first), deploy_threshold, trainer_configured}."""
    r = runner()
    project = _project()
    current = r.current()
    return jsonify(
        {
            "current": describe(r, current) if current is not None else None,
            "items": [describe(r, run) for run in r.runs(project=project.id)],
            "deploy_threshold": deploy_threshold(project.id, _project_task(project)),
            "trainer_configured": bool(config().trainer.url),
            "project": {"id": project.id, "name": project.name, "task": project.task or "auto"},
        }
    )


@bp.post("/api/v1/training")
@requires("admin")
def start() -> Any:
    """Start a round trip of a project: 409 when its dataset is not ready (with the reasons) or a run is in progress."""
    from edge.web.dataset import chosen_task

    body = read_model(StartBody)
    r = runner()
    if not config().trainer.url:
        raise TrainerUnavailable("no trainer service configured on this device (trainer.url in edge.yaml)")
    store = current_services().store
    project = store.get_project(body.project if body.project is not None else project_ref())
    requested = chosen_task(project.task) if body.task == "auto" else body.task
    plan = training_plan(
        config(), store, requested, camera=body.camera, use_zones=body.use_zones, project=project.id
    ).require_ready()
    threshold = body.deploy_threshold if body.deploy_threshold is not None else deploy_threshold(project.id, plan.task)
    if body.deploy_threshold is not None:
        store.set_setting(_threshold_key(project.id), threshold)
    options = body.model_dump(include={"backbone", "epochs", "seed", "input_size", "metric", "source"})
    run_request = plan.request(
        deploy_threshold=threshold, project=project.id, project_name=manifest_name(project), **options
    )
    if body.source == "pull":
        _grant_pull_token(run_request, body.device_url)
    run = r.start(run_request)
    return jsonify(describe(r, run)), 202


def _grant_pull_token(run_request: RunRequest, device_url: str | None) -> None:
    """Give the trainer a device API token for the pull, revoked as soon as the trainer holds the dataset."""
    users = current_services().users
    assert users is not None
    user_id = g.user.id
    token, meta = users.issue_token(user_id, "trainer dataset pull (revoked after the pull)")
    url = (device_url or request.host_url).rstrip("/")
    run_request.device_url = url if url.endswith("/api/v1") else url + "/api/v1"
    run_request.device_token = token

    def revoke() -> None:
        try:
            users.revoke_token(meta.id, user_id)
        except Exception:
            log.exception("revoking the trainer's pull token failed")

    run_request.after_dataset = revoke


@bp.get("/api/v1/training/<run_id>")
@requires("viewer")
def get_run(run_id: str) -> Any:
    """One run with its report (report.json of the evaluation, once the bundle is downloaded)."""
    r = runner()
    run = r.get(run_id)
    return jsonify(describe(r, run) | {"report": r.report(run_id), "files": _bundle_files(run.version)})


def _bundle_files(version: str | None) -> list[str]:
    """The evaluation pictures and report the installed bundle holds (served under /api/v1/models/<v>/files/)."""
    from edge.web.model_versions import VIEWABLE_FILES

    models = current_services().models
    if version is None or models is None:
        return []
    try:
        bundle_dir = Path(models.path_of(version))
    except ShelfwatchError:  # pruned or refused since
        return []
    return [name for name in VIEWABLE_FILES if (bundle_dir / name).is_file()]


@bp.get("/api/v1/training/backbones")
@requires("viewer")
def usable_backbones() -> Any:
    """{"default", "usable", "known"}: the backbones the trainer can train with its weights (the page offers only
    those); `known` false when the trainer could not say (not configured, unreachable, older): every backbone."""
    try:
        answer = TrainerClient.from_config(config()).backbones()
        usable = [b for b in answer.get("usable", []) if b in BACKBONES]
        default = answer.get("default") if answer.get("default") in BACKBONES else None
        if usable:
            return jsonify({"default": default, "usable": usable, "known": True})
    except ShelfwatchError as err:
        log.info("the trainer did not list its usable backbones: %s", err)
    return jsonify({"default": None, "usable": list(BACKBONES), "known": False})


@bp.post("/api/v1/training/<run_id>/cancel")
@requires("admin")
def cancel(run_id: str) -> Any:
    """Cancel a run in progress (the trainer job too); the running model is unchanged."""
    r = runner()
    return jsonify(describe(r, r.cancel(run_id))), 202


@bp.get("/api/v1/training/settings")
@requires("viewer")
def settings() -> Any:
    """{"deploy_threshold", "default"}: the threshold the project's next run uses unless it names its own."""
    project = _project()
    task = _project_task(project)
    return jsonify({"deploy_threshold": deploy_threshold(project.id, task), "default": default_deploy_threshold(task)})


@bp.put("/api/v1/training/settings")
@requires("admin")
def put_settings() -> Any:
    """Set a project's deploy threshold: {"deploy_threshold": 0.85}; null goes back to the task's default."""

    class Body(BaseModel):
        deploy_threshold: float | None = Field(ge=0.0, le=1.0, strict=True)
        project: int | str | None = None

    body = read_model(Body)
    project = _project()
    store = current_services().store
    store.set_setting(_threshold_key(project.id), body.deploy_threshold)
    value = deploy_threshold(project.id, _project_task(project))
    log.info("deploy threshold of project %s set to %s", project.name, value)
    return jsonify({"deploy_threshold": value, "default": default_deploy_threshold(_project_task(project))})
