"""CSV tables as spreadsheets export them: header detection, names or numeric ids, several labels per image."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.datasets.formats import detect_format, read_dataset
from edge.errors import DatasetError
from tests.datasets.conftest import write_image


def make(root: Path, table: str, name: str = "data.csv") -> Path:
    for i, image in enumerate(("pics/a.jpg", "pics/b.jpg", "c.png")):
        write_image(root / image, seed=i)
    (root / name).write_text(table)
    return root / name


def tags_by_name(src: Path, **options: object) -> dict[str, list[str]]:
    return {s.name: s.tags for s in read_dataset(src, "csv", **options).samples}


def test_header_names_and_multi_labels(tmp_path: Path) -> None:
    make(tmp_path, "Label,FileName,Split\napple; pear,pics/a.jpg,train\nkiwi,c.png,valid\n,pics/b.jpg,\n")
    assert detect_format(tmp_path) == "csv"
    ds = read_dataset(tmp_path, "csv")
    assert {s.name: (s.tags, s.split) for s in ds.samples} == {
        "pics/a.jpg": (["apple", "pear"], "train"),
        "c.png": (["kiwi"], "val"),
        "pics/b.jpg": ([], "auto"),
    }


def test_no_header_repeated_rows_and_numeric_ids_with_labels(tmp_path: Path) -> None:
    table = make(tmp_path, "pics/a.jpg, 0\npics/a.jpg, 2\npics/b.jpg, 1.0\n")
    assert tags_by_name(table, labels=["cat", "dog", "emu"]) == {"pics/a.jpg": ["cat", "emu"], "pics/b.jpg": ["dog"]}
    ds = read_dataset(table, "csv", labels=["cat", "dog", "emu", "fox"])
    assert ds.label_names == ["cat", "dog", "emu", "fox"], "the ids' order is the label order"


def test_labels_file_forms(tmp_path: Path) -> None:
    table = make(tmp_path, "pics/a.jpg,5\n")
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\ne\nfive\n")
    (tmp_path / "classes.csv").write_text("Class Name (str),Class ID (int)\nfive,5\nzero,0\n")
    assert tags_by_name(table, labels=tmp_path / "names.txt") == {"pics/a.jpg": ["five"]}
    assert tags_by_name(table, labels=str(tmp_path / "classes.csv")) == {"pics/a.jpg": ["five"]}
    assert tags_by_name(table, labels={5: "five"}) == {"pics/a.jpg": ["five"]}
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\ne\nsidecar\n")
    assert tags_by_name(table) == {"pics/a.jpg": ["sidecar"]}


def test_numeric_ids_without_names_become_names(tmp_path: Path) -> None:
    ds = read_dataset(make(tmp_path, "pics/a.jpg,10\npics/b.jpg,2\n"), "csv")
    assert ds.label_names == ["2", "10"]


def test_chosen_columns_and_semicolon_delimiter(tmp_path: Path) -> None:
    table = make(tmp_path, "id;picture;kind;note\n1;pics/a.jpg;apple;x\n2;c.png;kiwi;y\n")
    assert tags_by_name(table) == {"pics/a.jpg": ["apple"], "c.png": ["kiwi"]}
    assert tags_by_name(table, label_column="note") == {"pics/a.jpg": ["x"], "c.png": ["y"]}
    assert tags_by_name(table, path_column=1, label_column=2) == {"pics/a.jpg": ["apple"], "c.png": ["kiwi"]}
    with pytest.raises(DatasetError, match="no column named 'nope'"):
        read_dataset(table, "csv", label_column="nope")


def test_id_out_of_range_names_the_line(tmp_path: Path) -> None:
    table = make(tmp_path, "path,label\npics/a.jpg,0\npics/b.jpg,3\n")
    with pytest.raises(DatasetError, match=r"data\.csv:3: label id 3 is out of range \(known ids: 0\.\.1\)"):
        read_dataset(table, "csv", labels=["a", "b"])


@pytest.mark.parametrize(
    ("cell", "message"),
    [("../outside.jpg", r"data\.csv:2: .*'\.\.'"), ("/etc/hosts.jpg", r"data\.csv:2: .*absolute")],
)
def test_paths_escaping_the_folder(tmp_path: Path, cell: str, message: str) -> None:
    write_image(tmp_path / "outside.jpg")
    table = make(tmp_path / "ds", f"path,label\n{cell},a\n")
    with pytest.raises(DatasetError, match=message):
        read_dataset(table, "csv")


def test_missing_image_names_the_line(tmp_path: Path) -> None:
    table = make(tmp_path, "path,label\npics/a.jpg,x\npics/gone.jpg,x\n")
    with pytest.raises(DatasetError, match=r"data\.csv:3: image file 'pics/gone\.jpg' is missing"):
        read_dataset(table, "csv")


def test_conflicting_splits_and_bad_split(tmp_path: Path) -> None:
    table = make(tmp_path, "path,label,split\npics/a.jpg,x,train\npics/a.jpg,y,test\n")
    with pytest.raises(DatasetError, match=r"data\.csv:3: .*split 'test'"):
        read_dataset(table, "csv")
    table.write_text("path,label,split\npics/a.jpg,x,holdout\n")
    with pytest.raises(DatasetError, match=r"data\.csv:2: unknown split 'holdout'"):
        read_dataset(table, "csv")


def test_folder_with_several_tables_is_ambiguous(tmp_path: Path) -> None:
    make(tmp_path, "path,label\npics/a.jpg,x\n")
    (tmp_path / "other.csv").write_text("path,label\n")
    with pytest.raises(DatasetError, match="several tables"):
        read_dataset(tmp_path, "csv")
    assert len(read_dataset(tmp_path / "data.csv", "csv").samples) == 1


def test_labels_named_like_numbers_round_trip(tmp_path: Path) -> None:
    from edge.datasets.formats import write_dataset
    from edge.datasets.model import Dataset, LabelInfo, Sample

    images = [write_image(tmp_path / f"i{i}.jpg") for i in range(3)]
    # Label "1" is the first label (id 0): written as a name it read back as id 1, which is label "0".
    original = Dataset(
        labels=[LabelInfo("1"), LabelInfo("0")],
        samples=[
            Sample(path=images[0], name="i0.jpg", tags=["1"]),
            Sample(path=images[1], name="i1.jpg", tags=["0"]),
            Sample(path=images[2], name="i2.jpg", tags=["1", "0"]),
        ],
    )
    write_dataset(original, tmp_path / "out", "csv")
    back = read_dataset(tmp_path / "out", "csv")
    assert back.label_names == ["1", "0"]
    assert {Path(s.name).name: s.tags for s in back.samples} == {"i0.jpg": ["1"], "i1.jpg": ["0"], "i2.jpg": ["1", "0"]}


@pytest.mark.parametrize("fmt", ["csv", "yolo"])
def test_labels_a_spreadsheet_would_evaluate_are_written_as_text_and_read_back(tmp_path: Path, fmt: str) -> None:
    from edge.datasets.formats import write_dataset
    from edge.datasets.model import Dataset, LabelInfo, Sample

    image = write_image(tmp_path / "src" / "a.jpg")
    labels = ["=2+5", "@SUM(A1)", "-1", "+x", "ok"]
    ds = Dataset(labels=[LabelInfo(n) for n in labels], samples=[Sample(path=image, name="a.jpg", tags=labels)])
    out = tmp_path / "out"
    write_dataset(ds, out, fmt)
    table = (out / ("dataset.csv" if fmt == "csv" else "tags.csv")).read_text()
    for cell in table.splitlines()[1:]:
        for value in cell.split(","):
            assert not value.startswith(("=", "+", "-", "@")), table  # CSV injection: never a formula
    back = read_dataset(out, fmt)
    assert back.samples[0].tags == labels
