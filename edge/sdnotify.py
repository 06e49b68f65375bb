"""systemd notify protocol (sd_notify) over the plain socket in $NOTIFY_SOCKET; no dependency, no-op without it."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def _address() -> str | None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return None
    if addr.startswith("@"):  # abstract namespace socket
        return "\0" + addr[1:]
    return addr


def notify(state: str) -> bool:
    """Send one notification (e.g. `READY=1`, `WATCHDOG=1`, `STATUS=...`); False when not under systemd."""
    addr = _address()
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8"))
        return True
    except OSError as err:
        log.warning("sd_notify %s failed: %s", state.split("=", 1)[0], err)
        return False


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec (seconds) when the watchdog is enabled for this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.5, int(usec) / 2_000_000)
    except ValueError:
        return None
