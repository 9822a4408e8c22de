"""Training configuration: dataclasses extending TRL's, parsed from a YAML recipe + CLI overrides.

Four dataclasses make up a run's configuration, each field a recipe key and a
``--flag``:

- ``SqlGrpoArguments``: data source, rewards, comparison rule, sandbox, warm-up, run control;
- ``PromptConfig`` (from ``sqlgrpo.data``): system prompt, one-shot example, prefill, budget;
- ``GRPOTrainConfig``: TRL's ``GRPOConfig`` (optimiser, generation, checkpoints, logging);
- ``ModelArguments``: TRL's ``ModelConfig`` (model, dtype, LoRA) plus Unsloth options.

This module imports TRL (and so torch); keep it out of ``sqlgrpo --help``'s import path.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, Literal, get_args

from trl import GRPOConfig, ModelConfig

from sqlgrpo.data import PromptConfig
from sqlgrpo.data.prompts import decode_prefill_escapes
from sqlgrpo.generation.decoding import DECODERS
from sqlgrpo.rewards.registry import REWARD_PROFILES
from sqlgrpo.sql.compare import COMPARE_RULES
from sqlgrpo.sql.engines.base import ENGINE_NAMES

#: Who samples GRPO's completions: the learner itself (torch) or its llama.cpp mirror.
RolloutSampler = Literal["torch", "llama-cpp"]
ROLLOUT_SAMPLERS: tuple[str, ...] = get_args(RolloutSampler)


class ConfigError(ValueError):
    """A recipe or command line that cannot be turned into a valid configuration."""


@dataclass
class SqlGrpoArguments:
    """sqlgrpo's own training options: data, rewards, execution checking, warm-up, run control."""

    dataset_source: str = field(
        default="bundled",
        metadata={
            "help": "training data: 'bundled' (or 'bundled:train'), a gretel-format file, a Spider "
            "or BIRD folder, or a hub dataset id such as gretelai/synthetic_text_to_sql"
        },
    )
    dataset_split: str | None = field(
        default="train",
        metadata={
            "help": "split to load (train / test / dev, source dependent); 'none' for a file "
            "without a split column"
        },
    )
    dataset_limit: int | None = field(
        default=None, metadata={"help": "use at most this many samples (after the hold-out)"}
    )
    skip_invalid: bool = field(
        default=False,
        metadata={"help": "skip (and count) invalid data rows instead of failing on the first"},
    )
    eval_holdout: int = field(
        default=0,
        metadata={
            "help": "hold this many samples out of training (seeded); their ids go to "
            "RUN_DIR/holdout_ids.json and they form the eval set when eval_strategy is not 'no'"
        },
    )
    holdout_seed: int | None = field(
        default=None,
        metadata={
            "help": "seed of the hold-out draw (default: the training seed); fix it to train "
            "several seeds on the same training rows and evaluate them on the same held-out rows"
        },
    )
    reward_profile: str = field(
        default="spec",
        metadata={
            "help": "named reward set from sqlgrpo.rewards.REWARD_PROFILES: "
            + ", ".join(REWARD_PROFILES)
        },
    )
    reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": "explicit reward names from the sqlgrpo.rewards registry; replaces "
            "reward_profile when set"
        },
    )
    reward_func_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "weights for reward_funcs, one per name (default: each reward's spec "
            "weight). The rewards carry their weights themselves; TRL's reward_weights stays 1.0"
        },
    )
    compare_rule: str = field(
        default="seed",
        metadata={
            "help": "result comparison rule for the execution reward: " + ", ".join(COMPARE_RULES)
        },
    )
    state_match: bool = field(
        default=False,
        metadata={
            "help": "for DML gold SQL, credit full weight only when the final DB state matches"
        },
    )
    execution_engine: str = field(
        default="sqlite",
        metadata={
            "help": "engine the execution reward runs SQL on: " + ", ".join(ENGINE_NAMES) + ". "
            "Each sample's SQLite database is copied into it once and the gold transpiled from "
            "SQLite's dialect; the prompts name the engine (Database engine: DuckDB)"
        },
    )
    execution_engine_url: str | None = field(
        default=None,
        metadata={
            "help": "execution_engine postgres: postgresql://... of a database kept for training "
            "(samples are loaded into schemas of their own there); its password is masked in "
            "config.yaml, so a resume passes it again"
        },
    )
    sql_timeout_s: float = field(
        default=2.0, metadata={"help": "per-statement timeout when executing generated SQL"}
    )
    sql_max_rows: int = field(
        default=10_000, metadata={"help": "rows fetched at most from a generated query"}
    )
    sql_batch_timeout_s: float | None = field(
        default=None,
        metadata={
            "help": "one deadline for all the generated SQL of a reward call (default: "
            "2 x sql_timeout_s; inf: none). Past it, statements still running are stopped "
            "and the rest score as timeouts, so a batch of bombs cannot stall a step; raise "
            "it when a batch's legitimate queries need longer together (big databases)"
        },
    )
    sft_warmup_samples: int = field(
        default=0,
        metadata={
            "help": "SFT warm-up before GRPO on this many training samples (0: no warm-up); "
            "targets are explained gold SQL in the tag format"
        },
    )
    sft_warmup_epochs: float = field(
        default=1.0, metadata={"help": "epochs over the warm-up samples"}
    )
    sft_warmup_max_steps: int = field(
        default=-1, metadata={"help": "stop the warm-up after this many steps (-1: use epochs)"}
    )
    sft_warmup_learning_rate: float = field(
        default=5e-5, metadata={"help": "learning rate of the SFT warm-up"}
    )
    sft_warmup_reasoning: str = field(
        default="full",
        metadata={
            "help": "how warm-up targets explain the gold SQL: 'full' (one line per step, "
            "conditions restated) or 'concise' (three short lines: tables, operations, output)"
        },
    )
    sft_warmup_batch_size: int = field(
        default=4, metadata={"help": "per-device batch size of the SFT warm-up"}
    )
    sft_warmup_full_finetune: bool = field(
        default=False,
        metadata={
            "help": "warm up with full fine-tuning even when GRPO trains LoRA adapters "
            "(use_peft); by default the warm-up trains what GRPO trains. Not with 4/8-bit "
            "loading or Unsloth"
        },
    )
    sft_warmup_padding_free: bool = field(
        default=False,
        metadata={
            "help": "warm up on batches flattened into one sequence without padding (TRL's "
            "padding_free; the attention keeps the samples apart): same loss and gradients. "
            "Pays with flash attention's variable-length kernels; on the CPU with sdpa it "
            "measured no faster. Needs a model whose attention honours packed position_ids "
            "(flash attention, or sdpa/eager in transformers 5; the Llama family is tested)"
        },
    )
    sft_warmup_only: bool = field(
        default=False,
        metadata={
            "help": "stop after the SFT warm-up: no GRPO (ablations of the warm-up, or a "
            "further warm-up pass from a warm-up model); needs sft_warmup_samples > 0"
        },
    )
    prescreen_prompts: int = field(
        default=0,
        metadata={
            "help": "before GRPO, sample prescreen_generations completions for this many "
            "training prompts with the starting policy and train only on those it sometimes "
            "solves (0: off); outcomes go to RUN_DIR/prescreen.json"
        },
    )
    prescreen_generations: int = field(
        default=4, metadata={"help": "completions sampled per screened prompt (>= 2)"}
    )
    prescreen_batch_size: int = field(
        default=16, metadata={"help": "prompts per generation batch while screening"}
    )
    completions_log_steps: int = field(
        default=1,
        metadata={
            "help": "write sampled completions to completions.jsonl every N steps (0: never)"
        },
    )
    completions_log_count: int = field(
        default=8, metadata={"help": "completions written per logged step (0: all of the batch)"}
    )
    skip_zero_variance_backward: bool = field(
        default=True,
        metadata={
            "help": "skip forward+backward for a micro-batch whose advantages are all zero "
            "(every group has equal rewards) when no KL or entropy term would still give a gradient"
        },
    )
    resample_flat_batches: int = field(
        default=0,
        metadata={
            "help": "DAPO's dynamic sampling, per generation batch: a batch whose groups all have "
            "equal rewards (nothing to learn) is sampled again from other prompts, up to N times "
            "(0: off, the step is skipped as before). Sparse rewards (progress, strict) leave "
            "many such batches; each retry costs one more sampling pass"
        },
    )
    generation_decoder: str = field(
        default="incremental",
        metadata={
            "help": "how GRPO samples completions without vLLM: incremental (sqlgrpo.generation.decoding: "
            "each prompt prefilled once for its group, finished completions leave the batch) "
            "or generate (TRL's model.generate)"
        },
    )
    rollout_sampler: str = field(
        default="torch",
        metadata={
            "help": "who samples GRPO's completions without vLLM: torch (the policy itself, "
            "exact) or llama-cpp (an f32 GGUF mirror of the policy refreshed in place after each "
            "optimizer step; not bit-exact, so each completion's loss is weighted by TRL's "
            "truncated importance sampling, vllm_importance_sampling_mode/_clip_min/_clip_max). "
            "Full fine-tuning of fp32 policies only; elsewhere the run says why and uses torch"
        },
    )
    rollout_turns: int = field(
        default=1,
        metadata={
            "help": "answers per GRPO completion (1: single-turn). With N > 1 an answer whose SQL "
            "fails, holds none or returns no rows gets the sandbox's classified reply as an "
            "<observation> turn and the model answers again, up to N answers inside "
            "max_completion_length; observation tokens are masked from the loss and the rewards "
            "score the last answer (sqlgrpo.training.multi_turn). Evaluate such a model with "
            "--turns N"
        },
    )
    rollout_observation_tokens: int = field(
        default=64,
        metadata={"help": "with rollout_turns > 1: an observation is cut to this many tokens"},
    )
    rollout_turn_tokens: int | None = field(
        default=None,
        metadata={
            "help": "with rollout_turns > 1: new tokens per answer (default: what is left of "
            "max_completion_length, which counts every answer and observation of a completion)"
        },
    )
    rollout_retry_empty: bool = field(
        default=True,
        metadata={
            "help": "with rollout_turns > 1: a query that returns no rows also gets another turn"
        },
    )
    shared_prefix_loss: bool = field(
        default=True,
        metadata={
            "help": "score a group's completions with its prompt run once (keys/values shared "
            "by the rows of a micro-batch with that prompt; same loss and gradients as TRL's "
            "per-row pass). Falls back to TRL's pass, saying why, for multimodal inputs, MoE "
            "auxiliary losses, attention other than sdpa/eager, or gradient checkpointing"
        },
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "continue from the last checkpoint-N in output_dir (optimizer + RNG state)"
        },
    )
    plot: bool = field(
        default=True,
        metadata={"help": "plot reward curves to RUN_DIR/plots/rewards.png at the end"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.dataset_split, str) and self.dataset_split.lower() in ("none", "null"):
            self.dataset_split = None  # the command line cannot spell YAML's null otherwise
        if self.dataset_limit is not None and self.dataset_limit <= 0:
            raise ValueError(f"dataset_limit must be positive, got {self.dataset_limit}")
        if self.eval_holdout < 0:
            raise ValueError(f"eval_holdout must be >= 0, got {self.eval_holdout}")
        if self.reward_func_weights is not None:
            if not self.reward_funcs:
                raise ValueError("reward_func_weights needs reward_funcs (one weight per name)")
            if len(self.reward_func_weights) != len(self.reward_funcs):
                raise ValueError(
                    f"reward_func_weights has {len(self.reward_func_weights)} value(s) but "
                    f"reward_funcs names {len(self.reward_funcs)}: give one weight per reward"
                )
            if any(w < 0 for w in self.reward_func_weights):
                raise ValueError("reward_func_weights must be >= 0")
        if not self.reward_funcs and self.reward_profile not in REWARD_PROFILES:
            raise ValueError(
                f"reward_profile must be one of {', '.join(REWARD_PROFILES)}, "
                f"got {self.reward_profile!r}"
            )
        if self.compare_rule not in COMPARE_RULES:
            raise ValueError(
                f"compare_rule must be one of {', '.join(COMPARE_RULES)}, got {self.compare_rule!r}"
            )
        if self.execution_engine not in ENGINE_NAMES:
            raise ValueError(
                f"execution_engine must be one of {', '.join(ENGINE_NAMES)}, "
                f"got {self.execution_engine!r}"
            )
        if self.execution_engine == "postgres" and not self.execution_engine_url:
            raise ValueError(
                "execution_engine postgres needs execution_engine_url (postgresql://... of a "
                "database the samples can be loaded into)"
            )
        if self.resample_flat_batches < 0:
            raise ValueError(
                f"resample_flat_batches must be >= 0 (0: off), got {self.resample_flat_batches}"
            )
        if self.sql_timeout_s <= 0:
            raise ValueError(f"sql_timeout_s must be positive, got {self.sql_timeout_s}")
        if self.sql_max_rows <= 0:
            raise ValueError(f"sql_max_rows must be positive, got {self.sql_max_rows}")
        if self.sql_batch_timeout_s is not None and not self.sql_batch_timeout_s > 0:
            raise ValueError(
                f"sql_batch_timeout_s must be positive (inf: no batch deadline), got "
                f"{self.sql_batch_timeout_s}"
            )
        if self.sft_warmup_samples < 0:
            raise ValueError(f"sft_warmup_samples must be >= 0, got {self.sft_warmup_samples}")
        if (
            self.sft_warmup_samples
            and self.sft_warmup_epochs <= 0
            and self.sft_warmup_max_steps <= 0
        ):
            raise ValueError(
                "the SFT warm-up needs sft_warmup_epochs > 0 or sft_warmup_max_steps > 0"
            )
        if self.sft_warmup_only and not self.sft_warmup_samples:
            raise ValueError("sft_warmup_only needs a warm-up: set sft_warmup_samples > 0")
        if self.sft_warmup_reasoning not in ("full", "concise"):
            raise ValueError(
                "sft_warmup_reasoning must be 'full' or 'concise', "
                f"got {self.sft_warmup_reasoning!r}"
            )
        if self.generation_decoder not in DECODERS:
            raise ValueError(
                "generation_decoder must be 'incremental' or 'generate', "
                f"got {self.generation_decoder!r}"
            )
        if self.rollout_sampler not in ROLLOUT_SAMPLERS:
            raise ValueError(
                f"rollout_sampler must be one of {ROLLOUT_SAMPLERS}, got {self.rollout_sampler!r}"
            )
        if self.sft_warmup_batch_size <= 0:
            raise ValueError(
                f"sft_warmup_batch_size must be positive, got {self.sft_warmup_batch_size}"
            )
        if self.prescreen_prompts < 0:
            raise ValueError(f"prescreen_prompts must be >= 0, got {self.prescreen_prompts}")
        if self.prescreen_generations < 2:
            raise ValueError(
                "prescreen_generations must be >= 2 (a prompt is kept when some, not all, of "
                f"its completions are correct), got {self.prescreen_generations}"
            )
        if self.prescreen_batch_size <= 0:
            raise ValueError(
                f"prescreen_batch_size must be positive, got {self.prescreen_batch_size}"
            )
        if self.completions_log_steps < 0 or self.completions_log_count < 0:
            raise ValueError("completions_log_steps and completions_log_count must be >= 0")
        if self.rollout_turns < 1:
            raise ValueError(f"rollout_turns must be >= 1, got {self.rollout_turns}")
        if self.rollout_turn_tokens is not None and self.rollout_turn_tokens < 8:
            raise ValueError(f"rollout_turn_tokens must be >= 8, got {self.rollout_turn_tokens}")
        if self.rollout_observation_tokens < 8:
            raise ValueError(
                f"rollout_observation_tokens must be >= 8, got {self.rollout_observation_tokens}"
            )

    def feedback(self) -> Any:
        """The :class:`~sqlgrpo.generation.feedback.FeedbackConfig` of multi-turn rollouts."""
        from sqlgrpo.generation.feedback import FeedbackConfig

        return FeedbackConfig(
            turns=self.rollout_turns,
            max_observation_tokens=self.rollout_observation_tokens,
            retry_empty=self.rollout_retry_empty,
        )


@dataclass
class GRPOTrainConfig(GRPOConfig):
    """TRL's GRPOConfig, with checks that turn common mistakes into actionable errors, and
    sqlgrpo's precision decision (:mod:`sqlgrpo.models.precision`) in place of a bare ``bf16``."""

    precision: str = field(
        default="auto",
        metadata={
            "help": "auto | fp32 | bf16. auto: bf16 autocast (fp32 master weights and optimizer "
            "state) where the device has bf16 matrix units (CPU AMX-BF16 / AVX512-BF16, a bf16 "
            "GPU), fp32 elsewhere; GRPO then samples from a bf16 copy of the policy with "
            "truncated importance sampling. TRL's bf16 flag, when a recipe sets it, must agree"
        },
    )

    def __post_init__(self) -> None:
        from sqlgrpo.models.precision import (
            PrecisionChoice,
            default_device,
            legacy_flag_precision,
            resolve_precision,
        )

        device = "cpu" if self.use_cpu or not _accelerator_available() else default_device()
        if self.fp16:
            if self.precision not in ("auto", "fp32"):
                raise ValueError(f"precision: {self.precision} and fp16: true; choose one")
            self.precision = "auto"
            self.precision_choice = PrecisionChoice("auto", "fp16", device, "fp16: true was set")
        else:
            requested = legacy_flag_precision(self.precision, self.bf16)
            self.precision_choice = resolve_precision(requested, device)
            self.precision = self.precision_choice.name
            self.bf16 = self.precision_choice.bf16
            if device == "cpu":
                self.use_cpu = True  # transformers takes bf16 on a CPU only with use_cpu set
        super().__post_init__()
        if self.reward_weights is not None and any(w != 1.0 for w in self.reward_weights):
            raise ValueError(
                "reward_weights scales TRL's reward functions, but sqlgrpo's rewards already carry "
                "their weights: leave reward_weights unset and use reward_func_weights"
            )
        if self.max_completion_length is not None and self.max_completion_length <= 0:
            raise ValueError(
                f"max_completion_length must be positive, got {self.max_completion_length}"
            )


def _accelerator_available() -> bool:
    import torch

    return torch.cuda.is_available() or (
        hasattr(torch, "xpu") and torch.xpu.is_available()  # type: ignore[attr-defined]
    )


@dataclass
class ModelArguments(ModelConfig):
    """TRL's ModelConfig (model, dtype, LoRA via use_peft / lora_*) plus loading options."""

    model_name_or_path: str | None = field(
        default="smollm2-135m",
        metadata={
            "help": "model alias (see sqlgrpo.models.MODEL_ALIASES), hub id, local folder or "
            "training run folder"
        },
    )
    model_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "where converted GGUF models are cached (default ~/.cache/sqlgrpo/models)"
        },
    )
    use_unsloth: bool = field(
        default=False,
        metadata={
            "help": "load with Unsloth's FastLanguageModel (GPU only; pip install sqlgrpo[gpu])"
        },
    )
    unsloth_max_seq_length: int = field(
        default=1024, metadata={"help": "Unsloth's max_seq_length (prompt + completion tokens)"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model_name_or_path:
            raise ValueError("model_name_or_path is required (an alias, hub id or folder)")
        if self.use_unsloth and self.load_in_8bit:
            raise ValueError("use_unsloth supports load_in_4bit, not load_in_8bit")
        if (self.load_in_4bit or self.load_in_8bit) and not (self.use_peft or self.use_unsloth):
            raise ValueError(
                "4/8-bit loading trains only adapters: set use_peft: true (LoRA) or use_unsloth: true"
            )
        if self.lora_r <= 0 or self.lora_alpha <= 0:
            raise ValueError("lora_r and lora_alpha must be positive")


CONFIG_CLASSES: tuple[type, ...] = (SqlGrpoArguments, PromptConfig, GRPOTrainConfig, ModelArguments)


@dataclass
class RunConfig:
    """A parsed run configuration: the four dataclasses and the recipe they came from."""

    script: SqlGrpoArguments
    prompt: PromptConfig
    training: GRPOTrainConfig
    model: ModelArguments
    recipe: str | None = None
    explicit: set[str] = field(default_factory=set)  # keys set by the recipe or the CLI

    def recipe_dict(self) -> dict[str, Any]:
        """A flat recipe that reproduces this run: every sqlgrpo, prompt and model field, and
        the training fields the recipe or command line set (plus the main levers).

        TRL fills some training fields from others in ``__post_init__`` (e.g. the generation
        batch size); writing those back would over-constrain a re-run, so they are left out.
        """
        flat: dict[str, Any] = {}
        for group in (self.script, self.prompt, self.model):
            flat.update(_plain_fields(group))
        training = _plain_fields(self.training)
        for key in sorted((self.explicit & training.keys()) | KEY_TRAINING_FIELDS):
            flat[key] = training[key]
        flat.pop("resume", None)
        if flat.get("execution_engine_url"):
            from sqlgrpo.sql.engines.base import mask_password

            flat["execution_engine_url"] = mask_password(flat["execution_engine_url"])
        return flat


KEY_TRAINING_FIELDS = frozenset(
    {
        "output_dir", "seed", "learning_rate", "lr_scheduler_type", "max_steps",
        "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
        "num_generations", "max_completion_length", "temperature", "beta", "loss_type",
        "bf16", "precision", "use_cpu", "gradient_checkpointing", "use_vllm", "vllm_mode",
        "logging_steps", "save_steps", "report_to",
    }
)  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return _plain(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _plain_fields(obj: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.init}


def known_fields() -> set[str]:
    """Every recipe key / command-line flag name the training configuration accepts."""
    return {f.name for cls in CONFIG_CLASSES for f in fields(cls) if f.init}


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """Read a flat YAML recipe; unknown keys fail with the key, the file and a suggestion."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a flat YAML mapping of field: value")
    known = known_fields()
    for key, value in data.items():
        if key == "env":
            raise ConfigError(
                f"{path}: key 'env' is not supported; recipes hold configuration fields only"
            )
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{path}: unknown key {key!r}{hint}; see `sqlgrpo train --help` for every field"
            )
        if isinstance(value, dict) and key not in _DICT_FIELDS:
            raise ConfigError(f"{path}: key {key!r} must be a value, not a mapping")
    return data


_DICT_FIELDS = {
    "model_init_kwargs",
    "generation_kwargs",
    "chat_template_kwargs",
    "lr_scheduler_kwargs",
    "transformers_continuous_batching_config",
    "fsdp_config",
    "deepspeed",
    "accelerator_config",
    "gradient_checkpointing_kwargs",
}


def build_parser(prog: str = "sqlgrpo train") -> Any:
    """The TRL argument parser over every configuration dataclass (``--config`` for a recipe)."""
    from trl import TrlParser

    parser = TrlParser(
        CONFIG_CLASSES,
        prog=prog,
        description="GRPO training. Every field below is also a recipe (YAML) key; flags "
        "override the recipe given with --config.",
    )
    return parser


def parse_run_config(argv: list[str]) -> RunConfig:
    """Parse ``[--config RECIPE] [--field value ...]`` into a validated ``RunConfig``."""
    argv = list(argv)
    recipe: str | None = None
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ConfigError("--config needs a recipe path")
        recipe = argv[i + 1]
        del argv[i : i + 2]
        values = read_recipe(recipe)
    else:
        values = {}
    parser = build_parser()
    leftover = parser.set_defaults_with_config(**values)
    if leftover:  # read_recipe checked the keys; this guards against parser drift
        raise ConfigError(f"{recipe}: keys not understood by the parser: {leftover[::2]}")
    try:
        script, prompt, training, model = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as exc:
        where = f"{recipe}: " if recipe else ""
        raise ConfigError(f"{where}{exc}") from exc
    given = {a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")}
    if "prefill" in given:  # a recipe's YAML has its own escapes; a shell's need decoding
        prompt = replace(prompt, prefill=decode_prefill_escapes(prompt.prefill))
    explicit = set(values) | given
    return RunConfig(
        script, prompt, training, model, recipe=recipe, explicit=explicit & known_fields()
    )
