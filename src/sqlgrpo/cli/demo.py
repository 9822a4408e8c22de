"""``sqlgrpo demo``: the main job on the embedded defaults, end to end.

Evaluate the base model on the bundled test split, train with the CPU recipe
(SFT warm-up, then GRPO), evaluate the warm-up and the GRPO model the same way
(same samples, same prompt), and write the report with all three side by side.
Every stage writes to its own folder under ``--out`` and is skipped when its
result is already there, so an interrupted demo continues where it stopped.
The stages call the library (``run_training``, ``evaluate``, ``build_report``); the
recipe is parsed once, as ``sqlgrpo train`` parses it, and each trained model is
evaluated with the prompt settings its run recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_RECIPE = "recipes/smollm2-135m-cpu.yaml"


@dataclass(frozen=True)
class DemoPlan:
    """Where each stage of the demo reads and writes."""

    out: Path
    run: Any  # the recipe parsed as `sqlgrpo train` parses it (sqlgrpo.config.RunConfig)
    eval_data: str
    eval_split: str | None
    eval_limit: int | None
    eval_seed: int
    batch_size: int

    @property
    def model(self) -> str:
        return str(self.run.model.model_name_or_path)

    @property
    def train_dir(self) -> Path:
        return self.out / "train"

    @property
    def base_eval(self) -> Path:
        return self.out / "eval_base"

    @property
    def warmup_eval(self) -> Path:
        return self.out / "eval_warmup"

    @property
    def grpo_eval(self) -> Path:
        # inside the run folder, so `sqlgrpo report RUN_DIR` finds it
        return self.train_dir / "eval_grpo"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    p = subparsers.add_parser(
        "demo",
        help="evaluate the base model, train with GRPO on the CPU, evaluate again, report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--recipe", default=DEFAULT_RECIPE, help=f"training recipe (default {DEFAULT_RECIPE})"
    )
    p.add_argument("--out", default="runs/demo", help="demo folder (default runs/demo)")
    p.add_argument("--data", default="bundled", help="evaluation data (default: bundled)")
    p.add_argument("--split", default="test", help="evaluation split (default: test)")
    p.add_argument(
        "--eval-limit",
        type=int,
        default=300,
        help="evaluate a seeded random sample of N examples (default 300, enough to see a "
        "change of about 5 points when paired: 7-10 minutes per model on 2 CPU cores; "
        "0 = the whole split)",
    )
    p.add_argument("--eval-seed", type=int, default=0, help="seed of that sample (default 0)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="generation batch size (default 64: on 2 CPU cores a decoding step for 64 rows "
        "costs about 2x one for 16, so large batches go further per second)",
    )
    p.add_argument(
        "--train-arg",
        action="append",
        default=[],
        metavar="--FIELD=VALUE",
        help="extra recipe override passed to `sqlgrpo train` (repeatable)",
    )
    p.set_defaults(handler=run_demo)


def _plan(args: argparse.Namespace) -> DemoPlan:
    """Parse the recipe (with ``--train-arg`` overrides) exactly as ``sqlgrpo train`` does."""
    from sqlgrpo.config import parse_run_config

    recipe = Path(args.recipe)
    if not recipe.is_file():
        raise FileNotFoundError(f"recipe not found: {recipe}")
    out = Path(args.out)
    argv = ["--config", str(recipe), "--output_dir", str(out / "train")]
    for extra in args.train_arg:
        argv += extra.split("=", 1) if "=" in extra else [extra]
    if any((out / "train").glob("checkpoint-*")):
        argv += ["--resume", "true"]
    return DemoPlan(
        out=out,
        run=parse_run_config(argv),
        eval_data=args.data,
        eval_split=args.split,
        eval_limit=args.eval_limit or None,
        eval_seed=args.eval_seed,
        batch_size=args.batch_size,
    )


def _evaluate(plan: DemoPlan, model: str, out: Path, prompt: Any = None) -> None:
    """Evaluate ``model`` on the demo's seeded sample, prompted as it was trained (``prompt``
    for the base model, which has no run of its own: the recipe's settings)."""
    from sqlgrpo.evaluate import evaluate, prompted_eval_config
    from sqlgrpo.generation import GenerationConfig

    cfg, resolved = prompted_eval_config(
        model,
        plan.eval_data,
        str(out),
        prompt=prompt,
        split=plan.eval_split,
        limit=plan.eval_limit,
        seed=plan.eval_seed,
        generation=GenerationConfig(batch_size=plan.batch_size, seed=plan.eval_seed),
    )
    m = evaluate(cfg).metrics
    source = resolved.source or "the recipe"
    print(
        f"{m['n']} examples -> {out}: EX {m['execution_accuracy']:.3f} [rule {m['compare_rule']}], "
        f"strict format {m.get('format_rate_strict') or 0.0:.3f}, executable "
        f"{m['executable_rate']:.3f} (prompt settings from {source})",
        flush=True,
    )


def _stage(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _metrics(eval_dir: Path) -> dict | None:
    path = eval_dir / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_demo(args: argparse.Namespace) -> int:
    """Run every stage of the demo; print the report path and the before/after numbers."""
    from sqlgrpo.config import ConfigError
    from sqlgrpo.data import DataError
    from sqlgrpo.models import ModelNotFoundError

    started = time.monotonic()
    try:
        plan = _plan(args)
    except (FileNotFoundError, ConfigError, ValueError) as exc:
        print(f"sqlgrpo demo: error: {exc}", file=sys.stderr)
        return 2
    plan.out.mkdir(parents=True, exist_ok=True)
    try:
        interrupted = _run_stages(plan)
    except (ConfigError, DataError, ModelNotFoundError, ValueError, OSError) as exc:
        print(f"sqlgrpo demo: error: {exc}", file=sys.stderr)
        return 1
    if interrupted:
        print(
            f"training interrupted; checkpoint saved in {plan.train_dir}. "
            "Run the demo again to continue."
        )
        return 130
    _summary(plan, time.monotonic() - started)
    return 0


def _run_stages(plan: DemoPlan) -> bool:
    """The five stages; True when training was interrupted (the later stages then wait)."""
    from sqlgrpo.report import ReportConfig, build_report
    from sqlgrpo.run_settings import settings_from_mapping
    from sqlgrpo.train import run_training

    recipe_prompt = settings_from_mapping(plan.run.recipe_dict())
    _stage(f"1/5 evaluate the base model ({plan.model}) on {plan.eval_data}:{plan.eval_split}")
    _evaluate(plan, plan.model, plan.base_eval, prompt=recipe_prompt)

    _stage(f"2/5 train with {plan.run.recipe} (SFT warm-up, then GRPO)")
    if (plan.train_dir / "model").exists():
        print(f"already trained: {plan.train_dir / 'model'}")
    else:
        result = run_training(plan.run)
        if result.interrupted:
            return True
        print(f"trained {result.global_step} step(s); run folder: {result.output_dir}")

    warmup_model = plan.train_dir / "warmup" / "model"
    _stage("3/5 evaluate the warm-up model")
    if warmup_model.exists():
        _evaluate(plan, str(warmup_model), plan.warmup_eval)
    else:
        print("the recipe has no SFT warm-up; skipped")

    _stage("4/5 evaluate the GRPO model")
    _evaluate(plan, str(plan.train_dir), plan.grpo_eval)

    _stage("5/5 write the report")
    baselines = [str(plan.base_eval)] + ([str(plan.warmup_eval)] if warmup_model.exists() else [])
    paths = build_report(ReportConfig(run_dir=str(plan.train_dir), baseline_dir=baselines))
    print(f"report written: {paths.html}")
    return False


def _summary(plan: DemoPlan, elapsed_s: float) -> None:
    from sqlgrpo.metrics import compare_runs

    rows = [("base", plan.base_eval), ("warm-up", plan.warmup_eval), ("GRPO", plan.grpo_eval)]
    print(f"\n=== results ({elapsed_s / 60:.1f} min) ===")
    header = ("n", "format", "strict fmt", "executable", "EX", "EX lenient")
    print(f"{'model':10s} " + " ".join(f"{h:>11s}" for h in header))
    for name, folder in rows:
        m = _metrics(folder)
        if m is None:
            continue
        values = (m["format_rate"], m.get("format_rate_strict"), m["executable_rate"],
                  m["execution_accuracy"], m["execution_accuracy_lenient"])  # fmt: skip
        cells = [f"{m['n']:11d}"] + [f"{'-':>11s}" if v is None else f"{v:11.3f}" for v in values]
        print(f"{name:10s} " + " ".join(cells))
    pairs = [("base", plan.base_eval, "GRPO", plan.grpo_eval)]
    if _metrics(plan.warmup_eval) is not None:
        pairs.append(("warm-up", plan.warmup_eval, "GRPO", plan.grpo_eval))
    for a_name, a_dir, b_name, b_dir in pairs:
        cmp = compare_runs(a_dir, b_dir)
        delta = (cmp.accuracy_b or 0.0) - (cmp.accuracy_a or 0.0)
        print(
            f"paired {a_name} -> {b_name}: {cmp.n_shared} shared samples, +{cmp.gained} gained, "
            f"-{cmp.lost} lost, EX {delta:+.3f}, McNemar exact p = {cmp.p_value:.3g}"
        )
    print(f"report: {plan.train_dir / 'report.html'}")
