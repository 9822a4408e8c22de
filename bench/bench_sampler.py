"""Sampling-step cost of the incremental decoder, exact (fp32) against an int8 weight-only copy.

The int8 sampler is torch's dynamic quantization (``quantize_dynamic``, per-channel int8
weights, activations quantized on the fly) of the decoder layers' linear layers, applied
to a copy of the model, as a sampler refreshed after each optimizer step would be. Such a
sampler is not bit-exact with the weights being trained, which makes GRPO off-policy; the
bench measures how far: the mean absolute difference between the sampler's and the
learner's per-token log-probabilities (at the sampling temperature) of the completions the
exact sampler drew, each scored the way it would be used (the sampler one token at a time
with its cache, the learner over the whole sequence).

llama.cpp (``llama-cpp-python``, through :class:`sqlgrpo.training.llamacpp_sampler.LlamaCppRollouts`)
is measured the same way from GGUF copies of the model (f32, f16, q8_0, written by llama.cpp's
own converter): the prompt is evaluated once for all rows (its cache cells belong to every
sequence), then each step decodes one token per row in one batch, and the sampler's
log-probability of each drawn token is kept. A sampler refreshed after every optimizer step
pays for the refresh: converting again (save, convert, open), or, as the trainer does, the
f32 mirror's in-place rewrite (:class:`sqlgrpo.training.llamacpp_sampler.LlamaCppSampler`).

    python bench/bench_sampler.py --rows 8 --steps 64

Writes its section of BENCHMARKS.md between the bench_sampler markers.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks_md import write_section

TEMPERATURE = 0.9


def int8_copy(model: Any) -> Any:
    """A copy of ``model`` whose decoder-layer linear layers hold per-channel int8 weights."""
    import torch

    quantized = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        quantized.model = torch.ao.quantization.quantize_dynamic(
            quantized.model,
            {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8,
        )
    return quantized


def step_ms(model: Any, prompt: list[int], rows: int, steps: int) -> tuple[float, list[list[int]]]:
    """Milliseconds per decoding step of ``rows`` samples of ``prompt`` (after a warm-up run)."""
    import torch

    from sqlgrpo.generation.decoding import DecodeSettings, decode

    settings = DecodeSettings(
        max_new_tokens=steps, eos_token_ids=frozenset(), temperature=TEMPERATURE
    )
    decode(model, [prompt], settings, samples_per_row=rows, generator=torch.Generator())
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    out = decode(model, [prompt], settings, samples_per_row=rows, generator=generator)
    return 1000 * (time.perf_counter() - started) / steps, out


def incremental_logps(model: Any, ids: Any, prompt_len: int) -> Any:
    """Log-probabilities of ``ids[:, prompt_len:]``, fed one token at a time (as sampled)."""
    import torch

    from sqlgrpo.generation.decoding import cache_argument, output_cache

    cache_arg = cache_argument(model)
    with torch.inference_mode():
        out = model(input_ids=ids[:, :prompt_len], use_cache=True)
        cache, scores = output_cache(out), []
        for t in range(prompt_len, ids.shape[1]):
            logp = torch.log_softmax(out.logits[:, -1].float() / TEMPERATURE, dim=-1)
            scores.append(logp.gather(-1, ids[:, t : t + 1]))
            out = model(input_ids=ids[:, t : t + 1], use_cache=True, **{cache_arg: cache})
            cache = output_cache(out)
    return torch.cat(scores, dim=1)


def full_logps(model: Any, ids: Any, prompt_len: int) -> Any:
    """Log-probabilities of ``ids[:, prompt_len:]`` from one pass over the sequence (the learner)."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=ids).logits[:, prompt_len - 1 : -1].float()
    return torch.log_softmax(logits / TEMPERATURE, dim=-1).gather(-1, ids[:, prompt_len:, None])[
        ..., 0
    ]


@dataclass(frozen=True)
class LlamaRun:
    """One llama.cpp sampling run: cost per step, what it drew, its log-probabilities."""

    name: str
    ms_per_step: float
    drawn: list[list[int]]
    logps: Any  # torch tensor (rows, steps): the sampler's log-prob of each drawn token
    refresh_s: float  # what giving the sampler new weights costs


def _timed_sample(rollouts: Any, prompt: list[int], rows: int, steps: int) -> tuple[float, Any]:
    """Milliseconds per step of ``rows`` samples of ``steps`` tokens (after a warm-up run)."""
    import torch

    from sqlgrpo.generation.decoding import DecodeSettings

    settings = DecodeSettings(
        max_new_tokens=steps, eos_token_ids=frozenset(), temperature=TEMPERATURE
    )
    rollouts.sample([prompt] * rows, settings, torch.Generator().manual_seed(1))
    started = time.perf_counter()
    drawn, logps = rollouts.sample([prompt] * rows, settings, torch.Generator().manual_seed(0))
    return 1000 * (time.perf_counter() - started) / steps, (drawn, torch.tensor(logps))


def llama_runs(
    model: Any, tokenizer: Any, prompt: list[int], rows: int, steps: int, types: list[str]
) -> list[LlamaRun]:
    """Sample with llama.cpp (``sqlgrpo.training.llamacpp_sampler``) from each GGUF type written by the
    converter (refresh: save, convert, open), then from the trainer's in-place f32 mirror
    (refresh: :meth:`LlamaCppSampler.refresh`, median of 3)."""
    from sqlgrpo.models.gguf import convert_to_gguf
    from sqlgrpo.training.llamacpp_sampler import LlamaCppRollouts, LlamaCppSampler

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for gguf_type in types:
            folder = Path(tmp) / gguf_type
            started = time.perf_counter()
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            rollouts = LlamaCppRollouts(convert_to_gguf(folder, gguf_type))
            refresh = time.perf_counter() - started
            try:
                ms, (drawn, logps) = _timed_sample(rollouts, prompt, rows, steps)
            finally:
                rollouts.close()
            name = f"llama.cpp, GGUF {gguf_type} (converter each step)"
            runs.append(LlamaRun(name, ms, drawn, logps, refresh))
    sampler = LlamaCppSampler(model, tokenizer)
    try:
        refreshes = []
        for _ in range(3):
            started = time.perf_counter()
            sampler.refresh(model)
            refreshes.append(time.perf_counter() - started)
        ms, (drawn, logps) = _timed_sample(sampler.rollouts, prompt, rows, steps)
    finally:
        sampler.close()
    name = "llama.cpp, GGUF f32 mirror refreshed in place (`rollout_sampler: llama-cpp`)"
    runs.append(LlamaRun(name, ms, drawn, logps, sorted(refreshes)[1]))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument(
        "--llama-types",
        default="f32,f16,q8_0",
        help="GGUF types to sample with llama.cpp (comma-separated; empty: skip llama.cpp)",
    )
    parser.add_argument(
        "--grpo-tokens",
        type=int,
        default=128,
        help="completion cap of a GRPO step, for the per-step cost column (default 128)",
    )
    parser.add_argument("--note", default="")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import torch

    from sqlgrpo.data import PromptConfig, load_samples
    from sqlgrpo.data import trainer_prompt as prompt_column
    from sqlgrpo.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(args.model, dtype="float32")
    model.eval()
    sample = load_samples("bundled", split="train").samples[0]
    text = prompt_column(sample, PromptConfig(prefill="<reasoning>\n"), tokenizer)
    prompt = tokenizer(text)["input_ids"]
    started = time.perf_counter()
    quantized = int8_copy(model)
    refresh = time.perf_counter() - started
    exact_ms, drawn = step_ms(model, prompt, args.rows, args.steps)
    int8_ms, _ = step_ms(quantized, prompt, args.rows, args.steps)
    ids = torch.tensor([prompt + row for row in drawn])
    learner = full_logps(model, ids, len(prompt))
    exact_sampler = incremental_logps(model, ids, len(prompt))
    int8_sampler = incremental_logps(quantized, ids, len(prompt))
    # (name, ms per step, mismatch, refresh seconds)
    rows = [
        ("exact (fp32, `sqlgrpo.generation.decoding`)", exact_ms, float((exact_sampler - learner).abs().mean()), 0.0),
        ("int8 weight-only (torch dynamic, per-channel)", int8_ms,
         float((int8_sampler - learner).abs().mean()), refresh),
    ]  # fmt: skip
    types = [t for t in args.llama_types.split(",") if t]
    for run in llama_runs(model, tokenizer, prompt, args.rows, args.steps, types):
        ids = torch.tensor([prompt + row for row in run.drawn])
        gap = float((run.logps - full_logps(model, ids, len(prompt))).abs().mean())
        rows.append((run.name, run.ms_per_step, gap, run.refresh_s))
    lines = [
        f"Sampling {args.rows} completions of one {len(prompt)}-token bundled prompt from "
        f"`{args.model}` (temperature {TEMPERATURE}), {args.steps} steps, one process; ms per "
        "step (one new token for every row, the prompt's evaluation included). Mismatch: mean "
        "|sampler log-prob - learner log-prob| per completion token, on the sampler's own draws "
        "(learner: the fp32 model over the whole sequence). Refresh: what a sampler that is not "
        "the trained model costs after each optimizer step (int8: quantize a copy; llama.cpp: "
        "save the weights, convert with llama.cpp's converter, open the GGUF; or the mirror: "
        "overwrite its tensors in place and reopen it). Per GRPO step: "
        f"{args.grpo_tokens} sampling steps + one refresh.",
        "",
        "| sampler | ms / step | speed-up | mismatch (nats / token) | refresh (s) | "
        "sampling per GRPO step (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, ms, gap, refresh_s in rows:
        per_step = ms * args.grpo_tokens / 1000 + refresh_s
        lines.append(
            f"| {name} | {ms:.1f} | {exact_ms / ms:.2f}x | {gap:.1e} | {refresh_s:.1f} | "
            f"{per_step:.1f} |"
        )
    if args.note:
        lines += ["", args.note]
    lines += [
        "",
        f"Command: `python bench/bench_sampler.py --rows {args.rows} --steps {args.steps}`",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(
            "bench_sampler", "GRPO sampling step: exact, int8 and llama.cpp samplers", text
        )


if __name__ == "__main__":
    main()
