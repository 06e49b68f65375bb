"""`shelfwatch users ...` in a real subprocess against a real data_dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edge.store.users import UserStore


def shelfwatch(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_users_add_list_token(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    done = shelfwatch("users", "add", "alice", "--password-stdin", "--data-dir", data, "--json", stdin="s3cret-pass\n")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout.splitlines()[-1])["created"]
    assert created["username"] == "alice" and created["is_admin"] is True  # the first account is the admin
    assert "s3cret-pass" not in (tmp_path / "data" / "users.sqlite3").read_bytes().decode("latin-1")
    assert UserStore(data).authenticate("alice", "s3cret-pass") is not None

    again = shelfwatch("users", "add", "alice", "--password-stdin", "--data-dir", data, stdin="other-pass\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    short = shelfwatch("users", "add", "bob", "--password-stdin", "--data-dir", data, stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    empty = shelfwatch("users", "add", "bob", "--password-stdin", "--data-dir", data, stdin="")
    assert empty.returncode == 1 and "empty" in empty.stderr

    listed = shelfwatch("users", "list", "--data-dir", data, "--json")
    assert [u["username"] for u in json.loads(listed.stdout.splitlines()[-1])["users"]] == ["alice"]

    token = shelfwatch(
        "users", "token", "alice", "--password-stdin", "--data-dir", data, "--json", stdin="s3cret-pass\n"
    )
    assert token.returncode == 0, token.stderr
    value = json.loads(token.stdout.splitlines()[-1])["token"]
    found = UserStore(data).user_for_token(value)
    assert found is not None and found[0].username == "alice"
    wrong = shelfwatch("users", "token", "alice", "--password-stdin", "--data-dir", data, stdin="nope-nope\n")
    assert wrong.returncode == 1 and "wrong user name or password" in wrong.stderr
