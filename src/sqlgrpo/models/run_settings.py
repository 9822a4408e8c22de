"""The prompt a model was trained with, read back from its run folder (or an export of it).

Training writes ``RUN_DIR/config.yaml``; ``sqlgrpo export`` writes the same settings to
``OUT/sqlgrpo_prompt.json``. Evaluation, ``sqlgrpo ask`` and export read them here, so a
model is always prompted the way it was trained: system prompt, one-shot example,
prefill, example rows per table, prompt budget and completion budget. A value given
explicitly (a command-line flag) overrides the run's; a model with no run settings
(an alias, a hub id) gets the defaults of :class:`sqlgrpo.data.PromptConfig`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

RUN_CONFIG_FILE = "config.yaml"
EXPORT_SETTINGS_FILE = "sqlgrpo_prompt.json"
# folders inside a run folder that hold a model trained with the run's prompt
_RUN_SUBFOLDERS = ("model", "adapter")
#: Completion budget for a model whose run records none (an alias, a hub id).
DEFAULT_MAX_NEW_TOKENS = 512


@dataclass(frozen=True)
class PromptSettings:
    """How a model's prompts are built and how long its completions may be.

    ``None`` means "not set": the :class:`~sqlgrpo.data.PromptConfig` default applies.
    """

    system_prompt: str | None = None
    one_shot: bool | None = None
    prefill: str | None = None
    sample_rows: int | None = None
    max_prompt_tokens: int | None = None
    max_new_tokens: int | None = None  # training's max_completion_length

    def merged(self, overrides: PromptSettings) -> PromptSettings:
        """These settings with every field ``overrides`` sets replacing ours."""
        given = {k: v for k, v in asdict(overrides).items() if v is not None}
        return PromptSettings(**{**asdict(self), **given})

    def prompt_config(self) -> Any:
        """The :class:`~sqlgrpo.data.PromptConfig` these settings describe."""
        from sqlgrpo.data import PromptConfig

        kwargs = {
            k: v
            for k, v in asdict(self).items()
            if v is not None and k in {f.name for f in fields(PromptConfig)}
        }
        return PromptConfig(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields (``None`` kept: not set)."""
        return asdict(self)


@dataclass(frozen=True)
class ResolvedPrompt:
    """Prompt settings for one use of a model, and where each came from."""

    settings: PromptSettings
    source: str | None  # the run's config.yaml / export json, None when the model has none
    overridden: tuple[str, ...] = field(default=())  # fields given explicitly

    def record(self) -> dict[str, Any]:
        """What a metrics file records about the prompt used."""
        return {
            "source": self.source,
            "overridden": list(self.overridden),
            **self.settings.to_dict(),
        }


def settings_file(model: str | Path) -> Path | None:
    """The file holding a model's training prompt settings, or None.

    A run folder (or its ``model/``, ``adapter/``, ``warmup/model``, ``checkpoint-N``
    folder) has ``config.yaml``; an exported folder has ``sqlgrpo_prompt.json``, also
    found for a ``.gguf`` file inside it.
    """
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            return None
        path = path.parent
    if not path.is_dir():
        return None
    candidates = [path / EXPORT_SETTINGS_FILE, path / RUN_CONFIG_FILE]
    if path.name in _RUN_SUBFOLDERS or path.name.startswith("checkpoint-"):
        candidates.append(path.parent / RUN_CONFIG_FILE)
        if path.parent.name == "warmup":  # RUN_DIR/warmup/model
            candidates.append(path.parent.parent / RUN_CONFIG_FILE)
    return next((c for c in candidates if c.is_file()), None)


def read_settings_file(path: str | Path) -> PromptSettings:
    """Prompt settings from a run's ``config.yaml`` or an export's ``sqlgrpo_prompt.json``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the run's prompt settings ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    try:
        return settings_from_mapping(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad prompt setting ({exc})") from exc


def settings_from_mapping(data: dict[str, Any]) -> PromptSettings:
    """Prompt settings from a flat run configuration (``RunConfig.recipe_dict()``, a run's
    ``config.yaml``, an export's json); ``max_completion_length`` is the completion budget."""
    budget = data.get("max_new_tokens", data.get("max_completion_length"))
    return PromptSettings(
        system_prompt=_opt(data, "system_prompt", str),
        one_shot=_opt(data, "one_shot", bool),
        prefill=_opt(data, "prefill", str),
        sample_rows=_opt(data, "sample_rows", int),
        max_prompt_tokens=_opt(data, "max_prompt_tokens", int),
        max_new_tokens=int(budget) if budget is not None else None,
    )


def _opt(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if kind is bool and not isinstance(value, bool):
        raise TypeError(f"{key} must be true or false, got {value!r}")
    return kind(value)


def resolve_prompt(model: str | Path, overrides: PromptSettings | None = None) -> ResolvedPrompt:
    """The prompt settings to use with ``model``: its run's, with ``overrides`` applied."""
    overrides = overrides or PromptSettings()
    found = settings_file(model)
    base = read_settings_file(found) if found is not None else PromptSettings()
    given = tuple(k for k, v in asdict(overrides).items() if v is not None)
    if found is not None:
        logger.info("prompt settings of %s from %s (overridden: %s)", model, found, given or "none")
    return ResolvedPrompt(base.merged(overrides), str(found) if found else None, given)


def write_export_settings(settings: PromptSettings, out_dir: str | Path, **extra: Any) -> Path:
    """Write ``OUT/sqlgrpo_prompt.json``: the settings, the full system prompt as the model
    saw it (one-shot example included) and any ``extra`` keys."""
    cfg = settings.prompt_config()
    record = {**settings.to_dict(), "full_system_prompt": cfg.full_system_prompt(), **extra}
    record["system_prompt"] = cfg.system_prompt
    path = Path(out_dir) / EXPORT_SETTINGS_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path
