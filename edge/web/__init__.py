"""The local web studio: one Flask app serving the pages and the JSON API under /api/v1.

`create_app(config, services)` builds the app (nothing is created at import time; tests pass their own config and
services). Each area is one blueprint module listed in BLUEPRINTS; a module exposes `bp` (a flask.Blueprint) and
may expose `NAV` (a list of (endpoint, title, order) entries for the top navigation, sorted by order). Other
packages add their areas by appending the module path to BLUEPRINTS before calling create_app, and their services
through `Services`.
"""

from __future__ import annotations

import importlib
import logging
import threading

from flask import Flask, redirect, url_for
from werkzeug.wrappers import Response

from edge.config import EdgeConfig
from edge.web.server import WebServer
from edge.web.services import EXTENSION_KEY, Services

log = logging.getLogger(__name__)

# One module per area (a module exposes `bp` and optionally `NAV`); other packages append theirs before create_app.
BLUEPRINTS: list[str] = [
    "edge.web.auth",
    "edge.web.users",
    "edge.web.cameras",
    "edge.web.skills",
    "edge.web.projects",
    "edge.web.images",
    "edge.web.assist",
    "edge.web.labels",
    "edge.web.trash",
    "edge.web.dataset",
    "edge.web.training",
    "edge.web.model_versions",
    "edge.web.predict",
    "edge.web.events",
    "edge.web.status",
    "edge.web.metrics",
]

STOPPING_KEY = "shelfwatch.stopping"
MIB = 1024 * 1024

__all__ = ["BLUEPRINTS", "Services", "WebServer", "create_app"]


def create_app(config: EdgeConfig, services: Services) -> Flask:
    """The studio app for this config, calling these services."""
    from edge.store.users import UserStore
    from edge.web.http import BoundedJSONProvider, RowIdConverter, register_error_handlers
    from edge.web.security import init_security, requires

    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.url_map.converters["int"] = RowIdConverter  # before any blueprint adds an <int:...> rule
    if services.users is None:
        services.users = UserStore(config.data_dir)
    app.extensions[EXTENSION_KEY] = services
    app.extensions[STOPPING_KEY] = threading.Event()
    app.config["SHELFWATCH_CONFIG"] = config
    # One request may carry a whole archive or a batch of photos; single images are further held to
    # dataset.max_image_mb by the store.
    app.config["MAX_CONTENT_LENGTH"] = int(config.web.max_upload_mb * MIB)
    app.json = BoundedJSONProvider(app)  # keeps the documented field order; refuses too-deep bodies (400)

    init_security(app, config)
    register_error_handlers(app)

    nav_entries: list[tuple[str, str, int]] = []
    for module_name in BLUEPRINTS:
        module = importlib.import_module(module_name)
        app.register_blueprint(module.bp)
        nav_entries.extend(getattr(module, "NAV", []))
    nav = [(endpoint, title) for endpoint, title, _ in sorted(nav_entries, key=lambda e: e[2])]

    def home() -> Response:
        return redirect(url_for(nav[0][0]) if nav else url_for("auth.login"))

    app.add_url_rule("/", endpoint="home", view_func=requires("viewer")(home))

    @app.context_processor
    def _globals() -> dict[str, object]:
        from flask import g

        return {"nav_items": nav, "current_user": g.get("user"), "device_id": config.device_id}

    @app.after_request
    def _headers(resp: Response) -> Response:
        # Everything is local: forbid third-party content and framing.
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
            "frame-ancestors 'none'",
        )
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        return resp

    log.debug("web studio created with blueprints %s", ", ".join(app.blueprints))
    return app
