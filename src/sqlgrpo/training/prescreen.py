"""Prompt pre-screening: train GRPO on prompts the current model sometimes solves.

A GRPO group teaches only through the spread of its rewards. A prompt the policy always
solves, or never comes close to, gives a group of equal (or nearly equal) execution
rewards, and its step is spent on generation that moves nothing. Before GRPO starts, the
screen samples ``k`` completions for each of ``n`` candidate training prompts from the
starting policy (the warm-up model when there is one), at the training temperature and
completion length, checks each completion's SQL against the gold by execution, and keeps
the prompts solved at least once and not every time. The outcome of every candidate is
written to ``RUN_DIR/prescreen.json``; nothing is dropped without being counted there.

This is the offline half of DAPO's dynamic sampling: cheaper per kept prompt on a CPU,
where batched screening generation costs far less than a full GRPO step, but fixed to
the starting policy rather than refreshed as it learns.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlgrpo.data import PromptConfig, Sample

logger = logging.getLogger(__name__)

PRESCREEN_FILE = "prescreen.json"


@dataclass
class ScreenResult:
    """Per-candidate solve counts and the prompts kept for training."""

    generations: int
    policy: str
    candidates: list[str]
    solved: dict[str, int]
    kept: list[str] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def always(self) -> int:
        """Candidates solved by every sampled completion."""
        return sum(1 for n in self.solved.values() if n == self.generations)

    @property
    def never(self) -> int:
        """Candidates no sampled completion solved."""
        return sum(1 for n in self.solved.values() if n == 0)

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"screened {len(self.candidates)} prompt(s) x {self.generations} completions: "
            f"{len(self.kept)} sometimes solved (kept), {self.always} always, {self.never} never"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the counts spelled out."""
        data = asdict(self)
        data.update(always=self.always, never=self.never, sometimes=len(self.kept))
        return data


def select_candidates(
    samples: Sequence[Sample], n: int, *, skip_first: int = 0, seed: int = 0
) -> list[Sample]:
    """``n`` candidate prompts in a seeded order, those after the first ``skip_first`` (the
    warm-up's samples, whose answers the model was just taught) before the others."""
    rest = list(samples[skip_first:])
    random.Random(seed).shuffle(rest)
    head = list(samples[:skip_first])
    random.Random(seed + 1).shuffle(head)
    return (rest + head)[:n]


def count_solved(
    samples: Sequence[Sample],
    completions: Sequence[Sequence[str]],
    *,
    prefill: str = "",
    checker: Any = None,
) -> list[int]:
    """How many of each sample's completions give the gold result (DML: the gold state).

    The SQL is taken from the ``<sql>`` tags of ``prefill + completion``, as the
    execution reward reads it.
    """
    from sqlgrpo.sql.execution import ExecutionChecker
    from sqlgrpo.sql.parsing import extract_sql

    checker = checker if checker is not None else ExecutionChecker()
    counts = []
    for sample, texts in zip(samples, completions, strict=True):
        solved = 0
        for text in texts:
            sql = extract_sql(prefill + text)
            if sql is None:
                continue
            outcome = checker.check(
                sql, sample.sql, sql_context=sample.sql_context, db_path=sample.db_path
            )
            solved += bool(outcome.match)
        counts.append(solved)
    return counts


def keep_sometimes_solved(
    samples: Sequence[Sample], counts: Sequence[int], generations: int
) -> list[Sample]:
    """The samples solved by at least one completion and not by all of them."""
    return [s for s, n in zip(samples, counts, strict=True) if 0 < n < generations]


def run_prescreen(
    model: Any,
    tokenizer: Any,
    samples: Sequence[Sample],
    prompt: PromptConfig,
    *,
    n: int,
    generations: int,
    max_new_tokens: int,
    temperature: float,
    batch_size: int,
    seed: int,
    skip_first: int = 0,
    policy: str = "",
    compare_rule: str = "seed",
    out_dir: Path | None = None,
    decoder: str = "incremental",
) -> ScreenResult:
    """Screen ``n`` candidates with ``generations`` sampled completions each.

    Reuses ``out_dir/prescreen.json`` when it was written for the same candidates,
    generations, policy and sampling settings (a resumed run does not screen twice).
    """
    from sqlgrpo.data import render_sample_prompt
    from sqlgrpo.generation import GenerationConfig, HFGenerator, generate
    from sqlgrpo.sql.execution import ExecutionChecker

    candidates = select_candidates(samples, n, skip_first=skip_first, seed=seed)
    ids = [s.id for s in candidates]
    settings = {
        "temperature": temperature,
        "max_new_tokens": max_new_tokens,
        "compare_rule": compare_rule,
        "prefill": prompt.prefill,
    }
    if model is not None and str(next(model.parameters()).dtype) == "torch.bfloat16":
        settings["precision"] = "bf16"  # fp32 screens keep the settings they always recorded
    path = out_dir / PRESCREEN_FILE if out_dir is not None else None
    if path is not None and path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if (
            saved.get("candidates") == ids
            and saved.get("generations") == generations
            and saved.get("policy") == policy
            and saved.get("settings") == settings
        ):
            logger.info("using the prompt screen in %s", path)
            return ScreenResult(
                generations=generations,
                policy=policy,
                candidates=ids,
                solved={k: int(v) for k, v in saved["solved"].items()},
                kept=list(saved["kept"]),
                seconds=float(saved.get("seconds", 0.0)),
                settings=settings,
            )
    started = time.perf_counter()
    cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
        num_samples=generations,
        seed=seed,
        backend="hf",
        decoder=decoder,
    )
    prompts = [render_sample_prompt(s, prompt, tokenizer) for s in candidates]
    logger.info(
        "pre-screening %d prompt(s) x %d completions with %s", len(prompts), generations, policy
    )
    completions = generate(HFGenerator(model, tokenizer, cfg), prompts, show_progress=True)
    counts = count_solved(
        candidates, completions, prefill=prompt.prefill, checker=ExecutionChecker(rule=compare_rule)
    )
    kept = keep_sometimes_solved(candidates, counts, generations)
    result = ScreenResult(
        generations=generations,
        policy=policy,
        candidates=ids,
        solved=dict(zip(ids, counts, strict=True)),
        kept=[s.id for s in kept],
        seconds=time.perf_counter() - started,
        settings=settings,
    )
    if path is not None:
        path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    logger.info("%s (%.0f s)", result.summary(), result.seconds)
    return result


def prescreen_run_samples(
    cfg: Any, model: Any, tokenizer: Any, samples: list[Sample], policy_path: str
) -> list[Sample]:
    """The training samples the starting policy sometimes solves (see sqlgrpo.training.prescreen);
    all of ``samples`` when the screen keeps fewer than one generation batch of prompts."""
    import torch
    from accelerate import PartialState

    script, training = cfg.script, cfg.training
    state = PartialState()
    if not training.use_cpu and getattr(model, "hf_device_map", None) is None:
        model.to(state.device)  # screen on the accelerator the trainer will use anyway
    # the main process screens and writes prescreen.json; the others then reuse it, so every
    # rank trains on the same prompts
    screener = model
    if training.bf16 and next(model.parameters()).dtype != torch.bfloat16:
        from sqlgrpo.models.precision import bf16_copy

        screener = bf16_copy(model)  # decode as GRPO's sampler will: bf16 weights
    with state.main_process_first():
        result = run_prescreen(
            screener,
            tokenizer,
            samples,
            cfg.prompt,
            n=script.prescreen_prompts,
            generations=script.prescreen_generations,
            max_new_tokens=training.max_completion_length or 256,
            temperature=training.temperature,
            batch_size=script.prescreen_batch_size,
            seed=training.seed,
            skip_first=script.sft_warmup_samples,
            policy=policy_path,
            compare_rule=script.compare_rule,
            out_dir=Path(training.output_dir),
            decoder=script.generation_decoder,
        )
    kept = set(result.kept)
    per_step = max(1, (training.generation_batch_size or 1) // training.num_generations)
    if len(kept) < per_step:
        logger.warning(
            "the prompt screen kept %d prompt(s), fewer than one generation batch needs (%d; "
            "%s): training on all %d samples instead",
            len(kept),
            per_step,
            result.summary(),
            len(samples),
        )
        return samples
    completions_per_step = (
        training.per_device_train_batch_size
        * training.world_size
        * training.gradient_accumulation_steps
    )
    needed = training.max_steps * max(1, completions_per_step // training.num_generations)
    if training.max_steps > 0 and len(kept) < needed:
        logger.warning(
            "the prompt screen kept %d prompt(s) but %d GRPO step(s) draw %d: each kept prompt "
            "is trained on about %.1f times; screen more (prescreen_prompts) to see more prompts",
            len(kept), training.max_steps, needed, needed / len(kept),
        )  # fmt: skip
    return [s for s in samples if s.id in kept]
