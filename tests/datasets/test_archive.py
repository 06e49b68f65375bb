"""Safe archive extraction: zip-slip, links, bombs, truncation; a refusal leaves nothing behind."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from edge.datasets.archive import extract_archive
from edge.errors import DatasetError

MB = 1 << 20


def make_zip(path: Path, members: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def make_tar(path: Path, members: dict[str, bytes], *, extra: list[tarfile.TarInfo] = (), mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return path


def assert_nothing_left(dest: Path) -> None:
    assert not dest.exists() or not any(dest.iterdir()), "dest holds nothing after a refusal"
    assert not [p for p in dest.parent.iterdir() if ".extracting-" in p.name], "no staging folder is left"


@pytest.mark.parametrize("kind", ["zip", "tgz", "tar"])
def test_single_top_level_folder_is_the_root(tmp_path: Path, kind: str) -> None:
    members = {"shop/data.yaml": b"names: [a]\n", "shop/train/images/x.jpg": b"jpeg", "__MACOSX/shop/._x": b"junk"}
    archive = (
        make_zip(tmp_path / "a.zip", members)
        if kind == "zip"
        else make_tar(tmp_path / f"a.{kind}", members, mode="w:gz" if kind == "tgz" else "w")
    )
    dest = tmp_path / "out"
    root = extract_archive(archive, dest, max_bytes=MB)
    assert root == dest / "shop"
    assert (root / "train" / "images" / "x.jpg").read_bytes() == b"jpeg"
    assert not (dest / "__MACOSX").exists()


def test_several_top_level_entries_give_dest(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"a/x.jpg": b"1", "data.yaml": b"2"})
    dest = tmp_path / "existing-empty"
    dest.mkdir()
    assert extract_archive(archive, dest, max_bytes=MB) == dest
    assert sorted(p.name for p in dest.iterdir()) == ["a", "data.yaml"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.txt", r"'\.\./evil\.txt' points outside"),
        ("ok/../../evil.txt", "points outside"),
        ("/etc/evil.txt", "absolute path"),
        ("C:/evil.txt", "absolute path"),
        ("..\\evil.txt", "points outside"),
    ],
)
@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_zip_slip_members_are_refused(tmp_path: Path, name: str, message: str, kind: str) -> None:
    members = {"good/a.jpg": b"fine", name: b"owned"}
    archive = make_zip(tmp_path / "a.zip", members) if kind == "zip" else make_tar(tmp_path / "a.tgz", members)
    dest = tmp_path / "sub" / "out"
    with pytest.raises(DatasetError, match=message):
        extract_archive(archive, dest, max_bytes=MB)
    assert_nothing_left(dest)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "evil.txt").exists()


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"a.jpg": b"x"}, symlink="link.jpg")
    with pytest.raises(DatasetError, match=r"'link\.jpg' is a symbolic link"):
        extract_archive(archive, tmp_path / "out", max_bytes=MB)
    assert_nothing_left(tmp_path / "out")


@pytest.mark.parametrize(
    ("kind", "message"),
    [(tarfile.SYMTYPE, "is a link"), (tarfile.LNKTYPE, "is a link"), (tarfile.CHRTYPE, "is a device")],
)
def test_tar_links_and_devices_are_refused(tmp_path: Path, kind: bytes, message: str) -> None:
    special = tarfile.TarInfo("data/special")
    special.type = kind
    special.linkname = "/etc/passwd"
    archive = make_tar(tmp_path / "a.tgz", {"data/a.jpg": b"x"}, extra=[special])
    with pytest.raises(DatasetError, match=f"'data/special' {message}"):
        extract_archive(archive, tmp_path / "out", max_bytes=MB)
    assert_nothing_left(tmp_path / "out")


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_too_large_uncompressed_is_refused(tmp_path: Path, kind: str) -> None:
    members = {"a/small.txt": b"x", "a/zeros.bin": bytes(3 * MB)}
    archive = make_zip(tmp_path / "a.zip", members) if kind == "zip" else make_tar(tmp_path / "a.tgz", members)
    assert archive.stat().st_size < 100_000, "a compression bomb: small archive, big contents"
    with pytest.raises(DatasetError, match=r"zeros\.bin.*over the limit|exceed the limit.*zeros\.bin"):
        extract_archive(archive, tmp_path / "out", max_bytes=MB)
    assert_nothing_left(tmp_path / "out")


def test_size_is_counted_while_writing_not_taken_from_headers(tmp_path: Path) -> None:
    members = {f"a/part{i}.bin": bytes(400_000) for i in range(3)}
    archive = make_zip(tmp_path / "a.zip", members)
    data = bytearray(archive.read_bytes())
    # Each member alone is under the limit; only the running total crosses it.
    with pytest.raises(
        DatasetError, match=r"exceed the limit of 1048576 bytes \(reached while extracting 'a/part2\.bin'\)"
    ):
        extract_archive(archive, tmp_path / "out", max_bytes=MB)
    # A zip whose headers under-declare a member's size must not extract the hidden bytes unnoticed.
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        start = 0
        while (pos := data.find(header, start)) != -1:
            size_offset = pos + (22 if header == b"PK\x03\x04" else 24)
            data[size_offset : size_offset + 4] = (10).to_bytes(4, "little")
            start = pos + 4
    lying = tmp_path / "lying.zip"
    lying.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="corrupt"):
        extract_archive(lying, tmp_path / "out2", max_bytes=10 * MB)
    assert_nothing_left(tmp_path / "out2")


def test_too_many_files_is_refused(tmp_path: Path) -> None:
    members = {f"a/{i}.txt": b"x" for i in range(12)}
    for archive in (make_zip(tmp_path / "a.zip", members), make_tar(tmp_path / "a.tgz", members)):
        with pytest.raises(DatasetError, match="limit of 10"):
            extract_archive(archive, tmp_path / "out", max_bytes=MB, max_files=10)
        assert_nothing_left(tmp_path / "out")


@pytest.mark.parametrize("kind", ["zip", "tgz", "tar"])
def test_truncated_archive_is_refused(tmp_path: Path, kind: str) -> None:
    import os

    members = {"a/first.txt": b"hello", "a/noise.bin": os.urandom(200_000)}
    if kind == "zip":
        archive = make_zip(tmp_path / "a.zip", members)
    else:
        archive = make_tar(tmp_path / f"a.{kind}", members, mode="w:gz" if kind == "tgz" else "w")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"corrupt|truncated"):
        extract_archive(archive, tmp_path / "out", max_bytes=MB)
    assert_nothing_left(tmp_path / "out")


def test_corrupt_zip_member_names_the_member(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"a/first.txt": b"hello" * 1000, "a/second.txt": b"world" * 1000})
    data = bytearray(archive.read_bytes())
    pos = data.find(b"a/second.txt") + len("a/second.txt") + 5
    data[pos : pos + 20] = bytes(20)
    archive.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"a/second\.txt"):
        extract_archive(archive, tmp_path / "out", max_bytes=MB)
    assert_nothing_left(tmp_path / "out")


def test_duplicate_member_is_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tgz", {"a/x.txt": b"1"})
    with tarfile.open(archive, "w:gz") as tf:
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("a/x.txt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DatasetError, match=r"'a/x\.txt' appears more than once"):
        extract_archive(archive, tmp_path / "out", max_bytes=MB)


def test_not_an_archive_and_busy_destination(tmp_path: Path) -> None:
    text = tmp_path / "notes.zip"
    text.write_text("just text, not an archive")
    with pytest.raises(DatasetError, match="not a zip or tar archive"):
        extract_archive(text, tmp_path / "out", max_bytes=MB)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    archive = make_zip(tmp_path / "a.zip", {"x.txt": b"1"})
    with pytest.raises(DatasetError, match="must be new or empty"):
        extract_archive(archive, busy, max_bytes=MB)
    assert [p.name for p in busy.iterdir()] == ["mine.txt"]
    with pytest.raises(DatasetError, match="does not exist"):
        extract_archive(tmp_path / "nope.zip", tmp_path / "out", max_bytes=MB)


def test_a_member_name_longer_than_a_filesystem_takes_says_so(tmp_path: Path) -> None:
    archive = tmp_path / "long.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/" + "x" * 300 + ".jpg", b"data")
    with pytest.raises(DatasetError, match=r"member 'images/x+'\.\.\. has a name longer than 255 bytes"):
        extract_archive(archive, tmp_path / "out", max_bytes=1 << 20)
