"""SFT warm-up: train on explained gold SQL before GRPO.

Small models cannot produce the ``<reasoning>``/``<sql>`` format zero-shot, so GRPO
gets no signal at first. A short supervised warm-up on targets of the form
``<reasoning>...</reasoning>\n<sql>\n{gold}\n</sql>`` breaks that cold start. The
reasoning is written by ``sqlgrpo.sql.explain.explain_sql``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlgrpo.data import PromptConfig, Sample, render_sample_prompt
from sqlgrpo.data.prompts import text_for_tokenizer
from sqlgrpo.sql.explain import EXPLANATION_STYLES, explain_sql, schema_tables
from sqlgrpo.training.config import ConfigError

if TYPE_CHECKING:
    from sqlgrpo.training.config import ModelArguments, RunConfig

__all__ = [
    "EXPLANATION_STYLES",
    "explain_sql",
    "run_warmup",
    "schema_tables",
    "warmup_dataset",
    "warmup_model_args",
    "warmup_target",
]

logger = logging.getLogger(__name__)


def warmup_target(sql: str, schema: str = "", prefill: str = "", style: str = "full") -> str:
    """The SFT target for one sample: explained reasoning and the gold SQL in the tag format.

    With a ``prefill`` (text the prompt already ends with), the target omits it, so
    prompt + target is exactly the tagged answer. ``style`` is the explanation style.
    """
    reasoning = explain_sql(sql, schema, style)
    full = f"<reasoning>\n{reasoning}\n</reasoning>\n<sql>\n{sql.strip()}\n</sql>"
    if prefill:
        if not full.startswith(prefill):
            raise ValueError(
                f"prefill {prefill!r} is not the start of the tagged answer; the warm-up cannot "
                "continue from it (use a prefill such as '<reasoning>\\n')"
            )
        return full[len(prefill) :]
    return full


def warmup_dataset(
    samples: Sequence[Sample], prompt: PromptConfig, tokenizer: Any, style: str = "full"
) -> Any:
    """A prompt-completion ``datasets.Dataset`` for SFT: rendered prompt (prefill included)
    and the explained, tagged gold answer (without the prefill), in explanation ``style``."""
    from datasets import Dataset

    rows = []
    for sample in samples:
        rows.append(
            {
                "prompt": text_for_tokenizer(
                    render_sample_prompt(sample, prompt, tokenizer), tokenizer
                ),
                "completion": warmup_target(sample.sql, sample.schema, prompt.prefill, style),
            }
        )
    return Dataset.from_list(rows)


def warmup_model_args(cfg: RunConfig) -> ModelArguments:
    """The model settings the warm-up trains with: GRPO's, or the same without LoRA when
    ``sft_warmup_full_finetune`` is set (which needs a full-precision, non-Unsloth model)."""
    model_args = cfg.model
    if not cfg.script.sft_warmup_full_finetune:
        return model_args
    if model_args.load_in_4bit or model_args.load_in_8bit or model_args.use_unsloth:
        raise ConfigError(
            "sft_warmup_full_finetune needs the full-precision model: it cannot be combined "
            "with load_in_4bit, load_in_8bit or use_unsloth (those train adapters only)"
        )
    return replace(model_args, use_peft=False)


def run_warmup(cfg: RunConfig, base_path: str, samples: Sequence[Sample], out_dir: Path) -> Path:
    """SFT the base model on explained gold SQL; save the full model to ``out_dir``.

    Uses the first ``sft_warmup_samples`` training samples, TRL's ``SFTTrainer`` with loss
    on the completion only, and the GRPO run's device / precision / LoRA settings (no LoRA
    with ``sft_warmup_full_finetune``). A LoRA warm-up is merged before saving so GRPO starts
    from a plain model folder.
    """
    from trl import SFTConfig, SFTTrainer

    from sqlgrpo.training.policy import load_policy

    script, training = cfg.script, cfg.training
    chosen = list(samples[: script.sft_warmup_samples])
    if len(chosen) < script.sft_warmup_samples:
        logger.warning(
            "sft_warmup_samples=%d but only %d training sample(s) exist; warming up on all",
            script.sft_warmup_samples,
            len(chosen),
        )
    model, tokenizer, peft_config = load_policy(warmup_model_args(cfg), training, base_path)
    dataset = warmup_dataset(chosen, cfg.prompt, tokenizer, script.sft_warmup_reasoning)
    work_dir = out_dir.parent
    args = SFTConfig(
        output_dir=str(work_dir / "trainer"),
        num_train_epochs=script.sft_warmup_epochs,
        max_steps=script.sft_warmup_max_steps,
        learning_rate=script.sft_warmup_learning_rate,
        per_device_train_batch_size=script.sft_warmup_batch_size,
        gradient_accumulation_steps=1,
        bf16=training.bf16,
        fp16=training.fp16,
        use_cpu=training.use_cpu,
        gradient_checkpointing=training.gradient_checkpointing,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=training.seed,
        completion_only_loss=True,
        padding_free=script.sft_warmup_padding_free,
        max_length=None,
        disable_tqdm=training.disable_tqdm,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    logger.info("SFT warm-up on %d sample(s) before GRPO", len(chosen))
    result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {
        "samples": len(chosen),
        "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "losses": losses,
        "train_runtime": result.metrics.get("train_runtime"),
    }
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        trained = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(trained, "merge_and_unload"):
            trained = trained.merge_and_unload()
        tmp = out_dir.with_name(out_dir.name + ".tmp")
        trained.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        tmp.rename(out_dir)
        (work_dir / "warmup_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    trainer.accelerator.wait_for_everyone()
    logger.info("warm-up done: %s; model saved to %s", summary, out_dir)
    return out_dir
