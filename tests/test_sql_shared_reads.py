"""Queries run on the shared read-only base: nothing they do may reach another statement.

The base of a :class:`Database` answers SELECTs directly (no copy) under the read-only
authorizer; these cases check that the shortcut keeps the isolation guarantees.
"""

from __future__ import annotations

import pytest

from sqlgrpo.sql import DatabaseCache, SandboxLimits
from sqlgrpo.sql.errors import ErrorClass

CONTEXT = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);"
    "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');"
)
ROWS = [(1, "a"), (2, "b"), (3, "c")]


@pytest.fixture
def db():
    return DatabaseCache(SandboxLimits(timeout_s=0.5)).get(sql_context=CONTEXT)


def _all_rows(db) -> list[tuple]:
    result = db.run("SELECT id, name FROM t ORDER BY id", capture_state=True)
    assert result.ok, result.error_message
    return result.state["t"]


@pytest.mark.timeout(30)
def test_runaway_query_times_out_and_the_base_still_answers(db) -> None:
    runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    result = db.run(runaway)
    assert not result.ok and result.error_class == ErrorClass.TIMEOUT
    again = db.run("SELECT count(*) FROM t")
    assert again.ok and again.rows == [(3,)]


@pytest.mark.timeout(30)
def test_truncated_read_does_not_block_a_later_copy() -> None:
    db = DatabaseCache(SandboxLimits(timeout_s=0.5, max_rows=2)).get(sql_context=CONTEXT)
    first = db.run("SELECT id FROM t ORDER BY id")  # stops after 2 of 3 rows
    assert first.ok and first.truncated and first.rows == [(1,), (2,)]
    dml = db.run("DELETE FROM t WHERE id = 1", capture_state=True)  # needs a backup copy
    assert dml.ok and dml.rowcount == 1
    assert db.run("SELECT count(*), sum(id) FROM t").rows == [(3, 6)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT load_extension('/tmp/nothing')",
        "SELECT * FROM t WHERE id = (SELECT load_extension('x'))",
        "WITH d AS (SELECT 1) DELETE FROM t",
        "WITH d AS (SELECT 1) INSERT INTO t VALUES (9, 'z')",
        "SELECT * FROM pragma_table_info('t')",
        "SELECT writefile('/tmp/x', 'y')",
    ],
)
def test_query_shaped_statements_cannot_change_the_base(db, sql: str) -> None:
    db.run(sql)
    assert sorted(_all_rows(db)) == ROWS


def test_connection_counters_do_not_leak_between_completions(db) -> None:
    before = db.run("SELECT changes(), total_changes(), last_insert_rowid()")
    assert before.ok
    inserted = db.run("INSERT INTO t VALUES (42, 'x')")  # runs on its own copy
    assert inserted.ok
    after = db.run("SELECT changes(), total_changes(), last_insert_rowid()")
    assert after.rows == before.rows
