"""Extraction of reasoning / SQL from completions, and schema names from contexts and files."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from sqlgrpo.sql.parsing import (
    extract_reasoning,
    extract_sql,
    extract_sql_lenient,
    schema_names,
    schema_names_from_db,
    tag_content,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<reasoning>r</reasoning><sql>\nSELECT 1;\n</sql>", "SELECT 1;"),
        ("<sql>```sql\nSELECT a FROM t\n```</sql>", "SELECT a FROM t"),
        ("<sql>   </sql>", None),
        ("no tags SELECT 1", None),
        ("<sql>SELECT 1", None),
        ("<sql>first</sql><sql>second</sql>", "first"),
        ("<SQL>SELECT 1</SQL>", None),
    ],
)
def test_extract_sql(text: str, expected: str | None) -> None:
    assert extract_sql(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<reasoning>\n step \n</reasoning><sql>x</sql>", "step"),
        ("<reasoning></reasoning>", ""),
        ("<sql>x</sql>", None),
        ("<reasoning>never closed", None),
    ],
)
def test_extract_reasoning(text: str, expected: str | None) -> None:
    assert extract_reasoning(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<sql>SELECT 1</sql> ```sql\nSELECT 2\n```", "SELECT 1"),
        ("Here you go:\n```sql\nSELECT 2\n```\nDone", "SELECT 2"),
        ("```\nSELECT 3\n```", "SELECT 3"),
        ("The answer is SELECT a FROM t; and that is it", "SELECT a FROM t;"),
        (
            "with the table we run\nWITH x AS (SELECT 1) SELECT * FROM x",
            "WITH x AS (SELECT 1) SELECT * FROM x",
        ),
        ("no sql at all", None),
        # prose verbs are not statements (a base model's answer, seen in an evaluation)
        ("To create a new farm in the Valley region, you need to create a farm_id of 9.", None),
        (
            "You can select the rows you need:\nSELECT name FROM farms\n\nThat is all.",
            "SELECT name FROM farms",
        ),
        ("CREATE a new farm please. Then SELECT id FROM farms; done", "SELECT id FROM farms;"),
    ],
)
def test_extract_sql_lenient(text: str, expected: str | None) -> None:
    assert extract_sql_lenient(text) == expected


def test_tag_content_equals_the_regex_on_random_tag_soup() -> None:
    import random

    rng = random.Random(7)
    pieces = ["<sql>", "</sql>", "x", " ", "<sql", "sql>", "\n"]
    pattern = re.compile(r"<sql>(.*?)</sql>", re.DOTALL)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        match = pattern.search(text)
        assert tag_content(text, "sql") == (match.group(1) if match else None), text


def test_extraction_is_linear_on_hostile_repetition() -> None:
    # 200k unmatched opening tags: a backtracking search would be quadratic here.
    text = "<sql>" * 200_000
    assert extract_sql(text) is None
    assert extract_reasoning("<reasoning>" * 200_000) is None


def test_schema_names_from_gretel_context() -> None:
    context = (
        "CREATE TABLE ExplainableAI (algorithm_id INT, algorithm_name VARCHAR(255), "
        "region VARCHAR(255), fairness_score DECIMAL(5,2), PRIMARY KEY (algorithm_id)); "
        "INSERT INTO ExplainableAI (algorithm_id) VALUES (1); "
        'CREATE TABLE IF NOT EXISTS `db`.`Other` (`Weird Name` TEXT, "q""x" INT, '
        "CONSTRAINT fk FOREIGN KEY (q) REFERENCES t(id)); CREATE VIEW v AS SELECT 1;"
    )
    assert schema_names(context) == {
        "explainableai", "algorithm_id", "algorithm_name", "region", "fairness_score",
        "other", "weird name", 'q"x', "v",
    }  # fmt: skip


def test_schema_names_ignores_garbage() -> None:
    assert schema_names("") == set()
    assert schema_names("CREATE TABLE") == set()
    assert schema_names("CREATE TABLE t (a INT") == {"t", "a"}


def test_schema_names_from_db_reads_read_only(tmp_path) -> None:
    path = tmp_path / "x.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE Singer (Singer_ID INT, Name TEXT)")
        conn.execute("CREATE VIEW names AS SELECT Name FROM Singer")
    conn.close()
    assert schema_names_from_db(str(path)) == {"singer", "singer_id", "name", "names"}
    with pytest.raises(FileNotFoundError, match="missing.sqlite"):
        schema_names_from_db(str(tmp_path / "missing.sqlite"))
    assert not (tmp_path / "missing.sqlite").exists()


def test_schema_names_cover_every_gretel_gold_table(gretel_train_path) -> None:
    # Every table a gold query reads should be declared by its own context.
    rows = [json.loads(line) for line in gretel_train_path.read_text().splitlines() if line.strip()]
    missing = []
    for i, row in enumerate(rows):
        names = schema_names(row["sql_context"])
        if not names:
            missing.append(i)
    assert missing == [], f"rows without schema names: {missing[:10]}"


def test_schema_names_from_spider_database(spider_subset_path) -> None:
    databases = sorted((spider_subset_path / "database").glob("*/*.sqlite"))
    assert databases, "the Spider subset has no databases"
    tables = json.loads((spider_subset_path / "tables.json").read_text())
    by_id = {t["db_id"]: t for t in tables}
    for db in databases[:5]:
        names = schema_names_from_db(str(db))
        declared = by_id[db.parent.name]
        for table in declared["table_names_original"]:
            assert table.lower() in names
        for _, column in declared["column_names_original"][1:]:
            assert column.lower() in names
