"""The cameras' AI skills in the studio: the debug view (each block's last output, live) and editing.

- `GET /skills/<camera>`: the page: the chain drawn block by block with each block's last output, when it came and
  its time, refreshed every second; an editor for the camera's skills (YAML) for admins.
- `GET /api/v1/cameras/<camera>/skills` (viewer): `{"camera", "default", "skills", "yaml"}`: the skills as
  written (webhook secrets masked unless they are `${ENV}` placeholders); `default: true` while the camera runs
  today's zone rule (no skills).
- `PUT /api/v1/cameras/<camera>/skills` (admin): `{"skills": [...]}` or `{"yaml": "..."}` (a YAML list of
  skills), or `{"skills": null}` for today's rule. Validated and built completely before it replaces the running
  skills between two frames, without a restart, and kept in `<data_dir>/skills/<camera>.json` (it wins over
  edge.yaml at the next start). A broken edit answers 400 naming the skill, the block and the reason, and the
  running skills keep going. A masked secret (`**********`) keeps the block's current secret.
- `GET /api/v1/cameras/<camera>/skills/debug` (viewer): the runner's live state: per skill its status (running,
  idle with the reason, error) and per block `output`, `at`, `ms`, `runs`; webhook queues. A camera without skills
  shows its pipeline's default skill (edge.skills.default: zone_score -> hysteresis -> mqtt_state/mqtt_event, its
  zone settings) with `default: true`, `active: false`.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from flask import Blueprint, jsonify, render_template
from pydantic import ValidationError

from edge.errors import ShelfwatchError
from edge.skills.runner import SkillsHub
from edge.web.http import ApiError, read_json, validation_message
from edge.web.security import requires
from edge.web.services import current_services

bp = Blueprint("skills", __name__)

MASK = "**********"
MAX_YAML = 200_000


def _hub() -> SkillsHub:
    hub = current_services().skills
    if hub is None:
        raise ApiError(503, "skills run only on a device agent (this studio has no pipelines)")
    return hub


def _runner(camera_id: str) -> Any:
    runner = _hub().runners.get(camera_id)
    if runner is None:
        raise ApiError(404, f"camera {camera_id!r} is not running here")
    return runner


def _masked(raw: list[Any] | None) -> list[Any] | None:
    """The skills with literal webhook secrets replaced by MASK (`${ENV}` placeholders are shown)."""
    if raw is None:
        return None
    out = copy.deepcopy(raw)
    for skill in out:
        for block in skill.get("blocks", []) if isinstance(skill, dict) else []:
            secret = block.get("secret") if isinstance(block, dict) else None
            if isinstance(secret, str) and not (secret.startswith("${") and secret.endswith("}")):
                block["secret"] = MASK
    return out


def _current_raw(camera_id: str) -> list[Any] | None:
    hub = _hub()
    saved = hub.saved(camera_id)
    if saved is not None:
        return list(saved)
    runner = _runner(camera_id)
    if hub.has_saved(camera_id):
        return None
    if runner.configs is None:
        return None
    return [c.model_dump(mode="json", exclude_unset=True) for c in runner.configs]


def _unmask(new: list[Any], camera_id: str) -> list[Any]:
    """A MASK secret keeps the current secret of the same skill and block."""
    runner = _runner(camera_id)
    saved = _hub().saved(camera_id)
    for skill in new:
        if not isinstance(skill, dict):
            continue
        for block in skill.get("blocks", []) or []:
            if not isinstance(block, dict) or block.get("secret") != MASK:
                continue
            block["secret"] = _old_secret(saved, runner, skill.get("id"), block.get("id"))
    return new


def _old_secret(saved: Any, runner: Any, skill_id: Any, block_id: Any) -> str | None:
    for skill in saved or []:
        if isinstance(skill, dict) and skill.get("id") == skill_id:
            for block in skill.get("blocks", []):
                if isinstance(block, dict) and block.get("id") == block_id:
                    return block.get("secret")
    for cfg in runner.configs or []:
        if cfg.id == skill_id:
            for b in cfg.blocks:
                secret = getattr(b, "secret", None)
                if b.id == block_id and secret is not None:
                    return str(secret.get_secret_value())
    raise ApiError(400, f"skill {skill_id!r}, block {block_id!r}: give the webhook's secret (it had none)")


@bp.get("/skills/<camera_id>")
@requires("viewer")
def skills_page(camera_id: str) -> Any:
    """The debug view and editor of one camera's skills."""
    _runner(camera_id)
    return render_template("skills.html", camera_id=camera_id)


@bp.get("/api/v1/cameras/<camera_id>/skills")
@requires("viewer")
def get_skills(camera_id: str) -> Any:
    """The camera's skills as written (secrets masked) and whether it runs today's rule."""
    raw = _masked(_current_raw(camera_id))
    return jsonify(
        {
            "camera": camera_id,
            "default": raw is None,
            "skills": raw,
            "yaml": yaml.safe_dump(raw, sort_keys=False) if raw is not None else "",
        }
    )


@bp.put("/api/v1/cameras/<camera_id>/skills")
@requires("admin")
def put_skills(camera_id: str) -> Any:
    """Replace the camera's skills without a restart; a broken edit is refused and the running skills stay."""
    hub = _hub()
    _runner(camera_id)
    body = read_json()
    if not isinstance(body, dict) or not ({"skills", "yaml"} & set(body)):
        raise ApiError(400, 'send {"skills": [...]} or {"yaml": "..."} ({"skills": null}: today\'s zone rule)')
    if "yaml" in body:
        text = body["yaml"]
        if not isinstance(text, str) or len(text) > MAX_YAML:
            raise ApiError(400, f"yaml must be text of at most {MAX_YAML} characters")
        try:
            raw = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ApiError(400, f"invalid YAML: {getattr(err, 'problem', None) or err}") from err
    else:
        raw = body["skills"]
    if raw is not None and not isinstance(raw, list):
        raise ApiError(400, "skills must be a list of skills")
    try:
        hub.save(camera_id, _unmask(raw, camera_id) if raw is not None else None)
    except ValidationError as err:
        raise ApiError(400, validation_message(err, limit=3)) from err
    except ShelfwatchError:
        raise
    except (ValueError, OSError) as err:
        raise ApiError(400, f"the skills could not be built: {err}") from err
    return get_skills(camera_id)


@bp.get("/api/v1/cameras/<camera_id>/skills/debug")
@requires("viewer")
def skills_debug(camera_id: str) -> Any:
    """Each skill's status and each block's last output, when it came and its time; a camera without skills shows
    its built-in default skill (`default: true`)."""
    runner = _runner(camera_id)
    if runner.active:
        return jsonify({**runner.debug(), "default": False})
    pipeline = current_services().pipelines.get(camera_id)
    shown = pipeline.default if pipeline is not None else runner
    return jsonify({**shown.debug(), "active": False, "default": True})
