"""`shelfwatch projects list|create`: the device's projects from a shell."""

from __future__ import annotations

import argparse
from typing import Any

from edge.commands import command_group
from edge.vocabulary import TASKS


def _label(spec: str) -> tuple[str, str]:
    """`NAME` or `NAME=DESCRIPTION` (the description may hold further `=`)."""
    name, _, description = spec.partition("=")
    if not name.strip():
        raise argparse.ArgumentTypeError(f"label {spec!r} needs a name: NAME or NAME=DESCRIPTION")
    return name.strip(), description.strip()


def cmd_list(args: argparse.Namespace) -> int:
    """Print every project with its task and counts."""
    from edge.cli import print_result
    from edge.commands.dataset_cmd import _open_store

    with _open_store(args) as store:
        found = store.list_projects()
        items = [{**p.as_dict(), "labels": [lab.name for lab in store.list_labels(project=p.id)]} for p in found]
    width = max([len(p.name) for p in found] + [4])
    lines = [f"{'id':>4}  {'name':<{width}}  {'task':<14}  images  labels"]
    for item in items:
        lines.append(
            f"{item['id']:>4}  {item['name']:<{width}}  {item['task']:<14}  {item['images']:>6}  "
            f"{', '.join(item['labels']) or '-'}"
        )
    print_result(args, {"items": items}, "\n".join(lines))
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    """Create a project with its task and labels."""
    from edge.cli import print_result
    from edge.commands.dataset_cmd import _open_store

    with _open_store(args, create=True) as store:
        project = store.create_project(args.name, args.task, args.label or [])
        labels = [lab.as_dict() for lab in store.list_labels(project=project.id)]
    result = {**project.as_dict(), "labels": labels}
    names = ", ".join(lab["name"] for lab in labels) or "no labels yet"
    print_result(args, result, f"created project {project.id} {project.name!r} ({project.task}): {names}")
    return 0


def register(sub: Any) -> None:
    """Add `shelfwatch projects ...`."""
    from edge.commands.dataset_cmd import _store_args

    psub = command_group(sub, "projects", "list and create projects (a name, a task and labels, with its images)")

    ls = psub.add_parser("list", help="every project with its task, image count and labels")
    _store_args(ls)
    ls.set_defaults(func=cmd_list)

    cr = psub.add_parser("create", help="a new project: its name, the task it trains and its labels")
    cr.add_argument("name", help="the project's name (unique, case-insensitive)")
    cr.add_argument("--task", required=True, choices=TASKS, help="classification (zones or whole images) or detection")
    cr.add_argument(
        "--label",
        action="append",
        type=_label,
        metavar="NAME[=DESCRIPTION]",
        help="a label of the project (repeat for more)",
    )
    _store_args(cr)
    cr.set_defaults(func=cmd_create)
