"""Generation with llama.cpp (``llama-cpp-python``) from a GGUF file, e.g. one ``sqlgrpo export``
wrote, so an exported model is measured by the same evaluation code as the trained one.

Prompts arrive rendered (chat template + prefill) by the same code as for the HF backend;
llama.cpp tokenizes them with the GGUF's own vocabulary (special tokens parsed, no BOS
added, as the HF path tokenizes with ``add_special_tokens=False``) and stops at the
GGUF's end-of-generation tokens.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlgrpo.generation.config import GenerationConfig

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "pip install llama-cpp-python (builds llama.cpp from source; needs cmake and a C++ compiler)"
)


def llama_cpp_available() -> bool:
    """True when the ``llama_cpp`` package (llama-cpp-python) is importable."""
    return importlib.util.find_spec("llama_cpp") is not None


def cpu_threads() -> int:
    """The CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _gguf_file(path: str | os.PathLike) -> Path:
    file = Path(path).expanduser()
    if file.is_dir():
        found = sorted(file.glob("*.gguf"))
        if len(found) != 1:
            raise ValueError(
                f"{file}: expected exactly one .gguf file in the folder, found {len(found)}; "
                "pass the file itself"
            )
        file = found[0]
    if not file.is_file():
        raise FileNotFoundError(f"{file}: GGUF file not found")
    with file.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ValueError(f"{file}: not a GGUF file (no GGUF magic number)")
    return file


def load_gguf_tokenizer(path: str | os.PathLike) -> Any:
    """The HF tokenizer for a GGUF file: the tokenizer files beside it (an export folder),
    else the vocabulary inside the GGUF (transformers reads it). Pad token set."""
    from transformers import AutoTokenizer

    from sqlgrpo.models import prepare_tokenizer

    file = _gguf_file(path)
    if (file.parent / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(file.parent))
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
    return prepare_tokenizer(tokenizer)


def load_llama(path: str | os.PathLike, *, n_ctx: int = 4096, seed: int = 0) -> Any:
    """Open a GGUF file with llama.cpp on the CPU cores this process may use."""
    if not llama_cpp_available():
        raise RuntimeError(f"backend 'llama-cpp' needs the llama_cpp package: {INSTALL_HINT}")
    from llama_cpp import Llama

    file = _gguf_file(path)
    return Llama(
        model_path=str(file), n_ctx=n_ctx, n_threads=cpu_threads(), seed=seed, verbose=False
    )


class LlamaCppGenerator:
    """One prompt at a time through llama.cpp; yields ``batch_size`` prompts per batch so
    evaluation saves progress as it goes."""

    name = "llama-cpp"

    def __init__(self, model_path: str | os.PathLike, cfg: GenerationConfig) -> None:
        self.cfg = cfg
        self.llm = load_llama(model_path, seed=cfg.seed)
        # free it before interpreter shutdown tears down the bindings it needs
        atexit.register(self.llm.close)

    def tokenize(self, prompt: str) -> list[int]:
        """llama.cpp's token ids for a rendered prompt (special tokens parsed, no BOS added)."""
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def complete(self, prompt: str, seed: int) -> str:
        """One completion of a rendered prompt (greedy when temperature is 0)."""
        tokens = self.tokenize(prompt)
        room = self.llm.n_ctx() - len(tokens)
        if room < 1:
            raise ValueError(f"prompt of {len(tokens)} tokens does not fit the context")
        out = self.llm.create_completion(
            tokens,
            max_tokens=min(self.cfg.max_new_tokens, room),
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            top_k=0,
            min_p=0.0,
            repeat_penalty=1.0,
            seed=seed,
        )
        return out["choices"][0]["text"]

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        """Yield (indices, completions) for ``batch_size`` prompts at a time, in order."""
        k = self.cfg.num_samples
        for start in range(0, len(prompts), self.cfg.batch_size):
            idx = list(range(start, min(start + self.cfg.batch_size, len(prompts))))
            texts = [
                [self.complete(prompts[i], self.cfg.seed + i * k + j) for j in range(k)]
                for i in idx
            ]
            yield idx, texts
