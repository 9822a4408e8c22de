"""`sqlgrpo eval`: execution accuracy of a model on a dataset, with breakdowns."""

from __future__ import annotations

import argparse
import json

from sqlgrpo.generation import BACKENDS, DECODERS
from sqlgrpo.generation.voting import VOTE_METHODS
from sqlgrpo.models.precision import PRECISIONS
from sqlgrpo.rewards.registry import REWARD_PROFILES
from sqlgrpo.sql.bird_metrics import OFFICIAL_ITERATIONS, OFFICIAL_TIMEOUT_S
from sqlgrpo.sql.compare import COMPARE_RULES
from sqlgrpo.sql.engines.base import ENGINE_NAMES
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` command."""
    p = subparsers.add_parser(
        "eval",
        help="generate SQL for a dataset and score it by execution against gold",
        description="Writes OUT/predictions.jsonl and OUT/metrics.json; an interrupted run "
        "resumes from the ids already in predictions.jsonl. A training run folder (or an "
        "export of it) is prompted as it was trained (its config.yaml: system prompt, "
        "one-shot, prefill, sample rows, completion budget); a prompt flag overrides.",
    )
    p.add_argument(
        "--model", required=True, help="alias, hub id, model folder or training run folder"
    )
    p.add_argument(
        "--data", required=True, help="bundled, a gretel file, a Spider/BIRD folder or a hub id"
    )
    p.add_argument("--split", default=None, help="data split (bundled: train or test)")
    p.add_argument(
        "--ids",
        default=None,
        metavar="FILE",
        help="evaluate only the sample ids a JSON list names (e.g. RUN_DIR/holdout_ids.json)",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate N examples")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="with --limit: a seeded random sample instead of the first N; also the sampling seed",
    )
    p.add_argument(
        "--compare",
        default="seed",
        choices=COMPARE_RULES,
        help="result comparison rule (default seed; spider_official = the official Spider "
        "evaluator's default, spider = its --keep_distinct; see docs/evaluation.md)",
    )
    p.add_argument(
        "--test-suite",
        action="store_true",
        help="Spider test-suite layout: correct only if it matches on every *.sqlite in the "
        "database's folder",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_LIMITS.timeout_s,
        metavar="SECONDS",
        help=f"per-statement time limit (default {DEFAULT_LIMITS.timeout_s:g}; BIRD's official "
        f"scripts use {OFFICIAL_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--official-timeout",
        action="store_true",
        help=f"use BIRD's official {OFFICIAL_TIMEOUT_S:g} s limit (same as --timeout "
        f"{OFFICIAL_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--bird-metrics",
        action="store_true",
        help="also report BIRD's Soft-F1 and R-VES (R-VES times correct answers on the "
        "database file)",
    )
    p.add_argument(
        "--rves-iterations",
        type=int,
        default=OFFICIAL_ITERATIONS,
        help=f"timed runs per correct answer for R-VES (official {OFFICIAL_ITERATIONS})",
    )
    p.add_argument(
        "--engine",
        default="sqlite",
        choices=ENGINE_NAMES,
        help="run gold and predictions on a copy of each sample's database in this engine "
        "(gold SQL transpiled from SQLite by sqlglot; the prompt names the engine)",
    )
    p.add_argument(
        "--engine-url",
        default=None,
        metavar="URL",
        help="--engine postgres: postgresql://... of a database the samples are loaded into "
        "(one schema each; it is written, so not your production database)",
    )
    p.add_argument("--out", default="eval", help="output folder (default ./eval)")
    p.add_argument(
        "--batch-size", type=int, default=8, help="prompts per generate call (default 8)"
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="default: the run's max_completion_length, else 512",
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument(
        "--num-samples", type=int, default=1, help="completions per prompt (needs temperature > 0)"
    )
    p.add_argument(
        "--vote",
        default=None,
        choices=VOTE_METHODS,
        help="self-consistency: per question, the sample whose execution result most samples "
        "share; reports greedy EX, voted EX and pass@N (needs --num-samples >= 2)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="auto: vLLM when installed on a GPU, else HF (transformers); llama-cpp: --model "
        "is a GGUF file (e.g. from `sqlgrpo export --gguf`)",
    )
    p.add_argument(
        "--decoder",
        default="incremental",
        choices=DECODERS,
        help="HF backend: incremental (default; the shared prompt prefix runs once and finished "
        "rows leave the batch) or transformers' generate()",
    )
    add_precision_flag(p)
    add_prompt_flags(p)
    add_feedback_flags(p)
    p.add_argument(
        "--rewards",
        default="spec",
        choices=tuple(REWARD_PROFILES),
        help="reward profile scored per output (default spec)",
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start over even if OUT has predictions"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=_run)


def add_precision_flag(p: argparse.ArgumentParser) -> None:
    """``--precision auto|fp32|bf16`` for commands that decode with transformers or vLLM."""
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="weights that decode: auto (default) = bf16 where the device has bf16 matrix units "
        "(CPU AMX-BF16 / AVX512-BF16, a bf16 GPU), else fp32",
    )


def add_feedback_flags(p: argparse.ArgumentParser) -> None:
    """``--turns N`` and what the model is told between turns (execution feedback)."""
    p.add_argument(
        "--turns",
        type=int,
        default=1,
        help="answers per question (default 1): an answer whose SQL fails, is missing or "
        "returns no rows goes back to the model with the sandbox's reply, up to N turns",
    )
    p.add_argument(
        "--observation-tokens",
        type=int,
        default=64,
        help="an observation is cut to this many tokens (default 64)",
    )
    p.add_argument(
        "--retry-empty",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a query that returns no rows also gets another turn (default yes)",
    )
    p.add_argument(
        "--retry-samples",
        type=int,
        default=0,
        help="a later answer that repeats SQL already tried is drawn again: K samples, the "
        "first with new SQL that runs replaces it, else the best new one that gets as far "
        "(default 0: the greedy answer stays)",
    )
    p.add_argument(
        "--retry-temperature",
        type=float,
        default=0.8,
        help="sampling temperature of those draws (default 0.8)",
    )


def feedback_config(args: argparse.Namespace) -> object:
    """The :class:`~sqlgrpo.generation.feedback.FeedbackConfig` the flags describe."""
    from sqlgrpo.generation.feedback import FeedbackConfig

    return FeedbackConfig(
        turns=args.turns,
        max_observation_tokens=args.observation_tokens,
        retry_empty=args.retry_empty,
        retry_samples=args.retry_samples,
        retry_temperature=args.retry_temperature,
    )


def add_prompt_flags(p: argparse.ArgumentParser) -> None:
    """Flags that override the prompt settings a run was trained with (unset: the run's)."""
    p.add_argument("--prefill", default=None, help=r"assistant-turn prefill, e.g. '<reasoning>\n'")
    p.add_argument(
        "--one-shot",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the worked example to the system prompt (default: as trained, else no)",
    )
    p.add_argument("--system-prompt-file", default=None, help="file holding another system prompt")
    p.add_argument(
        "--sample-rows",
        type=int,
        default=None,
        help="example rows per table in SQLite-file schemas (default: as trained, else 0)",
    )


def prompt_overrides(args: argparse.Namespace) -> object:
    """The prompt settings given on the command line (``None`` where a flag is absent)."""
    from pathlib import Path

    from sqlgrpo.data.prompts import decode_prefill_escapes
    from sqlgrpo.models.run_settings import PromptSettings

    system_prompt = None
    if args.system_prompt_file:
        system_prompt = Path(args.system_prompt_file).read_text(encoding="utf-8")
    prefill = None if args.prefill is None else decode_prefill_escapes(args.prefill)
    return PromptSettings(
        system_prompt=system_prompt,
        one_shot=args.one_shot,
        prefill=prefill,
        sample_rows=args.sample_rows,
        max_new_tokens=getattr(args, "max_new_tokens", None),
    )


def _run(args: argparse.Namespace) -> int:
    from sqlgrpo.evaluation.evaluate import evaluate, prompted_eval_config
    from sqlgrpo.generation import GenerationConfig

    cfg, resolved = prompted_eval_config(
        args.model,
        args.data,
        args.out,
        prompt=prompt_overrides(args),
        split=args.split,
        limit=args.limit,
        seed=args.seed,
        ids_file=args.ids,
        compare_rule=args.compare,
        reward_profile=args.rewards,
        resume=not args.no_resume,
        vote=args.vote,
        test_suite=args.test_suite,
        timeout_s=OFFICIAL_TIMEOUT_S if args.official_timeout else args.timeout,
        bird_metrics=args.bird_metrics,
        rves_iterations=args.rves_iterations,
        engine=args.engine,
        engine_url=args.engine_url,
        feedback=feedback_config(args),
        generation=GenerationConfig(
            batch_size=args.batch_size,
            temperature=args.temperature,
            top_p=args.top_p,
            num_samples=args.num_samples,
            seed=args.seed or 0,
            backend=args.backend,
            decoder=args.decoder,
            show_progress=not args.no_progress,
            precision=args.precision,
        ),
    )
    result = evaluate(cfg)
    m = result.metrics
    print(f"{m['n']} examples ({result.n_resumed} resumed) -> {result.out_dir}")
    if resolved.source:
        given = f"; overridden: {', '.join(resolved.overridden)}" if resolved.overridden else ""
        print(f"  prompt settings as trained ({resolved.source}{given})")
    rows = [
        ("execution accuracy", m["execution_accuracy"]),
        ("execution accuracy (lenient)", m["execution_accuracy_lenient"]),
        ("execution accuracy, empty gold excluded", m["execution_accuracy_excluding_empty_gold"]),
        ("format rate (spec pattern)", m["format_rate"]),
        ("format rate (strict)", m.get("format_rate_strict")),
        ("executable rate", m["executable_rate"]),
    ]
    voting = m.get("voting")
    if voting:
        rows += [
            ("greedy execution accuracy", voting["greedy_execution_accuracy"]),
            (f"voted execution accuracy ({voting['method']})", voting["voted_execution_accuracy"]),
            (f"pass@{voting['n_samples']}", voting["pass_at_n"]),
        ]
    feedback = m.get("feedback")
    if feedback:
        for t, at in feedback["per_turn"].items():
            rows.append((f"execution accuracy at turn {t}", at["execution_accuracy"]))
            rows.append((f"executable rate at turn {t}", at["executable_rate"]))
    rule = m["compare_rule"] + (", test suite" if m["settings"].get("test_suite") else "")
    for name, value in rows:
        tag = f"  [rule {rule}]" if "accuracy" in name or name.startswith("pass@") else ""
        print(f"  {name:42s} {'-' if value is None else f'{value:.3f}'}{tag}")
    bird = m.get("bird")
    if bird:
        for name in ("ex", "soft_f1", "r_ves"):
            value = bird[name]
            label = {"ex": "BIRD EX", "soft_f1": "BIRD Soft-F1", "r_ves": "BIRD R-VES"}[name]
            print(f"  {label:42s} {'-' if value is None else f'{value:.2f}'}  [BIRD official]")
    print(
        f"  compare rule: {m['compare_rule']}; by gold kind: "
        + json.dumps({k: v["n"] for k, v in m["by_gold_kind"].items()})
    )
    if feedback:
        paired = feedback["final_vs_first"]
        print(
            f"  feedback over {feedback['turns']} turns: {paired['gained']} question(s) right only "
            f"after feedback, {paired['lost']} right only at turn 1 (McNemar p = "
            f"{paired['p_value']:.3g}); turns used "
            + json.dumps(feedback["turns_used"])
            + (f"; {feedback['redrawn']} repeated answer(s) redrawn" if feedback["redrawn"] else "")
        )
    eps = m["timing"]["examples_per_second"]
    if eps:
        print(f"  {eps:.2f} examples/s ({m['backend']})")
    return 0
