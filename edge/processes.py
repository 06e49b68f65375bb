"""Child processes (a private broker, a local trainer, training workers): stop one politely, then firmly."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 5.0) -> int:
    """SIGTERM, wait up to timeout seconds, then SIGKILL; the exit code. A process that already ended is left alone."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
