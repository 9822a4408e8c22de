"""The one precision decision (sqlgrpo.models.precision) and the bf16 paths that follow it:
training config, GRPO's bf16 sampling copy, evaluation. The suite's autouse fixture makes
``auto`` decide as on a CPU without bf16 units; tests here give the CPU its flags when needed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import sqlgrpo.models.precision as precision
from sqlgrpo.models.precision import (
    bf16_copy,
    cpu_bf16_flags,
    cpu_model_name,
    legacy_flag_precision,
    refresh_copy,
    resolve_precision,
)

REPO = Path(__file__).resolve().parents[1]
CPU_RECIPE = REPO / "recipes" / "smollm2-135m-cpu.yaml"
SAPPHIRE_RAPIDS = (
    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
    "flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
)
MILAN = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx2 fma\n"


def test_cpuinfo_flags_and_model_name() -> None:
    assert cpu_bf16_flags(SAPPHIRE_RAPIDS) == ["amx_bf16", "avx512_bf16"]
    assert cpu_bf16_flags(MILAN) == []
    assert cpu_model_name(SAPPHIRE_RAPIDS) == "Intel(R) Xeon(R) Platinum 8481C"
    assert cpu_model_name("") == "unknown"


def test_auto_follows_the_cpu_units(caplog: pytest.LogCaptureFixture) -> None:
    with_units = resolve_precision("auto", "cpu", cpu_flags=lambda: ["amx_bf16"])
    assert (with_units.name, with_units.bf16, with_units.dtype) == ("bf16", True, torch.bfloat16)
    assert "amx_bf16" in with_units.reason
    without = resolve_precision("auto", "cpu", cpu_flags=lambda: [])
    assert (without.name, without.dtype) == ("fp32", torch.float32)
    assert "no AMX-BF16 or AVX512-BF16" in without.reason and "fp32" in without.reason
    assert without.describe().startswith("precision fp32 (auto, cpu): ")
    assert without.to_dict() == {
        "requested": "auto",
        "name": "fp32",
        "device": "cpu",
        "reason": without.reason,
    }
    with caplog.at_level(logging.WARNING, logger="sqlgrpo.models.precision"):
        forced = resolve_precision("bf16", "cpu", cpu_flags=lambda: [])
    assert forced.name == "bf16" and "emulated" in caplog.text
    assert resolve_precision("fp32", "cpu", cpu_flags=lambda: ["amx_bf16"]).name == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", "cpu")


def test_auto_reads_the_machine_when_not_mocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The capability check the decision uses by default is the module's own (mocked in the
    suite): patched to report units, auto picks bf16 with no other change."""
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda cpuinfo=None: ["avx512_bf16"])
    assert resolve_precision("auto", "cpu").name == "bf16"


def test_the_legacy_bf16_flag_must_agree() -> None:
    assert legacy_flag_precision("auto", None) == "auto"
    assert legacy_flag_precision("auto", True) == "bf16"
    assert legacy_flag_precision("auto", False) == "fp32"
    assert legacy_flag_precision("bf16", True) == "bf16"
    with pytest.raises(ValueError, match="precision: fp32 but bf16: true"):
        legacy_flag_precision("fp32", True)


def test_cpu_recipe_uses_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlgrpo.training.config import parse_run_config

    cfg = parse_run_config(["--config", str(CPU_RECIPE)])
    assert (cfg.training.precision, cfg.training.bf16) == ("fp32", False)
    assert cfg.recipe_dict()["precision"] == "fp32"
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda cpuinfo=None: ["amx_bf16"])
    cfg = parse_run_config(["--config", str(CPU_RECIPE)])
    assert (cfg.training.precision, cfg.training.bf16, cfg.training.use_cpu) == ("bf16", True, True)
    assert cfg.training.precision_choice.requested == "auto"
    assert cfg.recipe_dict()["precision"] == "bf16"
    # the saved recipe reproduces the decision on reload
    again = parse_run_config(["--config", str(CPU_RECIPE), "--precision", "bf16"])
    assert again.training.bf16


def test_bf16_copy_tracks_the_policy(tiny) -> None:
    from sqlgrpo.generation.decoding import DecodeSettings, decode_repeated

    model, tokenizer = tiny
    twin = bf16_copy(model)
    assert next(twin.parameters()).dtype == torch.bfloat16
    assert not any(p.requires_grad for p in twin.parameters())
    assert next(model.parameters()).dtype == torch.float32  # the original is untouched
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    stale = next(twin.parameters()).float().clone()
    refresh_copy(twin, model)
    fresh = next(twin.parameters()).float()
    expected = next(model.parameters()).to(torch.bfloat16).float()
    assert torch.equal(fresh, expected) and not torch.equal(fresh, stale)

    rows = [tokenizer("How many rows are there?")["input_ids"]] * 4
    settings = DecodeSettings(
        max_new_tokens=6, eos_token_ids=frozenset({tokenizer.eos_token_id}), temperature=1.0
    )
    generator = torch.Generator().manual_seed(0)
    tokens, logps = decode_repeated(twin, rows, settings, generator=generator, return_logps=True)
    assert [len(t) for t in tokens] == [len(lp) for lp in logps]
    assert all(v <= 0.0 for row in logps for v in row)
    # the sampler's log-probabilities are the bf16 copy's; the fp32 learner's are close
    ids = torch.tensor([rows[0] + tokens[0]])
    with torch.no_grad():
        learner = torch.log_softmax(model(ids).logits[0, len(rows[0]) - 1 : -1].float(), -1)
    learner_lp = learner.gather(-1, torch.tensor(tokens[0])[:, None])[:, 0]
    gap = (learner_lp - torch.tensor(logps[0])).abs().mean().item()
    assert 0 < gap < 0.1


def test_greedy_logps_leave_fp32_decoding_exact(tiny) -> None:
    """return_logps only adds the log-probabilities: the tokens are those decoded without it."""
    from sqlgrpo.generation.decoding import DecodeSettings, decode_repeated

    model, tokenizer = tiny
    rows = [tokenizer("List the farms.")["input_ids"]] * 3
    settings = DecodeSettings(max_new_tokens=8, eos_token_ids=frozenset())
    plain = decode_repeated(model, rows, settings)
    tokens, logps = decode_repeated(model, rows, settings, return_logps=True)
    assert tokens == plain and [len(r) for r in logps] == [8, 8, 8]


def test_grpo_samples_from_a_bf16_copy_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two GRPO steps at precision bf16: torch samples from a bf16 copy with the sampler's
    log-probabilities returned; fp32 master weights are saved; config.yaml says what ran."""
    import yaml
    from transformers import AutoModelForCausalLM

    import sqlgrpo.generation.decoding as decoding
    from eval_tiny_model import tiny_model_dir
    from sqlgrpo.cli import main

    model_dir = tiny_model_dir(tmp_path / "model")
    seen: list[tuple[torch.dtype, bool]] = []
    real = decoding.decode_repeated

    def spy(model, rows, settings, **kwargs):
        seen.append((next(model.parameters()).dtype, kwargs.get("return_logps", False)))
        return real(model, rows, settings, **kwargs)

    monkeypatch.setattr(decoding, "decode_repeated", spy)
    run = tmp_path / "run"
    argv = ["train", "--config", str(REPO / "tests" / "fixtures" / "train_tiny_recipe.yaml")]
    argv += ["--model_name_or_path", str(model_dir), "--output_dir", str(run)]
    argv += ["--dataset_source", str(REPO / "tests" / "fixtures" / "train_tiny_gretel.jsonl")]
    # every loss pass runs (the tiny model's groups often have equal rewards), so the
    # importance weights of the bf16 sampler are applied and logged each step
    assert main([*argv, "--precision", "bf16", "--skip_zero_variance_backward", "false"]) == 0
    assert seen == [(torch.bfloat16, True), (torch.bfloat16, True)]
    config_text = (run / "config.yaml").read_text()
    assert "# precision bf16 (bf16, cpu): bf16 was asked for" in config_text
    saved = yaml.safe_load(config_text)
    assert saved["precision"] == "bf16" and saved["bf16"] is True
    trained = AutoModelForCausalLM.from_pretrained(str(run / "model"))
    assert next(trained.parameters()).dtype == torch.float32
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "reward" in r] == [1, 2]
    for step in (r for r in steps if "sampling_seconds" in r):
        # the second step samples from the copy refreshed after the first optimizer step
        assert 0 < step["sampling/sampling_logp_difference/mean"] < 0.1
        assert step["sampling/importance_sampling_ratio/mean"] == pytest.approx(1.0, abs=0.1)


def test_evaluation_records_its_precision(tmp_path: Path) -> None:
    from eval_tiny_model import tiny_model_dir
    from sqlgrpo.evaluation import EvalConfig, evaluate
    from sqlgrpo.generation import GenerationConfig

    model_dir = tiny_model_dir(tmp_path / "model")
    metrics = {}
    for name in ("fp32", "bf16"):
        cfg = EvalConfig(
            model=str(model_dir),
            data="bundled",
            split="test",
            limit=2,
            out_dir=str(tmp_path / name),
            generation=GenerationConfig(max_new_tokens=4, precision=name, show_progress=False),
        )
        evaluate(cfg)
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert metrics["fp32"]["precision"]["name"] == "fp32"
    assert metrics["bf16"]["precision"] == {
        "requested": "bf16",
        "name": "bf16",
        "device": "cpu",
        "reason": "bf16 was asked for (this CPU has no AMX-BF16 or AVX512-BF16)",
    }
    auto = resolve_precision("auto", "cpu")
    assert auto.name == "fp32"  # the suite's CPU: no units, so auto evaluates in fp32
