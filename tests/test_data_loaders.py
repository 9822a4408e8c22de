"""Loaders on real inputs: the shared gretel sample, the Spider subset, a BIRD folder, formats."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from sqlgrpo.data import PromptConfig, Sample, build_messages, load_samples

FIXTURES = Path(__file__).parent / "fixtures"
GRETEL_SMALL = FIXTURES / "data_gretel_small.jsonl"


def make_bird_folder(root: Path) -> Path:
    """A BIRD-layout folder: dev.json + dev_databases/<db>/<db>.sqlite."""
    db_dir = root / "dev_databases" / "shop"
    db_dir.mkdir(parents=True)
    conn = sqlite3.connect(db_dir / "shop.sqlite")
    conn.executescript(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, segment TEXT);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);"
        "INSERT INTO customers VALUES (1, 'Ana', 'SME'), (2, 'Bo', 'LAM'), (3, 'Cy', 'SME');"
        "INSERT INTO orders VALUES (1, 1, 10.5), (2, 1, 4.0), (3, 2, 99.0);"
    )
    conn.commit()
    conn.close()
    rows = [
        {
            "question_id": 0,
            "db_id": "shop",
            "question": "How many customers are small and medium enterprises?",
            "evidence": "small and medium enterprises refers to segment = 'SME'",
            "SQL": "SELECT COUNT(*) FROM customers WHERE segment = 'SME'",
            "difficulty": "simple",
        },
        {
            "question_id": 1,
            "db_id": "shop",
            "question": "What is the total spent by Ana?",
            "evidence": "",
            "SQL": "SELECT SUM(o.total) FROM orders o JOIN customers c ON o.customer_id = c.id "
            "WHERE c.name = 'Ana'",
            "difficulty": "moderate",
        },
    ]
    (root / "dev.json").write_text(json.dumps(rows), encoding="utf-8")
    return root


def test_gretel_shared_sample(gretel_train_path: Path) -> None:
    result = load_samples(str(gretel_train_path))
    lines = [line for line in gretel_train_path.read_text().splitlines() if line.strip()]
    assert len(result.samples) == len(lines)
    assert not result.skipped
    first = json.loads(lines[0])
    sample = result.samples[0]
    assert sample.id == "gretel:train.jsonl:0"
    assert sample.question == first["sql_prompt"].strip()
    assert sample.sql_context == first["sql_context"] and sample.db_path is None
    for s in result.samples:
        assert "INSERT" not in s.schema.upper().split("(")[0]
        assert s.schema.upper().startswith("CREATE")
        assert s.metadata["source"] == "gretel"
    assert len({s.id for s in result.samples}) == len(result.samples)


def test_gretel_limit_and_reward_columns(gretel_train_path: Path) -> None:
    samples = load_samples(str(gretel_train_path), limit=5).samples
    assert len(samples) == 5
    for s in samples:
        assert set(s.reward_columns()) == {"id", "sql", "sql_context", "db_path"}
        assert s.reward_columns()["db_path"] is None


def test_spider_subset(spider_subset_path: Path) -> None:
    result = load_samples(str(spider_subset_path))
    rows = json.loads((spider_subset_path / "train.json").read_text())
    assert len(result.samples) == len(rows)
    sample = result.samples[0]
    assert sample.id == f"spider:{rows[0]['db_id']}:0"
    assert sample.sql == rows[0]["query"].strip()
    assert sample.sql_context is None and Path(sample.db_path).is_file()
    assert sample.metadata == {"db_id": rows[0]["db_id"], "source": "spider"}
    # The schema is the file's own DDL: every table of the database is named in it.
    conn = sqlite3.connect(f"file:{sample.db_path}?mode=ro", uri=True)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    assert tables and all(name in sample.schema for name in tables)
    assert set(sample.reward_columns()) == {"id", "sql", "sql_context", "db_path"}


def test_spider_unknown_split(spider_subset_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown split"):
        load_samples(str(spider_subset_path), split="validation")


def test_bird_folder_evidence_reaches_prompt(tmp_path: Path) -> None:
    folder = make_bird_folder(tmp_path / "bird")
    result = load_samples(str(folder))
    assert [s.id for s in result.samples] == ["bird:shop:0", "bird:shop:1"]
    first, second = result.samples
    assert first.metadata == {"db_id": "shop", "source": "bird", "difficulty": "simple"}
    assert first.evidence == "small and medium enterprises refers to segment = 'SME'"
    assert second.evidence is None  # empty evidence is absent, not ""
    assert "CREATE TABLE customers" in first.schema and "CREATE TABLE orders" in first.schema
    user = build_messages(first, PromptConfig())[1]["content"]
    assert first.evidence in user and first.question in user
    rows_prompt = build_messages(first, PromptConfig(sample_rows=2))[1]["content"]
    assert "2 example rows from customers" in rows_prompt and "Ana" in rows_prompt
    assert "Cy" not in rows_prompt  # only 2 rows per table


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_gretel_formats_agree(tmp_path: Path) -> None:
    rows = _rows(GRETEL_SMALL)
    as_json = tmp_path / "small.json"
    as_json.write_text(json.dumps(rows))
    as_csv = tmp_path / "small.csv"
    with as_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    as_parquet = tmp_path / "small.parquet"
    pq.write_table(pa.Table.from_pylist(rows), as_parquet)

    def key(s: Sample) -> tuple:
        return (s.question, s.sql, s.sql_context, s.schema, s.metadata.get("domain"))

    expected = [key(s) for s in load_samples(str(GRETEL_SMALL)).samples]
    assert len(expected) == len(rows)
    for path in (as_json, as_csv, as_parquet):
        assert [key(s) for s in load_samples(str(path)).samples] == expected, path.suffix


def test_gretel_metadata_and_schema(tmp_path: Path) -> None:
    samples = load_samples(str(GRETEL_SMALL)).samples
    assert samples[0].metadata == {
        "domain": "maritime",
        "sql_complexity": "basic SQL",
        "sql_task_type": "data retrieval",
        "source": "gretel",
    }
    # A ';' inside a string literal of the INSERT does not leak into the schema.
    assert samples[2].schema == (
        "CREATE TABLE artists (artist_id INT PRIMARY KEY, name TEXT);\n"
        "CREATE TABLE artworks (id INT, artist_id INT, title TEXT);"
    )


def test_split_column_filters(tmp_path: Path) -> None:
    rows = _rows(GRETEL_SMALL)
    for i, row in enumerate(rows):
        row["split"] = "train" if i % 2 == 0 else "test"
        if i >= 2:
            del row["id"]  # rows without an id are numbered
    path = tmp_path / "split.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    test_ids = [s.id for s in load_samples(str(path), split="test").samples]
    # the row's own id (102), or its position in the file, which the filter does not change
    assert test_ids == ["102", "gretel:split.jsonl:3"]
    assert len(load_samples(str(path), split="train").samples) == 2


def test_bundled_sources() -> None:
    train = load_samples("bundled", limit=3).samples
    assert all(s.id.startswith("bundled:train:") for s in train)
    test = load_samples("bundled:test", limit=3).samples
    assert all(s.id.startswith("bundled:test:") for s in test)
    assert load_samples("bundled", split="test", limit=3).samples == test
    assert test[0].metadata["source"] == "bundled" and "pattern" in test[0].metadata
    with pytest.raises(ValueError, match="splits"):
        load_samples("bundled", split="dev")


def test_hub_offline_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from sqlgrpo.data import GRETEL_HUB_ID, DataError

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'gretelai/synthetic_text_to_sql' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="Offline\\?.*bundled") as exc:
        load_samples(GRETEL_HUB_ID)
    assert GRETEL_HUB_ID in str(exc.value)


def test_hub_rows_become_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    rows = _rows(GRETEL_SMALL)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: rows)
    samples = load_samples("gretelai/synthetic_text_to_sql", split="test").samples
    # the hub's integer ids are kept (as text keys, and as numbers in outputs)
    assert [(s.id, s.source_id) for s in samples][:2] == [("101", 101), ("102", 102)]
    assert samples[0].question == rows[0]["sql_prompt"]
