"""The sandbox: error classes, hostile SQL, isolation, read-only files, case fixes."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from sqlgrpo.sql import (
    ERROR_CREDIT,
    Database,
    DatabaseCache,
    ErrorClass,
    ExecResult,
    SandboxLimits,
    classify_exception,
    run_untrusted,
)

FIXTURES = Path(__file__).parent / "fixtures"
ERROR_CASES = json.loads((FIXTURES / "sql_error_cases.json").read_text())
HOSTILE = json.loads((FIXTURES / "sql_hostile_cases.json").read_text())
HOSTILE_LIMITS = SandboxLimits(timeout_s=HOSTILE["timeout_s"])


def _hostile_sql(case: dict) -> str:
    return "".join(text * count for text, count in case["parts"])


@pytest.fixture(scope="module")
def error_db() -> Database:
    return Database.from_context(ERROR_CASES["context"])


@pytest.fixture(scope="module")
def hostile_db() -> Database:
    return Database.from_context(HOSTILE["context"], HOSTILE_LIMITS)


def test_error_credit_covers_every_class_within_spec_bounds() -> None:
    assert set(ERROR_CREDIT) == set(ErrorClass)
    assert all(0.0 <= credit <= 0.2 for credit in ERROR_CREDIT.values())
    assert ERROR_CREDIT[ErrorClass.AMBIGUOUS_COLUMN] == 0.2  # fixed by SPEC 2.4
    assert ERROR_CREDIT[ErrorClass.SYNTAX] == 0.0  # fixed by SPEC 2.4
    small = [ErrorClass.MISSING_COLUMN, ErrorClass.TYPE_MISMATCH, ErrorClass.UNKNOWN_FUNCTION]
    assert all(0.05 <= ERROR_CREDIT[c] <= 0.2 for c in small + [ErrorClass.CONSTRAINT])
    for structural in (ErrorClass.TIMEOUT, ErrorClass.FORBIDDEN, ErrorClass.MULTIPLE_STATEMENTS):
        assert ERROR_CREDIT[structural] == 0.0


@pytest.mark.parametrize("case", ERROR_CASES["cases"], ids=lambda c: c["sql"][:40])
def test_error_classes(error_db: Database, case: dict) -> None:
    result = error_db.run(case["sql"])
    assert not result.ok
    assert result.error_class is ErrorClass(case["error_class"]), result.error_message
    assert result.error_message


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), ErrorClass.RESOURCE_LIMIT),
        (RecursionError(), ErrorClass.RESOURCE_LIMIT),
        (
            OverflowError("Python int too large to convert to SQLite INTEGER"),
            ErrorClass.RESOURCE_LIMIT,
        ),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), ErrorClass.SYNTAX),
        (sqlite3.IntegrityError("NOT NULL constraint failed: t.a"), ErrorClass.CONSTRAINT),
        (sqlite3.OperationalError("interrupted"), ErrorClass.TIMEOUT),
        (sqlite3.DataError("query string is too long"), ErrorClass.RESOURCE_LIMIT),
        (sqlite3.OperationalError("something new"), ErrorClass.OTHER),
    ],
)
def test_classify_exception(exc: BaseException, expected: ErrorClass) -> None:
    assert classify_exception(exc) is expected


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", HOSTILE["cases"], ids=lambda c: c["name"])
def test_hostile_sql_is_contained(
    hostile_db: Database, case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sql = _hostile_sql(case)
    result = hostile_db.run(sql, capture_state=True)
    assert isinstance(result, ExecResult)
    if case.get("ok"):
        assert result.ok, result.error_message
        assert result.truncated == case.get("truncated", False)
        assert len(result.rows) <= HOSTILE_LIMITS.max_rows
    else:
        allowed = case["error_class"]
        allowed = [allowed] if isinstance(allowed, str) else allowed
        assert not result.ok
        assert result.error_class in {ErrorClass(a) for a in allowed}, result.error_message
    assert os.listdir(tmp_path) == []  # no file created where the SQL names one
    # Whatever the statement did, the next run sees the pristine database.
    after = hostile_db.run("SELECT count(*) FROM t")
    assert after.ok and after.rows == [(10,)]


def test_changes_are_isolated_between_runs_in_one_batch() -> None:
    db = DatabaseCache().get(sql_context=HOSTILE["context"])
    statements = [
        "DROP TABLE t",
        "DELETE FROM t",
        "ALTER TABLE t RENAME TO u",
        "CREATE TEMP TRIGGER wipe AFTER INSERT ON t BEGIN DELETE FROM t; END",
        "INSERT INTO t VALUES (11, 'k')",
        "CREATE TEMP TABLE scratch AS SELECT * FROM t",
        "UPDATE t SET name = 'x'",
        "BEGIN",
    ]
    for statement in statements:
        assert db.run(statement).ok, statement
        probe = db.run("SELECT count(*), min(name), max(name) FROM t")
        assert probe.rows == [(10, "a", "j")], statement
        assert not db.run("SELECT * FROM scratch").ok


def test_capture_state_records_every_table_after_dml() -> None:
    db = Database.from_context(ERROR_CASES["context"])
    result = db.run("DELETE FROM employees WHERE dept_id = 2", capture_state=True)
    assert result.ok and result.rowcount == 2
    assert result.state == {
        "employees": [(1, "Ann", 1, 5000.5)],
        "depts": [(1, "Sales"), (2, "R&D")],
    }


def test_rows_are_capped_and_flagged_truncated() -> None:
    db = Database.from_context(HOSTILE["context"], SandboxLimits(max_rows=25))
    result = db.run("SELECT a.id, b.id FROM t a, t b")  # 100 rows
    assert result.ok and result.truncated and len(result.rows) == 25
    exact = db.run("SELECT a.id FROM t a, t b LIMIT 25")
    assert exact.ok and not exact.truncated and len(exact.rows) == 25


def test_context_in_mysql_dialect_is_transpiled_and_reported() -> None:
    context = (
        "CREATE TABLE users (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50));"
        " INSERT INTO users (name) VALUES ('Ann'), ('Bob');"
    )
    db = Database.from_context(context)
    assert db.build_error is None
    assert len(db.diagnostics) == 1 and "transpiled from mysql" in db.diagnostics[0]
    assert db.run("SELECT name FROM users ORDER BY id").rows == [("Ann",), ("Bob",)]


def test_context_that_cannot_build_fails_every_run_with_the_reason() -> None:
    db = Database.from_context("CREATE TABLE a (x INT); INSERT INTO a VALUES (1, 2, 3);")
    assert db.build_error is not None and "statement 2" in db.build_error
    result = db.run("SELECT * FROM a")
    assert not result.ok and "did not build" in (result.error_message or "")


def test_database_cache_builds_each_context_once_and_evicts_lru() -> None:
    cache = DatabaseCache(max_entries=2)
    first = cache.get(sql_context="CREATE TABLE a (x INT);")
    assert cache.get(sql_context="CREATE TABLE a (x INT);") is first
    cache.get(sql_context="CREATE TABLE b (x INT);")
    cache.get(sql_context="CREATE TABLE c (x INT);")
    assert len(cache) == 2
    assert cache.get(sql_context="CREATE TABLE a (x INT);") is not first
    with pytest.raises(ValueError, match="exactly one"):
        cache.get()


def test_case_fix_renames_a_table_that_matches_only_under_unicode_case_folding() -> None:
    db = Database.from_context('CREATE TABLE "Café" (x INT); CREATE TABLE plain (x INT);')
    fixed = db.run("INSERT INTO CAFÉ VALUES (1)", capture_state=True)
    assert fixed.ok and fixed.case_fixed
    assert fixed.state is not None and fixed.state["café"] == [(1,)]
    # ASCII case never fails in SQLite, so nothing needs fixing.
    ascii_case = db.run("INSERT INTO PLAIN VALUES (1)")
    assert ascii_case.ok and not ascii_case.case_fixed
    # A different name is not a case problem.
    wrong = db.run("INSERT INTO cafe VALUES (1)")
    assert wrong.error_class is ErrorClass.MISSING_TABLE and not wrong.case_fixed
    # SELECTs are not case-fixed (SPEC 2.4 gives the 0.4 credit to DML only).
    select = db.run("SELECT * FROM CAFÉ")
    assert select.error_class is ErrorClass.MISSING_TABLE


def test_run_untrusted_hardens_a_bare_connection_itself() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    result = run_untrusted(conn, "ATTACH ':memory:' AS other")
    assert result.error_class is ErrorClass.FORBIDDEN
    assert run_untrusted(conn, "SELECT 41 + 1").rows == [(42,)]
    assert not run_untrusted(conn, 12345).ok  # type: ignore[arg-type]


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError, match="max_rows"):
        SandboxLimits(max_rows=0)


def _spider_db(spider_subset_path: Path, name: str = "farm") -> Path:
    return spider_subset_path / "database" / name / f"{name}.sqlite"


@pytest.mark.parametrize("max_copy_bytes", [256 * 1024 * 1024, 0], ids=["copied", "in-place"])
def test_spider_database_opens_read_only(spider_subset_path: Path, max_copy_bytes: int) -> None:
    path = _spider_db(spider_subset_path)
    before = (sorted(os.listdir(path.parent)), path.stat().st_size, path.stat().st_mtime_ns)
    db = Database.from_path(path, max_copy_bytes=max_copy_bytes)
    count = db.run("SELECT count(*) FROM farm")
    assert count.ok and count.rows[0][0] > 0
    deleted = db.run("DELETE FROM farm", capture_state=True)
    assert deleted.ok and deleted.state is not None and deleted.state["farm"] == []
    assert db.run("SELECT count(*) FROM farm").rows == count.rows
    assert db.run("CREATE TEMP TABLE x AS SELECT 1").ok
    assert not db.run("SELECT * FROM x").ok
    assert db.run("ATTACH 'x.db' AS x").error_class is ErrorClass.FORBIDDEN
    db.close()
    after = (sorted(os.listdir(path.parent)), path.stat().st_size, path.stat().st_mtime_ns)
    assert after == before


def test_mistyped_database_path_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "farn.sqlite"
    with pytest.raises(FileNotFoundError, match="farn.sqlite"):
        DatabaseCache().get(db_path=str(missing))
    assert not missing.exists()
    not_sqlite = tmp_path / "notes.sqlite"
    not_sqlite.write_text("hello, I am not a database" * 100)
    with pytest.raises(ValueError, match="notes.sqlite"):
        Database.from_path(not_sqlite)
    assert os.listdir(tmp_path) == ["notes.sqlite"]
