"""Does the exported model keep the fine-tune? HF weights vs the GGUF files llama.cpp runs.

Exports a trained run (``sqlgrpo export RUN --gguf f16``, then a q8_0 file beside it),
evaluates the run with the HF backend and each GGUF with ``--backend llama-cpp`` through
``sqlgrpo eval`` on the same seeded sample of the bundled test split (greedy, the run's
prompt settings), and reports how often the final SQL is the same string as HF's, plus
each model's EX. Writes the "Export round trip" section of BENCHMARKS.md.

    flock /work/cpu.lock python bench/bench_export.py --run runs/demo/train
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from benchmarks_md import write_section
from sqlgrpo.cli import main


def _eval(model: str, out: Path, limit: int, backend: str) -> tuple[dict, float]:
    argv = ["eval", "--model", model, "--data", "bundled", "--split", "test",
            "--limit", str(limit), "--seed", "0", "--out", str(out), "--no-progress",
            "--backend", backend, "--batch-size", "64" if backend == "hf" else "8"]  # fmt: skip
    started = time.perf_counter()
    if main(argv) != 0:
        raise RuntimeError(f"sqlgrpo {' '.join(argv)} failed")
    return json.loads((out / "metrics.json").read_text()), time.perf_counter() - started


def _predictions(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return {r["id"]: r for r in rows}


def _agreement(a: dict[str, dict], b: dict[str, dict], key: str) -> tuple[int, int]:
    shared = sorted(set(a) & set(b))
    return sum(a[i][key] == b[i][key] for i in shared), len(shared)


def run(run_dir: Path, work: Path, limit: int) -> str:
    """Export, evaluate the three models, return the Markdown section."""
    from sqlgrpo.models.export import export_model
    from sqlgrpo.models.gguf import convert_to_gguf

    export = work / "export"
    if not (export / "model-f16.gguf").is_file():
        export_model(run_dir, export, gguf="f16")
    if not (export / "model-q8_0.gguf").is_file():
        convert_to_gguf(export, "q8_0")
    models = {
        "HF (transformers, float32)": (str(run_dir), "hf"),
        "GGUF f16 (llama.cpp)": (str(export / "model-f16.gguf"), "llama-cpp"),
        "GGUF q8_0 (llama.cpp)": (str(export / "model-q8_0.gguf"), "llama-cpp"),
    }
    results = {}
    for name, (model, backend) in models.items():
        out = work / f"eval-{backend}-{Path(model).stem}"
        metrics, seconds = _eval(model, out, limit, backend)
        results[name] = (metrics, seconds, _predictions(out))
    hf = results["HF (transformers, float32)"][2]
    lines = [
        f"`python bench/bench_export.py --run {run_dir}` (under the CPU lock, "
        f"{platform.machine()}, {limit} bundled test prompts, seed 0, greedy, the run's "
        "prompt settings and completion budget). Same SQL = the final SQL string (strict "
        "`<sql>` extraction) equals HF's; same text = the whole completion does.",
        "",
        "| model | same SQL as HF | same text as HF | EX | format | executable | file MB | eval s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sizes = {
        "HF (transformers, float32)": (export / "model.safetensors").stat().st_size,
        "GGUF f16 (llama.cpp)": (export / "model-f16.gguf").stat().st_size,
        "GGUF q8_0 (llama.cpp)": (export / "model-q8_0.gguf").stat().st_size,
    }
    for name, (m, seconds, preds) in results.items():
        same_sql, n = _agreement(hf, preds, "sql")
        same_text, _ = _agreement(hf, preds, "completion")
        lines.append(
            f"| {name} | {same_sql}/{n} | {same_text}/{n} | {m['execution_accuracy']:.3f} | "
            f"{m['format_rate']:.3f} | {m['executable_rate']:.3f} | "
            f"{sizes[name] / 1e6:.0f} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo/train"))
    parser.add_argument("--work", type=Path, default=Path("runs/bench_export"))
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    text = run(args.run, args.work, args.limit)
    print(text)
    if not args.no_write:
        write_section("export-roundtrip", "Export round trip: HF vs GGUF (llama.cpp)", text)


if __name__ == "__main__":
    main_cli()
