"""Training configuration: recipes, CLI overrides, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlgrpo.training.config import ConfigError, known_fields, parse_run_config, read_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
CPU_RECIPE = REPO / "recipes" / "smollm2-135m-cpu.yaml"


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_key_is_a_field(recipe: Path) -> None:
    data = read_recipe(recipe)
    assert data, f"{recipe} is empty"
    assert set(data) <= known_fields()


def test_cpu_recipe_parses_with_the_levers_on() -> None:
    cfg = parse_run_config(["--config", str(CPU_RECIPE)])
    assert cfg.model.model_name_or_path == "smollm2-135m"
    assert cfg.training.use_cpu and not cfg.training.bf16
    assert not cfg.training.gradient_checkpointing
    assert cfg.prompt.prefill == "<reasoning>\n"
    assert cfg.script.sft_warmup_samples > 0
    assert cfg.script.dataset_source == "bundled"
    # per_device_train_batch_size counts completions: a whole number of groups per step
    assert cfg.training.per_device_train_batch_size % cfg.training.num_generations == 0


def test_gpu_recipe_matches_the_spec_original() -> None:
    data = read_recipe(REPO / "recipes" / "qwen2.5-coder-7b-unsloth.yaml")
    assert data["learning_rate"] == pytest.approx(5e-6)
    assert data["num_generations"] == 8
    assert data["max_completion_length"] == 200
    assert data["max_steps"] == 250
    assert data["lora_r"] == 32
    assert data["load_in_4bit"] is True and data["use_vllm"] is True


def test_cli_overrides_the_recipe() -> None:
    cfg = parse_run_config(
        ["--config", str(CPU_RECIPE), "--max_steps", "3", "--prefill", "", "--one_shot", "true"]
    )
    assert cfg.training.max_steps == 3
    assert cfg.prompt.prefill == ""
    assert cfg.prompt.one_shot is True
    assert {"max_steps", "prefill", "one_shot", "model_name_or_path"} <= cfg.explicit


def test_unknown_key_names_key_file_and_suggestion(tmp_path: Path) -> None:
    path = _recipe(tmp_path, "max_steps: 2\nlearning_rat: 1.0e-5\n")
    with pytest.raises(ConfigError) as info:
        parse_run_config(["--config", str(path)])
    message = str(info.value)
    assert str(path) in message and "'learning_rat'" in message and "'learning_rate'" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "flat YAML mapping"),
        ("max_steps: [1\n", "not valid YAML"),
        ("env:\n  A: 1\n", "'env' is not supported"),
        ("max_steps:\n  a: 1\n", "must be a value"),
    ],
)
def test_malformed_recipes(tmp_path: Path, text: str, fragment: str) -> None:
    path = _recipe(tmp_path, text)
    with pytest.raises(ConfigError, match=fragment):
        read_recipe(path)


def test_missing_recipe(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recipe not found"):
        parse_run_config(["--config", str(tmp_path / "nope.yaml")])


@pytest.mark.parametrize("spelled", ["none", "null", "None"])
def test_dataset_split_none_from_the_command_line(spelled: str) -> None:
    cfg = parse_run_config(["--config", str(CPU_RECIPE), "--dataset_split", spelled])
    assert cfg.script.dataset_split is None


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--precision", "bf16", "--bf16", "false"], "precision: bf16 but bf16: false"),
        (["--precision", "fast"], "precision must be one of"),
        (["--reward_weights", "2.0", "1.0", "1.0", "1.0"], "reward_func_weights"),
        (["--reward_func_weights", "1.0"], "needs reward_funcs"),
        (
            ["--reward_funcs", "soft_format", "execution", "--reward_func_weights", "1.0"],
            "one weight per reward",
        ),
        (["--compare_rule", "fuzzy"], "seed, spider, spider_official, bird"),
        (["--load_in_4bit", "true"], "use_peft: true"),
        (["--eval_holdout", "-1"], "eval_holdout"),
        (["--sql_timeout_s", "0"], "sql_timeout_s"),
        (["--sql_batch_timeout_s", "0"], "sql_batch_timeout_s"),
        (["--sft_warmup_reasoning", "verbose"], "'full' or 'concise'"),
        (["--sft_warmup_only", "true", "--sft_warmup_samples", "0"], "needs a warm-up"),
        (["--prescreen_generations", "1"], "prescreen_generations must be >= 2"),
        (["--prescreen_prompts", "-3"], "prescreen_prompts"),
    ],
)
def test_validation_errors_are_actionable(args: list[str], fragment: str) -> None:
    base = ["--config", str(CPU_RECIPE)]
    with pytest.raises(ValueError, match=fragment):
        parse_run_config(base + args)


def test_a_shell_typed_prefill_means_what_eval_reads(tmp_path: Path) -> None:
    # `--prefill '<reasoning>\n'` reaches argv as a backslash and an n; `sqlgrpo eval` always
    # decoded it, `train` once kept it literal (the base-model runs of docs/ablation.md 8-9)
    cfg = parse_run_config(["--config", str(CPU_RECIPE), "--prefill", "<reasoning>\\n"])
    assert cfg.prompt.prefill == "<reasoning>\n"
    assert parse_run_config(["--prefill=<r>\\t"]).prompt.prefill == "<r>\t"
    # a recipe's YAML has its own escapes: a single-quoted backslash stays what it says
    recipe = _recipe(tmp_path, "prefill: '<r>\\n'\n")
    assert parse_run_config(["--config", str(recipe)]).prompt.prefill == "<r>\\n"


def test_recipe_dict_round_trips(tmp_path: Path) -> None:
    import yaml

    cfg = parse_run_config(["--config", str(CPU_RECIPE), "--max_steps", "7"])
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(cfg.recipe_dict()))
    again = parse_run_config(["--config", str(saved)])
    assert again.training.max_steps == 7
    assert again.recipe_dict() == cfg.recipe_dict()
    assert "resume" not in cfg.recipe_dict()


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r != CPU_RECIPE], ids=lambda p: p.name)
def test_gpu_recipes_parse_into_valid_configs(recipe: Path) -> None:
    """Every value type-checks and validates (bf16 turned off only because this is a CPU box)."""
    cfg = parse_run_config(["--config", str(recipe), "--bf16", "false"])
    assert cfg.training.num_generations == 8
    assert cfg.model.use_peft


@pytest.mark.parametrize(("value", "budget"), [(None, 3.0), ("10", 10.0), ("inf", float("inf"))])
def test_sql_batch_timeout_reaches_the_execution_reward(value: str | None, budget: float) -> None:
    from sqlgrpo.rewards.execution import ExecutionReward
    from sqlgrpo.training.train import build_rewards

    extra = ["--sql_batch_timeout_s", value] if value else []
    cfg = parse_run_config(["--config", str(CPU_RECIPE), "--sql_timeout_s", "1.5", *extra])
    rewards = build_rewards(cfg.script, "")
    execution = next(r for r in rewards if isinstance(r, ExecutionReward))
    assert execution.limits.timeout_s == 1.5 and execution.limits.batch_budget_s() == budget
