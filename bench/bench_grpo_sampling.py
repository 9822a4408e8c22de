"""GRPO step time with the incremental decoder against TRL's ``generate``, side by side.

Trains the same few GRPO steps twice from the same starting model (same recipe, seed,
prompts), once per ``generation_decoder``, alternating, and reads each step's wall
time (``step_time``) and sampling time (``sampling_seconds``) from the run's
``metrics.jsonl``. Sampled completions differ between the two (different random
draws), so the mean completion length is reported beside the times.

    python bench/bench_grpo_sampling.py --model runs/abl/w160c/warmup/model --steps 3

Writes its section of BENCHMARKS.md between the bench_grpo_sampling markers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks_md import write_section
from sqlgrpo.cli import main as sqlgrpo

DECODERS = ("generate", "incremental")


def run(model: str, recipe: str, decoder: str, steps: int, out: Path, extra: list[str]) -> list:
    """Train ``steps`` GRPO steps; return the metrics.jsonl rows."""
    argv = ["train", "--config", recipe, "--model_name_or_path", model,
            "--sft_warmup_samples", "0", "--max_steps", str(steps), "--save_steps", "1000",
            "--generation_decoder", decoder, "--output_dir", str(out), *extra]  # fmt: skip
    if sqlgrpo(argv) != 0:
        raise SystemExit(f"training failed: {' '.join(argv)}")
    path = out / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(rows: list[dict]) -> dict[str, float]:
    """Medians of step and sampling time, mean completion length, over the logged steps."""
    steps = [r for r in rows if "step_time" in r]
    return {
        "step": statistics.median(r["step_time"] for r in steps),
        "sampling": statistics.median(r["sampling_seconds"] for r in steps),
        "length": statistics.mean(r["completions/mean_length"] for r in steps),
        "n": len(steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="starting model (alias or folder)")
    parser.add_argument("--recipe", default="recipes/smollm2-135m-cpu.yaml")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--train-arg", action="append", default=[], metavar="--FIELD=VALUE",
        help="extra recipe override (repeatable), e.g. --train-arg=--num_generations=4",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    extra = [part for item in args.train_arg for part in item.split("=", 1)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for decoder in DECODERS:
            rows = run(args.model, args.recipe, decoder, args.steps, Path(tmp) / decoder, extra)
            results[decoder] = summarize(rows)
            print(decoder, results[decoder], flush=True)
    gen, inc = results["generate"], results["incremental"]
    lines = [
        f"{args.steps} GRPO steps per decoder from `{args.model}` with `{args.recipe}`"
        + (f" and `{' '.join(extra)}`" if extra else "")
        + " (sampled completions differ between the runs: compare the lengths too). "
        "Medians over the steps; seconds.",
        "",
        "| decoder | step time | sampling time | mean completion tokens |",
        "|---|---:|---:|---:|",
        *(
            f"| {d} | {results[d]['step']:.1f} | {results[d]['sampling']:.1f} | "
            f"{results[d]['length']:.0f} |"
            for d in DECODERS
        ),
        "",
        f"Sampling {gen['sampling'] / inc['sampling']:.2f}x faster, step "
        f"{gen['step'] / inc['step']:.2f}x.",
        "",
        "Command: `python bench/bench_grpo_sampling.py --model "
        f"{args.model} --steps {args.steps}"
        + "".join(f" --train-arg={a}" for a in args.train_arg)
        + "`",
    ]
    if not args.no_write:
        write_section("bench_grpo_sampling", "GRPO sampling", "\n".join(lines))
        print("updated BENCHMARKS.md")


if __name__ == "__main__":
    main()
