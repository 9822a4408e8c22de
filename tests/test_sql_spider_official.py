"""The ``spider_official`` rule against the official Spider evaluator's recorded verdicts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlgrpo.cli import build_parser
from sqlgrpo.sql import COMPARE_RULES, ExecutionChecker
from sqlgrpo.sql.spider_official import order_matters, rewrite_sql, strip_distinct

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "sql_spider_official_cases.json").read_text()
)
CASES = FIXTURE["cases"]


@pytest.fixture(scope="module")
def official() -> ExecutionChecker:
    return ExecutionChecker("spider_official")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_official_default_verdicts(case: dict, official: ExecutionChecker) -> None:
    outcome = official.check(case["pred"], case["gold"], sql_context=FIXTURE["context"])
    assert outcome.rule == "spider_official"
    assert outcome.match is bool(case["official_default"])


DISTINCT_CASES = [c for c in CASES if "distinct" in c["name"].lower()]


@pytest.mark.parametrize("case", DISTINCT_CASES, ids=lambda c: c["name"])
def test_spider_rule_is_keep_distinct(case: dict) -> None:
    """The ``spider`` rule keeps DISTINCT, as the evaluator's ``--keep_distinct`` does."""
    outcome = ExecutionChecker("spider").check(
        case["pred"], case["gold"], sql_context=FIXTURE["context"]
    )
    assert outcome.match is bool(case["official_keep_distinct"])


def test_every_behaviour_has_a_case() -> None:
    names = " ".join(c["name"].lower() for c in CASES)
    for behaviour in ("distinct", "order by", "empty results", "floats", "permutation"):
        assert behaviour in names


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT COUNT(DISTINCT a) FROM t", "SELECT COUNT( a) FROM t"),
        ("select distinct T1.name from t as T1", "select  T1.name from t as T1"),
        ("SELECT a FROM t WHERE b = 'distinct'", "SELECT a FROM t WHERE b = 'distinct'"),
        ("", ""),
    ],
)
def test_strip_distinct_matches_the_official_text(sql: str, expected: str) -> None:
    # Expected strings: the official parse.remove_distinct on the same input.
    assert strip_distinct(sql) == expected


def test_rewrites_and_order_detection() -> None:
    assert rewrite_sql("SELECT value FROM t WHERE a > = 1", prediction=True) == (
        "SELECT 1 FROM t WHERE a >= 1"
    )
    assert rewrite_sql("SELECT value FROM t", prediction=False) == "SELECT value FROM t"
    assert rewrite_sql("SELECT DISTINCT a FROM t", prediction=False, keep_distinct=True) == (
        "SELECT DISTINCT a FROM t"
    )
    assert order_matters("select a from (select a from t order by a)")
    assert not order_matters("SELECT a FROM t ORDER  BY a")


def _db(path: Path, rows: list[tuple[int, str]]) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER, name TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("rule", COMPARE_RULES)
def test_test_suite_needs_a_match_on_every_database(tmp_path: Path, rule: str) -> None:
    folder = tmp_path / "database" / "shop"
    folder.mkdir(parents=True)
    main = _db(folder / "shop.sqlite", [(1, "a"), (2, "b")])
    gold, pred = "SELECT name FROM t WHERE id >= 2", "SELECT name FROM t WHERE name = 'b'"
    plain = ExecutionChecker(rule).check(pred, gold, db_path=str(main))
    suite = ExecutionChecker(rule, test_suite=True)
    assert plain.match and suite.check(pred, gold, db_path=str(main)).match  # one database
    _db(folder / "shop_1.sqlite", [(2, "c"), (3, "b")])  # a distilled neighbour
    assert ExecutionChecker(rule).check(pred, gold, db_path=str(main)).match
    outcome = suite.check(pred, gold, db_path=str(main))
    assert not outcome.match
    assert outcome.databases_checked == 2
    right = suite.check("SELECT name FROM t WHERE id > 1", gold, db_path=str(main))
    assert right.match and right.databases_checked == 2


def test_cli_choices_come_from_the_rule_names() -> None:
    parser = build_parser()
    for command in ("eval", "score"):
        sub = parser._subparsers._group_actions[0].choices[command]  # noqa: SLF001
        compare = next(a for a in sub._actions if a.dest == "compare")  # noqa: SLF001
        assert tuple(compare.choices) == COMPARE_RULES


REAL = json.loads(
    (Path(__file__).parent / "fixtures" / "sql_spider_official_real.json").read_text()
)


def test_official_verdicts_on_spider_databases(spider_subset_path: Path, tmp_path: Path) -> None:
    """Per question, on official-format files over the real Spider databases."""
    from sqlgrpo.sql.official_files import score_files

    cases = REAL["cases"]
    gold_file, pred_file = tmp_path / "gold.txt", tmp_path / "pred.txt"
    gold_file.write_text("".join(f"{c['gold']}\t{c['db_id']}\n" for c in cases))
    pred_file.write_text("".join(f"{c['pred']}\n" for c in cases))
    db_dir = spider_subset_path / "database"
    got = score_files(gold_file, pred_file, db_dir)
    assert [int(v) for v in got] == [c["official_default"] for c in cases]
    kept = score_files(gold_file, pred_file, db_dir, rule="spider")
    distinct = [i for i, c in enumerate(cases) if c["kind"].endswith("distinct")]
    assert distinct
    assert [int(kept[i]) for i in distinct] == [
        cases[i]["official_keep_distinct"] for i in distinct
    ]


def test_score_files_checks_lengths(tmp_path: Path) -> None:
    from sqlgrpo.sql.official_files import score_files

    (tmp_path / "g.txt").write_text("SELECT 1\tdb\n\nSELECT 2\tdb\n")
    (tmp_path / "p.txt").write_text("SELECT 1\n")
    with pytest.raises(ValueError, match="1 predictions for 2 gold lines"):
        score_files(tmp_path / "g.txt", tmp_path / "p.txt", tmp_path)
