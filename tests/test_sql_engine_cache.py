"""Evaluation and rewards on another engine: SQLite databases copied into DuckDB / PostgreSQL,
gold SQL transpiled with SQLite's leniencies made explicit, the checker and the execution
reward on top, and ``eval --engine`` prompting with the engine's name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlgrpo.evaluation.evaluate import EvalConfig, evaluate
from sqlgrpo.generation import GenerationConfig
from sqlgrpo.rewards import build_profile
from sqlgrpo.rewards.execution import ExecutionReward
from sqlgrpo.sql.engines.cache import EngineCache
from sqlgrpo.sql.engines.transpile import transpile_script
from sqlgrpo.sql.errors import ErrorClass
from sqlgrpo.sql.execution import ExecutionChecker

pytest.importorskip("duckdb", reason="needs duckdb (pip install 'sqlgrpo[engines]')")

CONTEXT = (
    "CREATE TABLE rating (rid INTEGER, mid INTEGER, stars INTEGER, city TEXT);"
    "CREATE TABLE movie (mid INTEGER PRIMARY KEY, title TEXT, year INTEGER);"
    "INSERT INTO movie VALUES (1, 'Alpha', 1990), (2, 'Beta', 2001), (3, 'Gamma', 2001);"
    "INSERT INTO rating VALUES (10, 1, 2, 'Oslo'), (10, 2, 5, 'oslo'), (11, 3, 4, 'Rome'),"
    " (11, 1, 3, 'Rome');"
)


def test_transpile_makes_sqlite_leniencies_explicit() -> None:
    names = frozenset({"rating", "movie", "rid", "mid", "stars", "city", "title", "year"})
    quoted = transpile_script(
        'SELECT title FROM movie WHERE title != "Beta"', "sqlite", "duckdb", names
    )
    assert "'Beta'" in quoted and '"Beta"' not in quoted
    assert transpile_script('SELECT "title" FROM movie', "sqlite", "duckdb", names).count("'") == 0
    bare = transpile_script(
        "SELECT T1.title, T2.rid FROM movie AS T1 JOIN rating AS T2 ON T1.mid = T2.mid "
        "GROUP BY T2.rid ORDER BY count(*) DESC", "sqlite", "postgres", names,
    )  # fmt: skip
    assert "MIN(T1.title)" in bare and "MIN(T2.rid)" not in bare
    extreme = transpile_script("SELECT title, max(year) FROM movie", "sqlite", "duckdb", names)
    assert "ARG_MAX(title, year)" in extreme
    assert "ARRAY_AGG(title ORDER BY year DESC NULLS LAST)" in transpile_script(
        "SELECT title, max(year) FROM movie", "sqlite", "postgres", names
    )
    assert "ILIKE" in transpile_script(
        "SELECT * FROM rating WHERE city LIKE 'o%'", "sqlite", "duckdb"
    )
    assert transpile_script("SELECT 1 +", "sqlite", "duckdb") == "SELECT 1 +"  # unreadable: as is


#: SQLite's loose typing as Spider's databases hold it: a numeric column holding text (''),
#: numbers kept in a CHAR column, a TEXT key joined to an INTEGER one.
MIXED = (
    "CREATE TABLE weather (day TEXT, max_t INTEGER, zip INTEGER, gust NUMERIC);"
    "INSERT INTO weather VALUES ('d1', 90, 94107, 31), ('d2', '', 94107, ''), ('d3', 70, 1, 9),"
    " ('d4', NULL, 1, 30.5), ('d5', 86, 1, 100);"
    "CREATE TABLE apt (code TEXT, rooms CHAR(5));"
    "INSERT INTO apt VALUES ('a', '3'), ('b', '4'), ('b', '10'), ('c', NULL);"
    "CREATE TABLE race (track_id TEXT, name TEXT);"
    "INSERT INTO race VALUES ('1', 'r1'), ('2', 'r2'), ('x', 'r3');"
    "CREATE TABLE track (track_id INTEGER, name TEXT);"
    "INSERT INTO track VALUES (1, 't1'), (2, 't2'), (3, 't3');"
)
AFFINITY_GOLDS = [
    "SELECT day FROM weather WHERE max_t > 85",  # '' ranks above every number
    "SELECT day FROM weather WHERE max_t < 85",
    "SELECT day FROM weather WHERE 85 < max_t",
    "SELECT day FROM weather WHERE gust BETWEEN 30 AND 31",
    "SELECT day FROM weather WHERE max_t IN (70, 86)",
    "SELECT avg(rooms), sum(rooms) FROM apt",  # text read as numbers
    "SELECT code, avg(rooms) FROM apt GROUP BY code",
    "SELECT day, max_t - gust FROM weather",  # '' - '' is 0
    "SELECT day FROM weather ORDER BY max_t DESC LIMIT 3",  # NULL < numbers < text
    "SELECT day FROM weather ORDER BY gust",
    "SELECT count(*) FROM race WHERE track_id = 1",  # TEXT column: 1 compared as '1'
    "SELECT T2.name FROM race AS T1 JOIN track AS T2 ON T1.track_id = T2.track_id",
    "SELECT name FROM track WHERE track_id NOT IN (SELECT track_id FROM race)",
    "SELECT name FROM race WHERE track_id IN (SELECT track_id FROM track)",
    "SELECT count(*) FROM (SELECT name FROM race INTERSECT SELECT name FROM track)",
]


def _same_on(cache: object) -> list[str]:
    """The golds whose result on ``cache``'s engine differs from SQLite's (empty: all agree)."""
    from sqlgrpo.sql.compare import compare_results
    from sqlgrpo.sql.database import DatabaseCache
    from sqlgrpo.sql.statements import has_order_by

    sqlite, other = DatabaseCache().get(sql_context=MIXED), cache.get(sql_context=MIXED)
    differ = []
    for gold in AFFINITY_GOLDS:
        a, b = sqlite.run(gold, allow_multiple=True), other.run(gold, allow_multiple=True)
        assert a.ok, (gold, a.error_message)
        if not (b.ok and compare_results(a, b, "seed", order_matters=has_order_by(gold)).exact):
            differ.append(
                f"{gold} -> {other.gold_sql(gold)}: {a.rows} vs {b.rows or b.error_message}"
            )
    return differ


def test_sqlite_type_affinity_is_made_explicit_on_duckdb() -> None:
    from sqlgrpo.sql.database import DatabaseCache

    raw = DatabaseCache().get(sql_context=MIXED)
    assert raw.run("SELECT day FROM weather WHERE max_t > 85").rows == [("d1",), ("d2",), ("d5",)]
    assert _same_on(EngineCache("duckdb")) == []


def test_sqlite_type_affinity_is_made_explicit_on_postgres(pg_cluster: object) -> None:
    from pg_cluster import admin_sql

    admin_sql(pg_cluster.url(), "DROP DATABASE IF EXISTS affinity", "CREATE DATABASE affinity")
    assert _same_on(EngineCache("postgres", url=pg_cluster.url("affinity"))) == []


def _checks(checker: ExecutionChecker) -> dict[str, object]:
    gold = 'SELECT title, max(stars) FROM movie JOIN rating USING (mid) WHERE city LIKE "o%"'
    return {
        "gold_rows": checker.gold_result(gold, sql_context=CONTEXT).rows,
        "same": checker.check("SELECT 'Beta', 5", gold, sql_context=CONTEXT).match,
        "wrong": checker.check(
            "SELECT title, 2 FROM movie LIMIT 1", gold, sql_context=CONTEXT
        ).match,
        "missing": checker.check("SELECT * FROM nope", gold, sql_context=CONTEXT).error_class,
        "dml": checker.check(
            "UPDATE movie SET year = 2000 WHERE mid = 1",
            "UPDATE movie SET year = 2000 WHERE title = 'Alpha'",
            sql_context=CONTEXT,
        ).match,
    }


def test_the_checker_on_duckdb_agrees_with_sqlite() -> None:
    sqlite = _checks(ExecutionChecker())
    checker = ExecutionChecker.on_engine("duckdb")
    assert isinstance(checker.cache, EngineCache)
    duck = _checks(checker)
    assert sqlite == duck
    assert duck["gold_rows"] == [("Beta", 5)] and duck["same"] and not duck["wrong"]
    assert duck["missing"] is ErrorClass.MISSING_TABLE and duck["dml"]


def test_the_execution_reward_on_duckdb() -> None:
    completions = [
        "<reasoning>x</reasoning><sql>SELECT count(*) FROM movie WHERE year = 2001</sql>",
        "<reasoning>x</reasoning><sql>SELECT count(*) FROM movie</sql>",
        "<reasoning>x</reasoning><sql>SELECT count(*) FROM films</sql>",
        "<reasoning>x</reasoning><sql>SELECT * FROM read_csv('/etc/passwd')</sql>",
    ]
    columns = {
        "sql": ["SELECT count(*) FROM movie WHERE year = 2001"] * 4,
        "sql_context": [CONTEXT] * 4,
    }
    on_sqlite = ExecutionReward()(None, completions, **columns)
    on_duckdb = ExecutionReward(engine="duckdb")(None, completions, **columns)
    assert on_duckdb[:3] == on_sqlite[:3]
    assert on_duckdb[0] == pytest.approx(1.2) and on_duckdb[3] == 0.0
    assert [f.__name__ for f in build_profile("spec", engine="duckdb")]  # routed to the reward
    with pytest.raises(ValueError, match="engine_url"):
        ExecutionReward(engine="postgres")


def test_the_checker_on_postgres(pg_cluster: object) -> None:
    from pg_cluster import admin_sql

    admin_sql(pg_cluster.url(), "DROP DATABASE IF EXISTS evalcopy", "CREATE DATABASE evalcopy")
    sqlite = _checks(ExecutionChecker())
    pg = _checks(ExecutionChecker(cache=EngineCache("postgres", url=pg_cluster.url("evalcopy"))))
    assert pg == sqlite


def test_eval_on_an_engine_names_it_in_the_prompt(tmp_path: Path, tiny: tuple) -> None:
    samples = tmp_path / "rows.jsonl"
    rows = [
        {"id": "a", "sql_prompt": "How many movies came out in 2001?", "sql_context": CONTEXT,
         "sql": "SELECT count(*) FROM movie WHERE year = 2001"},
        {"id": "b", "sql_prompt": "List the titles.", "sql_context": CONTEXT,
         "sql": "SELECT title FROM movie"},
    ]  # fmt: skip
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))

    class Scripted:
        name = "scripted"
        prompts: list[str] = []

        def generate_batches(self, prompts):  # type: ignore[no-untyped-def]
            self.prompts.extend(prompts)
            answers = ["SELECT count(*) FROM movie WHERE year = 2001", "SELECT titl FROM movie"]
            yield (
                list(range(len(prompts))),
                [[f"<reasoning>r</reasoning>\n<sql>{a}</sql>"] for a in answers[: len(prompts)]],
            )

    generator = Scripted()
    cfg = EvalConfig(
        model="scripted", data=str(samples), out_dir=str(tmp_path / "ev"), engine="duckdb",
        generation=GenerationConfig(show_progress=False, batch_size=8),
    )  # fmt: skip
    result = evaluate(cfg, tokenizer=tiny[1], generator=generator)
    assert all("Database engine: DuckDB" in p for p in generator.prompts)
    records = [json.loads(line) for line in (tmp_path / "ev" / "predictions.jsonl").open()]
    assert [r["match"] for r in records] == [True, False]
    assert records[1]["error_class"] == "missing_column"
    assert result.metrics["settings"]["engine"] == "duckdb"
    with pytest.raises(ValueError, match="engine_url"):
        EvalConfig(model="m", data="d", engine="postgres")
    secret = EvalConfig(model="m", data="d", engine="postgres", engine_url="postgresql://u:pw@h/db")
    assert "pw" not in json.dumps(secret.settings())
