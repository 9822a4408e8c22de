"""The one record every data source is loaded into, plus load results and errors."""

from __future__ import annotations

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

    def __post_init__(self) -> None:
        if (self.sql_context is None) == (self.db_path is None):
            raise ValueError(f"sample {self.id}: set exactly one of sql_context and db_path")

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
            "id": self.id,
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
