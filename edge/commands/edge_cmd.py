"""`shelfwatch edge train|models`: the training round trip and the installed models from a shell.

`edge train` ships the dataset store to the trainer (archive upload) and starts a job; with `--wait` it also
polls the job (progress on stderr), downloads and verifies the bundle, installs it and activates it when its
headline metric reaches `--deploy-threshold`. `edge models list|activate|rollback` change the model repository
directly. One process owns a repository: while `shelfwatch run` serves this data_dir, use the web page or the
REST API instead (its running pipelines only follow activations made through it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli import print_result
from edge.commands import command_group
from edge.errors import ConfigError
from edge.vocabulary import BACKBONES, TASK_CHOICES

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from edge.model_repository import ModelRepository
    from edge.training.runs import TrainingRun

log = logging.getLogger(__name__)

FAILED_STATES = ("failed", "refused", "cancelled")


def _config(args: argparse.Namespace) -> EdgeConfig:
    """The config file's tree with command-line overrides (or one built from --data-dir and friends)."""
    from edge.config import EdgeConfig, load_yaml_config

    if args.config:
        cfg = load_yaml_config(args.config, EdgeConfig)
    elif args.data_dir:
        cfg = EdgeConfig(data_dir=Path(args.data_dir))
    else:
        raise ConfigError("give -c edge.yaml, or --data-dir DIR")
    updates: dict[str, Any] = {}
    if args.data_dir:
        updates["data_dir"] = Path(args.data_dir)
    trainer_url = getattr(args, "trainer_url", None)
    token = getattr(args, "token", None)
    if trainer_url or token:
        trainer = cfg.trainer.model_copy(update={k: v for k, v in (("url", trainer_url),) if v})
        if token:
            from pydantic import SecretStr

            trainer = trainer.model_copy(update={"token": SecretStr(token)})
        updates["trainer"] = trainer
    trusted = getattr(args, "trusted_key", None)
    if trusted:
        updates["model"] = cfg.model.model_copy(update={"trusted_keys": list(trusted)})
    return cfg.model_copy(update=updates) if updates else cfg


# ------------------------------------------------------------------------------------------------ train


def cmd_train(args: argparse.Namespace) -> int:
    """Upload the dataset and start a job; with --wait, drive it to an installed (and maybe active) model."""
    from edge.model_repository import ModelRepository
    from edge.store import DatasetStore
    from edge.training.client import TrainerClient
    from edge.training.plan import training_plan
    from edge.training.runner import TrainingRunner, submit_job
    from edge.training.runs import default_deploy_threshold, manifest_name

    cfg = _config(args)
    client = TrainerClient.from_config(cfg)
    store = DatasetStore(Path(cfg.data_dir), cfg.dataset)
    try:
        project = store.get_project(args.project)
        task = None if args.task == "auto" else args.task
        plan = training_plan(
            cfg, store, task or project.task, camera=args.camera, use_zones=not args.no_zones, project=project.id
        ).require_ready()
        threshold = args.deploy_threshold
        request = plan.request(
            backbone=args.backbone,
            epochs=args.epochs,
            input_size=args.input_size,
            deploy_threshold=threshold if threshold is not None else default_deploy_threshold(plan.task),
            project=project.id,
            project_name=manifest_name(project),
        )
        if not args.wait:
            dataset, job = submit_job(client, store, request)
            result = {"dataset": dataset["id"], "job": job["id"], "state": job.get("state"), "task": plan.task}
            print_result(args, result, f"job {job['id']} {job.get('state')} on {client.url} (dataset {dataset['id']})")
            return 0

        models = ModelRepository.from_config(cfg)
        models.load()
        # Its own history: the agent's web may be keeping the default one in another process.
        runner = TrainingRunner(
            lambda: client, store, models, cfg.data_dir, history_dir="training-cli", poll_seconds=args.poll_seconds
        )
        run = runner.start(request)
        last = ""
        while True:
            run = runner.join(run.id, timeout=args.poll_seconds)
            line = _progress_line(run)
            if line != last and not args.json:
                print(line, file=sys.stderr, flush=True)
                last = line
            if not run.in_progress:
                break
        text = f"{run.state}: {run.decision or run.error or ''}".strip()
        print_result(args, runner.describe(run) | {"report": runner.report(run.id)}, text)
        return 1 if run.state in FAILED_STATES else 0
    finally:
        store.close()


def _progress_line(run: TrainingRun) -> str:
    p = run.progress or {}
    parts = [run.state]
    if p.get("stage"):
        parts.append(str(p["stage"]))
    if p.get("epoch") is not None:
        parts.append(f"epoch {p['epoch']}/{p.get('epochs') or '?'}")
    if isinstance(p.get("loss"), int | float):
        parts.append(f"loss {p['loss']:.4f}")
    if isinstance(run.eta_seconds, int | float):
        parts.append(f"ETA {run.eta_seconds:.0f} s")
    return " · ".join(parts)


# ------------------------------------------------------------------------------------------------ models


def _repository(args: argparse.Namespace) -> ModelRepository:
    from edge.model_repository import ModelRepository

    cfg = _config(args)
    if not Path(cfg.data_dir).is_dir():
        raise ConfigError(f"data directory {cfg.data_dir} does not exist")
    repo = ModelRepository.from_config(cfg)
    repo.load()
    return repo


def cmd_models_list(args: argparse.Namespace) -> int:
    """Installed versions with state and metrics."""
    repo = _repository(args)
    rows = repo.list_versions()
    lines = []
    for row in rows:
        flag = "*" if row["active"] else ("<" if row["previous"] else " ")
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in (row.get("metrics") or {}).items() if isinstance(v, float))
        state = row["status"] if row["status"] == "ok" else f"refused: {row['reason']}"
        lines.append(f"{flag} {row['version']}  {row.get('task', '?')}  {state}  {metrics}".rstrip())
    print_result(
        args,
        {"items": rows, "active": repo.active_version(), "previous": repo.previous_version()},
        "\n".join(lines) or "no model installed",
    )
    return 0


def cmd_models_activate(args: argparse.Namespace) -> int:
    """Make an installed version the active one."""
    repo = _repository(args)
    manifest = repo.activate(args.version)
    print_result(args, {"active": manifest.version, "previous": repo.previous_version()}, f"active: {manifest.version}")
    return 0


def cmd_models_rollback(args: argparse.Namespace) -> int:
    """Go back to the previous version."""
    repo = _repository(args)
    manifest = repo.rollback()
    print_result(args, {"active": manifest.version, "previous": repo.previous_version()}, f"active: {manifest.version}")
    return 0


# ------------------------------------------------------------------------------------------------ parser


def _common(p: argparse.ArgumentParser, trainer: bool) -> None:
    p.add_argument("-c", "--config", help="edge.yaml (data_dir, trainer, model.trusted_keys)")
    p.add_argument("--data-dir", help="the device's data directory (overrides the config's)")
    p.add_argument("--trusted-key", action="append", help="public key trusted to sign bundles (repeatable)")
    if trainer:
        p.add_argument("--trainer-url", help="trainer service URL (overrides trainer.url)")
        p.add_argument("--token", help="trainer bearer token (overrides trainer.token)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def register(sub: Any) -> None:
    """Add `shelfwatch edge train` and `shelfwatch edge models list|activate|rollback`."""
    edge_sub = command_group(
        sub, "edge", "Train through the trainer service and manage installed models.", metavar="COMMAND"
    )

    train = edge_sub.add_parser("train", help="Ship the dataset to the trainer and start a job (--wait: install).")
    _common(train, trainer=True)
    train.add_argument("--task", choices=TASK_CHOICES, default="auto")
    train.add_argument("--backbone", choices=BACKBONES, default=None, help="default: the trainer's")
    train.add_argument("--epochs", type=int, default=None, help="default: chosen by the trainer")
    train.add_argument(
        "--camera", default=None, help="classification: train on this camera's zones (when cameras differ)"
    )
    train.add_argument(
        "--no-zones", action="store_true", help="classification: train on whole images, not the zones' crops"
    )
    train.add_argument("--input-size", type=int, default=None, help="network input size; default: the trainer's")
    train.add_argument("--wait", action="store_true", help="poll until done, then install the bundle")
    train.add_argument(
        "--deploy-threshold",
        type=float,
        default=None,
        help="activate only when the headline metric (accuracy / mAP@0.5) reaches this (default: 0.85 for "
        "classification, 0.50 for detection)",
    )
    train.add_argument("--project", default=None, help="the project to train (id or name); default: the default one")
    train.add_argument("--poll-seconds", type=float, default=3.0, help="seconds between job status checks")
    train.set_defaults(func=cmd_train)

    models_sub = command_group(edge_sub, "models", "Installed model versions.", metavar="COMMAND")
    listing = models_sub.add_parser("list", help="Installed versions, active marked *, previous <.")
    _common(listing, trainer=False)
    listing.set_defaults(func=cmd_models_list)
    activate = models_sub.add_parser("activate", help="Activate an installed version.")
    activate.add_argument("version")
    _common(activate, trainer=False)
    activate.set_defaults(func=cmd_models_activate)
    rollback = models_sub.add_parser("rollback", help="Go back to the previous version.")
    _common(rollback, trainer=False)
    rollback.set_defaults(func=cmd_models_rollback)
