"""Batched text generation for evaluation: transformers (incremental decoder or ``generate``),
vLLM, or llama.cpp for a GGUF file (:mod:`sqlgrpo.generation.llamacpp`).

Prompts are fully rendered strings (chat template + prefill). The HF path decodes
with :mod:`sqlgrpo.generation.decoding` (shared prompt prefix run once, finished rows leave
the batch) or with ``model.generate`` (left padding); prompts are batched in
length order to waste little padding, and outputs come back in input order.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from sqlgrpo.generation.config import GenerationConfig, Generator

logger = logging.getLogger(__name__)


def choose_decoder(
    model: Any, requested: str, blockers: Sequence[tuple[bool, str]] = ()
) -> tuple[str, str | None]:
    """The decoder that runs for ``model``: ``incremental`` when requested and neither a
    caller's ``(blocked, why)`` condition nor the model itself
    (:func:`sqlgrpo.generation.decoding.unsupported_reason`) rules it out, else ``generate``.

    Returns (decoder, why the incremental one does not run, or None). Evaluation,
    prescreening and GRPO sampling all decide here.
    """
    from sqlgrpo.generation.decoding import unsupported_reason

    if requested != "incremental":
        return "generate", f"decoder {requested!r} was asked for"
    why = next((why for blocked, why in blockers if blocked), None) or unsupported_reason(model)
    return ("generate", why) if why else ("incremental", None)


def vllm_available() -> bool:
    """True when vLLM is installed and a CUDA device is visible."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


class HFGenerator:
    """Batched generation with a transformers model: the incremental decoder or ``generate``."""

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, cfg: GenerationConfig) -> None:
        from sqlgrpo.models import prepare_tokenizer

        self.model = model
        self.tokenizer = prepare_tokenizer(tokenizer)
        self.cfg = cfg
        self.decoder, reason = choose_decoder(model, cfg.decoder)
        if reason and cfg.decoder == "incremental":
            logger.info("incremental decoding does not apply (%s); using generate()", reason)
        self._rng: Any = None

    def _generate(self, batch: list[str], rows: list[list[int]]) -> list[list[str]]:
        """Completions for the prompt texts ``batch``, whose token ids are ``rows``."""
        if self.decoder == "incremental":
            return self._decode_incremental(rows)
        return self._generate_hf(batch)

    def _decode_incremental(self, rows: list[list[int]]) -> list[list[str]]:
        from sqlgrpo.generation.decoding import DecodeSettings, decode
        from sqlgrpo.models import eos_token_ids

        settings = DecodeSettings(
            max_new_tokens=self.cfg.max_new_tokens,
            eos_token_ids=eos_token_ids(self.model, self.tokenizer),
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
        )
        k = self.cfg.num_samples
        tokens = decode(self.model, rows, settings, samples_per_row=k, generator=self._rng)
        texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [texts[i * k : (i + 1) * k] for i in range(len(rows))]

    def _generate_hf(self, batch: list[str]) -> list[list[str]]:
        import torch

        enc = self.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.model.device
        )
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.cfg.max_new_tokens,
            "num_return_sequences": self.cfg.num_samples,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if self.cfg.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=self.cfg.temperature, top_p=self.cfg.top_p)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        k = self.cfg.num_samples
        return [texts[i * k : (i + 1) * k] for i in range(len(batch))]

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        """Yield (indices, completions) per batch, longest prompts first."""
        import torch

        if not self.cfg.greedy:
            torch.manual_seed(self.cfg.seed)
            self._rng = torch.Generator(device=self.model.device).manual_seed(self.cfg.seed)
        ids = self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        order = sorted(range(len(prompts)), key=lambda i: -len(ids[i]))
        self.model.eval()
        for start in range(0, len(order), self.cfg.batch_size):
            idx = order[start : start + self.cfg.batch_size]
            yield idx, self._generate([prompts[i] for i in idx], [ids[i] for i in idx])


class VLLMGenerator:
    """vLLM offline generation (GPU); the whole list is one call, yielded as one batch."""

    name = "vllm"

    def __init__(self, model_path: str, cfg: GenerationConfig) -> None:
        from vllm import LLM

        from sqlgrpo.models.precision import resolve_precision

        self.cfg = cfg
        precision = resolve_precision(cfg.precision, "cuda")
        logger.info("%s", precision.describe())
        # auto without bf16: vLLM's own choice (fp16 on older GPUs); fp32 only when asked for
        dtype = (
            "bfloat16" if precision.bf16 else "float32" if precision.requested == "fp32" else "auto"
        )
        self.llm = LLM(model=model_path, seed=cfg.seed, dtype=dtype)

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        """Yield (indices, completions) in chunks so callers can save progress."""
        from vllm import SamplingParams

        params = SamplingParams(
            n=self.cfg.num_samples,
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p if not self.cfg.greedy else 1.0,
            max_tokens=self.cfg.max_new_tokens,
            seed=self.cfg.seed,
        )
        chunk = max(self.cfg.batch_size, 256)
        for start in range(0, len(prompts), chunk):
            idx = list(range(start, min(start + chunk, len(prompts))))
            results = self.llm.generate([prompts[i] for i in idx], params, use_tqdm=False)
            yield idx, [[o.text for o in r.outputs] for r in results]


def make_generator(
    cfg: GenerationConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    model_path: str | None = None,
) -> Generator:
    """Pick the backend: vLLM when asked (or ``auto`` on a GPU with vLLM), else HF."""
    if cfg.backend == "llama-cpp":
        from sqlgrpo.generation.llamacpp import LlamaCppGenerator

        if model_path is None:
            raise ValueError("backend 'llama-cpp' needs the path of a GGUF file")
        return LlamaCppGenerator(model_path, cfg)
    use_vllm = cfg.backend == "vllm" or (
        cfg.backend == "auto" and model_path is not None and model is None and vllm_available()
    )
    if use_vllm:
        if not vllm_available():
            raise RuntimeError("backend 'vllm' needs the vllm package and a CUDA GPU")
        if model_path is None:
            raise ValueError("backend 'vllm' needs a model path, not a loaded model")
        return VLLMGenerator(model_path, cfg)
    if model is None or tokenizer is None:
        raise ValueError("the HF backend needs a loaded model and tokenizer")
    return HFGenerator(model, tokenizer, cfg)


def sampling_variant(
    generator: Generator, *, temperature: float, num_samples: int, seed: int
) -> Generator:
    """The same backend on the same loaded model, drawing ``num_samples`` completions per
    prompt at ``temperature`` with ``seed`` (every backend reads its settings at each call).
    A batch holds ``batch_size // num_samples`` prompts, so it decodes as many sequences as
    one of ``generator``'s batches: memory stays what the user sized it to."""
    cfg: GenerationConfig = generator.cfg  # type: ignore[attr-defined]
    variant = copy.copy(generator)
    variant.cfg = dataclasses.replace(  # type: ignore[attr-defined]
        cfg,
        temperature=temperature,
        num_samples=num_samples,
        seed=seed,
        batch_size=max(1, cfg.batch_size // num_samples),
    )
    return variant


def generate(
    generator: Generator, prompts: Sequence[str], *, show_progress: bool = False
) -> list[list[str]]:
    """All completions, in prompt order (``num_samples`` per prompt)."""
    from tqdm.auto import tqdm

    out: list[list[str]] = [[] for _ in prompts]
    with tqdm(total=len(prompts), desc="generate", disable=not show_progress) as bar:
        for idx, texts in generator.generate_batches(prompts):
            for i, t in zip(idx, texts, strict=True):
                out[i] = t
            bar.update(len(idx))
    return out
