"""Multi-turn GRPO rollouts: the model answers, the sandbox replies, the model answers again.

:class:`MultiTurnRollout` is a TRL ``rollout_func`` (``rollout_turns > 1`` in a recipe). Each
completion of a group starts as usual; an answer whose SQL fails, holds none or (by default)
returns no rows gets the sandbox's classified reply as an observation turn in plain tags
(:func:`sqlgrpo.data.observation_turn`: any chat template, no tool format) and the model
answers again from that point, up to ``turns`` answers, all inside the completion budget
(``max_completion_length`` counts every turn and every observation; ``turn_tokens`` caps each
answer, so that a rambling first answer leaves room for the next). The loop is the one
evaluation and ``ask`` use (:func:`sqlgrpo.generation.feedback.feedback_rounds`).

What goes back to TRL, per row:

- ``completion_ids``: the answers and the observation turns between them, in order, as the
  model saw them (token ids concatenated, never re-tokenized);
- ``env_mask``: 1 on the model's tokens, 0 on the observation turns' (TRL's ``tool_mask``
  contract: the observation tokens are scored by the forward pass but masked from the loss,
  from the importance-sampling correction and from the completion-length metrics);
- ``logprobs``: the sampler's log-probabilities where it gives them (0.0 on observation
  tokens), as TRL's own tool loop does;
- :data:`FINAL_ANSWER` (the last answer's text) and :data:`TURNS_USED`: the trainer scores the
  rewards on the last answer only (:class:`~sqlgrpo.training.trainer.SqlGrpoTrainer`).

Each turn is sampled by the trainer's own ``_generate_single_turn``: sqlgrpo's incremental
decoder (or its bf16 copy, or llama.cpp) on the CPU, vLLM where ``use_vllm`` is set. With vLLM
on several processes every process runs the same rounds with equally many rows (padded), as
vLLM's server mode slices its answers by position.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Any

from sqlgrpo.data import observation_turn
from sqlgrpo.generation.feedback import FeedbackConfig, Turn, feedback_rounds
from sqlgrpo.sql.parsing import extract_sql

logger = logging.getLogger(__name__)

#: Extra rollout field (and reward column) holding each row's last answer.
FINAL_ANSWER = "rollout_final_answer"
#: Extra rollout field (and reward column) holding how many answers each row gave.
TURNS_USED = "rollout_turns_used"
#: A later turn needs room for at least this many new tokens, else the rollout ends there.
MIN_TURN_TOKENS = 8


class MultiTurnRollout:
    """TRL ``rollout_func`` for multi-turn rollouts against the sandbox (see the module).

    ``checker`` runs each answer's SQL: the execution reward's
    :class:`~sqlgrpo.sql.execution.ExecutionChecker` (the trainer keeps its outcomes for the
    batch, so the reward reuses the run of the last answer), which also gives each turn's match
    for the ``rollout/*`` metrics. Only the prediction's own result is told to the model.
    """

    def __init__(
        self,
        feedback: FeedbackConfig,
        checker: Any,
        prefill: str = "",
        turn_tokens: int | None = None,
    ) -> None:
        if not feedback.enabled:
            raise ValueError("a multi-turn rollout needs turns > 1")
        if turn_tokens is not None and turn_tokens < MIN_TURN_TOKENS:
            raise ValueError(f"turn_tokens must be >= {MIN_TURN_TOKENS}, got {turn_tokens}")
        self.feedback = feedback
        self.checker = checker
        self.prefill = prefill
        self.turn_tokens = turn_tokens

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        """Roll out the batch ``prompts`` (TRL's ``rollout_func(prompts, trainer)``)."""
        rows = getattr(trainer, "rollout_inputs", None)
        if rows is None or len(rows) != len(prompts):
            raise RuntimeError(
                "MultiTurnRollout needs SqlGrpoTrainer (it hands the batch's reward columns over)"
            )
        started = time.perf_counter()
        state = _Rollout(self, trainer, rows)
        prompt_ids, _, _ = trainer._tokenize_prompts(prompts)
        first = state.first_turn([list(ids) for ids in prompt_ids])
        go_on = state.all_processes_go_on if state.synced else None
        turns = feedback_rounds(
            first,
            self.feedback,
            extract=extract_sql,
            execute=state.execute,
            answer_again=state.answer_again,
            prefill=self.prefill,
            tokenizer=trainer.processing_class,
            go_on=go_on,
        )
        state.log_metrics(turns, time.perf_counter() - started)
        return {
            "prompt_ids": state.prompt_ids,
            "completion_ids": state.completion,
            "logprobs": state.logprobs,
            "env_mask": state.mask,
            FINAL_ANSWER: [conversation[-1].completion for conversation in turns],
            TURNS_USED: [len(conversation) for conversation in turns],
        }


class _Rollout:
    """One batch's rollout: token ids, masks and log-probabilities, turn by turn."""

    def __init__(self, spec: MultiTurnRollout, trainer: Any, rows: list[dict[str, Any]]) -> None:
        self.spec = spec
        self.trainer = trainer
        self.rows = rows
        self.tokenizer = trainer.processing_class
        self.eos = set(trainer.eos_token_ids)
        self.budget = int(trainer.max_completion_length)
        self.turn_tokens = min(spec.turn_tokens or self.budget, self.budget)
        self.synced = bool(trainer.use_vllm) and trainer.accelerator.num_processes > 1
        self.prompt_ids: list[list[int]] = []
        self.completion: list[list[int]] = []
        self.mask: list[list[int]] = []
        self.logprobs: list[list[float]] | None = None
        self.observation_tokens = 0
        self.out_of_room = 0

    def first_turn(self, prompt_ids: list[list[int]]) -> list[str]:
        """Sample every row's first answer (a group's prompt prefilled once, as single-turn)."""
        mode = "train" if self.trainer.model.training else "eval"
        k = self.trainer.num_generations if mode == "train" else self.trainer.num_generations_eval
        with self._limit(self.turn_tokens):
            ids, logps = self.trainer._generate_single_turn(prompt_ids, None, {}, k)
        self.prompt_ids = prompt_ids
        self.completion = [list(x)[: self.turn_tokens] for x in ids]
        self.mask = [[1] * len(x) for x in self.completion]
        self.logprobs = None
        if logps is not None:
            self.logprobs = [list(x)[: len(c)] for x, c in zip(logps, self.completion, strict=True)]
        return self.tokenizer.batch_decode(self.completion, skip_special_tokens=True)

    def _limit(self, tokens: int) -> Any:
        """The trainer's per-turn budget block (sqlgrpo's samplers stop there)."""
        limit = getattr(self.trainer, "completion_budget", None)
        return limit(tokens) if limit is not None else nullcontext()

    def execute(self, i: int, sql: str) -> Any:
        """Run row ``i``'s answer as the execution reward runs it; the model hears only its
        own result."""
        row = self.rows[i]
        outcome = self.spec.checker.check(
            sql, row["sql"], sql_context=row.get("sql_context"), db_path=row.get("db_path")
        )
        return outcome.pred

    def observation_ids(self, i: int, observation: str) -> list[int]:
        """The observation turn after row ``i``'s last answer, as token ids; when the answer
        ended with its end-of-turn token the turn's copy of that token is dropped."""
        text = observation_turn(observation, self.tokenizer, self.spec.prefill)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        last = self.completion[i][-1] if self.completion[i] else None
        if ids and last in self.eos and ids[0] == last:
            ids = ids[1:]
        return ids

    def all_processes_go_on(self, pending: int) -> bool:
        """True when any process has a conversation waiting (every process then samples)."""
        return self._global_max(pending) > 0

    def _global_max(self, value: int) -> int:
        import torch

        accelerator = self.trainer.accelerator
        local = torch.tensor([value], device=accelerator.device)
        return int(accelerator.gather(local).max())

    def answer_again(self, indices: list[int], observations: list[str]) -> list[str | None]:
        """Append each observation turn and sample the next answers, one batch for the round;
        a row without room for another answer in the budget ends (None)."""
        rows, room, kept = [], {}, []
        for i, observation in zip(indices, observations, strict=True):
            suffix = self.observation_ids(i, observation)
            left = self.budget - len(self.completion[i]) - len(suffix)
            if left < MIN_TURN_TOKENS:
                self.out_of_room += 1
                continue
            room[i] = min(left, self.turn_tokens)
            kept.append(i)
            self.completion[i] += suffix
            self.mask[i] += [0] * len(suffix)
            if self.logprobs is not None:
                self.logprobs[i] += [0.0] * len(suffix)
            self.observation_tokens += len(suffix)
            rows.append(self.prompt_ids[i] + self.completion[i])
        target = self._global_max(len(rows)) if self.synced else len(rows)
        answers: dict[int, str] = {}
        if target:
            filler = rows[0] if rows else self.prompt_ids[0] + self.completion[0]
            batch = rows + [filler] * (target - len(rows))  # equal shares across processes
            with self._limit(max(room.values(), default=MIN_TURN_TOKENS)):
                ids, logps = self.trainer._generate_single_turn(batch, None, {}, 1)
            for n, i in enumerate(kept):
                new = list(ids[n])[: room[i]]
                self.completion[i] += new
                self.mask[i] += [1] * len(new)
                if self.logprobs is not None:
                    self.logprobs[i] += list(logps[n])[: len(new)] if logps is not None else []
                answers[i] = self.tokenizer.decode(new, skip_special_tokens=True)
            if logps is None and self.logprobs is not None:
                raise RuntimeError("the sampler gave log-probabilities for one turn only")
        return [answers.get(i) for i in indices]

    def log_metrics(self, turns: list[list[Turn]], seconds: float) -> None:
        """``rollout/*`` metrics: turns per completion, observation tokens, completions that
        ran out of budget, how often the first and the last answer are right, and the
        rollout's seconds (every turn's sampling and SQL; ``sampling_seconds`` is per call)."""
        trainer = self.trainer
        metrics = getattr(trainer, "_metrics", None)
        if metrics is None:
            return
        mode = metrics["train" if trainer.model.training else "eval"]
        n = max(len(turns), 1)
        mode["rollout/turns_mean"].append(sum(len(t) for t in turns) / n)
        mode["rollout/answered_again"].append(sum(len(t) > 1 for t in turns) / n)
        mode["rollout/observation_tokens_mean"].append(self.observation_tokens / n)
        mode["rollout/out_of_budget"].append(self.out_of_room / n)
        mode["rollout/seconds"].append(seconds)
        first_right = final_right = 0
        for row, conversation in zip(self.rows, turns, strict=True):
            where = {"sql_context": row.get("sql_context"), "db_path": row.get("db_path")}
            first_right += self.spec.checker.check(conversation[0].sql, row["sql"], **where).match
            final_right += self.spec.checker.check(conversation[-1].sql, row["sql"], **where).match
        mode["rollout/first_turn_match"].append(first_right / n)
        mode["rollout/final_turn_match"].append(final_right / n)
