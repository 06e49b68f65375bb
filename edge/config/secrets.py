"""Secret values: `${NAME}` placeholders resolved from the environment or systemd credentials.

A secret field accepts a literal string, or `${NAME}`: the environment variable NAME if set, otherwise the file
NAME inside `$CREDENTIALS_DIRECTORY` (what systemd's `LoadCredential=NAME:/path` provides). An unresolvable
placeholder is a configuration error, never an empty password.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, SecretStr

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")


def resolve_secret(value: object) -> object:
    """Replace every `${NAME}` in a string with the environment variable or credential file NAME."""
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in os.environ:
            return os.environ[name]
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir:
            path = Path(cred_dir) / name
            if path.is_file():
                return path.read_text(encoding="utf-8").rstrip("\r\n")
        raise ValueError(
            f"secret placeholder ${{{name}}} is not set: define the environment variable {name} "
            f"or provide a credential file {name} in $CREDENTIALS_DIRECTORY"
        )

    return _PLACEHOLDER.sub(lookup, value)


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]
"""A string that may come from `${ENV}` or `$CREDENTIALS_DIRECTORY`, and never prints itself."""
