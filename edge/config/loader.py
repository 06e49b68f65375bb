"""Load a pydantic config tree from YAML and map validation errors back to YAML line numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from edge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _node_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest YAML node found along a pydantic error location."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = None
            for k_node, v_node in node.value:
                if isinstance(k_node, yaml.ScalarNode) and k_node.value == str(key):
                    match = (k_node, v_node)
                    break
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def yaml_line(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc` (keys and list indexes), for warnings about valid configs."""
    try:
        return _node_line(yaml.compose(text, Loader=yaml.SafeLoader), loc)
    except yaml.YAMLError:
        return None


def parse_yaml_config(text: str, model: type[M], source: str = "<config>") -> M:
    """Validate YAML text against `model`; every error carries `source:line`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the top level must be a mapping of settings")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            # A custom error may say where inside its location it lies (a skill's block: ctx["at"]).
            loc = tuple(e["loc"]) + tuple((e.get("ctx") or {}).get("at", ()))
            line = _node_line(root, loc)
            where = f"{source}:{line}" if line else source
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"{where}: {dotted}: {e['msg']}")
        raise ConfigError("\n".join(lines)) from err


def load_yaml_config(path: str | Path, model: type[M]) -> M:
    """Read and validate a YAML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{p}: cannot read config: {err.strerror or err}") from err
    return parse_yaml_config(text, model, source=str(p))


def dump_yaml_config(cfg: BaseModel) -> str:
    """The config as YAML (secrets masked by pydantic), for `config show` and the docs."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
