"""Data: one ``Sample`` record from every source, schema text, prompts, validation.

Sources: the bundled offline dataset, gretel-format files and the gretel hub dataset,
Spider- and BIRD-layout folders (see ``docs/data.md``).
"""

from sqlgrpo.data.loaders import BUNDLED_DIR, GRETEL_HUB_ID, load_samples
from sqlgrpo.data.prompts import (
    DEFAULT_SYSTEM_PROMPT,
    OBSERVATION_INSTRUCTION,
    ONE_SHOT_EXAMPLE,
    OverBudget,
    PromptConfig,
    build_messages,
    check_prompt_budget,
    observation_message,
    observation_turn,
    on_engine,
    prompt_tokens,
    render_prompt,
    render_sample_prompt,
    trainer_prompt,
    user_message,
)
from sqlgrpo.data.sample import DataError, LoadResult, Sample, SkippedRow
from sqlgrpo.data.schema import create_statements, sqlite_schema
from sqlgrpo.data.validate import Failure, ValidationReport, validate_samples

__all__ = [
    "BUNDLED_DIR",
    "DEFAULT_SYSTEM_PROMPT",
    "GRETEL_HUB_ID",
    "OBSERVATION_INSTRUCTION",
    "ONE_SHOT_EXAMPLE",
    "DataError",
    "Failure",
    "LoadResult",
    "OverBudget",
    "PromptConfig",
    "Sample",
    "SkippedRow",
    "ValidationReport",
    "build_messages",
    "check_prompt_budget",
    "create_statements",
    "load_samples",
    "observation_message",
    "observation_turn",
    "on_engine",
    "prompt_tokens",
    "render_prompt",
    "render_sample_prompt",
    "trainer_prompt",
    "sqlite_schema",
    "user_message",
    "validate_samples",
]
