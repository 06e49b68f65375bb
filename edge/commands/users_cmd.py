"""`shelfwatch users add|list|passwd|role|remove|token`: web studio accounts and their roles from the command line.

`users passwd` ends every session and API token of the account (whoever held them); roles are admin, labeller
(capture, tag, review) and viewer (read only).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from edge.commands import command_group
from edge.errors import ShelfwatchError


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise ShelfwatchError("the two passwords differ")
    else:
        raise ShelfwatchError("no terminal to ask for the password: pass --password-stdin and pipe it in")
    if not password:
        raise ShelfwatchError("the password is empty")
    return password


def _store(args: argparse.Namespace) -> Any:
    from edge.store.users import UserStore

    return UserStore(args.data_dir)


def _done(args: argparse.Namespace, result: dict[str, Any], line: str) -> int:
    """Say what was done: `result` as JSON with --json, else the one line; exit status 0."""
    if args.json:
        from edge.cli import print_json

        print_json(result)
    else:
        print(line)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    """Create an account with a role (the first one is always an admin)."""
    from edge.store.users import check_role

    store = _store(args)
    role = check_role("admin" if args.admin else args.role or "viewer")
    password = _read_password(args)
    if store.count() == 0:
        role = "admin"
    user = store.create(args.name, password, role=role)
    return _done(args, {"created": user.as_dict()}, f"created {user.role} {user.username}")


def cmd_role(args: argparse.Namespace) -> int:
    """Give an account another role."""
    user = _store(args).set_role(args.name, args.role)
    return _done(args, {"changed": user.as_dict()}, f"{user.username} is now {user.role}")


def cmd_remove(args: argparse.Namespace) -> int:
    """Remove an account with its sessions and tokens."""
    _store(args).delete(args.name)
    return _done(args, {"removed": args.name}, f"removed {args.name}")


def cmd_passwd(args: argparse.Namespace) -> int:
    """Replace an account's password."""
    store = _store(args)
    store.set_password(args.name, _read_password(args))
    return _done(
        args, {"password_changed": args.name}, f"password of {args.name} changed; its sessions and API tokens are ended"
    )


def cmd_list(args: argparse.Namespace) -> int:
    """List accounts."""
    users = _store(args).all()
    if args.json:
        from edge.cli import print_json

        print_json({"users": [u.as_dict() for u in users]})
    else:
        for u in users:
            print(f"{u.username} ({u.role})")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Issue an API bearer token for an account (printed once)."""
    store = _store(args)
    user = store.authenticate(args.name, _read_password(args))
    if user is None:
        raise ShelfwatchError("wrong user name or password")
    token, meta = store.issue_token(user.id, args.token_name)
    return _done(args, {"token": token, "id": meta.id}, token)


def register(sub: Any) -> None:
    usub = command_group(sub, "users", "web studio accounts and API tokens")

    def common(q: argparse.ArgumentParser, *, name: bool = True, password: bool = True) -> None:
        if name:
            q.add_argument("name", help="user name")
        q.add_argument("--data-dir", required=True, help="the device's data_dir (where users.sqlite3 lives)")
        if password:
            q.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
        q.add_argument("--json", action="store_true")

    from edge.store.users import ROLES

    a = usub.add_parser("add", help="create an account (the first account is the admin)")
    common(a)
    a.add_argument("--role", help=f"{' | '.join(ROLES)} (default viewer; the first account is always admin)")
    a.add_argument("--admin", action="store_true", help="the same as --role admin")
    a.set_defaults(func=cmd_add)
    r = usub.add_parser("role", help="give an account another role")
    common(r, password=False)
    r.add_argument("role", help=" | ".join(ROLES))
    r.set_defaults(func=cmd_role)
    rm = usub.add_parser("remove", help="remove an account with its sessions and API tokens")
    common(rm, password=False)
    rm.set_defaults(func=cmd_remove)
    pw = usub.add_parser("passwd", help="change an account's password (ends its sessions and API tokens)")
    common(pw)
    pw.set_defaults(func=cmd_passwd)
    ls = usub.add_parser("list", help="list accounts")
    common(ls, name=False, password=False)
    ls.set_defaults(func=cmd_list)
    t = usub.add_parser("token", help="issue an API bearer token (printed once; only its hash is kept)")
    common(t)
    t.add_argument("--token-name", default="cli", help="what the token is for")
    t.set_defaults(func=cmd_token)
