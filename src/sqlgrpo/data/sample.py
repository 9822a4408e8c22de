"""The one record every data source is loaded into, plus load results and errors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

METADATA_KEYS = (
    "domain",
    "sql_complexity",
    "sql_task_type",
    "difficulty",
    "db_id",
    "source",
    "pattern",
)


class DataError(ValueError):
    """Bad input data; the message names the file, the row (or db_id) and the problem."""


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages ("a number", "an object", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def id_key(value: Any) -> str:
    """The text key of a source id as written: a string as it is, a number as Python writes
    it (``5`` -> ``"5"``, ``5.0`` -> ``"5.0"``). So ``5`` and ``"5"`` are the same id.
    Raises DataError for anything else (booleans, lists, objects, NaN, infinities)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    raise DataError(
        f"column 'id' must be a string or a number, got {json_type(value)} ({_short(value)})"
    )


def check_type(column: str, value: Any, allowed: tuple[type, ...], expected: str) -> None:
    """Raise DataError naming ``column`` when ``value`` (not None) is not one of ``allowed``
    (booleans never pass as numbers)."""
    if value is None:
        return
    if isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed):
        return
    raise DataError(
        f"column {column!r} must be {expected}, got {json_type(value)} ({_short(value)})"
    )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Sample:
    """One text-to-SQL example: question, prompt schema, gold SQL and how to build its DB.

    Exactly one of ``sql_context`` (a gretel-style script of CREATE + INSERT statements)
    and ``db_path`` (an existing SQLite file, Spider / BIRD) is set.
    """

    id: str
    question: str
    schema: str
    sql: str
    sql_context: str | None = None
    db_path: str | None = None
    evidence: str | None = None
    metadata: dict[str, str] = field(default_factory=dict, hash=False)
    #: The id as the source wrote it when that was not text (a JSON number), written back
    #: in every output (predictions, exports); None for a text id (``id`` is then the id
    #: itself) or a row the loader numbered. ``id`` is always the text key (:func:`id_key`).
    source_id: int | float | None = None

    def __post_init__(self) -> None:
        if (self.sql_context is None) == (self.db_path is None):
            raise ValueError(f"sample {self.id}: set exactly one of sql_context and db_path")

    @property
    def output_id(self) -> str | int | float:
        """The id to write in outputs: the source's own value and type when it had one."""
        return self.source_id if self.source_id is not None else self.id

    def reward_columns(self) -> dict[str, str | None]:
        """The columns reward functions read; the same keys for every sample (None when absent)."""
        return {
            "id": self.id,
            "sql": self.sql,
            "sql_context": self.sql_context,
            "db_path": self.db_path,
        }

    def to_record(self) -> dict[str, Any]:
        """A gretel-format JSON record (``sql_prompt``, ``sql_context``, ``sql``, metadata, ...)."""
        record: dict[str, Any] = {
            "id": self.output_id,
            "sql_prompt": self.question,
            "sql_context": self.sql_context,
            "sql": self.sql,
        }
        if self.db_path is not None:
            record["db_path"] = self.db_path
            record["schema"] = self.schema
        if self.evidence:
            record["evidence"] = self.evidence
        record.update(self.metadata)
        return record


@dataclass(frozen=True)
class SkippedRow:
    """A row left out by ``skip_invalid=True``: where it was and why."""

    file: str
    row: int | str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}, {self.row}: {self.reason}"


@dataclass
class LoadResult:
    """Samples loaded from one source, and the rows skipped (never silently dropped)."""

    source: str
    samples: list[Sample] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)
