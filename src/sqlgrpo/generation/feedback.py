"""Execution feedback: an answer whose SQL fails or returns nothing goes back to the model as an
observation, and the model answers again, up to a number of turns.

One loop (:func:`feedback_rounds`) serves evaluation, ``sqlgrpo ask`` and multi-turn GRPO
rollouts; they differ only in how an answer's SQL runs and how the model is asked again
(text prompts for inference, token ids with a loss mask for training). An observation is the
sandbox's classified error (``error (missing_column): no such column: nme``), or "the query
returned no rows", or a note that no SQL was found; it is bounded in tokens and rendered in
plain tags by :func:`sqlgrpo.data.observation_turn`, so any chat template works. Only the
prediction's own execution is described: nothing of a gold answer ever reaches the model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlgrpo.sql.sandbox import ExecResult
from sqlgrpo.sql.statements import QUERY_TYPES

logger = logging.getLogger(__name__)

#: What went back when an answer held no SQL to run.
NO_SQL_OBSERVATION = "no SQL query found; write it inside <sql> and </sql>"
#: What went back when a query ran and returned no rows.
EMPTY_OBSERVATION = "the query returned no rows"
TRUNCATION_MARK = " [...]"
# the Python exception name the sandbox puts before a driver's message ("OperationalError: ")
_EXCEPTION_PREFIX = re.compile(r"^[A-Za-z_.]*(?:Error|Exception|Warning): ")


@dataclass(frozen=True)
class FeedbackConfig:
    """How many turns a question gets and what the model is told between them."""

    turns: int = field(
        default=1,
        metadata={
            "help": "answers per question: after a turn whose SQL fails or returns no rows the "
            "model sees the sandbox's reply and answers again (1: no feedback)"
        },
    )
    max_observation_tokens: int = field(
        default=64, metadata={"help": "an observation is cut to this many tokens"}
    )
    retry_empty: bool = field(
        default=True,
        metadata={"help": "a query that returns no rows also gets another turn"},
    )
    retry_samples: int = field(
        default=0,
        metadata={
            "help": "inference only: a later answer whose SQL repeats one already tried is drawn "
            "again, this many samples at retry_temperature; the first with new SQL that stands "
            "(runs, with rows when retry_empty) replaces it, else the best new one that gets at "
            "least as far as the repeat (0: off, the greedy answer stays)"
        },
    )
    retry_temperature: float = field(
        default=0.8, metadata={"help": "sampling temperature of those draws"}
    )

    def __post_init__(self) -> None:
        if self.turns < 1:
            raise ValueError(f"turns must be >= 1, got {self.turns}")
        if self.max_observation_tokens < 8:
            raise ValueError(
                f"max_observation_tokens must be >= 8, got {self.max_observation_tokens}"
            )
        if self.retry_samples < 0:
            raise ValueError(f"retry_samples must be >= 0 (0: off), got {self.retry_samples}")
        if self.retry_samples and self.turns < 2:
            raise ValueError("retry_samples redraws later turns: it needs turns >= 2")
        if self.retry_samples and self.retry_temperature <= 0:
            raise ValueError(
                f"retry_temperature must be > 0 to draw samples, got {self.retry_temperature}"
            )

    @property
    def enabled(self) -> bool:
        """True when a question may get more than one turn."""
        return self.turns > 1


@dataclass
class Turn:
    """One answer of a conversation and what its SQL did."""

    completion: str  # the generated text (prefill not included)
    sql: str | None
    # "rows" | "empty" | "ran" (a statement that returns no rows) | "no_sql" | an error class
    outcome: str
    error: str | None = None  # the sandbox's message for a failed statement
    observation: str | None = None  # what went back to the model (None: the answer stood)
    result: ExecResult | None = field(default=None, repr=False, compare=False)
    # drawn by sampling because the greedy answer repeated SQL already tried (retry_samples)
    redrawn: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record (no result rows)."""
        return {
            "completion": self.completion,
            "sql": self.sql,
            "outcome": self.outcome,
            "error": self.error,
            "observation": self.observation,
            "redrawn": self.redrawn,
        }


def outcome_of(sql: str | None, result: ExecResult | None) -> tuple[str, str | None]:
    """(outcome, error message) of an answer's execution."""
    if sql is None or result is None:
        return "no_sql", None
    if not result.ok:
        error_class = getattr(result.error_class, "value", None) or "other"
        return error_class, result.error_message or ""
    if result.statement_type in QUERY_TYPES:
        return ("rows" if result.rows else "empty"), None
    return "ran", None


def answer_stands(outcome: str, cfg: FeedbackConfig) -> bool:
    """True when an answer with this outcome ends its conversation (nothing goes back)."""
    return outcome in ("rows", "ran") or (outcome == "empty" and not cfg.retry_empty)


def observation_for(outcome: str, error: str | None, cfg: FeedbackConfig) -> str | None:
    """The text the model is told about an answer, or None when the answer stands."""
    if answer_stands(outcome, cfg):
        return None
    if outcome == "no_sql":
        return NO_SQL_OBSERVATION
    if outcome == "empty":
        return EMPTY_OBSERVATION
    message = _EXCEPTION_PREFIX.sub("", " ".join((error or "").split()))
    return f"error ({outcome}): {message}"


def bound_observation(text: str, tokenizer: Any, max_tokens: int) -> str:
    """``text`` cut to at most ``max_tokens`` tokens of ``tokenizer`` (whole characters; a
    cut text ends with a mark saying so). Without a tokenizer, 4 characters count as a token."""
    if tokenizer is None:
        limit = 4 * max_tokens
        if len(text) <= limit:
            return text
        return text[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK

    def size(candidate: str) -> int:
        return len(tokenizer(candidate, add_special_tokens=False)["input_ids"])

    if size(text) <= max_tokens:
        return text
    low, high = 0, len(text)  # the longest prefix that fits with the mark
    while low < high:
        mid = (low + high + 1) // 2
        if size(text[:mid] + TRUNCATION_MARK) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return text[:low] + TRUNCATION_MARK


def judge_answer(
    completion: str,
    sql: str | None,
    result: ExecResult | None,
    cfg: FeedbackConfig,
    tokenizer: Any = None,
) -> Turn:
    """A :class:`Turn` for an answer whose SQL ran (or did not): its outcome and, when the
    answer does not stand, the bounded observation for the model."""
    outcome, error = outcome_of(sql, result)
    observation = observation_for(outcome, error, cfg)
    if observation is not None:
        observation = bound_observation(observation, tokenizer, cfg.max_observation_tokens)
    return Turn(completion, sql, outcome, error, observation, result)


def feedback_rounds(
    first: Sequence[str],
    cfg: FeedbackConfig,
    *,
    extract: Callable[[str], str | None],
    execute: Callable[[int, str], ExecResult | None],
    answer_again: Callable[[list[int], list[str]], Sequence[str | None]],
    prefill: str = "",
    tokenizer: Any = None,
    go_on: Callable[[int], bool] | None = None,
) -> list[list[Turn]]:
    """Every conversation's turns, from its first answers ``first`` (completions, prefill not
    included), up to ``cfg.turns`` each.

    Each turn: ``extract(prefill + completion)`` finds the SQL, ``execute(i, sql)`` runs it for
    conversation ``i`` in the sandbox (a statement that hangs or bombs comes back as the
    sandbox's timeout / resource error, like any other failure), and an answer that failed,
    held no SQL or (with ``retry_empty``) returned no rows gets an observation.
    ``answer_again(indices, observations)`` returns the next answers of those conversations,
    all of a round in one batch (None for one that cannot go on, e.g. out of token budget: its
    observation is cleared and it ends there). ``go_on(pending)`` decides whether a round with ``pending``
    conversations waiting runs (default: any waits); data-parallel training uses it so every
    process runs the same rounds. The last turn's observation is cleared: nothing went back.
    """
    turns: list[list[Turn]] = [[] for _ in first]
    pending = list(range(len(first)))
    texts = list(first)
    go_on = go_on or (lambda waiting: waiting > 0)
    for number in range(1, cfg.turns + 1):
        again: list[int] = []
        for i, text in zip(pending, texts, strict=True):
            sql = extract(prefill + text)
            result = execute(i, sql) if sql else None
            turn = judge_answer(text, sql, result, cfg, tokenizer)
            turns[i].append(turn)
            if turn.observation is not None:
                if number < cfg.turns:
                    again.append(i)
                else:
                    turn.observation = None
        if number == cfg.turns or not go_on(len(again)):
            for i in again:
                turns[i][-1].observation = None
            break
        answers = answer_again(again, [turns[i][-1].observation or "" for i in again])
        if len(answers) != len(again):
            raise RuntimeError(f"answer_again gave {len(answers)} answers for {len(again)} prompts")
        for i, answer in zip(again, answers, strict=True):
            if answer is None:
                turns[i][-1].observation = None
        pending = [i for i, answer in zip(again, answers, strict=True) if answer is not None]
        texts = [answer for answer in answers if answer is not None]
    return turns


def continue_prompts(
    prompts: Sequence[str],
    answers: Sequence[str],
    observations: Sequence[str],
    tokenizer: Any,
    prefill: str = "",
) -> list[str]:
    """The next prompts of text conversations: each prompt, its answer, the observation turn
    (:func:`sqlgrpo.data.observation_turn`)."""
    from sqlgrpo.data import observation_turn

    return [
        prompt + answer + observation_turn(observation, tokenizer, prefill)
        for prompt, answer, observation in zip(prompts, answers, observations, strict=True)
    ]


def sql_key(sql: str | None) -> str | None:
    """An answer's SQL with its whitespace normalised: two answers with the same key ran the
    same statement."""
    return None if sql is None else " ".join(sql.split())


def outcome_rank(outcome: str, cfg: FeedbackConfig) -> int:
    """How far an answer got: 3 it stands (nothing would go back), 2 it ran and returned no
    rows, 1 it failed, 0 it held no SQL."""
    if answer_stands(outcome, cfg):
        return 3
    return {"empty": 2, "no_sql": 0}.get(outcome, 1)


def pick_redraw(
    candidates: Sequence[str],
    repeat: str,
    tried: set[str | None],
    cfg: FeedbackConfig,
    *,
    extract: Callable[[str], str | None],
    execute: Callable[[str], ExecResult | None],
    prefill: str = "",
) -> str | None:
    """Of sampled ``candidates`` for the answer ``repeat``, whose SQL was already ``tried``: the
    first whose SQL is new and stands when run, else the first of the best-ranked new ones
    (:func:`outcome_rank`) if it gets at least as far as the repeat (a query that ran is never
    traded for one that fails), else None: the repeat stays. Only the answers' own runs are
    looked at."""

    def rank(sql: str | None) -> int:
        return outcome_rank(outcome_of(sql, execute(sql) if sql else None)[0], cfg)

    best, best_rank = None, -1
    for text in candidates:
        sql = extract(prefill + text)
        if sql is None or sql_key(sql) in tried:
            continue
        candidate_rank = rank(sql)
        if candidate_rank == 3:
            return text
        if candidate_rank > best_rank:
            best, best_rank = text, candidate_rank
    if best is None or best_rank < rank(extract(prefill + repeat)):
        return None
    return best


def generate_with_feedback(
    generator: Any,
    prompts: Sequence[str],
    first: Sequence[str],
    cfg: FeedbackConfig,
    *,
    tokenizer: Any,
    extract: Callable[[str], str | None],
    execute: Callable[[int, str], ExecResult | None],
    prefill: str = "",
) -> list[list[Turn]]:
    """:func:`feedback_rounds` for text prompts: ``first`` are the first answers of
    ``prompts`` and each later round asks ``generator`` (one completion per prompt) with the
    conversation so far. Used by evaluation and ``sqlgrpo ask``.

    With ``cfg.retry_samples`` K > 0, a later answer whose SQL repeats one the conversation
    already tried (a greedy model often ignores the observation) is drawn again: K samples
    at ``cfg.retry_temperature`` from the same backend, chosen by :func:`pick_redraw`; such
    a turn is marked ``redrawn``."""
    from sqlgrpo.generation.backends import generate, sampling_variant

    current = list(prompts)
    latest = list(first)
    tried: list[set[str | None]] = [set() for _ in prompts]
    redrawn: list[tuple[int, int]] = []  # (conversation, 0-based turn) drawn by sampling
    rounds = 0

    def answer_again(indices: list[int], observations: list[str]) -> list[str]:
        nonlocal rounds
        rounds += 1
        for i in indices:
            tried[i].add(sql_key(extract(prefill + latest[i])))
        done = [latest[i] for i in indices]
        nexts = continue_prompts(
            [current[i] for i in indices], done, observations, tokenizer, prefill
        )
        for i, prompt in zip(indices, nexts, strict=True):
            current[i] = prompt
        answers = [texts[0] for texts in generate(generator, nexts)]
        if cfg.retry_samples:
            repeats = [
                k
                for k, (i, answer) in enumerate(zip(indices, answers, strict=True))
                if sql_key(extract(prefill + answer)) in tried[i]
            ]
            if repeats:
                sampler = sampling_variant(
                    generator,
                    temperature=cfg.retry_temperature,
                    num_samples=cfg.retry_samples,
                    seed=generator.cfg.seed + rounds,
                )
                draws = generate(sampler, [nexts[k] for k in repeats])
                for k, candidates in zip(repeats, draws, strict=True):
                    i = indices[k]
                    pick = pick_redraw(
                        candidates,
                        answers[k],
                        tried[i],
                        cfg,
                        extract=extract,
                        execute=lambda sql, i=i: execute(i, sql),
                        prefill=prefill,
                    )
                    if pick is not None:
                        answers[k] = pick
                        redrawn.append((i, rounds))
        for i, answer in zip(indices, answers, strict=True):
            latest[i] = answer
        return answers

    turns = feedback_rounds(
        first,
        cfg,
        extract=extract,
        execute=execute,
        answer_again=answer_again,
        prefill=prefill,
        tokenizer=tokenizer,
    )
    for i, number in redrawn:
        turns[i][number].redrawn = True
    return turns
