"""Put a question to a trained model against a real database: prompt, generate, run, vote.

The prompt is built as in training: the model's run prompt settings
(:mod:`sqlgrpo.models.run_settings`) and the schema text the loaders build
(:func:`sqlgrpo.data.sqlite_schema` for a SQLite file, the CREATE statements of a
``.sql`` script otherwise), through the one prompt renderer. Completions come from
:mod:`sqlgrpo.generation.backends` (or llama.cpp for a GGUF file). The answer's SQL runs in the
sandbox (:class:`sqlgrpo.sql.Database`): the file is opened read-only and copied into
memory, queries run under the read-only authorizer, and anything that writes runs on a
fresh in-memory copy whose changes are summarised; the user's file is never written.

``--db`` also takes a DuckDB file, Parquet / CSV files, or a PostgreSQL URL
(:func:`sqlgrpo.sql.engines.parse_db`): the engine's sandbox runs the SQL
(:mod:`sqlgrpo.sql.engines`: DuckDB read-only with a copy for writes, PostgreSQL in a
transaction that is always rolled back), the schema text is the engine's (types, keys,
example rows), and the prompt names the engine ("Database engine: PostgreSQL"); SQLite
prompts stay as trained.

With several samples, answers vote by execution result: the largest group of answers
whose results are equal (rows as a multiset, values normalised as the comparison rules
do) wins; failed answers never agree with each other.

With ``turns > 1`` (execution feedback, :mod:`sqlgrpo.generation.feedback`) an answer whose SQL
fails, is missing or returns no rows goes back to the model with the sandbox's reply and it
answers again; the answer keeps every turn.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlgrpo.data import Sample, create_statements, render_sample_prompt, sqlite_schema
from sqlgrpo.generation import GenerationConfig, Generator, generate, make_generator
from sqlgrpo.generation.feedback import FeedbackConfig, Turn, generate_with_feedback
from sqlgrpo.generation.voting import result_key, vote_by_execution
from sqlgrpo.models.run_settings import (
    DEFAULT_MAX_NEW_TOKENS,
    PromptSettings,
    ResolvedPrompt,
    resolve_prompt,
)
from sqlgrpo.sql import Database, ExecResult, statement_type
from sqlgrpo.sql.engines import Engine, EngineError, open_engine, parse_db
from sqlgrpo.sql.parsing import extract_reasoning, extract_sql, extract_sql_lenient
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS, capture_tables
from sqlgrpo.sql.statements import QUERY_TYPES

logger = logging.getLogger(__name__)

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf")


class AskError(ValueError):
    """Bad input for ``ask``; the message is one line naming the file and the problem."""


@dataclass
class AskDatabase:
    """The database questions are asked against: its file, prompt schema and sandbox."""

    label: str  # the path or URL given (password masked)
    db: Database | None
    db_path: str | None = None  # a SQLite file (schema with sample rows read from it)
    sql_context: str | None = None  # a schema script built in the sandbox
    schema: str = ""
    engine: Engine | None = None  # DuckDB / PostgreSQL (None: SQLite through ``db``)
    _schemas: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def engine_label(self) -> str:
        """The engine's name as the prompt shows it ("SQLite" for files and scripts)."""
        return self.engine.label if self.engine is not None else "SQLite"

    def schema_text(self, sample_rows: int = 0) -> str:
        """The prompt's schema; an engine's with ``sample_rows`` example rows per table."""
        if self.engine is None:
            return self.schema
        if sample_rows not in self._schemas:
            self._schemas[sample_rows] = self.engine.schema_text(sample_rows=sample_rows)
        return self._schemas[sample_rows]

    def sample(self, question: str, sample_rows: int = 0) -> Sample:
        """A sample for ``question``, as a loader would build it (no gold SQL)."""
        if self.engine is None:
            metadata, context = {}, self.sql_context
        else:  # the engine's DDL stands for the script that would build the schema
            metadata, context = {"engine": self.engine.label}, self.schema_text()
        return Sample(
            id="ask",
            question=question.strip(),
            schema=self.schema_text(sample_rows),
            sql="",
            sql_context=context,
            db_path=self.db_path,
            metadata=metadata,
        )

    def close(self) -> None:
        """Release the engine's connections or worker."""
        if self.engine is not None:
            self.engine.close()


def open_database(db: str | Path | None = None, schema: str | Path | None = None) -> AskDatabase:
    """Open ``db`` read-only (a SQLite or DuckDB file, Parquet / CSV files, a URL) or build
    a schema script in memory (``schema``)."""
    if (db is None) == (schema is None):
        raise AskError("give exactly one of --db DATABASE and --schema FILE.sql")
    if db is not None:
        try:
            target = parse_db(db)
        except EngineError as exc:
            raise AskError(str(exc)) from exc
        if target.engine != "sqlite":
            return _open_engine(target)
        path = Path(target.location)
        try:
            database = Database.from_path(path)
            text = sqlite_schema(path)
        except (ValueError, FileNotFoundError) as exc:
            raise AskError(f"{db}: cannot read the database ({exc})") from exc
        if not text.strip():
            raise AskError(f"{db}: the database has no tables (empty schema)")
        return AskDatabase(str(db), database, db_path=str(path.resolve()), schema=text)
    path = Path(schema).expanduser()  # type: ignore[arg-type]
    if not path.is_file():
        raise AskError(f"{schema}: no such file")
    try:
        script = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AskError(f"{schema}: cannot read the schema script ({exc})") from exc
    text = create_statements(script)
    if not text.strip():
        raise AskError(f"{schema}: no CREATE TABLE statement (empty schema)")
    database = Database.from_context(script)
    if database.build_error:
        raise AskError(f"{schema}: the schema does not build in SQLite ({database.build_error})")
    return AskDatabase(str(schema), database, sql_context=script, schema=text)


def _open_engine(target: Any) -> AskDatabase:
    """A DuckDB or PostgreSQL database behind its engine's sandbox."""
    try:
        engine = open_engine(target, DEFAULT_LIMITS)
        text = engine.schema_text()
    except EngineError as exc:
        raise AskError(str(exc)) from exc
    if not text.strip():
        engine.close()
        raise AskError(f"{target.label}: the database has no tables (empty schema)")
    return AskDatabase(target.label, None, schema=text, engine=engine, _schemas={0: text})


@dataclass(frozen=True)
class TableChange:
    """What a writing statement would do to one table."""

    table: str
    rows_before: int
    rows_after: int
    added: int  # rows present after and not before (multiset difference)
    removed: int


@dataclass
class Candidate:
    """One sampled answer and its execution."""

    completion: str  # prefill included
    sql: str | None
    result: ExecResult | None
    changes: list[TableChange] | None = None


@dataclass
class Answer:
    """The answer to one question (the winning candidate of the vote)."""

    question: str
    prompt: str
    completion: str
    reasoning: str | None
    sql: str | None
    result: ExecResult | None
    changes: list[TableChange] | None
    agreed: int
    samples: int
    prompt_tokens: int
    max_prompt_tokens: int | None
    cut_off: bool = False  # the completion used the whole token budget
    max_new_tokens: int | None = None
    candidates: list[Candidate] = field(default_factory=list)
    turns: list[Turn] | None = None  # every turn, with execution feedback (turns > 1)

    @property
    def over_budget(self) -> bool:
        """True when the prompt is longer than any the model was trained on."""
        return self.max_prompt_tokens is not None and self.prompt_tokens > self.max_prompt_tokens

    def to_dict(self, max_rows: int | None = None) -> dict[str, Any]:
        """JSON-safe record (``max_rows`` keeps the first N result rows)."""
        r = self.result
        rows = None if r is None or not r.ok else [list(row) for row in r.rows[:max_rows]]
        record = {
            "question": self.question,
            "reasoning": self.reasoning,
            "sql": self.sql,
            "completion": self.completion,
            "ok": bool(r and r.ok),
            "statement_type": r.statement_type if r else None,
            "columns": list(r.columns) if r and r.ok else None,
            "rows": rows,
            "row_count": len(r.rows) if r and r.ok else None,
            "truncated": bool(r and r.truncated),
            "error_class": getattr(r.error_class, "value", None) if r else None,
            "error": r.error_message if r else None,
            "changes": [vars(c) for c in self.changes] if self.changes is not None else None,
            "agreed": self.agreed,
            "samples": self.samples,
            "prompt_tokens": self.prompt_tokens,
            "over_budget": self.over_budget,
            "cut_off": self.cut_off,
        }
        if self.turns is not None:
            record["turns"] = [t.to_dict() for t in self.turns]
        return record


def vote(candidates: list[Candidate]) -> tuple[int, int]:
    """Index of the winning candidate and how many agree with it, by execution result
    (:mod:`sqlgrpo.generation.voting`; a writing answer votes with the state it leaves); the first
    candidate with 1 vote when none ran."""
    index, votes = vote_by_execution([result_key(c.result) for c in candidates])
    return index, votes or (1 if candidates else 0)


def summarise_changes(
    before: dict[str, list[tuple]], after: dict[str, list[tuple]]
) -> list[TableChange]:
    """Per table, the rows a statement added and removed (tables it created or dropped too)."""
    changes = []
    for table in sorted(set(before) | set(after)):
        old, new = Counter(before.get(table, [])), Counter(after.get(table, []))
        added, removed = sum((new - old).values()), sum((old - new).values())
        if added or removed or (table in before) != (table in after):
            changes.append(TableChange(table, sum(old.values()), sum(new.values()), added, removed))
    return changes


def execute(
    database: AskDatabase, sql: str | None
) -> tuple[ExecResult | None, list[TableChange] | None]:
    """Run ``sql`` in the sandbox; a statement that writes runs where its changes are thrown
    away (a pristine in-memory copy; PostgreSQL: a transaction rolled back) and comes back
    with the changes it made there."""
    if not sql:
        return None, None
    try:
        kind = statement_type(sql)
    except Exception:  # noqa: BLE001 - the sandbox classifies it below
        kind = "UNKNOWN"
    runner: Any = database.engine if database.engine is not None else database.db
    if kind in QUERY_TYPES:
        return runner.run(sql), None
    result = runner.run(sql, capture_state=True)
    if not result.ok or result.state is None:
        return result, None
    if database.engine is not None:
        before = database.engine.state()
    else:
        copy = database.db.copy()  # type: ignore[union-attr]
        try:
            before = capture_tables(copy, DEFAULT_LIMITS)
        finally:
            copy.close()
    return result, summarise_changes(before, result.state)


def _has_weights(folder: Path) -> bool:
    return any(any(folder.glob(p)) for p in WEIGHT_PATTERNS) or any(folder.glob("adapter_model.*"))


def load_generator(model: str, cfg: GenerationConfig) -> tuple[Generator, Any]:
    """A generator and tokenizer for ``model``: a ``.gguf`` file runs on llama.cpp; anything
    else (alias, run folder, merged export, hub id) loads with transformers."""
    from sqlgrpo.models import ModelNotFoundError, resolve_model_path

    if model.endswith(".gguf"):
        from sqlgrpo.generation.llamacpp import load_gguf_tokenizer

        try:
            tokenizer = load_gguf_tokenizer(model)
        except (OSError, ValueError) as exc:
            raise AskError(f"{model}: cannot load the GGUF model ({exc})") from exc
        gen_cfg = GenerationConfig(**{**vars(cfg), "backend": "llama-cpp"})
        return make_generator(gen_cfg, model_path=model), tokenizer
    try:
        path = resolve_model_path(model)
    except ModelNotFoundError as exc:
        raise AskError(str(exc)) from exc
    if Path(path).is_dir() and not _has_weights(Path(path)):
        raise AskError(f"{path}: model folder without weights (no *.safetensors or *.bin file)")
    from sqlgrpo.models import load_model_and_tokenizer
    from sqlgrpo.models.precision import resolve_precision

    precision = resolve_precision(cfg.precision, "cpu")
    logger.info("%s", precision.describe())
    loaded, tokenizer = load_model_and_tokenizer(model, dtype=precision.dtype)
    gen_cfg = GenerationConfig(**{**vars(cfg), "backend": "hf"})
    return make_generator(gen_cfg, model=loaded, tokenizer=tokenizer), tokenizer


def _partial_reasoning(completion: str) -> str | None:
    """The reasoning of an answer cut off before ``</reasoning>`` (marked as cut off)."""
    start = completion.find("<reasoning>")
    if start < 0:
        return None
    body = completion[start + len("<reasoning>") :].split("<sql>")[0].strip()
    return f"{body} [cut off]" if body else None


class Asker:
    """Answers questions about one database with one model, prompted as it was trained."""

    def __init__(
        self,
        model: str,
        database: AskDatabase,
        *,
        overrides: PromptSettings | None = None,
        samples: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        precision: str = "auto",
        generator: Generator | None = None,
        tokenizer: Any = None,
        feedback: FeedbackConfig | None = None,
    ) -> None:
        if samples < 1:
            raise AskError(f"--samples must be >= 1, got {samples}")
        self.feedback = feedback or FeedbackConfig()
        if self.feedback.enabled and samples > 1:
            raise AskError("--turns N > 1 answers one conversation: use it with --samples 1")
        if samples > 1 and temperature <= 0:
            raise AskError("--samples N > 1 needs --temperature > 0 (greedy gives N copies)")
        self.database = database
        self.resolved: ResolvedPrompt = resolve_prompt(model, overrides)
        self.prompt_config = self.resolved.settings.prompt_config()
        self.gen_cfg = GenerationConfig(
            max_new_tokens=self.resolved.settings.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            batch_size=1,
            temperature=temperature,
            top_p=top_p,
            num_samples=samples,
            seed=seed,
            show_progress=False,
            precision=precision,
        )
        if generator is None:
            generator, tokenizer = load_generator(model, self.gen_cfg)
        if tokenizer is None:
            raise ValueError("a generator given to Asker needs its tokenizer")
        self.generator = generator
        self.tokenizer = tokenizer

    def prompt(self, question: str) -> str:
        """The rendered prompt for ``question`` (chat template, schema, prefill)."""
        sample = self.database.sample(question, self.prompt_config.sample_rows)
        return render_sample_prompt(sample, self.prompt_config, self.tokenizer)

    def ask(self, question: str) -> Answer:
        """Generate, run and vote; the answer with its result (or error)."""
        if not question.strip():
            raise AskError("empty question")
        prompt = self.prompt(question)
        n_tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        completions = generate(self.generator, [prompt])[0]
        prefill = self.prompt_config.prefill
        ran: dict[str, tuple[ExecResult | None, list[TableChange] | None]] = {}

        def run(sql: str | None) -> tuple[ExecResult | None, list[TableChange] | None]:
            if sql is None:
                return None, None
            if sql not in ran:
                ran[sql] = execute(self.database, sql)
            return ran[sql]

        turns = None
        if self.feedback.enabled:
            turns = generate_with_feedback(
                self.generator,
                [prompt],
                completions[:1],
                self.feedback,
                tokenizer=self.tokenizer,
                extract=_extract,
                execute=lambda _, sql: run(sql)[0],
                prefill=prefill,
            )[0]
            completions = [turns[-1].completion]
        candidates = []
        for text in completions:
            full = prefill + text
            sql = _extract(full)
            result, changes = run(sql)
            candidates.append(Candidate(full, sql, result, changes))
        best, agreed = vote(candidates)
        win = candidates[best]
        used = len(self.tokenizer(completions[best], add_special_tokens=False)["input_ids"])
        return Answer(
            question=question.strip(),
            prompt=prompt,
            completion=win.completion,
            reasoning=extract_reasoning(win.completion) or _partial_reasoning(win.completion),
            sql=win.sql,
            result=win.result,
            changes=win.changes,
            agreed=agreed,
            samples=len(candidates),
            prompt_tokens=n_tokens,
            max_prompt_tokens=self.resolved.settings.max_prompt_tokens,
            cut_off=used >= self.gen_cfg.max_new_tokens,
            max_new_tokens=self.gen_cfg.max_new_tokens,
            candidates=candidates,
            turns=turns,
        )


def _extract(text: str) -> str | None:
    """The SQL of an answer: inside ``<sql>`` tags, else a fenced block or a bare statement."""
    return extract_sql(text) or extract_sql_lenient(text)
