"""``sqlgrpo train``: GRPO training from a YAML recipe plus command-line overrides.

The full option list comes from the configuration dataclasses (TRL's GRPOConfig and
ModelConfig plus sqlgrpo's own), which import torch; so this module only registers a
thin parser and builds the real one inside the handler (``sqlgrpo train --help``).
"""

from __future__ import annotations

import argparse
import sys

USAGE = "sqlgrpo train [--config RECIPE.yaml] [--FIELD VALUE ...] [--help]"
DESCRIPTION = (
    "Train a model with GRPO (TRL) on execution-checked SQL rewards. Every configuration "
    "field is a recipe key and a --flag; flags override the recipe. "
    "Run `sqlgrpo train --help` for all fields."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command (no heavy imports here)."""
    parser = subparsers.add_parser(
        "train",
        help="GRPO training from a recipe (sqlgrpo train --config recipes/smollm2-135m-cpu.yaml)",
        description=DESCRIPTION,
        usage=USAGE,
        add_help=False,
        prefix_chars="+",  # leave every -/-- argument to the real (lazy) parser
    )
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle_train)


def handle_train(args: argparse.Namespace) -> int:
    """Parse the training configuration, run training, print where the results are."""
    from sqlgrpo.training.config import ConfigError, parse_run_config

    argv = list(args.train_args)
    if any(a in ("-h", "--help") for a in argv):
        from sqlgrpo.training.config import build_parser

        build_parser().print_help()
        return 0
    try:
        cfg = parse_run_config(argv)
    except (ConfigError, ValueError) as exc:
        print(f"sqlgrpo train: error: {exc}", file=sys.stderr)
        return 2

    from sqlgrpo.data import DataError
    from sqlgrpo.models import ModelNotFoundError
    from sqlgrpo.training.train import run_training

    try:
        result = run_training(cfg)
    except (ConfigError, DataError, ModelNotFoundError) as exc:
        print(f"sqlgrpo train: error: {exc}", file=sys.stderr)
        return 2
    if result.interrupted:
        print(
            f"interrupted at step {result.global_step}; checkpoint saved in {result.output_dir}. "
            f"Continue with: sqlgrpo train --config {result.output_dir / 'config.yaml'} "
            "--resume true"
        )
        return 130
    if cfg.script.sft_warmup_only:
        print(f"warm-up only (no GRPO); run folder: {result.output_dir}")
    else:
        print(f"trained {result.global_step} step(s); run folder: {result.output_dir}")
    if result.warmup_dir:
        print(f"  warm-up model: {result.warmup_dir}")
    if result.model_dir:
        print(f"  model:         {result.model_dir}")
    if result.adapter_dir:
        print(f"  adapter:       {result.adapter_dir}")
    if result.plot:
        print(f"  reward plot:   {result.plot}")
    if result.skipped_backward:
        print(f"  skipped zero-advantage backward passes: {result.skipped_backward}")
    return 0
