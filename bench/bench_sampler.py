"""Sampling-step cost of the incremental decoder, exact (fp32) against an int8 weight-only copy.

The int8 sampler is torch's dynamic quantization (``quantize_dynamic``, per-channel int8
weights, activations quantized on the fly) of the decoder layers' linear layers, applied
to a copy of the model, as a sampler refreshed after each optimizer step would be. Such a
sampler is not bit-exact with the weights being trained, which makes GRPO off-policy; the
bench measures how far: the mean absolute difference between the sampler's and the
learner's per-token log-probabilities (at the sampling temperature) of the completions the
exact sampler drew, each scored the way it would be used (the sampler one token at a time
with its cache, the learner over the whole sequence).

    python bench/bench_sampler.py --rows 8 --steps 64

Writes its section of BENCHMARKS.md between the bench_sampler markers.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
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

    from sqlgrpo.decoding import DecodeSettings, decode

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

    from sqlgrpo.decoding import cache_argument, output_cache

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--steps", type=int, default=64)
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
    exact_gap = float((exact_sampler - learner).abs().mean())
    int8_gap = float((int8_sampler - learner).abs().mean())
    lines = [
        f"`sqlgrpo.decoding` sampling {args.rows} completions of one {len(prompt)}-token bundled "
        f"prompt from `{args.model}` (fp32 weights, temperature {TEMPERATURE}), {args.steps} "
        "steps; ms per step (one new token for every row). Mismatch: mean |sampler log-prob - "
        "learner log-prob| per completion token.",
        "",
        "| sampler | ms / step | speed-up | mismatch (nats / token) |",
        "|---|---:|---:|---:|",
        f"| exact (fp32) | {exact_ms:.1f} | 1.00x | {exact_gap:.1e} |",
        f"| int8 weight-only (dynamic, per-channel) | {int8_ms:.1f} | "
        f"{exact_ms / int8_ms:.2f}x | {int8_gap:.3f} |",
        "",
        f"Quantizing the copy (the refresh after each optimizer step) took {refresh:.1f} s.",
    ]
    if args.note:
        lines += ["", args.note]
    lines += [
        "",
        f"Command: `python bench/bench_sampler.py --rows {args.rows} --steps {args.steps}`",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("bench_sampler", "GRPO sampling step: exact and int8 samplers", text)


if __name__ == "__main__":
    main()
