"""Validation: build every sample's database and execute every gold query."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlgrpo.data.sample import Sample, SkippedRow

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database_unavailable"  # SQLite file missing / unreadable
CONTEXT_BUILD = "context_build"  # sql_context script does not build
DUPLICATE_ID = "duplicate_id"  # two samples share an id but not their content
NO_SAMPLES = "no_samples"  # an empty file, a header only, or every row skipped


@dataclass(frozen=True)
class Failure:
    """A sample that cannot be used: its database does not build or its gold query errors."""

    id: str
    error_class: str
    message: str


@dataclass
class ValidationReport:
    """What ``sqlgrpo data validate`` prints: failures (exit 1) and warnings (exit 0)."""

    total: int
    failures: list[Failure] = field(default_factory=list)
    empty_gold: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (id, id of first copy)
    skipped: list[SkippedRow] = field(default_factory=list)
    transpiled: list[str] = field(default_factory=list)  # contexts sqlglot had to rewrite

    @property
    def ok(self) -> bool:
        """True when no sample failed (warnings allowed)."""
        return not self.failures

    def failures_by_class(self) -> dict[str, list[Failure]]:
        """Failures grouped by error class, largest group first."""
        groups: dict[str, list[Failure]] = {}
        for failure in self.failures:
            groups.setdefault(failure.error_class, []).append(failure)
        return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))

    def failed_ids(self) -> set[str]:
        """Ids of the samples that failed."""
        return {f.id for f in self.failures}


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().rstrip(";")).lower()


def find_duplicates(samples: Iterable[Sample]) -> list[tuple[str, str]]:
    """Samples repeating an earlier one's (question, gold SQL, schema), as (id, first id)."""
    seen: dict[tuple[str, str, str], str] = {}
    duplicates: list[tuple[str, str]] = []
    for sample in samples:
        key = (_normalise(sample.question), _normalise(sample.sql), _normalise(sample.schema))
        if key in seen:
            duplicates.append((sample.id, seen[key]))
        else:
            seen[key] = sample.id
    return duplicates


def find_conflicting_ids(samples: Iterable[Sample]) -> list[Failure]:
    """A failure for each sample whose id an earlier sample with different content (question,
    gold SQL, schema, context or database) already used; ``sqlgrpo eval`` refuses such files.
    Ids compare by their text key, whatever their JSON type: ``5`` and ``"5"`` are one id."""
    first: dict[str, tuple[int, Sample]] = {}
    failures: list[Failure] = []
    for position, sample in enumerate(samples):
        seen = first.setdefault(sample.id, (position, sample))
        if seen[1] is sample:
            continue
        if _content(seen[1]) != _content(sample):
            earlier = seen[1].output_id
            also = "" if earlier == sample.output_id else f" as {earlier!r}"
            failures.append(
                Failure(
                    sample.id,
                    DUPLICATE_ID,
                    f"id {sample.output_id!r} of sample {position + 1} is already used{also} by "
                    f"sample {seen[0] + 1} with different content",
                )
            )
    return failures


def _content(sample: Sample) -> tuple:
    return (
        _normalise(sample.question),
        _normalise(sample.sql),
        _normalise(sample.schema),
        sample.sql_context,
        sample.db_path,
    )


def validate_samples(
    samples: Sequence[Sample],
    *,
    checker: object | None = None,
    skipped: Sequence[SkippedRow] = (),
) -> ValidationReport:
    """Execute each gold query in the sandbox (``sqlgrpo.sql.ExecutionChecker``) and report."""
    from sqlgrpo.sql import ExecutionChecker, gold_kind

    checker = checker if checker is not None else ExecutionChecker()
    report = ValidationReport(total=len(samples), skipped=list(skipped))
    if not samples:
        why = (
            f"every row was skipped as invalid ({len(skipped)})"
            if skipped
            else ("the source is empty or has only a header")
        )
        report.failures.append(Failure("-", NO_SAMPLES, f"no samples to validate: {why}"))
    report.failures.extend(find_conflicting_ids(samples))
    for sample in samples:
        try:
            database = checker.database(sql_context=sample.sql_context, db_path=sample.db_path)
        except (OSError, ValueError) as exc:
            report.failures.append(Failure(sample.id, DATABASE_UNAVAILABLE, str(exc)))
            continue
        if database.build_error is not None:
            report.failures.append(Failure(sample.id, CONTEXT_BUILD, database.build_error))
            continue
        if database.diagnostics and sample.sql_context is not None:
            report.transpiled.append(sample.id)
        result = checker.gold_result(
            sample.sql, sql_context=sample.sql_context, db_path=sample.db_path
        )
        if not result.ok:
            error_class = result.error_class.value if result.error_class is not None else "other"
            report.failures.append(Failure(sample.id, error_class, result.error_message or ""))
        elif gold_kind(result) == "select_empty":
            report.empty_gold.append(sample.id)
    report.duplicates = find_duplicates(samples)
    logger.info(
        "validated %d sample(s): %d failure(s), %d empty gold result(s), %d duplicate(s)",
        report.total,
        len(report.failures),
        len(report.empty_gold),
        len(report.duplicates),
    )
    return report
