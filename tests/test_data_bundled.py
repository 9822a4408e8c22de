"""Invariants of the shipped bundled dataset, checked against the files themselves."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from sqlgrpo.data import BUNDLED_DIR, create_statements, load_samples, validate_samples

GRETEL_TIERS = {
    "basic SQL",
    "aggregation",
    "single join",
    "multiple_joins",
    "subqueries",
    "window functions",
    "CTEs",
    "set operations",
}
TASK_TYPES = {"data retrieval", "analytics and reporting", "data manipulation"}
COLUMNS = {
    "id",
    "domain",
    "sql_complexity",
    "sql_task_type",
    "sql_prompt",
    "sql_context",
    "sql",
    "sql_explanation",
    "pattern",
    "split",
}


def _records(split: str) -> list[dict]:
    path = BUNDLED_DIR / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return _records("train")


@pytest.fixture(scope="module")
def test() -> list[dict]:
    return _records("test")


def test_sizes_columns_and_labels(train: list[dict], test: list[dict]) -> None:
    assert len(train) >= 2000 and len(test) >= 300
    for split, records in (("train", train), ("test", test)):
        for r in records:
            assert set(r) == COLUMNS, r["id"]
            assert r["split"] == split and r["id"].startswith(f"bundled:{split}:")
            assert r["sql_complexity"] in GRETEL_TIERS and r["sql_task_type"] in TASK_TYPES
            assert r["sql_explanation"].endswith(".") and r["sql_explanation"].count(". ") == 0
    assert {r["sql_complexity"] for r in train} == GRETEL_TIERS
    assert {r["sql_task_type"] for r in train} == TASK_TYPES
    assert any("HAVING" in r["sql"] for r in train)  # GROUP BY / HAVING pattern
    assert {r["sql"].split()[0] for r in train} >= {"SELECT", "WITH", "INSERT", "UPDATE", "DELETE"}
    assert len({r["id"] for r in train + test}) == len(train) + len(test)


def test_domains_and_held_out_generalisation(train: list[dict], test: list[dict]) -> None:
    train_domains = {r["domain"] for r in train}
    test_only_domains = {r["domain"] for r in test} - train_domains
    assert len(train_domains | test_only_domains) >= 12
    assert len(test_only_domains) >= 2
    held_out_patterns = {r["pattern"] for r in test} - {r["pattern"] for r in train}
    assert held_out_patterns
    # held-out patterns are tested on the train domains too, not only on new domains
    assert {r["domain"] for r in test if r["pattern"] in held_out_patterns} & train_domains
    manifest = json.loads((BUNDLED_DIR / "manifest.json").read_text())
    assert set(manifest["held_out_domains"]) == test_only_domains
    assert set(manifest["held_out_patterns"]) == held_out_patterns
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == {
        "train": len(train),
        "test": len(test),
    }


def test_splits_disjoint(train: list[dict], test: list[dict]) -> None:
    train_keys = {(r["sql_prompt"], r["sql"]) for r in train}
    assert not [r["id"] for r in test if (r["sql_prompt"], r["sql"]) in train_keys]
    for records in (train, test):
        keys = Counter((r["sql_prompt"], r["sql"]) for r in records)
        assert max(keys.values()) == 1


def test_compact_schemas_with_keys_and_varied_rows(train: list[dict], test: list[dict]) -> None:
    for context in {r["sql_context"] for r in train + test}:
        schema = create_statements(context)
        assert 2 <= schema.count("CREATE TABLE") <= 4
        assert "PRIMARY KEY" in schema and "REFERENCES" in schema
        conn = sqlite3.connect(":memory:")
        conn.executescript(context)
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            count = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            assert 8 <= count <= 20, table
            # every text column has at least two distinct values (a wrong filter shows)
            for _, col, ctype, *_ in conn.execute(f"PRAGMA table_info({table})"):
                if ctype == "TEXT":
                    distinct = conn.execute(f"SELECT COUNT(DISTINCT {col}) FROM {table}").fetchone()
                    assert distinct[0] >= 2, (table, col)


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_gold_executes_with_rows(split: str) -> None:
    result = load_samples(f"bundled:{split}")
    assert not result.skipped
    report = validate_samples(result.samples)
    assert report.failures == []
    assert report.empty_gold == []
    assert report.duplicates == []


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    from sqlgrpo.data.bundled.generate import write_bundled

    write_bundled(tmp_path)
    for name in ("train.jsonl", "test.jsonl", "manifest.json"):
        assert (tmp_path / name).read_bytes() == (BUNDLED_DIR / name).read_bytes(), name


def test_bundled_files_stay_small() -> None:
    total = sum((BUNDLED_DIR / n).stat().st_size for n in ("train.jsonl", "test.jsonl"))
    assert total < 8 * 1024 * 1024
