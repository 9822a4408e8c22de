"""The run folder: its layout, the resolved configuration, checkpoints, and the final model.

``RUN_DIR/config.yaml`` (the resolved recipe, read back by :mod:`sqlgrpo.models.run_settings`),
``checkpoint-N/`` (resume picks the newest *complete* one), ``metrics.jsonl`` (trimmed to
the resumed step), ``model/`` and ``adapter/`` (the trained weights).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
HOLDOUT_FILE = "holdout_ids.json"
DROPPED_FILE = "dropped_prompts.json"
WARMUP_DIR = "warmup"

_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json")


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (None when it is complete).

    The Trainer writes ``trainer_state.json`` last, so a folder without a readable one
    (a kill -9 while saving: empty, or weights only) is incomplete.
    """
    state_file = checkpoint / "trainer_state.json"
    if not state_file.is_file():
        return "no trainer_state.json (killed while saving?)"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"unreadable trainer_state.json ({exc})"
    if not isinstance(state, dict) or "global_step" not in state:
        return "trainer_state.json has no global_step"
    if not any(
        f.name != "trainer_state.json" and f.name.endswith(_WEIGHT_SUFFIXES)
        for f in checkpoint.iterdir()
    ):
        return "no model weights"
    return None


def checkpoint_folders(output_dir: Path) -> list[Path]:
    """Every ``checkpoint-N`` folder in ``output_dir``, highest N first."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT_DIR.match(p.name)]
    return sorted(found, key=checkpoint_step, reverse=True)


def last_checkpoint(output_dir: Path) -> Path | None:
    """The highest-numbered *complete* ``checkpoint-N`` folder in ``output_dir``, or None.

    Newer incomplete ones (see :func:`checkpoint_problem`) are skipped with a warning
    naming each; they are left in place and overwritten when the run reaches their step.
    """
    for folder in checkpoint_folders(output_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning("skipping incomplete checkpoint %s: %s", folder, problem)
    return None


def write_run_config(cfg: Any, output_dir: Path) -> Path:
    """Write the resolved configuration as a flat recipe (``RUN_DIR/config.yaml``)."""
    path = output_dir / CONFIG_FILE
    header = f"# resolved sqlgrpo training configuration (recipe: {cfg.recipe or 'none'})\n"
    choice = getattr(cfg.training, "precision_choice", None)
    if choice is not None:
        header += f"# {choice.describe()}\n"
    path.write_text(header + yaml.safe_dump(cfg.recipe_dict(), sort_keys=True))
    return path


def trim_step_log(path: Path, max_step: int) -> int:
    """Drop lines logged after ``max_step`` (a run killed past its last checkpoint logged
    steps that the resumed run will redo); returns the number of lines dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and json.loads(line).get("step", 0) > max_step:
            dropped += 1
        else:
            kept.append(line)
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return dropped


def checkpoint_step(checkpoint: Path) -> int:
    """N of a ``checkpoint-N`` folder."""
    return int(checkpoint.name.rsplit("-", 1)[-1])


def save_final_model(
    trainer: Any, tokenizer: Any, output_dir: Path, model_args: Any
) -> tuple[Path | None, Path | None]:
    """Save the merged model to ``RUN_DIR/model`` and a LoRA adapter to ``RUN_DIR/adapter``."""
    model_dir = output_dir / "model"
    trainer.accelerator.wait_for_everyone()
    model = trainer.accelerator.unwrap_model(trainer.model)
    is_peft = hasattr(model, "peft_config")
    if not is_peft:
        trainer.save_model(str(model_dir))
        if trainer.accelerator.is_main_process:
            tokenizer.save_pretrained(str(model_dir))
        return model_dir, None
    adapter_dir = output_dir / "adapter"
    if not trainer.accelerator.is_main_process:
        return model_dir, adapter_dir
    model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    if model_args.use_unsloth and hasattr(model, "save_pretrained_merged"):
        model.save_pretrained_merged(str(model_dir), tokenizer, save_method="merged_16bit")
        return model_dir, adapter_dir
    if model_args.load_in_4bit or model_args.load_in_8bit:
        logger.warning(
            "the base model was loaded quantized; merge the adapter in %s into a full-precision "
            "base yourself (merging into quantized weights loses precision); no model/ written",
            adapter_dir,
        )
        return None, adapter_dir
    merged = model.merge_and_unload()
    merged.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    return model_dir, adapter_dir
