"""`shelfwatch users ...`: once in a real subprocess, the error cases through the same entry point in-process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main
from edge.store.users import UserStore


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_users_add_in_a_real_process(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "edge", "users", "add", "alice", "--password-stdin", "--data-dir", data, "--json"],
        input="s3cret-pass\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout.splitlines()[-1])["created"]
    assert created["username"] == "alice" and created["is_admin"] is True  # the first account is the admin
    assert b"s3cret-pass" not in (tmp_path / "data" / "users.sqlite3").read_bytes()
    assert UserStore(data).authenticate("alice", "s3cret-pass") is not None


def test_users_errors_list_and_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    UserStore(data).create("alice", "s3cret-pass", is_admin=True)
    rc, _, err = run_cli(
        monkeypatch, capsys, "users", "add", "alice", "--password-stdin", "--data-dir", data, stdin="other-pass\n"
    )
    assert rc == 1 and "already exists" in err
    rc, _, err = run_cli(
        monkeypatch, capsys, "users", "add", "bob", "--password-stdin", "--data-dir", data, stdin="short\n"
    )
    assert rc == 1 and "at least 8 characters" in err
    rc, _, err = run_cli(monkeypatch, capsys, "users", "add", "bob", "--password-stdin", "--data-dir", data, stdin="")
    assert rc == 1 and "empty" in err
    rc, _, err = run_cli(monkeypatch, capsys, "users", "add", "bob", "--data-dir", data, stdin="pw-from-a-pipe\n")
    assert rc == 1 and "--password-stdin" in err  # no terminal: refuse rather than read a password silently
    rc, out, _ = run_cli(
        monkeypatch, capsys, "users", "add", "bob", "--password-stdin", "--data-dir", data, stdin="bob-pass-1\n"
    )
    assert rc == 0 and out.strip() == "created viewer bob"  # least privilege unless --role says otherwise

    rc, out, _ = run_cli(monkeypatch, capsys, "users", "list", "--data-dir", data, "--json")
    users = json.loads(out.splitlines()[-1])["users"]
    assert [(u["username"], u["is_admin"]) for u in users] == [("alice", True), ("bob", False)]

    rc, out, _ = run_cli(
        monkeypatch,
        capsys,
        "users",
        "token",
        "alice",
        "--password-stdin",
        "--data-dir",
        data,
        "--json",
        stdin="s3cret-pass\n",
    )
    assert rc == 0
    found = UserStore(data).user_for_token(json.loads(out.splitlines()[-1])["token"])
    assert found is not None and found[0].username == "alice"
    rc, _, err = run_cli(
        monkeypatch, capsys, "users", "token", "alice", "--password-stdin", "--data-dir", data, stdin="nope-nope\n"
    )
    assert rc == 1 and "wrong user name or password" in err

    rc, out, _ = run_cli(
        monkeypatch,
        capsys,
        "users",
        "passwd",
        "bob",
        "--password-stdin",
        "--data-dir",
        data,
        "--json",
        stdin="new-bob-pass\n",
    )
    assert rc == 0 and UserStore(data).authenticate("bob", "new-bob-pass") is not None
    assert json.loads(out.splitlines()[-1]) == {"password_changed": "bob"}
    rc, _, err = run_cli(
        monkeypatch, capsys, "users", "passwd", "nobody", "--password-stdin", "--data-dir", data, stdin="pass-pass-1\n"
    )
    assert rc == 1 and "no user 'nobody'" in err
