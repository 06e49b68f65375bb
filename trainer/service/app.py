"""The trainer's REST API (docs/TRAINER_API.md) as a Flask app factory that only composes.

The parts come from `services.open_services` (store, job queue, limits, signing key, tokens), the routes from one
blueprint per area under `routes/`, authentication and the JSON error shape from `http`.
"""

from __future__ import annotations

from flask import Flask

from edge.web.http import BoundedJSONProvider
from trainer.config import TrainerConfig
from trainer.service.http import install_auth, install_error_handlers
from trainer.service.routes import datasets, jobs, meta
from trainer.service.services import MIB, SERVICES_KEY, open_services

STORE_KEY = "shelfwatch.trainer.store"
SCHEDULER_KEY = "shelfwatch.trainer.scheduler"
BLUEPRINTS = (meta.bp, datasets.bp, jobs.bp)


def create_app(config: TrainerConfig, *, runner: str | None = None, start_scheduler: bool = True) -> Flask:
    """The API app for this config; `runner` (module:function) replaces trainer.pipeline:run_training in workers."""
    svc = open_services(config, runner=runner)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = svc.limits.max_archive_bytes + MIB  # multipart overhead; the file is exact
    app.json = BoundedJSONProvider(app)  # the device's provider: documented key order, depth bounded (400)
    app.extensions[SERVICES_KEY] = svc
    app.extensions[STORE_KEY] = svc.store
    app.extensions[SCHEDULER_KEY] = svc.queue
    app.extensions["shelfwatch.trainer.recovered"] = svc.recovered
    install_auth(app, svc.tokens)
    install_error_handlers(app, config.server.max_archive_mb)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    if start_scheduler:
        svc.start()
    return app
