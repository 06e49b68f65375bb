"""Regenerate the field tables of docs/CONFIG.md from the pydantic models: `python docs/gen_config_doc.py`."""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel

from edge.config import EdgeConfig
from trainer.config import TrainerConfig

BEGIN, END = "<!-- fields:begin -->", "<!-- fields:end -->"


def _submodels(annotation: object) -> list[type[BaseModel]]:
    """Every model inside an annotation (a discriminated union of kinds has several), in declaration order."""
    found, stack = [], [annotation]
    while stack:
        t = stack.pop(0)
        if isinstance(t, type) and issubclass(t, BaseModel):
            found.append(t)
        else:
            stack.extend(typing.get_args(t))
    return found


def _default(field: typing.Any) -> str:
    if field.is_required():
        return "(required)"
    if field.default_factory is not None:
        return ""
    value = field.default
    return f"`{value}`" if not isinstance(value, str) else f"`{value!r}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        desc = (field.description or "").replace("|", "\\|")
        default = _default(field).replace("|", "\\|")
        out.append(f"| `{key}` | {default} | {desc} |")
        subs = _submodels(field.annotation)
        listy = typing.get_origin(field.annotation) is list
        for sub in subs:
            kind = sub.model_fields.get("kind")
            if len(subs) > 1 and kind is not None:  # one kind of a union: its fields, the `kind` row aside
                out += [r for r in rows(sub, f"{key}{{kind: {kind.default}}}.") if ".kind`" not in r]
            else:
                out += rows(sub, key + ("[]." if listy else "."))
    return out


def tables() -> str:
    parts = []
    for title, model in (("edge.yaml", EdgeConfig), ("trainer.yaml", TrainerConfig)):
        parts.append(f"### `{title}`\n\n| key | default | meaning |\n|---|---|---|\n" + "\n".join(rows(model)))
    return "\n\n".join(parts)


def main() -> None:
    path = Path(__file__).with_name("CONFIG.md")
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{tables()}\n{END}{tail}")


if __name__ == "__main__":
    main()
