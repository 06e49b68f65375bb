"""`shelfwatch dataset import|export|stats|split`: the dataset store from a shell."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.commands import command_group
from edge.errors import ConfigError, DatasetError
from edge.vocabulary import TASKS

if TYPE_CHECKING:
    from edge.config import DatasetRulesConfig
    from edge.store import DatasetStore

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
# Spelled out rather than imported so that registering the command stays cheap; read/write_dataset validate it.
FORMAT_HELP = "coco, yolo, voc, folders or csv"


def _data_dir(args: argparse.Namespace) -> tuple[Path, DatasetRulesConfig]:
    """--data-dir (or the config file's data_dir) and the config file's dataset rules."""
    from edge.config import DatasetRulesConfig, EdgeConfig, load_yaml_config

    rules = DatasetRulesConfig()
    data_dir = args.data_dir
    if args.config:
        cfg = load_yaml_config(args.config, EdgeConfig)
        rules = cfg.dataset
        data_dir = data_dir or cfg.data_dir
    if not data_dir:
        raise ConfigError("give --data-dir DIR (or --config edge.yaml, whose data_dir is used)")
    return Path(data_dir), rules


def _open_store(args: argparse.Namespace, *, create: bool = False) -> DatasetStore:
    """The store of --data-dir (or the config file's data_dir), with the config file's dataset rules."""
    from edge.errors import StoreError
    from edge.store import DatasetStore
    from edge.store.store import DB_NAME

    data_dir, rules = _data_dir(args)
    # Only import creates a store: a mistyped --data-dir must not answer with a new, empty dataset.
    if not create and not (Path(data_dir) / DB_NAME).is_file():
        raise StoreError(f"no dataset store in {data_dir} (no {DB_NAME}); import a dataset or capture images first")
    return DatasetStore(Path(data_dir), rules)


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


@contextlib.contextmanager
def _dataset_root(src: Path, max_archive_mb: float, data_dir: Path) -> Iterator[Path]:
    """The folder (or file) to read: an archive is extracted safely into a work folder that is removed after.

    The work folder is under data_dir (see edge.store.scratch): one left by a killed import is removed at the next
    start instead of staying in /tmp.
    """
    if not src.exists():
        raise DatasetError(f"dataset {src} does not exist")
    if not _is_archive(src):
        yield src
        return
    try:
        from edge.datasets.archive import extract_archive
    except ImportError as err:
        raise DatasetError(f"{src}: archives cannot be imported by this build ({err}); extract it first") from err
    from edge.store import scratch
    from edge.store.store import SCRATCH_DIR

    with scratch.folder(data_dir / SCRATCH_DIR, "import") as tmp:
        yield extract_archive(src, tmp / "dataset", max_bytes=int(max_archive_mb * 1024 * 1024))


def _column(value: str | None) -> int | str | None:
    """A CSV column given on the command line: a 0-based index when it is a number, else a header name."""
    return int(value) if value is not None and value.isdigit() else value


def cmd_import(args: argparse.Namespace) -> int:
    """Read a dataset folder or archive and add it to the store (all or nothing)."""
    from edge.datasets.formats import detect_format, read_dataset

    src = Path(args.src)
    options: dict[str, Any] = {
        "annotations": args.annotations,
        "path_column": _column(args.path_column),
        "label_column": _column(args.label_column),
        "labels": args.labels,
    }
    with _dataset_root(src, args.max_archive_mb, _data_dir(args)[0]) as root:
        fmt = detect_format(root) if args.format == "auto" else args.format
        ds = read_dataset(root, fmt, **options)
        log.info("read %s images and %s labels from %s as %s", len(ds.samples), len(ds.labels), src, fmt)
        with _open_store(args, create=True) as store:
            stats = store.import_dataset(ds, split_from_source=not args.ignore_splits, project=args.project)
    result = {"source": str(src), "format": fmt, "samples": len(ds.samples), **stats}
    if args.json:
        from edge.cli import print_json

        print_json(result)
    else:
        print(
            f"imported {stats['images']} new images ({stats['duplicates']} already stored), {stats['boxes']} boxes, "
            f"{stats['tags']} tags and {stats['labels']} new labels from {src} ({fmt})"
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the store's dataset in a format into a new or empty folder."""
    from edge.datasets.formats import write_dataset

    with _open_store(args) as store:
        ds = store.export_dataset(only_tagged=args.only_tagged, project=args.project)
        write_dataset(ds, Path(args.out), args.format)
    result = {
        "out": str(args.out),
        "format": args.format,
        "images": len(ds.samples),
        "boxes": sum(len(s.boxes) for s in ds.samples),
        "tags": sum(len(s.tags) for s in ds.samples),
        "labels": len(ds.labels),
    }
    if args.json:
        from edge.cli import print_json

        print_json(result)
    else:
        print(f"exported {result['images']} images, {result['boxes']} boxes as {args.format} to {args.out}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Print per-label counts and the readiness verdict; exit 0 either way (the verdict is data)."""
    with _open_store(args) as store:
        summary = store.summary(args.task, project=args.project)
    if args.json:
        from edge.cli import print_json

        print_json(summary)
        return 0
    print(
        f"{summary['images']} images: {summary['tagged']} tagged, {summary['untagged']} untagged, "
        f"{summary['boxes']} boxes; task {summary['task']}"
    )
    width = max([len(n) for n in summary["per_label"]] + [5])
    print(f"  {'label':<{width}}  images  boxes")
    for name, counts in summary["per_label"].items():
        print(f"  {name:<{width}}  {counts['images']:>6}  {counts['boxes']:>5}")
    print("splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    print("ready to train" if summary["ready"] else "not ready:")
    for problem in summary["problems"]:
        print(f"  - {problem}")
    for warning in summary["warnings"]:
        print(f"  warning: {warning}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    """Assign train/test splits, stratified by label (80/20 by default)."""
    with _open_store(args) as store:
        counts = store.auto_split(args.test_fraction, args.seed, only_auto=not args.all, project=args.project)
    if args.json:
        from edge.cli import print_json

        print_json({"splits": counts})
    else:
        print("splits: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="the device's data folder (holds shelfwatch.db and images/)")
    p.add_argument("--config", help="edge.yaml: its data_dir (unless --data-dir) and dataset rules are used")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _project_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", help="the project (id or name; default: the default project)")


def register(sub: Any) -> None:
    """Add `shelfwatch dataset ...`."""
    dsub = command_group(sub, "dataset", "import, export, inspect and split the dataset store")

    imp = dsub.add_parser("import", help="add a dataset folder or .zip/.tar.gz archive to the store")
    imp.add_argument("src", help="dataset folder, annotation file (COCO .json, .csv), or archive")
    imp.add_argument("--format", default="auto", help=f"{FORMAT_HELP} or auto (the default: detected)")
    imp.add_argument("--annotations", help="coco: the annotations file name inside SRC")
    imp.add_argument("--path-column", help="csv: column of image paths (header name or 0-based index)")
    imp.add_argument("--label-column", help="csv: column of label names or numeric ids (name or index)")
    imp.add_argument(
        "--labels", help="csv: names of numeric label ids: a labels file (one per line) or 'name0,name1,...'"
    )
    imp.add_argument(
        "--max-archive-mb", type=float, default=4096, help="largest uncompressed archive content (default 4096 MiB)"
    )
    imp.add_argument("--ignore-splits", action="store_true", help="put every image in split 'auto'")
    _store_args(imp)
    _project_arg(imp)
    imp.set_defaults(func=cmd_import)

    exp = dsub.add_parser("export", help="write the store's dataset in a format")
    exp.add_argument("--format", required=True, help=FORMAT_HELP)
    exp.add_argument("--out", required=True, help="output folder (new or empty)")
    exp.add_argument("--only-tagged", action="store_true", help="leave out images without tags or boxes")
    _store_args(exp)
    _project_arg(exp)
    exp.set_defaults(func=cmd_export)

    st = dsub.add_parser("stats", help="per-label counts and the readiness verdict")
    st.add_argument("--task", choices=TASKS, help="default: detection if any boxes")
    _store_args(st)
    _project_arg(st)
    st.set_defaults(func=cmd_stats)

    sp = dsub.add_parser("split", help="assign train/test splits, stratified by label")
    sp.add_argument("--test-fraction", type=float, default=0.2)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--all", action="store_true", help="re-split every image, not only those in split 'auto'")
    _store_args(sp)
    _project_arg(sp)
    sp.set_defaults(func=cmd_split)
