"""Incremental batched decoding: shared prompt prefix, chunked prefill, shrinking batch.

``model.generate`` prefills every prompt whole and keeps every row of a batch
decoding until the longest one ends. On a CPU both cost real time: the system
prompt (about 40% of a text-to-SQL prompt) is recomputed for every row, and one
rambling row keeps 63 finished ones in every step. Here the token prefix shared
by all rows runs once, the rest of the prompts are prefilled a few rows at a time
(large prefill matrices run slower per token on a CPU), and a row leaves the batch
as soon as it emits an end token, so each step costs what the rows still decoding
cost. The cache gets room for the new tokens up front (:mod:`sqlgrpo.generation.kv_cache`: no
per-step concatenation of the whole cache), and sampling draws one uniform number per row
through the distribution's CDF. Positions and the attention mask are exactly those of left-padded
``generate``; greedy outputs match it (tested).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

#: The HF decoders: sqlgrpo's incremental one, or transformers' ``model.generate``.
Decoder = Literal["incremental", "generate"]
DECODERS: tuple[str, ...] = get_args(Decoder)

# generation_config fields that add logits processors this loop does not apply, with the
# value that means "off"; a model that sets one is decoded with ``generate`` instead
_UNSUPPORTED_SETTINGS: dict[str, Any] = {
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "sequence_bias": None,
    "min_length": 0,
    "min_new_tokens": None,
    "exponential_decay_length_penalty": None,
}


@dataclass(frozen=True)
class DecodeSettings:
    """How :func:`decode` samples and when a row stops."""

    max_new_tokens: int
    eos_token_ids: frozenset[int]
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float | None = None
    prefill_rows: int = 16

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.prefill_rows < 1:
            raise ValueError(f"prefill_rows must be >= 1, got {self.prefill_rows}")


def unsupported_reason(model: Any) -> str | None:
    """Why :func:`decode` cannot stand in for ``model.generate`` on this model, or None."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder model"
    gen_config = getattr(model, "generation_config", None)
    for name, off in _UNSUPPORTED_SETTINGS.items():
        value = getattr(gen_config, name, off)
        if value not in (off, None):
            return f"its generation_config sets {name}={value!r}"
    return None


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own."""
    if len(rows) < 2:
        return 0
    shortest = min(len(r) for r in rows)
    first = rows[0]
    n = 0
    while n < shortest - 1 and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def decode(
    model: Any,
    rows: Sequence[Sequence[int]],
    settings: DecodeSettings,
    *,
    samples_per_row: int = 1,
    generator: Any = None,
    return_logps: bool = False,
) -> Any:
    """New token ids for every row (``samples_per_row`` consecutive entries per row).

    Each list ends with the end token when one was emitted within ``max_new_tokens``.
    ``generator`` is the ``torch.Generator`` used for sampling (ignored when greedy).
    With ``return_logps``, returns ``(token ids, log-probabilities)``: each token's
    log-probability under the model's distribution at the sampling temperature
    (:func:`token_logps`), what a learner's importance weights compare against.
    """
    import torch

    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("every row needs at least one prompt token")
    cache_arg = cache_argument(model)
    with torch.inference_mode():
        cache, logits, mask, positions = _prefill(model, rows, settings, cache_arg)
        if samples_per_row > 1:
            cache.batch_repeat_interleave(samples_per_row)
            logits = logits.repeat_interleave(samples_per_row, dim=0)
            mask = mask.repeat_interleave(samples_per_row, dim=0)
            positions = positions.repeat_interleave(samples_per_row, dim=0)
        tokens, logps = _decode_loop(
            model, cache, logits, mask, positions, settings, generator, cache_arg, return_logps
        )
    return (tokens, logps) if return_logps else tokens


def prompt_runs(rows: Sequence[Sequence[int]]) -> list[tuple[Sequence[int], list[int]]]:
    """The batch as runs of equal consecutive prompts (GRPO groups): (prompt, its row indices)."""
    runs: list[tuple[Sequence[int], list[int]]] = []
    for index, row in enumerate(rows):
        if runs and list(runs[-1][0]) == list(row):
            runs[-1][1].append(index)
        else:
            runs.append((row, [index]))
    return runs


def decode_repeated(
    model: Any,
    rows: Sequence[Sequence[int]],
    settings: DecodeSettings,
    *,
    generator: Any = None,
    return_logps: bool = False,
) -> Any:
    """:func:`decode` for a batch where each prompt repeats k times in a row (GRPO groups).

    Each distinct prompt is prefilled once and its cache copied to its k samples; a batch
    that is not made of equal runs is decoded row by row as given.
    """
    runs = prompt_runs(rows)
    counts = {len(indices) for _, indices in runs}
    if len(counts) == 1 and (k := counts.pop()) > 1:
        return decode(
            model,
            [r for r, _ in runs],
            settings,
            samples_per_row=k,
            generator=generator,
            return_logps=return_logps,
        )
    return decode(model, rows, settings, generator=generator, return_logps=return_logps)


def cache_argument(model: Any) -> str:
    """``cache`` (transformers >= 5.24) or ``past_key_values``.

    Read from the model class, so PEFT / DDP wrappers and instance-patched forwards are
    looked through.
    """
    base = model
    while hasattr(base, "module"):  # DDP / accelerate wrappers
        base = base.module
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    params = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(out: Any) -> Any:
    """The key/value cache of a model output (``cache`` or ``past_key_values``)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _prefill(
    model: Any, rows: Sequence[Sequence[int]], settings: DecodeSettings, cache_arg: str
) -> tuple[Any, Any, Any, Any]:
    """Run the prompts; return the cache, last logits, attention mask and last positions."""
    import torch

    device = model.device
    shared = common_prefix_length(rows)
    prefix_cache = None
    if shared:
        out = model(
            input_ids=torch.tensor([list(rows[0][:shared])], device=device),
            use_cache=True,
            logits_to_keep=1,
        )
        prefix_cache = output_cache(out)
    suffixes = [list(r[shared:]) for r in rows]
    width = max(len(s) for s in suffixes)
    n = len(rows)
    pad = 0
    ids = torch.full((n, width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((n, shared + width), dtype=torch.long, device=device)
    mask[:, :shared] = 1
    positions = torch.zeros((n, width), dtype=torch.long, device=device)
    for i, suffix in enumerate(suffixes):
        start = width - len(suffix)
        ids[i, start:] = torch.tensor(suffix, device=device)
        mask[i, shared + start :] = 1
        positions[i, start:] = torch.arange(shared, shared + len(suffix), device=device)

    def run(part: slice) -> tuple[Any, Any]:
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(part.stop - part.start)
        out = model(
            input_ids=ids[part],
            attention_mask=mask[part],
            position_ids=positions[part],
            use_cache=True,
            logits_to_keep=1,
            **{cache_arg: cache},
        )
        return output_cache(out), out.logits[:, -1, :].float()

    chunk = settings.prefill_rows if _concatenable(prefix_cache) else n
    parts = [slice(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    results = [run(parts[0])]
    if len(parts) > 1 and not _concatenable(results[0][0]):
        results = [run(slice(0, n))]  # rows of this cache type cannot be stacked: one chunk
    else:
        results += [run(part) for part in parts[1:]]
    cache = _concat_caches([c for c, _ in results])
    return cache, torch.cat([lg for _, lg in results]), mask, positions[:, -1]


def _concatenable(cache: Any) -> bool:
    """True when every cache layer is a plain key/value layer (rows can be stacked)."""
    if cache is None:
        return True
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _concat_caches(caches: list[Any]) -> Any:
    import torch

    first = caches[0]
    if len(caches) == 1:
        return first
    for i, layer in enumerate(first.layers):
        layer.keys = torch.cat([c.layers[i].keys for c in caches])
        layer.values = torch.cat([c.layers[i].values for c in caches])
    return first


def logits_warpers(settings: DecodeSettings) -> list[Any]:
    """transformers' top-k, top-p and min-p warpers for ``settings``, in the order it applies them."""
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers: list[Any] = []
    if settings.top_k:
        warpers.append(TopKLogitsWarper(settings.top_k))
    if settings.top_p < 1.0:
        warpers.append(TopPLogitsWarper(settings.top_p))
    if settings.min_p:
        warpers.append(MinPLogitsWarper(settings.min_p))
    return warpers


def pick_tokens(logits: Any, settings: DecodeSettings, generator: Any, warpers: list[Any]) -> Any:
    """Next token per row: argmax when greedy, else temperature, top-k, top-p and min-p sampling.

    Sampling inverts the cumulative distribution at one uniform draw per row: the same
    distribution as ``torch.multinomial``, whose exponential draw over the whole
    vocabulary costs several milliseconds a step on a CPU.
    """
    import torch

    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    scores = logits / settings.temperature
    for warper in warpers:
        scores = warper(None, scores)
    cdf = torch.softmax(scores, dim=-1).cumsum_(dim=-1)
    draw = torch.rand((cdf.shape[0], 1), generator=generator, device=cdf.device)
    # a draw of exactly 0 must not pick a leading zero-probability token
    target = (draw * cdf[:, -1:]).clamp_(min=torch.finfo(cdf.dtype).tiny)
    return torch.searchsorted(cdf, target).squeeze(1).clamp_(max=cdf.shape[1] - 1)


def token_logps(logits: Any, tokens: Any, settings: DecodeSettings) -> Any:
    """Log-probability of each row's chosen token under ``logits`` at the sampling temperature
    (1 when greedy), in fp32: the sampler's side of a learner / sampler comparison."""
    import torch

    scores = logits.float() / (settings.temperature or 1.0)
    return torch.log_softmax(scores, dim=-1).gather(-1, tokens[:, None])[:, 0]


def _decode_loop(
    model: Any,
    cache: Any,
    logits: Any,
    mask: Any,
    positions: Any,
    settings: DecodeSettings,
    generator: Any,
    cache_arg: str,
    with_logps: bool = False,
) -> tuple[list[list[int]], list[list[float]] | None]:
    import torch

    from sqlgrpo.generation.kv_cache import reserve_room

    total = logits.shape[0]
    outputs: list[list[int]] = [[] for _ in range(total)]
    logps: list[list[float]] | None = [[] for _ in range(total)] if with_logps else None
    active = torch.arange(total, device=logits.device)
    eos = torch.tensor(sorted(settings.eos_token_ids), dtype=torch.long, device=logits.device)
    warpers = logits_warpers(settings) if settings.temperature else []
    reserve_room(cache, settings.max_new_tokens)
    # the mask of every step, written once: each step passes the prefix it covers
    width = mask.shape[1]
    mask = torch.cat([mask, mask.new_ones((total, settings.max_new_tokens))], dim=1)
    for step in range(settings.max_new_tokens):
        tokens = pick_tokens(logits, settings, generator, warpers)
        for row, token in zip(active.tolist(), tokens.tolist(), strict=True):
            outputs[row].append(token)
        if logps is not None:
            for row, value in zip(
                active.tolist(), token_logps(logits, tokens, settings).tolist(), strict=True
            ):
                logps[row].append(value)
        if step == settings.max_new_tokens - 1:
            break
        finished = torch.isin(tokens, eos)
        if bool(finished.all()):
            break
        if bool(finished.any()):
            keep = (~finished).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            mask, positions, tokens, active = (
                mask[keep],
                positions[keep],
                tokens[keep],
                active[keep],
            )
        width += 1
        positions = positions + 1
        out = model(
            input_ids=tokens[:, None],
            attention_mask=mask[:, :width],
            position_ids=positions[:, None],
            use_cache=True,
            **{cache_arg: cache},
        )
        cache = output_cache(out)
        logits = out.logits[:, -1, :].float()
    return outputs, logps
