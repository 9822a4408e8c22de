"""How completions are sampled (:class:`GenerationConfig`), the backends that can sample them,
and the :class:`Generator` protocol every backend implements. The lowest module of
:mod:`sqlgrpo.generation`: the backends and the llama.cpp generator import it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

from sqlgrpo.generation.decoding import DECODERS
from sqlgrpo.models.precision import PRECISIONS

Backend = Literal["auto", "hf", "vllm", "llama-cpp"]
BACKENDS: tuple[str, ...] = get_args(Backend)


@dataclass
class GenerationConfig:
    """How completions are sampled."""

    max_new_tokens: int = field(default=512, metadata={"help": "tokens generated per completion"})
    batch_size: int = field(default=8, metadata={"help": "prompts per generate() call (HF)"})
    temperature: float = field(default=0.0, metadata={"help": "0 means greedy decoding"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    num_samples: int = field(default=1, metadata={"help": "completions per prompt"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    backend: str = field(default="auto", metadata={"help": "auto | hf | vllm | llama-cpp"})
    decoder: str = field(
        default="incremental",
        metadata={
            "help": "HF backend: incremental (shared prompt prefix run once, finished rows "
            "leave the batch; sqlgrpo.generation.decoding) | generate (transformers' model.generate)"
        },
    )
    show_progress: bool = field(default=True, metadata={"help": "tqdm progress bar"})
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto | fp32 | bf16 weights for transformers / vLLM decoding (auto: bf16 where "
            "the device has bf16 matrix units; sqlgrpo.models.precision)"
        },
    )

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.num_samples > 1 and self.temperature == 0:
            raise ValueError("num_samples > 1 needs temperature > 0 (greedy gives n copies)")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic."""
        return self.temperature == 0


class Generator(Protocol):
    """Anything that turns rendered prompts into completions, batch by batch."""

    name: str

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        """Yield (prompt indices, their completions) as batches finish."""
        ...
