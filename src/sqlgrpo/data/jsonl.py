"""Reading JSON Lines files: one object per line, errors that name the file and line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _decoded_lines(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    """``(line number, object, "")`` for each non-blank line that holds a JSON object, and
    ``(line number, None, problem)`` for each that does not."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = raw[exc.start : exc.start + 1].hex()
                yield lineno, None, f"not valid UTF-8 (byte 0x{byte} at column {exc.start + 1})"
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, f"invalid JSON: {exc.msg}"
                continue
            if not isinstance(row, dict):
                yield lineno, None, f"expected a JSON object, got {type(row).__name__}"
                continue
            yield lineno, row, ""


def iter_jsonl(path: str | Path, *, require: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each non-blank line of ``path``.

    Raises ValueError naming the file and line for invalid JSON, a value that is not an
    object, or an object without one of the ``require`` keys.
    """
    path = Path(path)
    for lineno, row, problem in _decoded_lines(path):
        if row is None:
            raise ValueError(f"{path}:{lineno}: {problem}")
        for key in require:
            if key not in row:
                raise ValueError(f"{path}:{lineno}: missing field {key!r}")
        yield lineno, row


def read_jsonl(path: str | Path, *, require: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every object of a JSON Lines file (see :func:`iter_jsonl` for the errors)."""
    return [row for _, row in iter_jsonl(path, require=require)]


def read_jsonl_lenient(path: str | Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Objects of a JSON Lines log and the numbers of the lines that could not be read.

    For logs a crash may have torn (the last line of a killed run): unreadable lines are
    counted and logged, never silently dropped.
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    bad: list[int] = []
    for lineno, row, _ in _decoded_lines(path):
        if row is None:
            bad.append(lineno)
        else:
            rows.append(row)
    if bad:
        logger.warning("%s: %d unreadable line(s) skipped (%s)", path, len(bad), bad[:5])
    return rows, bad
