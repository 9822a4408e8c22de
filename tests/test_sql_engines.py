"""Engines: ``--db`` parsing, and DuckDB's sandbox held against hostile statements (nothing
written, no file reach, settings locked, time / memory / rows bounded); SQLite behind the
same interface; ``sqlgrpo sql`` on each."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from sqlgrpo.cli import main
from sqlgrpo.sql.engines import EngineError, open_engine, parse_db
from sqlgrpo.sql.engines.base import plain_value
from sqlgrpo.sql.errors import ErrorClass
from sqlgrpo.sql.sandbox import SandboxLimits

duckdb = pytest.importorskip("duckdb", reason="needs duckdb (pip install 'sqlgrpo[engines]')")

LIMITS = SandboxLimits(timeout_s=1.0, max_rows=100, max_memory_bytes=256 * 1024 * 1024)
#: The guarantee: every statement is stopped within its timeout plus this.
STOP_SLACK_S = 1.0


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture
def duck_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL)")
    conn.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id),"
        " total DECIMAL(10, 2), placed DATE)"
    )
    conn.execute("INSERT INTO customer VALUES (1, 'Ada'), (2, 'Bob')")
    conn.execute(
        "INSERT INTO orders VALUES (10, 1, 9.50, DATE '2024-01-02'), (11, 1, 20.00, DATE "
        "'2024-02-03'), (12, 2, 5.25, DATE '2024-03-04')"
    )
    conn.close()
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.csv"
    path.write_text("token\nhunter2\n")
    return path


def test_parse_db_names_the_engine_and_the_problem(tmp_path: Path, duck_file: Path) -> None:
    sqlite_path = tmp_path / "a.sqlite"
    sqlite3.connect(sqlite_path).execute("CREATE TABLE t (a)").connection.close()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "people.csv").write_text("id,name\n1,Ada\n")
    assert parse_db(sqlite_path).engine == "sqlite"
    assert parse_db(f"sqlite:///{sqlite_path}").engine == "sqlite"
    assert parse_db(duck_file).engine == "duckdb"
    assert parse_db(f"duckdb:///{duck_file}").kind == "file"
    folder = parse_db(tmp_path / "data")
    assert (folder.engine, folder.kind, len(folder.files)) == ("duckdb", "data", 1)
    pg = parse_db("postgresql://reader:s3cret@db.example:5433/shop")
    assert (pg.engine, pg.kind) == ("postgres", "url")
    assert "s3cret" not in pg.label and "***" in pg.label
    (tmp_path / "notes.txt").write_text("hello")
    for bad, words in [
        (tmp_path / "nope.sqlite", "no such file"),
        (tmp_path / "notes.txt", "not a SQLite database"),
        ("mysql://root@h/db", "unknown URL scheme"),
        (f"sqlite:///{duck_file}", "is a DuckDB database"),
        (tmp_path, "folder without data files"),
    ]:
        with pytest.raises(EngineError, match=words):
            parse_db(bad)


def test_plain_values_are_what_sqlite_returns() -> None:
    import datetime
    import decimal

    assert plain_value(decimal.Decimal("2.00")) == 2 and isinstance(
        plain_value(decimal.Decimal("2")), int
    )
    assert plain_value(decimal.Decimal("1.5")) == 1.5
    assert plain_value(datetime.date(2024, 1, 2)) == "2024-01-02"
    assert plain_value(datetime.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    assert plain_value([1, [2, decimal.Decimal("3")]]) == (1, (2, 3))
    assert plain_value(memoryview(b"ab")) == b"ab"


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_duckdb_file_reads_and_describes(duck_file: Path, isolation: str) -> None:
    with open_engine(duck_file, LIMITS, isolation=isolation) as engine:
        schema = engine.schema_text(sample_rows=1)
        assert "CREATE TABLE customer" in schema and "PRIMARY KEY (id)" in schema
        assert "FOREIGN KEY (customer_id) REFERENCES customer (id)" in schema
        assert "total DECIMAL(10,2)" in schema
        assert "1 example rows from orders" in schema
        result = engine.run(
            "SELECT c.name, sum(o.total), min(o.placed) FROM customer c JOIN orders o "
            "ON o.customer_id = c.id GROUP BY c.name ORDER BY c.name"
        )
        assert result.ok, result.error_message
        assert result.rows == [("Ada", 29.5, "2024-01-02"), ("Bob", 5.25, "2024-03-04")]
        assert engine.tables() == ["customer", "orders"]


HOSTILE_WRITES = [
    "INSERT INTO customer VALUES (3, 'Eve')",
    "UPDATE customer SET name = 'x'",
    "DELETE FROM orders",
    "DROP TABLE orders",
    "CREATE TABLE evil AS SELECT 1",
    "CREATE TEMP TABLE leak AS SELECT 1",
    "ALTER TABLE customer ADD COLUMN x INTEGER",
    "CHECKPOINT",
    "BEGIN",
    "COMMIT",
    "SET VARIABLE leak = 1",
    "PREPARE leak AS SELECT 1",
]


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_duckdb_nothing_written_and_nothing_leaks(
    duck_file: Path, tmp_path: Path, isolation: str
) -> None:
    before = _fingerprint(duck_file)
    with open_engine(duck_file, LIMITS, isolation=isolation) as engine:
        pristine = engine.state()
        for sql in HOSTILE_WRITES:
            result = engine.run(sql, capture_state=True)
            if result.ok:  # ran on the in-memory copy, inside a transaction rolled back
                assert sql.split()[0] in ("INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER")
            else:
                assert result.error_class is ErrorClass.FORBIDDEN, (sql, result.error_message)
            assert engine.state() == pristine, sql
        assert not engine.run("SELECT * FROM leak").ok
        assert not engine.run("SELECT getvariable('leak') IS NOT NULL AS x").rows == [(True,)]
        inserted = engine.run("INSERT INTO customer VALUES (3, 'Eve')", capture_state=True)
        assert inserted.ok and inserted.rowcount == 1
        assert ("3", "Eve") not in pristine["customer"] and (3, "Eve") in inserted.state["customer"]
        assert engine.run("SELECT count(*) FROM customer").rows == [(2,)]
    assert _fingerprint(duck_file) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.duckdb"]


def test_duckdb_no_file_network_or_extension_reach(
    duck_file: Path, secret: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    other = tmp_path / "other.duckdb"
    attempts = [
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM '{secret}'",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM glob('{tmp_path}/*')",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"COPY customer TO '{out}'",
        f"COPY (SELECT 1) TO '{out}'",
        f"EXPORT DATABASE '{tmp_path / 'dump'}'",
        f"ATTACH '{other}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SET enable_external_access = true",
        "SET memory_limit = '100GB'",
        "SELECT * FROM duckdb_secrets()",
    ]
    secret_rows = [("hunter2",)]  # noqa: F841 - a Python variable a replacement scan would find
    with open_engine(duck_file, LIMITS, isolation="inline") as engine:
        for sql in attempts:
            result = engine.run(sql)
            assert not result.ok, sql
            assert result.error_class is ErrorClass.FORBIDDEN, (sql, result.error_message)
            assert "hunter2" not in (result.error_message or "")
        missing = engine.run("SELECT * FROM secret_rows")  # no Python replacement scan
        assert missing.error_class is ErrorClass.MISSING_TABLE
    assert not out.exists() and not other.exists() and not (tmp_path / "dump").exists()


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_duckdb_time_is_bounded(duck_file: Path, isolation: str) -> None:
    bombs = [
        "SELECT count(*) FROM range(1000000000000)",
        "SELECT count(*) FROM range(100000) a, range(100000) b, range(1000) c",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    ]
    if isolation == "process":  # one function call: only the kill stops it
        bombs.append("SELECT length(repeat('x', 2000000000))")
    with open_engine(duck_file, LIMITS, isolation=isolation) as engine:
        for sql in bombs:
            started = time.monotonic()
            result = engine.run(sql)
            elapsed = time.monotonic() - started
            assert result.error_class in (ErrorClass.TIMEOUT, ErrorClass.RESOURCE_LIMIT), (
                sql,
                result.error_message,
            )
            assert elapsed <= LIMITS.timeout_s + STOP_SLACK_S, (sql, elapsed)
        assert engine.run("SELECT count(*) FROM customer").rows == [(2,)]  # still answers


def test_duckdb_memory_and_rows_are_bounded(duck_file: Path) -> None:
    with open_engine(duck_file, LIMITS, isolation="process") as engine:
        big = engine.run("SELECT list(range) FROM range(200000000)")
        assert big.error_class is ErrorClass.RESOURCE_LIMIT, big.error_message
        agg = engine.run("SELECT string_agg(repeat('x', 1000000), '') FROM range(1000)")
        assert agg.error_class is ErrorClass.RESOURCE_LIMIT, agg.error_message
        many = engine.run("SELECT * FROM range(1000000000000)")
        assert many.ok and many.truncated and len(many.rows) == LIMITS.max_rows
        assert engine.run("SELECT 1; SELECT 2").error_class is ErrorClass.MULTIPLE_STATEMENTS
        assert engine.run("  -- nothing\n").error_class is ErrorClass.EMPTY
        assert engine.run("SELEC 1").error_class is ErrorClass.SYNTAX


def test_duckdb_errors_are_classified(duck_file: Path) -> None:
    with open_engine(duck_file, LIMITS, isolation="inline") as engine:
        cases = {
            "SELECT * FROM nosuch": ErrorClass.MISSING_TABLE,
            "SELECT nosuch FROM customer": ErrorClass.MISSING_COLUMN,
            "SELECT id FROM customer, orders": ErrorClass.AMBIGUOUS_COLUMN,
            "SELECT no_such_fn(1)": ErrorClass.UNKNOWN_FUNCTION,
            "SELECT 'a' + 1": ErrorClass.TYPE_MISMATCH,
        }
        for sql, expected in cases.items():
            assert engine.run(sql).error_class is expected, sql


def test_duckdb_parquet_and_csv_views(tmp_path: Path, secret: Path) -> None:
    folder = tmp_path / "lake"
    folder.mkdir()
    (folder / "people.csv").write_text("id,name\n1,Ada\n2,Bob\n")
    conn = duckdb.connect()
    conn.execute(f"COPY (SELECT 1 AS id, 3.5 AS score) TO '{folder / 'scores.parquet'}'")
    conn.close()
    before = {p.name: _fingerprint(p) for p in folder.iterdir()}
    with open_engine(folder, LIMITS, isolation="inline") as engine:
        assert engine.tables() == ["people", "scores"]
        assert "CREATE TABLE people" in engine.schema_text()
        joined = engine.run("SELECT p.name, s.score FROM people p JOIN scores s USING (id)")
        assert joined.rows == [("Ada", 3.5)]
        changed = engine.run("DELETE FROM people WHERE id = 1", capture_state=True)
        assert changed.ok and changed.state["people"] == [(2, "Bob")]
        assert engine.run("SELECT count(*) FROM people").rows == [(2,)]
        outside = engine.run(f"SELECT * FROM read_csv('{secret}')")
        assert outside.error_class is ErrorClass.FORBIDDEN
    assert {p.name: _fingerprint(p) for p in folder.iterdir()} == before


def test_sqlite_engine_is_todays_sandbox(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT); INSERT INTO t VALUES (1, 'x');"
    )
    conn.close()
    before = _fingerprint(path)
    with open_engine(path, LIMITS) as engine:
        assert engine.name == "sqlite"
        assert engine.schema_text(sample_rows=1).startswith(
            "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT);"
        )
        assert engine.run("SELECT b FROM t").rows == [("x",)]
        wrote = engine.run("INSERT INTO t VALUES (2, 'y')", capture_state=True)
        assert wrote.ok and wrote.state == {"t": [(1, "x"), (2, "y")]}
        assert engine.run("ATTACH 'x.db' AS x").error_class is ErrorClass.FORBIDDEN
        assert engine.state() == {"t": [(1, "x")]}
    assert _fingerprint(path) == before


def _sql_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["sql", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sql_command_prints_results_errors_and_exit_codes(
    duck_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _sql_cli(
        capsys, "--db", str(duck_file), "--json", "SELECT name FROM customer ORDER BY id"
    )
    record = json.loads(out)
    assert code == 0 and record["ok"] and record["columns"] == ["name"]
    assert record["rows"] == [["Ada"], ["Bob"]] and record["error_class"] is None
    assert set(record) >= {"ok", "error_class", "columns", "rows", "elapsed_s"}
    code, out, _ = _sql_cli(capsys, "--db", str(duck_file), "SELECT * FROM read_csv('/etc/passwd')")
    assert code == 1 and out.startswith("error: forbidden: ")
    code, out, _ = _sql_cli(
        capsys, "--db", str(duck_file), "--timeout", "0.5", "--json",
        "SELECT count(*) FROM range(1000000000000)",
    )  # fmt: skip
    assert code == 1 and json.loads(out)["error_class"] == "timeout"
    code, out, _ = _sql_cli(capsys, "--db", str(duck_file), "SELECT name FROM customer")
    assert code == 0 and "Ada" in out and "2 rows" in out
    code, _, err = _sql_cli(capsys, "--db", str(tmp_path / "missing.duckdb"), "SELECT 1")
    assert code == 2 and "missing.duckdb" in err and "no such file" in err
    code, _, err = _sql_cli(capsys, "--db", "postgresql://nobody@127.0.0.1:1/none", "SELECT 1")
    assert code == 2 and "cannot connect to PostgreSQL" in err
    assert _fingerprint(duck_file)  # still readable, untouched by the runs above
    assert os.listdir(tmp_path) == ["shop.duckdb"]
