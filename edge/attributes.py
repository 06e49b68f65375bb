"""An object's JSON form as the API documents it: the named attributes, in the documented order."""

from __future__ import annotations

from typing import Any


def attributes(obj: object, *names: str) -> dict[str, Any]:
    """{name: obj.name} for each of `names`, in that order (properties included; a field left out stays private)."""
    return {name: getattr(obj, name) for name in names}
