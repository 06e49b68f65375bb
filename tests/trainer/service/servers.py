"""Real servers the trainer service tests start on free loopback ports: Redis (Debian `redis-server`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.broker import free_port, wait_port

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
)


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, no persistence, in its own folder; stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed (Debian package 'redis-server'; `make test` installs it)")
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL for Celery."""
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=log,
            stderr=log,
        )
        wait_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


PG_BIN = (
    next(
        (
            Path(p)
            for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
            if (Path(p) / "initdb").exists()
        ),
        None,
    )
    if Path("/usr/lib/postgresql").is_dir()
    else None
)


class PostgresServer:
    """A throw-away PostgreSQL cluster (initdb + pg_ctl) on 127.0.0.1:<free port>, trust auth, in a temp dir.

    PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system user (runuser)."""

    def __init__(self) -> None:
        import os
        import pwd
        import tempfile

        if PG_BIN is None:
            pytest.skip("PostgreSQL is not installed (Debian package 'postgresql'; `make test` installs it)")
        self.as_user: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="shelfwatch-pg-"))
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root without a 'postgres' user to run PostgreSQL as")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.data = self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://shelfwatch@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, timeout=120)

    def __enter__(self) -> PostgresServer:
        assert PG_BIN is not None
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "shelfwatch", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "pg.log"), "-w", "start"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil

        assert PG_BIN is not None
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
