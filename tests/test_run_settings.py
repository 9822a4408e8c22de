"""A model is prompted the way it was trained: prompt settings read back from its run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlgrpo.cli import main
from sqlgrpo.data import DEFAULT_SYSTEM_PROMPT
from sqlgrpo.models.run_settings import (
    EXPORT_SETTINGS_FILE,
    PromptSettings,
    read_settings_file,
    resolve_prompt,
    settings_file,
    write_export_settings,
)

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "tests" / "fixtures" / "train_tiny_recipe.yaml"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from eval_tiny_model import tiny_model_dir as build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def _run_folder(root: Path, **fields: object) -> Path:
    import yaml

    run = root / "run"
    for sub in ("model", "adapter", "warmup/model", "checkpoint-4"):
        (run / sub).mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(fields))
    return run


def test_every_model_folder_of_a_run_finds_the_run_config(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, prefill="<reasoning>\n", sample_rows=2)
    for folder in (
        run,
        run / "model",
        run / "adapter",
        run / "warmup" / "model",
        run / "checkpoint-4",
    ):
        assert settings_file(folder) == run / "config.yaml", folder
    assert settings_file(tmp_path) is None  # a folder that is no run
    assert settings_file("smollm2-135m") is None  # an alias


def test_run_settings_and_overrides(tmp_path: Path) -> None:
    run = _run_folder(
        tmp_path,
        system_prompt="Answer in SQL.",
        one_shot=True,
        prefill="<reasoning>\n",
        sample_rows=3,
        max_prompt_tokens=900,
        max_completion_length=96,
        learning_rate=1e-5,
    )
    resolved = resolve_prompt(run / "model")
    assert resolved.settings == PromptSettings("Answer in SQL.", True, "<reasoning>\n", 3, 900, 96)
    assert resolved.source == str(run / "config.yaml") and resolved.overridden == ()

    given = resolve_prompt(run, PromptSettings(prefill="", sample_rows=0, max_new_tokens=10))
    assert given.settings == PromptSettings("Answer in SQL.", True, "", 0, 900, 10)
    assert given.overridden == ("prefill", "sample_rows", "max_new_tokens")
    record = given.record()
    assert record["source"] == str(run / "config.yaml") and record["sample_rows"] == 0

    cfg = resolved.settings.prompt_config()
    assert cfg.full_system_prompt().startswith("Answer in SQL.\n\nExample:")


def test_no_run_settings_gives_the_defaults(tmp_path: Path) -> None:
    resolved = resolve_prompt(tmp_path)
    assert resolved.source is None
    cfg = resolved.settings.prompt_config()
    assert (cfg.system_prompt, cfg.one_shot, cfg.prefill, cfg.sample_rows) == (
        DEFAULT_SYSTEM_PROMPT,
        False,
        "",
        0,
    )


def test_export_settings_round_trip_and_gguf_lookup(tmp_path: Path) -> None:
    settings = PromptSettings(None, True, "<reasoning>\n", 1, 384, 128)
    path = write_export_settings(settings, tmp_path, run="runs/x")
    record = json.loads(path.read_text())
    assert record["system_prompt"] == DEFAULT_SYSTEM_PROMPT  # written out in full
    assert record["full_system_prompt"].endswith("</sql>")  # one-shot example included
    back = read_settings_file(path)
    assert back == PromptSettings(DEFAULT_SYSTEM_PROMPT, True, "<reasoning>\n", 1, 384, 128)
    gguf = tmp_path / "model-q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    assert settings_file(gguf) == tmp_path / EXPORT_SETTINGS_FILE


def test_bad_setting_names_the_file(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, one_shot="maybe")
    with pytest.raises(ValueError, match=r"config\.yaml.*one_shot"):
        resolve_prompt(run)


def test_eval_of_a_run_gets_exactly_the_training_prompts(
    tmp_path: Path, tiny_model_dir: Path, spider_subset_path: Path
) -> None:
    """Train with sample_rows: 3 on the Spider subset; `sqlgrpo eval --model RUN_DIR` without
    prompt flags renders the very prompt strings the trainer was given."""
    run = tmp_path / "run"
    code = main(
        [
            "train", "--config", str(RECIPE),
            "--model_name_or_path", str(tiny_model_dir),
            "--dataset_source", str(spider_subset_path), "--dataset_split", "train",
            "--dataset_limit", "4", "--eval_holdout", "0", "--sample_rows", "3",
            "--max_prompt_tokens", "1900", "--max_steps", "1", "--save_steps", "5",
            "--max_completion_length", "6", "--output_dir", str(run),
        ]
    )  # fmt: skip
    assert code == 0
    trained = [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]
    trained_prompts = {r["prompt"] for r in trained}
    assert all("example rows from" in p for p in trained_prompts)  # sample_rows applied

    out = tmp_path / "eval"
    assert main(
        ["eval", "--model", str(run), "--data", str(spider_subset_path), "--split", "train",
         "--limit", "4", "--out", str(out), "--no-progress"]
    ) == 0  # fmt: skip
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    eval_prompts = {p["prompt"] for p in preds}
    assert trained_prompts <= eval_prompts  # the trained prompts, string for string
    metrics = json.loads((out / "metrics.json").read_text())
    settings = metrics["settings"]
    assert settings["sample_rows"] == 3 and settings["prefill"] == "<reasoning>\n"
    assert settings["prompt_source"] == str(run / "config.yaml")
    assert settings["generation"]["max_new_tokens"] == 6  # the run's completion budget
