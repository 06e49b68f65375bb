"""Warnings `shelfwatch config validate` prints for skills: projects the device's store does not know (yet).

Not errors: a project may be created in the studio after the config is written; until then its skills are idle.
"""

from __future__ import annotations

import logging
from typing import Any

from edge.config.loader import yaml_line

log = logging.getLogger(__name__)


def known_projects(data_dir: Any) -> set[str] | None:
    """Project names (lower-case) in the store under data_dir; None when there is no store there yet."""
    from edge.store.store import DB_NAME, DatasetStore

    if not (data_dir / DB_NAME).is_file():
        return None
    try:
        store = DatasetStore(data_dir)
    except Exception as err:  # an unreadable store is reported by the agent; here it only means "not checked"
        log.debug("store under %s not readable: %s", data_dir, err)
        return None
    try:
        return {p.name.lower() for p in store.list_projects()}
    finally:
        store.close()


def project_warnings(cfg: Any, text: str, source: str) -> list[str]:
    """`source:line: skill 'x', block 'y': project 'z' ...` for every project the store lacks."""
    known = known_projects(cfg.data_dir)
    out = []
    for ci, cam in enumerate(cfg.cameras):
        for si, skill in enumerate(cam.skills or []):
            for bi, name in skill.projects():
                if known is not None and name.lower() in known:
                    continue
                line = yaml_line(text, ("cameras", ci, "skills", si, "blocks", bi, "project"))
                where = f"{source}:{line}" if line else source
                why = "does not exist yet" if known is not None else f"is not checked (no store in {cfg.data_dir})"
                block = skill.blocks[bi].id
                out.append(
                    f"{where}: warning: camera {cam.id!r}, skill {skill.id!r}, block {block!r}: project {name!r} "
                    f"{why}; the skill stays idle until it has an active version"
                )
    return out
