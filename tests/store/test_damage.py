"""A damaged or lost shelfwatch.db, and what a killed import or delete leaves behind, on real files and processes."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from edge.errors import StoreError
from edge.store import DatasetStore
from edge.store.image_rows import PENDING_DIR
from edge.store.images import TEMP_PREFIX
from tests.store.helpers import image_bytes

REPO = Path(__file__).resolve().parents[2]


def image_files(store_dir: Path) -> list[Path]:
    return sorted(p for p in (store_dir / "images").rglob("*") if p.is_file() and PENDING_DIR not in p.parts)


def filled(data_dir: Path, n: int = 4) -> list[int]:
    with DatasetStore(data_dir) as store:
        store.create_label("low")
        ids = [store.add_image(image_bytes(i), filename=f"i{i}.jpg").id for i in range(n)]
        store.set_annotations(ids[0], ["low"], [])
    return ids


@pytest.mark.parametrize("loss", ["truncated", "deleted"])
def test_a_lost_database_beside_image_files_is_refused_and_the_files_stay(tmp_path: Path, loss: str) -> None:
    filled(tmp_path)
    db = tmp_path / "shelfwatch.db"
    for extra in (db.with_name("shelfwatch.db-wal"), db.with_name("shelfwatch.db-shm")):
        extra.unlink(missing_ok=True)
    if loss == "truncated":
        db.write_bytes(b"")
    else:
        db.unlink()
    with pytest.raises(StoreError) as err:
        DatasetStore(tmp_path)
    message = str(err.value)
    assert str(db) in message and "4 image files" in message and "backup" in message
    assert len(image_files(tmp_path)) == 4
    assert not db.exists() or db.stat().st_size == 0  # nothing was created over it


def test_a_new_data_dir_still_opens(tmp_path: Path) -> None:
    with DatasetStore(tmp_path / "fresh") as store:
        assert store.list_images() == ([], 0)


def test_a_corrupt_page_is_refused_at_start_naming_the_file(tmp_path: Path) -> None:
    with DatasetStore(tmp_path) as store:
        for i in range(40):
            store.create_label(f"label{i}", "a description long enough to need several pages " * 8)
    db = tmp_path / "shelfwatch.db"
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 4
    with db.open("r+b") as fh:  # scribble over the last page (a b-tree page of the labels table)
        fh.seek((pages - 1) * page_size)
        fh.write(b"\x0d\xff\xff\xff" * (page_size // 4))
    with pytest.raises(StoreError) as err:
        DatasetStore(tmp_path)
    assert str(db) in str(err.value) and "damaged" in str(err.value) and ".recover" in str(err.value)
    assert "\n" not in str(err.value)  # one line on the CLI


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from edge.store import DatasetStore, image_rows
    from edge.datasets.model import Dataset, LabelInfo, Sample

    data_dir, mode = Path(sys.argv[1]), sys.argv[2]
    store = DatasetStore(data_dir)
    real_insert, real_delete = image_rows.insert, image_rows.delete
    calls = {"n": 0}

    def insert_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # two files written in this transaction, nothing committed
            os.kill(os.getpid(), signal.SIGKILL)
        return real_insert(*args, **kwargs)

    def delete_then_die(*args, **kwargs):
        real_delete(*args, **kwargs)  # rows deleted and files set aside, not committed
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "import":
        with store.scratch("import") as work:
            (work / "extracted.bin").write_bytes(b"x" * 1_000_000)
            image_rows.insert = insert_then_die
            samples = [Sample(path=p, name=p.name, tags=["low"]) for p in sorted(Path(sys.argv[3]).iterdir())]
            store.import_dataset(Dataset(labels=[LabelInfo("low")], samples=samples))
    else:
        image_rows.delete = delete_then_die
        store.delete_images([int(i) for i in sys.argv[3].split(",")])
    """
)


def run_child(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]


def test_an_import_killed_before_its_commit_leaves_nothing_after_the_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    filled(data, n=2)
    source = tmp_path / "source"
    source.mkdir()
    for i in range(10, 15):
        (source / f"s{i}.jpg").write_bytes(image_bytes(i))
    run_child(str(data), "import", str(source))
    assert len(image_files(data)) == 4  # two files of the killed import have no row
    assert [p.name for p in (data / "tmp").iterdir()]  # its work folder is still there

    with DatasetStore(data) as store:
        assert store.list_images()[1] == 2
        files = image_files(data)
        assert len(files) == 2 and {store.image_path(r.id) for r in store.list_images()[0]} == set(files)
        assert list((data / "tmp").iterdir()) == []


def test_a_restored_older_database_keeps_the_image_files_it_does_not_know(tmp_path: Path) -> None:
    data = tmp_path / "data"
    filled(data, n=2)
    backup = tmp_path / "backup.db"
    shutil.copy(data / "shelfwatch.db", backup)
    with DatasetStore(data) as store:
        store.add_image(image_bytes(50))
        store.add_image(image_bytes(51))
    for extra in ("shelfwatch.db-wal", "shelfwatch.db-shm"):
        (data / extra).unlink(missing_ok=True)
    shutil.copy(backup, data / "shelfwatch.db")  # the user followed "restore it from a backup"
    with DatasetStore(data) as store:
        assert store.list_images()[1] == 2
    assert len(image_files(data)) == 4  # the two newer photos are not thrown away as orphans


def test_a_delete_killed_before_its_commit_gets_its_files_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = filled(data, n=3)
    run_child(str(data), "delete", f"{ids[0]},{ids[1]}")
    assert any(p.name.startswith(f"{TEMP_PREFIX}deleted-") for p in image_files(data))

    with DatasetStore(data) as store:
        records, total = store.list_images()
        assert total == 3  # the delete never committed
        for rec in records:
            assert store.image_path(rec.id).read_bytes() == image_bytes(ids.index(rec.id))
        assert not any(p.name.startswith(TEMP_PREFIX) for p in image_files(data))


def test_a_work_folder_of_a_live_process_is_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with DatasetStore(data) as store, store.scratch("import") as work:
        (work / "part").write_bytes(b"x")
        DatasetStore(data).close()  # a second process opening the store (here: this live one)
        assert (work / "part").exists()
    assert not work.exists()


CLI_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import edge.datasets.archive as archive
    from edge.cli import main

    real_extract = archive.extract_archive

    def extract_then_die(*args, **kwargs):
        root = real_extract(*args, **kwargs)  # the archive is extracted into the work folder
        os.kill(os.getpid(), signal.SIGKILL)
        return root

    archive.extract_archive = extract_then_die
    main(["dataset", "import", sys.argv[1], "--format", "folders", "--data-dir", sys.argv[2]])
    """
)


def test_a_cli_import_killed_mid_extraction_leaves_its_work_folder_under_data_dir_until_the_next_start(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    filled(data, n=1)
    src = tmp_path / "ds.zip"
    with zipfile.ZipFile(src, "w") as zf:
        for i in range(3):
            zf.writestr(f"low/s{i}.jpg", image_bytes(20 + i))
    proc = subprocess.run(
        [sys.executable, "-c", CLI_CHILD, str(src), str(data)], cwd=REPO, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    [left] = list((data / "tmp").iterdir())
    assert left.name.startswith("import-") and len(list(left.rglob("*.jpg"))) == 3
    DatasetStore(data).close()
    assert list((data / "tmp").iterdir()) == []
