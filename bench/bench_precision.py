"""fp32 against bf16 on this machine, side by side in one process: what ``precision: auto``
decides and what each stage gains or loses from bf16.

- matrix product 2048 x 576 x 1536 (GFLOP/s);
- the GRPO loss pass: forward + backward of the embedded model over 8 rows of a ~270-token
  prompt + 110 completion tokens, fp32 against bf16 autocast (fp32 master weights);
- one decoding step of 8 rows (sqlgrpo's exact decoder, 32 new tokens): fp32 weights against
  a bf16 copy;
- greedy evaluation of bundled test prompts (batch = the number of prompts): fp32 against bf16
  weights, and how many completions are identical.

The section records the CPU model and its bf16 matrix-unit flags: on a CPU without AMX-BF16 /
AVX512-BF16, torch emulates bf16 and ``auto`` keeps fp32.

    python bench/bench_precision.py --prompts 16 --max-new-tokens 64

Writes its section of BENCHMARKS.md between the bench_precision markers.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from benchmarks_md import write_section
from sqlgrpo.models.precision import cpu_bf16_flags, cpu_model_name, resolve_precision


def _best(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def matmul(rounds: int) -> dict[str, float]:
    """GFLOP/s of ``F.linear`` (what the model's layers call) on a 2048 x 576 input and a
    1536 x 576 weight, in each dtype."""
    import torch
    import torch.nn.functional as F

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x = torch.randn(2048, 576, dtype=dtype)
        w = torch.randn(1536, 576, dtype=dtype)
        F.linear(x, w)
        seconds = _best(lambda x=x, w=w: [F.linear(x, w) for _ in range(5)], rounds) / 5
        out[name] = 2 * 2048 * 576 * 1536 / seconds / 1e9
    return out


def loss_pass(model: Any, rounds: int) -> dict[str, float]:
    import torch

    torch.manual_seed(0)
    ids = torch.randint(100, 20000, (8, 270 + 110))
    ids[:, :270] = ids[0, :270]  # one prompt, as a GRPO group

    def step(bf16: bool) -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, logits_to_keep=111).logits[:, :-1]
        logps = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 270:, None])
        logps.mean().backward()

    return {
        "fp32": _best(lambda: step(False), rounds),
        "bf16": _best(lambda: step(True), rounds),
    }


def decode_step(model: Any, tokenizer: Any, twin: Any, steps: int) -> dict[str, float]:
    """Milliseconds a decoding step of 8 samples of one 269-token prompt (bench_sampler's
    measure: the prompt prefilled once, ``steps`` new tokens)."""
    from bench_sampler import step_ms

    prompt = tokenizer("Which vessels docked in Rotterdam? " * 30)["input_ids"][:269]
    return {name: step_ms(m, prompt, 8, steps)[0] for name, m in (("fp32", model), ("bf16", twin))}


def evaluation(
    model: Any, tokenizer: Any, twin: Any, prompts: int, max_new_tokens: int
) -> dict[str, Any]:
    from sqlgrpo.data import PromptConfig, load_samples, render_sample_prompt
    from sqlgrpo.generation import GenerationConfig, HFGenerator, generate

    samples = load_samples("bundled", split="test", limit=prompts).samples
    pcfg = PromptConfig(prefill="<reasoning>\n")
    texts = [render_sample_prompt(s, pcfg, tokenizer) for s in samples]
    cfg = GenerationConfig(
        max_new_tokens=max_new_tokens, batch_size=len(texts), show_progress=False
    )
    out: dict[str, Any] = {}
    completions = {}
    for name, m in (("fp32", model), ("bf16", twin)):
        started = time.perf_counter()
        completions[name] = generate(HFGenerator(m, tokenizer, cfg), texts)
        out[name] = len(texts) / (time.perf_counter() - started)
    out["same"] = sum(a == b for a, b in zip(completions["fp32"], completions["bf16"], strict=True))
    out["n"] = len(texts)
    return out


def render(r: dict[str, Any], command: str, note: str) -> str:
    flags = ", ".join(r["flags"]) or "none"
    lines = [
        f"CPU: {r['cpu']}; bf16 matrix-unit flags: {flags}; torch {r['torch']}, "
        f"{r['threads']} threads. `precision: auto` decides here: **{r['auto']}**.",
        "",
        "| stage | fp32 | bf16 | bf16 / fp32 speed |",
        "|---|---:|---:|---:|",
        f"| matrix product 2048 x 576 x 1536 (GFLOP/s) | {r['matmul']['fp32']:.0f} | "
        f"{r['matmul']['bf16']:.0f} | {r['matmul']['bf16'] / r['matmul']['fp32']:.2f}x |",
        f"| GRPO loss pass, 8 x (270 + 110) tokens, fwd + bwd (s; bf16 = autocast) | "
        f"{r['loss']['fp32']:.2f} | {r['loss']['bf16']:.2f} | "
        f"{r['loss']['fp32'] / r['loss']['bf16']:.2f}x |",
        f"| decoding step, 8 rows, 269-token prompt (ms; bf16 = a bf16 copy) | "
        f"{r['decode']['fp32']:.1f} | {r['decode']['bf16']:.1f} | "
        f"{r['decode']['fp32'] / r['decode']['bf16']:.2f}x |",
        f"| greedy evaluation, {r['eval']['n']} bundled test prompts (examples/s) | "
        f"{r['eval']['fp32']:.2f} | {r['eval']['bf16']:.2f} | "
        f"{r['eval']['bf16'] / r['eval']['fp32']:.2f}x |",
        "",
        f"Identical greedy completions, bf16 against fp32 weights: {r['eval']['same']} of "
        f"{r['eval']['n']} (bf16 rounding moves near-ties; accuracy is compared paired).",
        "",
        f"Command: `{command}`.",
    ]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=16, help="bundled test prompts evaluated")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="best of N for the timed parts")
    parser.add_argument("--steps", type=int, default=64, help="decoding steps timed")
    parser.add_argument("--note", default="", help="a sentence for the section (conditions)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    import torch

    from sqlgrpo.models import load_model_and_tokenizer
    from sqlgrpo.models.precision import bf16_copy

    model, tokenizer = load_model_and_tokenizer(args.model, dtype=torch.float32)
    twin = bf16_copy(model)
    result: dict[str, Any] = {
        "cpu": cpu_model_name(),
        "flags": cpu_bf16_flags(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "auto": resolve_precision("auto", "cpu").describe(),
        "matmul": matmul(args.rounds),
    }
    print(result, flush=True)
    result["decode"] = decode_step(model, tokenizer, twin, args.steps)
    print(result["decode"], flush=True)
    result["eval"] = evaluation(model, tokenizer, twin, args.prompts, args.max_new_tokens)
    print(result["eval"], flush=True)
    model.train()
    result["loss"] = loss_pass(model, args.rounds)
    command = "python bench/bench_precision.py " + " ".join(sys.argv[1:])
    text = render(result, command.strip(), args.note)
    print(text)
    if not args.no_write:
        write_section("bench_precision", "Precision: fp32 against bf16 on this CPU", text)


if __name__ == "__main__":
    main()
