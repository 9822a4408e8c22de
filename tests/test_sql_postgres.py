"""PostgreSQL's sandbox against hostile statements, on a throwaway cluster (tests/pg_cluster.py):
nothing written, no file / program / network reach, whatever role the URL names (a superuser's
too), each statement stopped within its timeout + 1 s, rows and memory capped."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sqlgrpo.cli import main
from sqlgrpo.sql.engines import open_engine
from sqlgrpo.sql.engines import postgres as pg_engine
from sqlgrpo.sql.errors import ErrorClass
from sqlgrpo.sql.sandbox import SandboxLimits

psycopg = pytest.importorskip("psycopg", reason="needs psycopg (pip install 'sqlgrpo[engines]')")

LIMITS = SandboxLimits(timeout_s=1.0, max_rows=100)
STOP_SLACK_S = 1.0

FIXTURE = [
    "CREATE TABLE customer (id serial PRIMARY KEY, name text NOT NULL)",
    'CREATE TABLE "Order Items" (id serial PRIMARY KEY, customer_id integer REFERENCES '
    "customer (id), total numeric(10, 2), placed date)",
    "INSERT INTO customer (name) VALUES ('Ada'), ('Bob')",
    "INSERT INTO \"Order Items\" (customer_id, total, placed) VALUES (1, 9.50, '2024-01-02'), "
    "(1, 20.00, '2024-02-03'), (2, 5.25, '2024-03-04')",
    "CREATE ROLE reader LOGIN",
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
]


@pytest.fixture(scope="module")
def shop(pg_cluster: object) -> dict[str, str]:
    """A database ``shop`` with two tables, and URLs for a superuser and a SELECT-only role."""
    from pg_cluster import admin_sql

    admin_sql(pg_cluster.url(), "DROP DATABASE IF EXISTS shop", "CREATE DATABASE shop")
    admin_sql(pg_cluster.url("shop"), "DROP ROLE IF EXISTS reader", *FIXTURE)
    try:
        admin_sql(pg_cluster.url("shop"), "CREATE EXTENSION IF NOT EXISTS dblink")
    except psycopg.Error:  # contrib missing: the dblink attempts then fail as unknown too
        pass
    return {"superuser": pg_cluster.url("shop"), "reader": pg_cluster.url("shop", "reader")}


def _snapshot(url: str) -> dict[str, object]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            "customer": conn.execute("SELECT * FROM customer ORDER BY id").fetchall(),
            "items": conn.execute('SELECT * FROM "Order Items" ORDER BY id').fetchall(),
            "tables": conn.execute(
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            ).fetchall(),
            "large_objects": conn.execute(
                "SELECT count(*) FROM pg_largeobject_metadata"
            ).fetchall(),
            "settings": conn.execute(
                "SELECT current_setting('statement_timeout'), current_user"
            ).fetchall(),
        }


def _hostile(marker: Path) -> list[str]:
    return [
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('/')",
        "SELECT pg_stat_file('/etc/passwd')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(1, '/tmp/x')",
        f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
        f"COPY customer FROM PROGRAM 'touch {marker}'",
        "COPY customer TO '/tmp/sqlgrpo_customers.csv'",
        "COPY customer FROM '/etc/passwd'",
        "SELECT dblink_connect('host=127.0.0.1 dbname=shop')",
        "SELECT * FROM dblink('dbname=shop', 'SELECT 1') AS t(a int)",
        "SELECT set_config('role', 'postgres', false)",
        "SELECT set_config('statement_timeout', '0', false), pg_sleep(3)",
        "SELECT query_to_xml('SELECT pg_read_file(''/etc/passwd'')', true, true, '')",
        "SELECT \"set_config\"('role', 'postgres', false)",
        "SELECT pg_catalog . set_config /* a comment */ ('role', 'postgres', false)",
        "SELECT U&\"\\0070g_read_file\"('/etc/passwd')",
        "SELECT * FROM pg_authid",
        "SELECT * FROM pg_shadow",
        "UPDATE pg_settings SET setting = '0' WHERE name = 'statement_timeout'",
        "SELECT pg_advisory_lock(1)",
        "SELECT nextval('customer_id_seq')",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        "SET statement_timeout = 0",
        "RESET ROLE",
        "SET ROLE postgres",
        "SET TRANSACTION READ WRITE",
        "COMMIT",
        "DO $$ BEGIN PERFORM pg_sleep(0); END $$",
        "CREATE TABLE evil (a int)",
        "DROP TABLE customer",
        "CREATE EXTENSION adminpack",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "LISTEN x",
        "SELECT 1; DROP TABLE customer",
        "SELECT 1; SELECT pg_read_file('/etc/passwd')",
        "WITH gone AS (DELETE FROM customer RETURNING *) SELECT count(*) FROM gone",
        "SELECT 1 INTO evil2",
    ]


@pytest.mark.parametrize("role", ["superuser", "reader"])
def test_nothing_written_and_no_file_program_or_network_reach(
    shop: dict[str, str], role: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    before = _snapshot(shop["superuser"])
    with open_engine(shop[role], LIMITS) as engine:
        for sql in _hostile(marker):
            result = engine.run(sql)
            assert not result.ok, sql
            assert result.error_class in (
                ErrorClass.FORBIDDEN,
                ErrorClass.READONLY,
                ErrorClass.MULTIPLE_STATEMENTS,
                ErrorClass.SYNTAX,  # SELECT ... INTO inside the cursor
            ), (sql, result.error_class, result.error_message)
            assert "root:" not in (result.error_message or "")  # nothing of /etc/passwd leaked
        for sql in ("SELECT current_setting('statement_timeout')", "SELECT current_user"):
            assert engine.run(sql).ok
        assert engine.run("SELECT current_setting('work_mem')").rows == [("16MB",)]
        if role == "superuser":
            assert engine.run("SELECT current_user").rows == [("pg_read_all_data",)]
    assert not marker.exists() and not Path("/tmp/sqlgrpo_customers.csv").exists()
    assert _snapshot(shop["superuser"]) == before


def test_the_read_role_holds_without_the_denied_names(
    shop: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layers: with the name check switched off, the superuser URL's queries still run as a
    role that may not read files or run programs (and stay read-only)."""
    monkeypatch.setattr(pg_engine, "denied_reason", lambda sql: None)
    with open_engine(shop["superuser"], LIMITS) as engine:
        for sql in (
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT * FROM pg_ls_dir('/')",
            "SELECT lo_import('/etc/passwd')",
        ):
            result = engine.run(sql)
            assert result.error_class is ErrorClass.FORBIDDEN, (sql, result.error_message)
        written = engine.run("WITH gone AS (DELETE FROM customer RETURNING *) SELECT 1")
        assert written.error_class in (ErrorClass.FORBIDDEN, ErrorClass.READONLY)


def test_each_statement_stops_within_its_timeout(shop: dict[str, str]) -> None:
    bombs = [
        "SELECT pg_sleep(30)",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "SELECT count(*) FROM generate_series(1, 1000000000000)",
        "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
        "SELECT g FROM generate_series(1, 1000000000000) g ORDER BY g DESC",
        "SELECT length(string_agg(repeat('x', 1000000), '')) FROM generate_series(1, 100000)",
    ]
    with open_engine(shop["superuser"], LIMITS) as engine:
        for sql in bombs:
            started = time.monotonic()
            result = engine.run(sql)
            elapsed = time.monotonic() - started
            assert result.error_class in (ErrorClass.TIMEOUT, ErrorClass.RESOURCE_LIMIT), (
                sql,
                result.error_message,
            )
            assert elapsed <= LIMITS.timeout_s + STOP_SLACK_S, (sql, elapsed)
        assert engine.run("SELECT count(*) FROM customer").rows == [(2,)]


def test_rows_are_capped_and_errors_classified(shop: dict[str, str]) -> None:
    with open_engine(shop["reader"], LIMITS) as engine:
        many = engine.run("SELECT g FROM generate_series(1, 1000000) g")
        assert many.ok and many.truncated and len(many.rows) == LIMITS.max_rows
        cases = {
            "SELECT * FROM nosuch": ErrorClass.MISSING_TABLE,
            "SELECT nosuch FROM customer": ErrorClass.MISSING_COLUMN,
            'SELECT id FROM customer, "Order Items"': ErrorClass.AMBIGUOUS_COLUMN,
            "SELECT no_such_fn(1)": ErrorClass.UNKNOWN_FUNCTION,
            "SELECT 1 + 'a'": ErrorClass.TYPE_MISMATCH,
            "SELEC 1": ErrorClass.SYNTAX,
            "": ErrorClass.EMPTY,
        }
        for sql, expected in cases.items():
            assert engine.run(sql).error_class is expected, sql


def test_schema_text_and_results_in_comparison_form(shop: dict[str, str]) -> None:
    with open_engine(shop["reader"], LIMITS) as engine:
        schema = engine.schema_text(sample_rows=1)
        assert (
            "CREATE TABLE customer (\n  id integer,\n  name text NOT NULL,\n  PRIMARY KEY (id)"
            in schema
        )
        assert 'CREATE TABLE "Order Items"' in schema
        assert "FOREIGN KEY (customer_id) REFERENCES customer (id)" in schema
        assert "1 example rows from customer" in schema
        result = engine.run(
            "SELECT c.name, sum(o.total), min(o.placed), avg(o.total) FROM customer c JOIN "
            '"Order Items" o ON o.customer_id = c.id GROUP BY c.name ORDER BY c.name'
        )
        assert result.ok, result.error_message
        assert result.rows == [
            ("Ada", 29.5, "2024-01-02", 14.75),
            ("Bob", 5.25, "2024-03-04", 5.25),
        ]


def test_dml_runs_in_a_transaction_that_is_rolled_back(shop: dict[str, str]) -> None:
    before = _snapshot(shop["superuser"])
    with open_engine(shop["superuser"], LIMITS) as engine:
        inserted = engine.run("INSERT INTO customer (name) VALUES ('Eve')", capture_state=True)
        assert inserted.ok and inserted.rowcount == 1
        assert [row[1] for row in inserted.state["customer"]] == ["Ada", "Bob", "Eve"]
        deleted = engine.run(
            'DELETE FROM "Order Items" WHERE total > 9 RETURNING total', capture_state=True
        )
        assert deleted.ok and sorted(deleted.rows) == [(9.5,), (20,)]
        assert len(deleted.state["order items"]) == 1
        blocked = engine.run("DELETE FROM customer WHERE id = 2", capture_state=True)
        assert blocked.error_class is ErrorClass.CONSTRAINT  # a foreign key still points at it
        assert engine.state()["customer"] == [(1, "Ada"), (2, "Bob")]
    with open_engine(shop["reader"], LIMITS) as engine:  # a SELECT-only role cannot write at all
        refused = engine.run("DELETE FROM customer", capture_state=True)
        assert refused.error_class is ErrorClass.FORBIDDEN
    after = _snapshot(shop["superuser"])
    assert after == before


def test_sql_command_on_postgres(shop: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["sql", "--db", shop["reader"], "--json", "SELECT name FROM customer ORDER BY id"])
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert record["ok"] and record["rows"] == [["Ada"], ["Bob"]]
    assert main(["sql", "--db", shop["reader"], "--timeout", "0.5", "SELECT pg_sleep(5)"]) == 1
    assert capsys.readouterr().out.startswith("error: timeout: ")
    assert main(["sql", "--db", shop["superuser"], "SELECT pg_read_file('/etc/passwd')"]) == 1
    assert capsys.readouterr().out.startswith("error: forbidden: ")
    bad = shop["reader"].replace("/shop?", "/no_such_db?")
    assert main(["sql", "--db", bad, "SELECT 1"]) == 2
    assert "no_such_db" in capsys.readouterr().err
