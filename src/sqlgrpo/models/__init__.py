"""Models by name: aliases (the embedded GGUF packages, hub ids), local and run folders resolved
to something ``from_pretrained`` loads, the one loader for inference, GGUF both ways, the prompt
settings a model was trained with, and export to the tools that serve models."""

from sqlgrpo.models.aliases import (
    MODEL_ALIASES,
    GGUFPackageModel,
    HubModel,
    ModelNotFoundError,
    default_cache_dir,
)
from sqlgrpo.models.gguf import cached_gguf_conversion
from sqlgrpo.models.loading import (
    adapter_base_model,
    eos_token_ids,
    is_adapter_dir,
    load_model_and_tokenizer,
    load_tokenizer,
    prepare_tokenizer,
    resolve_model_path,
)

__all__ = [
    "MODEL_ALIASES",
    "GGUFPackageModel",
    "HubModel",
    "ModelNotFoundError",
    "adapter_base_model",
    "cached_gguf_conversion",
    "default_cache_dir",
    "eos_token_ids",
    "is_adapter_dir",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "prepare_tokenizer",
    "resolve_model_path",
]
