"""`sqlgrpo ask` against a DuckDB file and a PostgreSQL database: the prompt names the engine
and shows its schema, queries answer, writes are summarised and never reach the database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sqlgrpo.ask import Asker, TableChange, open_database
from sqlgrpo.cli import main

duckdb = pytest.importorskip("duckdb", reason="needs duckdb (pip install 'sqlgrpo[engines]')")

FARMS = [(1, "North", 10), (2, "South", 25), (3, "East", 7)]


class Scripted:
    """A generator answering every prompt with fixed completions."""

    name = "scripted"

    def __init__(self, completions: list[str]) -> None:
        self.completions = completions
        self.prompts: list[str] = []

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        self.prompts.extend(prompts)
        yield list(range(len(prompts))), [list(self.completions) for _ in prompts]


def _answer(sql: str) -> str:
    return f"First, read the farm table.\nThen answer.\n</reasoning>\n<sql>\n{sql}\n</sql>"


def _asker(tmp_path: Path, database: object, tokenizer: object, sql: str) -> Asker:
    import yaml

    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"prefill": "<reasoning>\n", "sample_rows": 1}))
    return Asker(str(run), database, generator=Scripted([_answer(sql)]), tokenizer=tokenizer)


@pytest.fixture
def farm_duckdb(tmp_path: Path) -> Path:
    path = tmp_path / "farm.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE farm (farm_id INTEGER PRIMARY KEY, name VARCHAR, cows INTEGER)")
    conn.executemany("INSERT INTO farm VALUES (?, ?, ?)", FARMS)
    conn.close()
    return path


@pytest.fixture(scope="module")
def farm_postgres(pg_cluster: object) -> str:
    from pg_cluster import admin_sql

    admin_sql(pg_cluster.url(), "DROP DATABASE IF EXISTS farms", "CREATE DATABASE farms")
    admin_sql(
        pg_cluster.url("farms"),
        "CREATE TABLE farm (farm_id integer PRIMARY KEY, name text, cows integer)",
        "INSERT INTO farm VALUES " + ", ".join(f"({i}, '{n}', {c})" for i, n, c in FARMS),
    )
    return pg_cluster.url("farms")


def _check_engine(tmp_path: Path, db: str, tiny: tuple[object, object], label: str) -> None:
    tokenizer = tiny[1]
    database = open_database(db)
    try:
        asker = _asker(
            tmp_path, database, tokenizer, "SELECT name FROM farm WHERE cows > 8 ORDER BY name;"
        )
        prompt = asker.prompt("Which farms have more than 8 cows?")
        assert f"Database engine: {label}" in prompt
        assert "CREATE TABLE farm" in prompt and "1 example rows from farm" in prompt
        answer = asker.ask("Which farms have more than 8 cows?")
        assert answer.result.ok and answer.result.rows == [("North",), ("South",)]
        writer = _asker(tmp_path, database, tokenizer, "DELETE FROM farm WHERE cows < 20;")
        change = writer.ask("Remove the small farms")
        assert change.result.ok, change.result.error_message
        assert change.changes == [TableChange("farm", 3, 1, 0, 2)]
        assert asker.ask("again").result.rows == [("North",), ("South",)]
    finally:
        database.close()


def test_ask_a_duckdb_file(tmp_path: Path, tiny: tuple[object, object], farm_duckdb: Path) -> None:
    before = hashlib.sha256(farm_duckdb.read_bytes()).hexdigest(), farm_duckdb.stat().st_mtime_ns
    _check_engine(tmp_path, str(farm_duckdb), tiny, "DuckDB")
    assert (
        hashlib.sha256(farm_duckdb.read_bytes()).hexdigest(),
        farm_duckdb.stat().st_mtime_ns,
    ) == before


def test_ask_a_postgres_database(
    tmp_path: Path, tiny: tuple[object, object], farm_postgres: str
) -> None:
    import psycopg

    _check_engine(tmp_path, farm_postgres, tiny, "PostgreSQL")
    with psycopg.connect(farm_postgres) as conn:
        assert conn.execute("SELECT * FROM farm ORDER BY farm_id").fetchall() == FARMS


def test_ask_bad_database_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["ask", "--model", "x/y", "--db", "postgresql://nobody@127.0.0.1:1/none", "q?"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "cannot connect to PostgreSQL" in err
