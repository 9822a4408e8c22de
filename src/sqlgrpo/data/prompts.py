"""Chat prompts: the spec's system prompt, user turn (schema + question), rendering, budget, and
the observation turn that carries the sandbox's reply back to the model (execution feedback)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlgrpo.data.sample import Sample
from sqlgrpo.data.schema import sqlite_schema

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = """You are an AI assistant that converts natural language questions into SQL queries.
Given a database schema and a question, generate the correct SQL query.
Respond ONLY in the following format, including the <reasoning> and <sql> tags:
<reasoning>
Think step by step to understand the database schema and the question.
Identify the necessary tables, columns, joins, and conditions.
Explain the logic for constructing the SQL query.
</reasoning>
<sql>
-- Your SQL query here
</sql>"""

ONE_SHOT_EXAMPLE = """Example:
Database schema:
CREATE TABLE authors (author_id INTEGER PRIMARY KEY, name TEXT, country TEXT);
CREATE TABLE books (book_id INTEGER PRIMARY KEY, author_id INTEGER, title TEXT, price REAL);
Question: What is the average book price for each author from Canada?
<reasoning>
First, the question needs authors from Canada, so I filter the authors table on country = 'Canada'.
Then I join books to authors on author_id to get each author's books.
Finally, I group by the author's name and take AVG(price) of the books.
</reasoning>
<sql>
SELECT a.name, AVG(b.price) AS avg_price FROM authors a JOIN books b ON a.author_id = b.author_id WHERE a.country = 'Canada' GROUP BY a.name;
</sql>"""


@dataclass
class PromptConfig:
    """How samples become chat prompts."""

    system_prompt: str = field(
        default=DEFAULT_SYSTEM_PROMPT, metadata={"help": "system turn (SPEC section 1 by default)"}
    )
    one_shot: bool = field(
        default=False, metadata={"help": "append a worked example to the system prompt"}
    )
    prefill: str = field(
        default="", metadata={"help": "text the assistant turn starts with, e.g. '<reasoning>\\n'"}
    )
    sample_rows: int = field(
        default=0, metadata={"help": "example rows per table in SQLite-file schemas"}
    )
    max_prompt_tokens: int | None = field(
        default=None, metadata={"help": "token budget for a rendered prompt (None: no check)"}
    )

    def __post_init__(self) -> None:
        if not self.system_prompt.strip():
            raise ValueError("system_prompt must not be empty")
        if self.sample_rows < 0:
            raise ValueError(f"sample_rows must be >= 0, got {self.sample_rows}")
        if self.max_prompt_tokens is not None and self.max_prompt_tokens <= 0:
            raise ValueError(f"max_prompt_tokens must be positive, got {self.max_prompt_tokens}")

    def full_system_prompt(self) -> str:
        """The system prompt, with the one-shot example appended when enabled."""
        if self.one_shot:
            return f"{self.system_prompt}\n\n{ONE_SHOT_EXAMPLE}"
        return self.system_prompt


@dataclass(frozen=True)
class OverBudget:
    """A sample whose rendered prompt exceeds the token budget."""

    id: str
    tokens: int
    max_tokens: int


def schema_text(sample: Sample, cfg: PromptConfig) -> str:
    """The schema shown to the model (SQLite files get example rows when configured)."""
    if cfg.sample_rows and sample.db_path is not None:
        return sqlite_schema(sample.db_path, sample_rows=cfg.sample_rows)
    return sample.schema


#: The sample metadata key naming the engine the SQL runs on ("PostgreSQL", "DuckDB").
ENGINE_KEY = "engine"


def on_engine(sample: Sample, engine: str) -> Sample:
    """``sample`` as prompted for ``engine`` (one of ``ENGINE_NAMES``): its metadata names the
    engine, so the prompt says so; SQLite samples are returned unchanged."""
    from dataclasses import replace

    from sqlgrpo.sql.engines.base import ENGINE_LABELS

    if engine == "sqlite":
        return sample
    return replace(sample, metadata={**sample.metadata, ENGINE_KEY: ENGINE_LABELS[engine]})


def engine_line(sample: Sample) -> str | None:
    """``Database engine: X`` for a sample that runs on another engine than SQLite (None for
    SQLite: prompts for SQLite databases stay as models were trained on them)."""
    engine = sample.metadata.get(ENGINE_KEY)
    if not engine or engine.lower() == "sqlite":
        return None
    return f"Database engine: {engine}"


def user_message(sample: Sample, cfg: PromptConfig) -> str:
    """The user turn: the engine (when not SQLite), schema, then evidence (BIRD) when present,
    then the question."""
    engine = engine_line(sample)
    parts = [engine] if engine else []
    parts.append(f"Database schema:\n{schema_text(sample, cfg)}")
    if sample.evidence:
        parts.append(f"Evidence: {sample.evidence}")
    parts.append(f"Question: {sample.question}")
    return "\n\n".join(parts)


def build_messages(sample: Sample, cfg: PromptConfig | None = None) -> list[dict[str, str]]:
    """System + user chat messages for one sample."""
    cfg = cfg or PromptConfig()
    return [
        {"role": "system", "content": cfg.full_system_prompt()},
        {"role": "user", "content": user_message(sample, cfg)},
    ]


def decode_prefill_escapes(text: str) -> str:
    """A prefill typed on a command line: ``\\n`` and ``\\t`` become a newline and a tab.

    A shell passes ``--prefill '<reasoning>\\n'`` as a backslash and an ``n``; every CLI that
    takes a prefill decodes it here, so one flag means one prompt everywhere.
    """
    return text.replace("\\n", "\n").replace("\\t", "\t")


def render_prompt(messages: Sequence[dict[str, str]], tokenizer: Any, prefill: str = "") -> str:
    """Render with the tokenizer's chat template (generation prompt added), then the prefill."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return text + prefill


def render_sample_prompt(sample: Sample, cfg: PromptConfig, tokenizer: Any) -> str:
    """One sample's prompt as the model sees it: chat template, generation prompt, prefill."""
    return render_prompt(build_messages(sample, cfg), tokenizer, cfg.prefill)


def trainer_prompt(sample: Sample, cfg: PromptConfig, tokenizer: Any) -> Any:
    """The ``prompt`` value a TRL trainer sees: chat messages, or rendered text with a prefill.

    TRL renders conversational prompts with ``add_generation_prompt=True`` and no way to
    continue a final assistant message, so a prefill is rendered here as text, without the
    BOS token the tokenizer adds again when TRL tokenizes it. Either way the token ids equal
    those of :func:`render_sample_prompt`.
    """
    if not cfg.prefill:
        return build_messages(sample, cfg)
    return text_for_tokenizer(render_sample_prompt(sample, cfg, tokenizer), tokenizer)


#: Said after an observation, in the same user turn: what the model should do with it.
OBSERVATION_INSTRUCTION = "Correct the SQL if needed and answer again in the same format."
# stands in for an assistant answer while the chat template renders the turns around it
_ANSWER_SENTINEL = "SQLGRPOANSWERSENTINEL"


def observation_message(observation: str) -> str:
    """The user turn that carries the sandbox's reply: the observation in plain tags (no chat
    template needs a tool format for it), then :data:`OBSERVATION_INSTRUCTION`."""
    return f"<observation>\n{observation}\n</observation>\n{OBSERVATION_INSTRUCTION}"


def observation_turn(observation: str, tokenizer: Any, prefill: str = "") -> str:
    """The text that follows an assistant answer when the sandbox replies to it: the template's
    end of the assistant turn, a user turn holding :func:`observation_message`, the next
    generation prompt and the prefill.

    ``prompt + answer + observation_turn(...)`` is the conversation the chat template would
    render with the answer as an assistant turn and the observation as a user turn, so it works
    for any template that keeps an assistant turn's text (no tool-call format needed). The
    answer is the decoded completion without special tokens; a trainer that keeps the answer's
    end-of-turn token drops the same token from the start of this text.
    """
    messages = [
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": _ANSWER_SENTINEL},
        {"role": "user", "content": observation_message(observation)},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if text.count(_ANSWER_SENTINEL) != 1:
        raise ValueError(
            "the tokenizer's chat template does not keep an assistant turn's text, so an "
            "observation cannot follow the model's answer (execution feedback needs one that does)"
        )
    return text[text.index(_ANSWER_SENTINEL) + len(_ANSWER_SENTINEL) :] + prefill


def text_for_tokenizer(text: str, tokenizer: Any) -> str:
    """A rendered prompt without the BOS its chat template wrote when the tokenizer adds one
    itself (TRL tokenizes text with the special tokens), so the ids match inference's."""
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos) and _tokenizer_adds_bos(tokenizer):
        return text[len(bos) :]
    return text


def _tokenizer_adds_bos(tokenizer: Any) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def prompt_tokens(sample: Sample, tokenizer: Any, cfg: PromptConfig) -> int:
    """Number of tokens in the sample's fully rendered prompt (prefill included)."""
    text = render_sample_prompt(sample, cfg, tokenizer)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_prompt_budget(
    samples: Sequence[Sample], tokenizer: Any, cfg: PromptConfig, max_tokens: int
) -> tuple[list[Sample], list[OverBudget]]:
    """Split samples into those whose prompt fits ``max_tokens`` and those that do not.

    Nothing is truncated: over-budget samples are returned (and logged) so the caller
    decides; a schema is never cut silently.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    kept: list[Sample] = []
    over: list[OverBudget] = []
    for sample in samples:
        n = prompt_tokens(sample, tokenizer, cfg)
        if n <= max_tokens:
            kept.append(sample)
        else:
            over.append(OverBudget(sample.id, n, max_tokens))
    if over:
        logger.warning(
            "%d of %d prompt(s) exceed %d tokens (longest %d): %s%s",
            len(over),
            len(samples),
            max_tokens,
            max(o.tokens for o in over),
            ", ".join(o.id for o in over[:10]),
            " ..." if len(over) > 10 else "",
        )
    return kept, over
