"""Load the policy to train: transformers (+ PEFT / quantization through TRL's helpers) or
Unsloth on a GPU, from the training configuration."""

from __future__ import annotations

from typing import Any

from sqlgrpo.models.loading import prepare_tokenizer, torch_dtype, with_pad_token
from sqlgrpo.training.config import ConfigError, GRPOTrainConfig, ModelArguments


def load_policy(
    model_args: ModelArguments, training: GRPOTrainConfig, path: str
) -> tuple[Any, Any, Any]:
    """Load the model to train: (model, tokenizer, peft_config or None).

    ``path`` is already resolved (:func:`resolve_model_path`); the tokenizer pads on the left.
    """
    if model_args.use_unsloth:
        return _load_unsloth(model_args, training, path)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import get_peft_config, get_quantization_config

    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    kwargs: dict[str, Any] = {
        "revision": model_args.model_revision,
        "dtype": torch_dtype(model_args.dtype or "auto"),
    }
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        from accelerate import PartialState

        kwargs["device_map"] = {"": PartialState().local_process_index}  # one GPU per process
    model = with_pad_token(AutoModelForCausalLM.from_pretrained(path, **kwargs), tokenizer)
    return model, tokenizer, get_peft_config(model_args)


def _load_unsloth(
    model_args: ModelArguments, training: GRPOTrainConfig, path: str
) -> tuple[Any, Any, Any]:
    try:
        from unsloth import FastLanguageModel
    except ImportError as exc:
        raise ConfigError(
            "use_unsloth needs Unsloth on a CUDA GPU: pip install 'sqlgrpo[gpu]' "
            f"(import failed: {exc})"
        ) from exc
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=path,
        max_seq_length=model_args.unsloth_max_seq_length,
        load_in_4bit=model_args.load_in_4bit,
        fast_inference=training.use_vllm,
        max_lora_rank=model_args.lora_r,
        gpu_memory_utilization=training.vllm_gpu_memory_utilization,
    )
    targets = model_args.lora_target_modules or [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    ]  # fmt: skip
    model = FastLanguageModel.get_peft_model(
        model,
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=[targets] if isinstance(targets, str) else list(targets),
        use_gradient_checkpointing="unsloth" if training.gradient_checkpointing else False,
        random_state=training.seed,
    )
    return model, prepare_tokenizer(tokenizer), None
