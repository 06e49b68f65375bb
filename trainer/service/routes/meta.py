"""Health (open, for load balancers) and the public key bundles are signed with."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from edge import __version__
from trainer.service.http import HEALTH_PATH
from trainer.service.services import services

bp = Blueprint("meta", __name__)


@bp.get(HEALTH_PATH)
def health() -> Any:
    """Liveness for healthchecks (no token needed, reveals nothing but the version)."""
    return jsonify({"status": "ok", "version": __version__})


@bp.get("/v1/signing-key")
def signing_key_info() -> Any:
    """The public key bundles are signed with (give it to devices as a trusted key)."""
    from edge.bundle import load_private_key, public_key_base64

    return jsonify({"public_key": public_key_base64(load_private_key(services().signing_key))})
