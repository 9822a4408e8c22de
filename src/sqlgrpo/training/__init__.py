"""GRPO training: the configuration (TRL's dataclasses extended), the thin script that runs a
recipe (data split, warm-up, prescreen, rewards, trainer, save), the trainer with sqlgrpo's
sampler and shared-prefix loss, the llama.cpp sampler and its importance weights, the run
folder and the callbacks that log into it.

The public names below load on first use, as TRL's own ``__init__`` does: the configuration
imports TRL (and torch), and ``sqlgrpo --help`` must not.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "ConfigError": "config",
    "GRPOTrainConfig": "config",
    "ModelArguments": "config",
    "RunConfig": "config",
    "SqlGrpoArguments": "config",
    "parse_run_config": "config",
    "read_recipe": "config",
    "TrainResult": "train",
    "run_training": "train",
    "SqlGrpoTrainer": "trainer",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
