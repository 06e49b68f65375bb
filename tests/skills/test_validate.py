"""`shelfwatch config validate` on skills: the issue's example is valid; broken graphs name skill, block, line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.skills.expression import ExpressionError, compile_expression
from edge.store import DatasetStore
from tests.skills.conftest import EXAMPLE


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "edge.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n{text}")
    rc = main(["config", "validate", str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")


def test_the_example_validates_and_unknown_projects_are_warnings(tmp_path: Path, capsys) -> None:
    store = DatasetStore(tmp_path / "data")
    store.create_project("shelf-gaps", "detection")
    store.close()
    rc, text = validate(tmp_path, EXAMPLE, capsys)
    assert rc == 0, text
    assert "valid edge config" in text
    # products does not exist yet: a warning with the line of its block, not an error
    warning = "edge.yaml:18: warning: camera 'aisle3', skill 'which', block 'kind': project 'products' does not exist"
    assert warning in text
    assert "project 'shelf-gaps'" not in text  # it exists


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("type: coverage", "type: coverag"),
            "edge.yaml:11: cameras.0.skills.0.blocks.1.type: skill 'gaps', block 'cov': unknown block type 'coverag'",
        ),
        (
            ("input: cov,", "input: cove,"),
            "edge.yaml:12: cameras.0.skills.0.blocks.2.input: skill 'gaps', block 'low': unknown input 'cove'",
        ),
        (
            (
                "{id: det, type: detect, project: shelf-gaps, min_score: 0.3}\n          - {id: cov",
                "{id: det, type: detect, project: shelf-gaps, input: low}\n          - {id: cov",
            ),
            "edge.yaml:10: cameras.0.skills.0.blocks.0.input: skill 'gaps', block 'det': its inputs form a cycle "
            "(det <- low <- cov <- det)",
        ),
        (
            ("{id: event, type: mqtt_event, input: cool, event: product_gap}", "{id: event, type: mqtt_event}"),
            "edge.yaml:21: cameras.0.skills.1.blocks.4.id: skill 'which', block 'event': a mqtt_event block needs an "
            "`input`",
        ),
        (
            ('when: "score >= 0.5"', "when: \"__import__('os').system('true')\""),
            "edge.yaml:19: cameras.0.skills.1.blocks.2.condition.when: Value error, Call is not allowed",
        ),
    ],
)
def test_broken_graphs_name_the_skill_block_and_line(tmp_path: Path, capsys, edit, expected) -> None:
    old, new = edit
    assert old in EXAMPLE
    rc, text = validate(tmp_path, EXAMPLE.replace(old, new, 1), capsys)
    assert rc == 1
    assert expected in text, text


def test_yaml_on_off_keys_and_json_output(tmp_path: Path, capsys) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(f"data_dir: {tmp_path / 'none'}\n{EXAMPLE}")
    assert main(["config", "validate", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["valid"] is True and len(out["warnings"]) == 3  # no store there: every project unchecked


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("score >= 0.5", {"score": 0.7}, True),
        ("score >= 0.5 and label != 'ok'", {"score": 0.7, "label": "ok"}, False),
        ("value * 2 > 1 or state == 'low_stock'", {"value": 0.1, "state": "low_stock"}, True),
        ("label in ('a', 'b') and not phase", {"label": "b", "phase": None}, True),
        ("score > 0.5", {"score": None}, False),  # a missing value does not hold
        ("count ** 100 > 1", {"count": 2}, False),  # huge exponents are refused at run time
    ],
)
def test_condition_expressions(text: str, values: dict, expected: bool) -> None:
    assert compile_expression(text)(values) is expected


@pytest.mark.parametrize(
    "text", ["__import__('os')", "score.real > 1", "[x for x in (1,)]", "lambda: 1", "open", "score[0]", "f'{score}'"]
)
def test_condition_refuses_anything_but_names_numbers_and_operators(text: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(text)
