"""Turning rendered prompts into completions: the sampling settings, the one place that picks
the backend and the decoder, sqlgrpo's incremental decoder and its cache, llama.cpp for GGUF
files, and execution-based voting over several samples."""

from sqlgrpo.generation.backends import (
    HFGenerator,
    VLLMGenerator,
    choose_decoder,
    generate,
    make_generator,
    vllm_available,
)
from sqlgrpo.generation.config import BACKENDS, Backend, GenerationConfig, Generator
from sqlgrpo.generation.decoding import DECODERS, Decoder

__all__ = [
    "BACKENDS",
    "DECODERS",
    "Backend",
    "Decoder",
    "GenerationConfig",
    "Generator",
    "HFGenerator",
    "VLLMGenerator",
    "choose_decoder",
    "generate",
    "make_generator",
    "vllm_available",
]
