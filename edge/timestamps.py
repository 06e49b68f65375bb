"""UTC timestamps in the forms the contracts use, written once.

- ISO 8601 with a `Z` suffix, to the second (bundle `created`, dataset rows, training runs, refusals) or to the
  millisecond (MQTT `ts`/`since`, trainer jobs, image capture times);
- a compact stamp for ids and version names (`20261121T143000`, a bundle version adds `Z` and a suffix).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Precision = Literal["seconds", "milliseconds"]


def iso_utc(value: datetime, timespec: Precision = "seconds") -> str:
    """`value` as ISO 8601 UTC with a Z suffix; a naive value (cameras, clients) is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def utc_now_iso(timespec: Precision = "seconds") -> str:
    """Now as ISO 8601 UTC with a Z suffix."""
    return iso_utc(datetime.now(UTC), timespec)


def utc_stamp(value: datetime | None = None) -> str:
    """Compact UTC stamp for ids: YYYYMMDDTHHMMSS (now unless given)."""
    return (value or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S")
