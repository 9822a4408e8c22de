"""`sqlgrpo ask`: prompts as trained, SQL run read-only, votes by result, clear bad-input lines."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import sqlgrpo.ask as ask_module
import sqlgrpo.cli.ask as cli_ask
from sqlgrpo.ask import Asker, AskError, TableChange, open_database
from sqlgrpo.cli import main

FARM_QUESTION = "How many farms are there?"
SCHEMA_SCRIPT = (
    "CREATE TABLE farm (farm_id INTEGER PRIMARY KEY, name TEXT, cows INTEGER);\n"
    "INSERT INTO farm VALUES (1, 'North', 10), (2, 'South', 25), (3, 'East', 7);\n"
)


class Scripted:
    """A generator that answers every prompt with fixed completions (prefill not included)."""

    name = "scripted"

    def __init__(self, completions: list[str]) -> None:
        self.completions = completions
        self.prompts: list[str] = []

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        self.prompts.extend(prompts)
        yield list(range(len(prompts))), [list(self.completions) for _ in prompts]


def _answer(sql: str, reasoning: str = "First, count the rows.\nThen return it.") -> str:
    return f"{reasoning}\n</reasoning>\n<sql>\n{sql}\n</sql>"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tokenizer(tiny: tuple[object, object]) -> object:
    return tiny[1]


@pytest.fixture
def farm_copy(tmp_path: Path, spider_subset_path: Path) -> Path:
    target = tmp_path / "farm.sqlite"
    shutil.copyfile(spider_subset_path / "database" / "farm" / "farm.sqlite", target)
    return target


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "farm.sql"
    path.write_text(SCHEMA_SCRIPT)
    return path


def _run_folder(tmp_path: Path, **fields: object) -> Path:
    import yaml

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"prefill": "<reasoning>\n", **fields}))
    return run


def _asker(run: Path, db: object, tokenizer: object, completions: list[str], **kw: object) -> Asker:
    return Asker(str(run), db, generator=Scripted(completions), tokenizer=tokenizer, **kw)


def _count(path: Path, sql: str) -> object:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def test_prompt_is_the_training_prompt(
    tmp_path: Path, tokenizer: object, spider_subset_path: Path
) -> None:
    """Same schema text as the Spider loader (with the run's sample rows), same renderer."""
    from sqlgrpo.data import PromptConfig, load_samples
    from sqlgrpo.data import trainer_prompt as prompt_column

    run = _run_folder(tmp_path, sample_rows=2, one_shot=True)
    trained = PromptConfig(prefill="<reasoning>\n", sample_rows=2, one_shot=True)
    sample = next(
        s for s in load_samples(str(spider_subset_path), split="train").samples
        if s.metadata["db_id"] == "farm" and s.question == FARM_QUESTION
    )  # fmt: skip
    db = open_database(sample.db_path)
    asker = _asker(run, db, tokenizer, [_answer("SELECT count(*) FROM farm;")])
    assert asker.prompt(FARM_QUESTION) == prompt_column(sample, trained, tokenizer)
    assert "2 example rows from farm" in asker.prompt(FARM_QUESTION)


def test_select_runs_and_the_file_is_untouched(
    tmp_path: Path, tokenizer: object, farm_copy: Path
) -> None:
    before = _digest(farm_copy)
    run = _run_folder(tmp_path)
    asker = _asker(
        run, open_database(farm_copy), tokenizer, [_answer("SELECT count(*) FROM farm;")]
    )
    answer = asker.ask(FARM_QUESTION)
    assert answer.sql == "SELECT count(*) FROM farm;"
    assert answer.reasoning.startswith("First, count the rows.")
    assert answer.result.ok and answer.result.rows == _count(farm_copy, "SELECT count(*) FROM farm")
    assert (answer.agreed, answer.samples) == (1, 1)
    assert _digest(farm_copy) == before


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM farm WHERE Farm_ID <= 3;",
        "UPDATE farm SET Cows = 0;",
        "DROP TABLE farm;",
        "INSERT INTO farm (Farm_ID, Year) VALUES (99, 2000);",
        "ATTACH DATABASE 'evil.sqlite' AS evil;",
        "PRAGMA journal_mode = DELETE;",
        "VACUUM;",
    ],
)
def test_writes_never_reach_the_file(
    tmp_path: Path, tokenizer: object, farm_copy: Path, sql: str
) -> None:
    before, mtime = _digest(farm_copy), farm_copy.stat().st_mtime_ns
    asker = _asker(_run_folder(tmp_path), open_database(farm_copy), tokenizer, [_answer(sql)])
    asker.ask("Change something")
    assert _digest(farm_copy) == before and farm_copy.stat().st_mtime_ns == mtime
    assert not (tmp_path / "evil.sqlite").exists()


def test_dml_is_summarised_from_a_copy(tmp_path: Path, tokenizer: object, farm_copy: Path) -> None:
    n = _count(farm_copy, "SELECT count(*) FROM farm")[0][0]
    deleted = _count(farm_copy, "SELECT count(*) FROM farm WHERE Farm_ID <= 3")[0][0]
    sql = "DELETE FROM farm WHERE Farm_ID <= 3;"
    asker = _asker(_run_folder(tmp_path), open_database(farm_copy), tokenizer, [_answer(sql)])
    answer = asker.ask("Delete the first three farms")
    assert answer.result.ok and answer.result.statement_type == "DELETE"
    assert answer.changes == [TableChange("farm", n, n - deleted, 0, deleted)]


def test_votes_by_execution_result(tmp_path: Path, tokenizer: object, schema_file: Path) -> None:
    completions = [
        _answer("SELECT name FROM farm WHERE cows > 8;"),
        _answer("SELECT name FROM farm WHERE cows >= 10 ORDER BY name;"),  # same rows
        _answer("SELECT name FROM farm;"),
        _answer("SELECT nam FROM farm;"),  # errors never agree with each other
        _answer("SELECT nam FROM farm;"),
    ]
    asker = _asker(
        _run_folder(tmp_path), open_database(schema=schema_file), tokenizer, completions,
        samples=5, temperature=0.8,
    )  # fmt: skip
    answer = asker.ask("Which farms have more than 8 cows?")
    assert (answer.agreed, answer.samples) == (2, 5)
    assert answer.sql == "SELECT name FROM farm WHERE cows > 8;"
    assert sorted(answer.result.rows) == [("North",), ("South",)]
    record = answer.to_dict()
    assert record["agreed"] == 2 and record["row_count"] == 2 and record["columns"] == ["name"]


def test_no_answer_runs_gives_the_first_with_its_error(
    tmp_path: Path, tokenizer: object, schema_file: Path
) -> None:
    completions = [_answer("SELECT nam FROM farm;"), _answer("SELEC 1;")]
    asker = _asker(
        _run_folder(tmp_path), open_database(schema=schema_file), tokenizer, completions,
        samples=2, temperature=0.8,
    )  # fmt: skip
    answer = asker.ask("Names?")
    assert answer.agreed == 1 and answer.sql == "SELECT nam FROM farm;"
    assert not answer.result.ok and answer.result.error_class.value == "missing_column"


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for text in expected:
        assert text in err, err


def test_bad_input_gets_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], schema_file: Path
) -> None:
    text_file = tmp_path / "notes.sqlite"
    text_file.write_text("not a database")
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("PRAGMA user_version = 1").connection.close()
    no_tables = tmp_path / "inserts.sql"
    no_tables.write_text("INSERT INTO t VALUES (1);")
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text("{}")
    q = "How many?"
    _one_line_error(capsys, ["ask", "--model", "x/y", "--db", str(tmp_path / "nope.sqlite"), q],
                    "nope.sqlite", "no such file")  # fmt: skip
    _one_line_error(capsys, ["ask", "--model", "x/y", "--db", str(text_file), q],
                    "notes.sqlite", "not a SQLite database")  # fmt: skip
    _one_line_error(capsys, ["ask", "--model", "x/y", "--db", str(empty), q],
                    "empty.sqlite", "no tables")  # fmt: skip
    _one_line_error(capsys, ["ask", "--model", "x/y", "--schema", str(no_tables), q],
                    "inserts.sql", "empty schema")  # fmt: skip
    _one_line_error(capsys, ["ask", "--model", str(weightless), "--schema", str(schema_file), q],
                    "weightless", "without weights")  # fmt: skip
    _one_line_error(capsys, ["ask", "--model", str(tmp_path), "--schema", str(schema_file), q],
                    "holds no model")  # fmt: skip
    _one_line_error(capsys, ["ask", "--model", "x/y", "--schema", str(schema_file),
                             "--samples", "3", q], "--temperature")  # fmt: skip


def test_cli_prints_reasoning_sql_and_table(
    tmp_path: Path,
    tokenizer: object,
    farm_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scripted = Scripted([_answer("SELECT count(*) FROM farm;")])
    monkeypatch.setattr(ask_module, "load_generator", lambda model, cfg: (scripted, tokenizer))
    monkeypatch.setenv("COLUMNS", "100")
    before = _digest(farm_copy)
    run = _run_folder(tmp_path)
    assert main(["ask", "--model", str(run), "--db", str(farm_copy), FARM_QUESTION]) == 0
    out = capsys.readouterr().out
    n = _count(farm_copy, "SELECT count(*) FROM farm")[0][0]
    for text in ("reasoning", "First, count the rows.", "SELECT count(*) FROM farm;", "1 row"):
        assert text in out, out
    assert f"│ {n} " in out or f"┃ {n}" in out or f" {n} " in out
    assert scripted.prompts[0].endswith("<reasoning>\n")  # the run's prefill
    assert _digest(farm_copy) == before


def test_interactive_loop_reads_until_eof(
    tmp_path: Path,
    tokenizer: object,
    schema_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scripted = Scripted([_answer("SELECT count(*) FROM farm;")])
    monkeypatch.setattr(ask_module, "load_generator", lambda model, cfg: (scripted, tokenizer))
    monkeypatch.setattr(cli_ask, "HISTORY_FILE", tmp_path / "history")
    monkeypatch.setattr("sys.stdin", io.StringIO("How many farms?\n\nAnd now?\n"))
    run = _run_folder(tmp_path)
    assert main(["ask", "--model", str(run), "--schema", str(schema_file), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["question"] for r in lines] == ["How many farms?", "And now?"]
    assert all(r["rows"] == [[3]] for r in lines)


def test_cli_with_a_real_model_keeps_the_file(tiny_dir: Path, farm_copy: Path, capsys) -> None:
    """End to end with a (random) model: it answers something; the file stays byte-identical."""
    before = _digest(farm_copy)
    code = main(["ask", "--model", str(tiny_dir), "--db", str(farm_copy), FARM_QUESTION,
                 "--json", "--max-new-tokens", "8"])  # fmt: skip
    assert code in (0, 1)  # 1: the answer's SQL did not run (a random model writes none)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["question"] == FARM_QUESTION and record["samples"] == 1
    assert _digest(farm_copy) == before


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from eval_tiny_model import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("tiny-ask"))


def test_open_database_needs_one_source(schema_file: Path) -> None:
    with pytest.raises(AskError, match="exactly one"):
        open_database()
    with pytest.raises(AskError, match="exactly one"):
        open_database("a.sqlite", schema_file)


def test_an_answer_cut_off_at_the_budget_says_so(
    tmp_path: Path,
    tokenizer: object,
    schema_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rambling = "First, I use the table(s) farm (columns farm_id, name, cows, cows, cows, cows"
    scripted = Scripted([rambling])
    monkeypatch.setattr(ask_module, "load_generator", lambda model, cfg: (scripted, tokenizer))
    run = _run_folder(tmp_path, max_completion_length=6)
    assert main(["ask", "--model", str(run), "--schema", str(schema_file), "How many?"]) == 1
    out = capsys.readouterr().out
    assert "cut off at 6 new tokens" in out and "no SQL in the answer" in out
    assert "First, I use the table(s) farm" in out and "[cut off]" in out
