"""SFT warm-up step time with padded batches against padding-free ones, side by side.

Runs the same warm-up (same recipe, seed, samples, batch order) with
``sft_warmup_padding_free`` off and on, alternating, ``--rounds`` times each, through
``sqlgrpo train --sft_warmup_only true``; reads each run's ``warmup_summary.json``
(runtime and per-step losses). The losses must agree: padding-free changes the batch
layout, not the arithmetic.

    python bench/bench_warmup.py --samples 24 --rounds 2

Writes its section of BENCHMARKS.md between the bench_warmup markers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks_md import write_section
from sqlgrpo.cli import main as sqlgrpo

MODES = {"padded": "false", "padding-free": "true"}


def run(model: str, recipe: str, padding_free: str, samples: int, out: Path) -> dict:
    """One warm-up-only run; return its warmup_summary.json."""
    argv = ["train", "--config", recipe, "--model_name_or_path", model,
            "--sft_warmup_samples", str(samples), "--sft_warmup_only", "true",
            "--sft_warmup_padding_free", padding_free, "--output_dir", str(out)]  # fmt: skip
    if sqlgrpo(argv) != 0:
        raise SystemExit(f"warm-up failed: {' '.join(argv)}")
    return json.loads((out / "warmup" / "warmup_summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="starting model (alias or folder)")
    parser.add_argument("--recipe", default="recipes/smollm2-135m-cpu.yaml")
    parser.add_argument("--samples", type=int, default=24, help="warm-up samples per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per mode, alternating")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    runtimes: dict[str, list[float]] = {mode: [] for mode in MODES}
    losses: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for mode, flag in MODES.items():
                summary = run(args.model, args.recipe, flag, args.samples, Path(tmp) / f"{mode}{i}")
                runtimes[mode].append(summary["train_runtime"])
                losses.setdefault(mode, summary["losses"])
                print(mode, i, summary["train_runtime"], flush=True)
    steps = len(losses["padded"])
    diff = max(abs(a - b) for a, b in zip(losses["padded"], losses["padding-free"], strict=True))
    median = {mode: statistics.median(times) for mode, times in runtimes.items()}
    lines = [
        f"{args.samples} warm-up samples ({steps} steps) from `{args.model}` with "
        f"`{args.recipe}`, {args.rounds} runs per mode, alternating; seconds of training "
        "(median over the runs, every run in brackets).",
        "",
        "| batches | warm-up time | seconds per step | runs |",
        "|---|---:|---:|---|",
        *(
            f"| {mode} | {median[mode]:.1f} | {median[mode] / steps:.1f} | "
            f"{', '.join(f'{t:.1f}' for t in runtimes[mode])} |"
            for mode in MODES
        ),
        "",
        f"Padded time / padding-free time: {median['padded'] / median['padding-free']:.2f} "
        f"(above 1: padding-free is faster). The per-step losses of the two agree to "
        f"{diff:.1e} (largest difference over {steps} steps).",
        "",
        f"Command: `python bench/bench_warmup.py --model {args.model} --samples {args.samples} "
        f"--rounds {args.rounds}`",
    ]
    if not args.no_write:
        write_section("bench_warmup", "SFT warm-up batches", "\n".join(lines))
        print("updated BENCHMARKS.md")


if __name__ == "__main__":
    main()
