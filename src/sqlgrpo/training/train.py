"""GRPO training on TRL: parse config, load model, build data and rewards, train, save.

Stages, top to bottom in ``run_training``:

1. resolve the model (alias / hub id / folder / run folder) and its tokenizer;
2. load samples, hold some out, drop (and report) prompts over the token budget;
3. optional SFT warm-up on explained gold SQL (``RUN_DIR/warmup/model``; with
   ``sft_warmup_only`` the run ends here);
4. build the rewards (registry names + weights, prefill put back before scoring);
5. ``SqlGrpoTrainer`` (``sqlgrpo.training.trainer``: TRL's ``GRPOTrainer`` + sampling, loss, logging);
6. train (``--resume`` continues from the last checkpoint; Ctrl-C saves one first);
7. save the final model (merged) and LoRA adapter, the resolved config, reward plots.
"""

from __future__ import annotations

import gc
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlgrpo.data import (
    PromptConfig,
    Sample,
    check_prompt_budget,
    load_samples,
    on_engine,
    trainer_prompt,
)
from sqlgrpo.models import prepare_tokenizer, resolve_model_path
from sqlgrpo.rewards.registry import execution_checks
from sqlgrpo.training.callbacks import (
    COMPLETIONS_FILE,
    METRICS_FILE,
    REWARD_PLOT,
    GracefulInterrupt,
    MetricsJsonlCallback,
    plot_reward_curves,
)
from sqlgrpo.training.config import ConfigError, GRPOTrainConfig, RunConfig, SqlGrpoArguments
from sqlgrpo.training.policy import load_policy
from sqlgrpo.training.prescreen import prescreen_run_samples
from sqlgrpo.training.run_folder import (
    DROPPED_FILE,
    HOLDOUT_FILE,
    WARMUP_DIR,
    checkpoint_folders,
    checkpoint_step,
    last_checkpoint,
    save_final_model,
    trim_step_log,
    write_run_config,
)
from sqlgrpo.training.trainer import SqlGrpoTrainer

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Samples split for a run, and what was left out (never silently)."""

    train: list[Sample]
    holdout: list[Sample] = field(default_factory=list)
    over_budget: list[dict[str, Any]] = field(default_factory=list)
    skipped_rows: int = 0


@dataclass
class TrainResult:
    """What a finished (or interrupted) run produced."""

    output_dir: Path
    global_step: int
    interrupted: bool
    model_dir: Path | None
    adapter_dir: Path | None
    warmup_dir: Path | None
    plot: Path | None
    skipped_backward: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- data


def prepare_samples(
    script: SqlGrpoArguments, prompt: PromptConfig, tokenizer: Any, seed: int
) -> PreparedData:
    """Load samples, hold ``eval_holdout`` out (drawn with ``script.holdout_seed``, else
    ``seed``), enforce the prompt token budget."""
    loaded = load_samples(
        script.dataset_source, split=script.dataset_split, skip_invalid=script.skip_invalid
    )
    if loaded.skipped:
        logger.warning("%d invalid data row(s) skipped from %s", len(loaded.skipped), loaded.source)
    # prompts name the engine the rewards run on (SQLite's stay as they were)
    samples = [on_engine(s, script.execution_engine) for s in loaded.samples]
    if not samples:
        raise ConfigError(
            f"{script.dataset_source}: no samples loaded (split {script.dataset_split})"
        )
    holdout: list[Sample] = []
    if script.eval_holdout:
        if script.eval_holdout >= len(samples):
            raise ConfigError(
                f"eval_holdout={script.eval_holdout} leaves no training samples "
                f"({len(samples)} loaded from {script.dataset_source})"
            )
        order = list(range(len(samples)))
        holdout_seed = seed if script.holdout_seed is None else script.holdout_seed
        random.Random(holdout_seed).shuffle(order)
        held = set(order[: script.eval_holdout])
        holdout = [s for i, s in enumerate(samples) if i in held]
        samples = [s for i, s in enumerate(samples) if i not in held]
    if script.dataset_limit is not None:
        samples = samples[: script.dataset_limit]
    over: list[dict[str, Any]] = []
    if prompt.max_prompt_tokens is not None:
        samples, over_budget = check_prompt_budget(
            samples, tokenizer, prompt, prompt.max_prompt_tokens
        )
        over = [{"id": o.id, "tokens": o.tokens, "max_tokens": o.max_tokens} for o in over_budget]
        if not samples:
            raise ConfigError(
                f"every prompt exceeds max_prompt_tokens={prompt.max_prompt_tokens} "
                f"(shortest needs {min(o['tokens'] for o in over)} tokens): raise the budget"
            )
    return PreparedData(samples, holdout, over, len(loaded.skipped))


def build_dataset(samples: list[Sample], prompt: PromptConfig, tokenizer: Any) -> Any:
    """A ``datasets.Dataset`` with ``prompt`` plus the reward columns (sql, sql_context, db_path, id)."""
    from datasets import Dataset

    rows = [{"prompt": trainer_prompt(s, prompt, tokenizer), **s.reward_columns()} for s in samples]
    return Dataset.from_list(rows)


# ---------------------------------------------------------------------------- rewards


def build_rewards(script: SqlGrpoArguments, prefill: str) -> list[Any]:
    """Reward callables by profile or explicit names; each carries its weight and the prefill.

    The comparison rule, DML state matching and sandbox limits go to every reward that
    takes them (the execution reward).
    """
    from sqlgrpo.rewards import build_profile
    from sqlgrpo.rewards import build_rewards as build_named
    from sqlgrpo.sql.sandbox import SandboxLimits

    limits = SandboxLimits(
        timeout_s=script.sql_timeout_s,
        max_rows=script.sql_max_rows,
        batch_timeout_s=script.sql_batch_timeout_s,
    )
    execution = {"rule": script.compare_rule, "state_match": script.state_match, "limits": limits}
    if script.execution_engine != "sqlite":
        execution["engine"] = script.execution_engine
        execution["engine_url"] = script.execution_engine_url
    if not script.reward_funcs:
        return build_profile(script.reward_profile, prefill=prefill, **execution)
    return build_named(
        list(script.reward_funcs), script.reward_func_weights, prefill=prefill, **execution
    )


def build_rollout(script: SqlGrpoArguments, prefill: str, rewards: list[Any]) -> Any:
    """With ``rollout_turns > 1``: the multi-turn rollout (:mod:`sqlgrpo.training.multi_turn`),
    running answers with the execution reward's checker (one run per answer for the rollout
    and the reward); else None (TRL's single-turn sampling)."""
    if script.rollout_turns <= 1:
        return None
    from sqlgrpo.sql.execution import ExecutionChecker
    from sqlgrpo.sql.sandbox import SandboxLimits
    from sqlgrpo.training.multi_turn import MultiTurnRollout

    checks = execution_checks(rewards)
    if checks:
        checker = checks[0].checker
    else:
        limits = SandboxLimits(timeout_s=script.sql_timeout_s, max_rows=script.sql_max_rows)
        checker = ExecutionChecker.on_engine(
            script.execution_engine,
            url=script.execution_engine_url,
            rule=script.compare_rule,
            limits=limits,
        )
    logger.info("multi-turn rollouts: up to %d answers per completion", script.rollout_turns)
    return MultiTurnRollout(script.feedback(), checker, prefill, script.rollout_turn_tokens)


# ---------------------------------------------------------------------------- model


def _check_generation_backend(training: GRPOTrainConfig) -> None:
    if training.use_vllm:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ConfigError(
                "use_vllm is true but vLLM is not installed: pip install 'sqlgrpo[gpu]', "
                "or set use_vllm: false to generate with transformers"
            )


# ---------------------------------------------------------------------------- run


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_training(cfg: RunConfig) -> TrainResult:
    """Run one GRPO training (with optional SFT warm-up) into ``cfg.training.output_dir``."""
    script, prompt, training, model_args = cfg.script, cfg.prompt, cfg.training, cfg.model
    output_dir = Path(training.output_dir)
    folders = checkpoint_folders(output_dir)
    checkpoint = last_checkpoint(output_dir) if script.resume else None
    if script.resume and checkpoint is None and not folders:
        raise ConfigError(f"--resume: {output_dir} holds no checkpoint-N folder to continue from")
    if script.resume and checkpoint is None:
        raise ConfigError(
            f"--resume: {output_dir} holds no complete checkpoint to continue from (incomplete:"
            f" {', '.join(f.name for f in folders)})"
        )
    if script.resume and checkpoint is not None and folders[0] != checkpoint:
        logger.warning(
            "resuming from %s, the newest complete checkpoint (skipped: %s)",
            checkpoint.name,
            ", ".join(f.name for f in folders if checkpoint_step(f) > checkpoint_step(checkpoint)),
        )
    if not script.resume and folders:
        raise ConfigError(
            f"{output_dir} already holds {folders[0].name}: pass --resume true to continue it, "
            "or choose another output_dir"
        )
    _check_generation_backend(training)
    logger.info("%s", training.precision_choice.describe())
    if script.sft_warmup_samples:
        from sqlgrpo.training.warmup import warmup_model_args

        warmup_model_args(cfg)  # a conflicting warm-up setting fails before any work
    output_dir.mkdir(parents=True, exist_ok=True)

    base_path = resolve_model_path(
        model_args.model_name_or_path, cache_dir=model_args.model_cache_dir
    )
    from transformers import AutoTokenizer

    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(base_path))
    data = prepare_samples(script, prompt, tokenizer, training.seed)
    is_main = training.process_index == 0
    if is_main:
        for name in (METRICS_FILE, COMPLETIONS_FILE):
            if checkpoint is None and (output_dir / name).exists():
                logger.warning("removing %s left by an earlier run without checkpoints", name)
                (output_dir / name).unlink()
            elif checkpoint is not None:
                trim_step_log(output_dir / name, checkpoint_step(checkpoint))
        write_run_config(cfg, output_dir)
        _write_json(output_dir / HOLDOUT_FILE, [s.id for s in data.holdout])
        _write_json(output_dir / DROPPED_FILE, data.over_budget)
    logger.info(
        "training on %d sample(s); %d held out; %d over the prompt budget; %d invalid row(s)",
        len(data.train), len(data.holdout), len(data.over_budget), data.skipped_rows,
    )  # fmt: skip

    warmup_dir: Path | None = None
    policy_path = base_path
    if script.sft_warmup_samples:
        from sqlgrpo.training.warmup import run_warmup

        warmup_dir = output_dir / WARMUP_DIR / "model"
        if not (warmup_dir / "config.json").is_file():
            run_warmup(cfg, base_path, data.train, warmup_dir)
            gc.collect()  # the SFT trainer holds reference cycles (model + optimizer state)
        else:
            logger.info("using the existing warm-up model at %s", warmup_dir)
        policy_path = str(warmup_dir)
        if script.sft_warmup_only:
            logger.info("sft_warmup_only: no GRPO; the model is %s", warmup_dir)
            return TrainResult(
                output_dir=output_dir,
                global_step=0,
                interrupted=False,
                model_dir=None,
                adapter_dir=None,
                warmup_dir=warmup_dir,
                plot=None,
            )

    rewards = build_rewards(script, prompt.prefill)
    for check in execution_checks(rewards):
        check.prestart()  # the SQL workers load while the model does
    model, tokenizer, peft_config = load_policy(model_args, training, policy_path)
    train_samples = data.train
    if script.prescreen_prompts:
        train_samples = prescreen_run_samples(cfg, model, tokenizer, data.train, policy_path)
    train_dataset = build_dataset(train_samples, prompt, tokenizer)
    eval_dataset = None
    if training.eval_strategy != "no" and data.holdout:
        eval_dataset = build_dataset(data.holdout, prompt, tokenizer)

    interrupt = GracefulInterrupt()
    trainer = SqlGrpoTrainer(
        model=model,
        reward_funcs=rewards,
        args=training,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[MetricsJsonlCallback(output_dir / METRICS_FILE), interrupt],
        completions_path=output_dir / COMPLETIONS_FILE,
        completions_every=script.completions_log_steps,
        completions_count=script.completions_log_count,
        prefill=prompt.prefill,
        skip_zero_variance=script.skip_zero_variance_backward,
        resample_flat_batches=script.resample_flat_batches,
        generation_decoder=script.generation_decoder,
        rollout_sampler=script.rollout_sampler,
        shared_prefix_loss=script.shared_prefix_loss,
        rollout_func=build_rollout(script, prompt.prefill, rewards),
    )
    with interrupt:
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if script.resume else None)
    interrupted = interrupt.requested
    if interrupted:
        logger.warning(
            "stopped by Ctrl-C at step %d; checkpoint saved, continue with --resume true",
            trainer.state.global_step,
        )
        model_dir = adapter_dir = None
    else:
        model_dir, adapter_dir = save_final_model(trainer, tokenizer, output_dir, model_args)
    plot = None
    metrics_path = output_dir / METRICS_FILE
    if is_main and script.plot and metrics_path.is_file():
        plot = plot_reward_curves(metrics_path, output_dir / REWARD_PLOT)
    return TrainResult(
        output_dir=output_dir,
        global_step=trainer.state.global_step,
        interrupted=interrupted,
        model_dir=model_dir,
        adapter_dir=adapter_dir,
        warmup_dir=warmup_dir,
        plot=plot,
        skipped_backward=trainer.skipped_backward,
        metrics=dict(output.metrics),
    )
