"""``sqlgrpo demo``: the main job on the embedded defaults, end to end.

Evaluate the base model on the bundled test split, train with the CPU recipe
(SFT warm-up, then GRPO), evaluate the warm-up and the GRPO model the same way
(same samples, same prompt), and write the report with all three side by side.
Every stage writes to its own folder under ``--out`` and is skipped when its
result is already there, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RECIPE = "recipes/smollm2-135m-cpu.yaml"


@dataclass(frozen=True)
class DemoPlan:
    """Where each stage of the demo reads and writes."""

    recipe: Path
    out: Path
    model: str
    prefill: str
    one_shot: bool
    max_new_tokens: int
    eval_data: str
    eval_split: str | None
    eval_limit: int | None
    eval_seed: int
    batch_size: int

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
    import yaml

    recipe = Path(args.recipe)
    if not recipe.is_file():
        raise FileNotFoundError(f"recipe not found: {recipe}")
    fields = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
    return DemoPlan(
        recipe=recipe,
        out=Path(args.out),
        model=str(fields.get("model_name_or_path", "smollm2-135m")),
        prefill=str(fields.get("prefill", "") or ""),
        one_shot=bool(fields.get("one_shot", False)),
        max_new_tokens=int(fields.get("max_completion_length", 256)),
        eval_data=args.data,
        eval_split=args.split,
        eval_limit=args.eval_limit,
        eval_seed=args.eval_seed,
        batch_size=args.batch_size,
    )


def _eval_argv(plan: DemoPlan, model: str, out: Path) -> list[str]:
    argv = [
        "eval",
        "--model", model,
        "--data", plan.eval_data,
        "--out", str(out),
        "--batch-size", str(plan.batch_size),
        "--max-new-tokens", str(plan.max_new_tokens),
        "--seed", str(plan.eval_seed),
    ]  # fmt: skip
    if plan.eval_split:
        argv += ["--split", plan.eval_split]
    if plan.eval_limit:
        argv += ["--limit", str(plan.eval_limit)]
    if plan.prefill:
        argv += ["--prefill", plan.prefill]
    if plan.one_shot:
        argv.append("--one-shot")
    return argv


def _stage(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _call(argv: list[str]) -> None:
    from sqlgrpo.cli import main

    code = main(argv)
    if code != 0:
        raise RuntimeError(f"`sqlgrpo {' '.join(argv[:1])}` failed with exit code {code}")


def _metrics(eval_dir: Path) -> dict | None:
    path = eval_dir / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_demo(args: argparse.Namespace) -> int:
    """Run every stage of the demo; print the report path and the before/after numbers."""
    started = time.monotonic()
    try:
        plan = _plan(args)
    except FileNotFoundError as exc:
        print(f"sqlgrpo demo: error: {exc}", file=sys.stderr)
        return 2
    plan.out.mkdir(parents=True, exist_ok=True)
    try:
        _stage(f"1/5 evaluate the base model ({plan.model}) on {plan.eval_data}:{plan.eval_split}")
        _call(_eval_argv(plan, plan.model, plan.base_eval))

        _stage(f"2/5 train with {plan.recipe} (SFT warm-up, then GRPO)")
        if (plan.train_dir / "model").exists():
            print(f"already trained: {plan.train_dir / 'model'}")
        else:
            argv = ["train", "--config", str(plan.recipe), "--output_dir", str(plan.train_dir)]
            if any(plan.train_dir.glob("checkpoint-*")):
                argv += ["--resume", "true"]
            for extra in args.train_arg:
                argv += extra.split("=", 1) if "=" in extra else [extra]
            _call(argv)

        warmup_model = plan.train_dir / "warmup" / "model"
        _stage("3/5 evaluate the warm-up model")
        if warmup_model.exists():
            _call(_eval_argv(plan, str(warmup_model), plan.warmup_eval))
        else:
            print("the recipe has no SFT warm-up; skipped")

        _stage("4/5 evaluate the GRPO model")
        _call(_eval_argv(plan, str(plan.train_dir), plan.grpo_eval))

        _stage("5/5 write the report")
        report_argv = ["report", str(plan.train_dir), "--baseline", str(plan.base_eval)]
        if warmup_model.exists():
            report_argv += ["--baseline", str(plan.warmup_eval)]
        _call(report_argv)
    except RuntimeError as exc:
        print(f"sqlgrpo demo: error: {exc}", file=sys.stderr)
        return 1

    _summary(plan, time.monotonic() - started)
    return 0


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
