"""``sqlgrpo demo``: the main job on the embedded defaults, end to end.

Evaluate the base model on the bundled test split (domains never trained on), train
with the CPU recipe (SFT warm-up, then GRPO), evaluate the base, warm-up and GRPO models
on that sample and on the rows the recipe held out of the trained domains (same samples,
same prompt for every model), and write the report with all three side by side on both
splits, with the hack monitors (docs/rewards.md) beside the metrics: what was learned, and
what transferred.
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
class EvalSplit:
    """One evaluation split of the demo and the folder each model's evaluation goes to."""

    title: str
    data: str
    split: str | None
    limit: int | None
    ids_file: Path | None
    folders: dict[str, Path]  # model name (base, warm-up, GRPO) -> evaluation folder


@dataclass(frozen=True)
class DemoPlan:
    """Where each stage of the demo reads and writes."""

    out: Path
    run: Any  # the recipe parsed as `sqlgrpo train` parses it (sqlgrpo.training.config.RunConfig)
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

    def splits(self) -> list[EvalSplit]:
        """The evaluation splits: the ``--data``/``--split`` sample (unseen domains for the
        bundled data) and, when the recipe holds rows out, those rows of the trained domains
        (their folders are not named ``eval*``, so ``sqlgrpo report RUN_DIR`` keeps showing
        the first split)."""
        where = f"{self.eval_data}:{self.eval_split}" if self.eval_split else self.eval_data
        splits = [
            EvalSplit(
                f"{where} ({self.eval_limit or 'all'} rows)",
                self.eval_data,
                self.eval_split,
                self.eval_limit,
                None,
                {"base": self.base_eval, "warm-up": self.warmup_eval, "GRPO": self.grpo_eval},
            )
        ]
        script = self.run.script
        if script.eval_holdout:
            source = script.dataset_source
            if script.dataset_split:
                source = f"{source}:{script.dataset_split}"
            splits.append(
                EvalSplit(
                    f"{script.eval_holdout} held-out rows of the training data ({source})",
                    script.dataset_source,
                    script.dataset_split,
                    None,
                    self.train_dir / "holdout_ids.json",
                    {
                        "base": self.out / "heldout_base",
                        "warm-up": self.out / "heldout_warmup",
                        "GRPO": self.train_dir / "heldout_grpo",
                    },
                )
            )
        return splits


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
        help="extra recipe override passed to `sqlgrpo train` (repeatable); join it with '=', "
        "as in --train-arg=--max_steps=80, since argparse reads a separate value that starts "
        "with -- as an option",
    )
    p.set_defaults(handler=run_demo)


def _plan(args: argparse.Namespace) -> DemoPlan:
    """Parse the recipe (with ``--train-arg`` overrides) exactly as ``sqlgrpo train`` does."""
    from sqlgrpo.training.config import parse_run_config

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


def _evaluate(plan: DemoPlan, split: EvalSplit, name: str, model: str, prompt: Any = None) -> None:
    """Evaluate ``model`` on ``split`` (the seeded sample, or the held-out ids), prompted as
    it was trained (``prompt`` for the base model, which has no run of its own: the recipe's
    settings)."""
    from sqlgrpo.evaluation.evaluate import evaluate, prompted_eval_config
    from sqlgrpo.generation import GenerationConfig

    out = split.folders[name]
    cfg, resolved = prompted_eval_config(
        model,
        split.data,
        str(out),
        prompt=prompt,
        split=split.split,
        limit=split.limit,
        seed=plan.eval_seed,
        ids_file=None if split.ids_file is None else str(split.ids_file),
        generation=GenerationConfig(batch_size=plan.batch_size, seed=plan.eval_seed),
    )
    m = evaluate(cfg).metrics
    source = resolved.source or "the recipe"
    print(
        f"{name} on {split.title}: {m['n']} examples -> {out}: EX {m['execution_accuracy']:.3f} "
        f"[rule {m['compare_rule']}], strict format {m.get('format_rate_strict') or 0.0:.3f}, "
        f"executable {m['executable_rate']:.3f} (prompt settings from {source})",
        flush=True,
    )


def _stage(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _metrics(eval_dir: Path) -> dict | None:
    path = eval_dir / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_demo(args: argparse.Namespace) -> int:
    """Run every stage of the demo; print the report path and the before/after numbers."""
    from sqlgrpo.data import DataError
    from sqlgrpo.models import ModelNotFoundError
    from sqlgrpo.training.config import ConfigError

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
    """The six stages; True when training was interrupted (the later stages then wait)."""
    from sqlgrpo.evaluation.report import (
        EvalGroup,
        ReportConfig,
        build_report,
        save_report_inputs,
    )
    from sqlgrpo.models.run_settings import settings_from_mapping
    from sqlgrpo.training.train import run_training

    recipe_prompt = settings_from_mapping(plan.run.recipe_dict())
    first, *others = plan.splits()
    _stage(f"1/6 evaluate the base model ({plan.model}) on {first.title}")
    _evaluate(plan, first, "base", plan.model, prompt=recipe_prompt)

    _stage(f"2/6 train with {plan.run.recipe} (SFT warm-up, then GRPO)")
    if (plan.train_dir / "model").exists():
        print(f"already trained: {plan.train_dir / 'model'}")
    else:
        result = run_training(plan.run)
        if result.interrupted:
            return True
        print(f"trained {result.global_step} step(s); run folder: {result.output_dir}")

    _stage("3/6 evaluate the base model on the held-out rows of the trained domains")
    for split in others:
        _evaluate(plan, split, "base", plan.model, prompt=recipe_prompt)
    if not others:
        print("the recipe holds no rows out (eval_holdout: 0); skipped")

    warmup_model = plan.train_dir / "warmup" / "model"
    _stage("4/6 evaluate the warm-up model")
    if warmup_model.exists():
        for split in (first, *others):
            _evaluate(plan, split, "warm-up", str(warmup_model))
    else:
        print("the recipe has no SFT warm-up; skipped")

    _stage("5/6 evaluate the GRPO model")
    for split in (first, *others):
        _evaluate(plan, split, "GRPO", str(plan.train_dir))

    _stage("6/6 write the report")
    names = ["base", "warm-up", "GRPO"] if warmup_model.exists() else ["base", "GRPO"]
    cfg = ReportConfig(
        run_dir=str(plan.train_dir),
        baseline_dir=[str(first.folders[n]) for n in names[:-1]],
        eval_dir=str(first.folders["GRPO"]),
        split=first.title if others else None,
        groups=[
            EvalGroup(split.title, tuple(str(split.folders[n]) for n in names)) for split in others
        ],
        labels={str(split.folders[n]): n for split in (first, *others) for n in names},
    )
    paths = build_report(cfg)
    save_report_inputs(cfg)  # `sqlgrpo report RUN_DIR` rebuilds this page
    print(f"report written: {paths.html}")
    return False


def _summary(plan: DemoPlan, elapsed_s: float) -> None:
    from sqlgrpo.evaluation.metrics import compare_runs, format_p_value
    from sqlgrpo.rewards.monitors import MONITORS

    print(f"\n=== results ({elapsed_s / 60:.1f} min) ===")
    header = ("n", "format", "strict fmt", "executable", "EX", "EX lenient")
    for split in plan.splits():
        print(f"\n{split.title}")
        print(f"{'model':10s} " + " ".join(f"{h:>11s}" for h in header))
        metrics = {name: _metrics(folder) for name, folder in split.folders.items()}
        for name, m in metrics.items():
            if m is None:
                continue
            values = (m["format_rate"], m.get("format_rate_strict"), m["executable_rate"],
                      m["execution_accuracy"], m["execution_accuracy_lenient"])  # fmt: skip
            cells = [f"{m['n']:11d}"] + [
                f"{'-':>11s}" if v is None else f"{v:11.3f}" for v in values
            ]
            print(f"{name:10s} " + " ".join(cells))
        print("hack monitors (share of outputs): " + ", ".join(MONITORS))
        for name, m in metrics.items():
            shares = (m or {}).get("monitors") or {}
            if shares:
                print(f"{name:10s} " + " ".join(f"{shares[k]:11.3f}" for k in MONITORS))
        for name in ("base", "warm-up"):
            if metrics[name] is None or metrics["GRPO"] is None:
                continue
            cmp = compare_runs(split.folders[name], split.folders["GRPO"])
            delta = (cmp.accuracy_b or 0.0) - (cmp.accuracy_a or 0.0)
            print(
                f"paired {name} -> GRPO: {cmp.n_shared} shared samples, +{cmp.gained} gained, "
                f"-{cmp.lost} lost, EX {delta:+.3f}, McNemar exact p = {format_p_value(cmp.p_value)}"
            )
    print(f"report: {plan.train_dir / 'report.html'}")
