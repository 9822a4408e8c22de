"""JSON Lines reading: bad input names the file and line; logs tolerate a torn line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlgrpo.data.jsonl import read_jsonl, read_jsonl_lenient


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": 1}\n{"id": \n', ":2: invalid JSON"),
        ('{"id": 1}\n\n[1]\n', ":3: expected a JSON object, got list"),
        ('{"id": 1}\n{"x": 2}\n', ":2: missing field 'id'"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"rows.jsonl{message}"):
        read_jsonl(path, require=("id",))


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": 1}\n\n  \n{"id": 2}\n')
    assert [r["id"] for r in read_jsonl(path, require=("id",))] == [1, 2]


def test_lenient_reader_counts_what_it_skips(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n"text"\n{"step": 2}\n{"step": 3, "loss"')
    rows, bad = read_jsonl_lenient(path)
    assert [r["step"] for r in rows] == [1, 2]
    assert bad == [2, 4]
