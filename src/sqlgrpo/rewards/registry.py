"""Rewards by name, and named profiles (ordered reward lists) for training and scoring.

Profiles:

* ``spec``: SPEC section 3's list and weights: soft format (1.0), execution (1.2), reasoning
  quality (0.7), complexity (0.6).
* ``strict``: strict format (1.0); execution (1.2) in strict mode: full weight only for a
  correct result under the comparison rule (DML by resulting state), 0 otherwise, and 0 for
  any completion that fails the strict format (format as a gate); reasoning quality (0.7) and
  complexity (0.6) as in ``spec``.
* ``spec_gated``: ``spec`` with the reasoning-quality reward paid only when the completion's
  SQL runs (``gate="executes"``): not in the SPEC; the remedy for a policy that games the
  reasoning reward with longer explanations while its SQL gets worse.
* ``strict_gated``: ``strict`` with the reasoning-quality reward paid only when the SQL is
  correct (``gate="correct"``): every reward but format and complexity then needs a right
  answer. Not in the SPEC.
* ``progress``: pays only for progress toward the right answer. Strict format (1.0);
  execution (1.2) with progress credit: 0 unless the completion passes the strict format,
  1 for a correct result, ``0.5 * similarity`` for a query whose result has the gold's columns
  and overlapping rows and takes no measured shortcut (bare SELECT, GROUP BY a key column),
  0 for anything else (running, a statement-type match, errors); reasoning quality (0.7) and
  complexity (0.6) multiplied by that credit (``gate="progress"``), so neither pays on its
  own. Not in the SPEC; built against the three hacks of docs/ablation.md sections 8-9.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from sqlgrpo.rewards.base import Reward
from sqlgrpo.rewards.complexity import ComplexityReward
from sqlgrpo.rewards.execution import ExecutionReward
from sqlgrpo.rewards.format import FormatReward
from sqlgrpo.rewards.reasoning import ReasoningReward

#: name -> (class, fixed constructor options). The SPEC's function names are aliases.
REWARDS: dict[str, tuple[type[Reward], dict[str, Any]]] = {
    "soft_format": (FormatReward, {"strict": False}),
    "strict_format": (FormatReward, {"strict": True}),
    "complexity": (ComplexityReward, {}),
    "reasoning_quality": (ReasoningReward, {}),
    "execution": (ExecutionReward, {}),
}
REWARD_ALIASES: dict[str, str] = {
    "soft_format_reward_func": "soft_format",
    "strict_format_reward_func": "strict_format",
    "complexity_reward": "complexity",
    "reasoning_quality_reward": "reasoning_quality",
    "execute_query_reward_func": "execution",
    "sql_correctness": "execution",
    "format": "soft_format",
    "reasoning": "reasoning_quality",
}
#: profile -> ordered (reward name, fixed options).
REWARD_PROFILES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "spec": [
        ("soft_format", {}),
        ("execution", {}),
        ("reasoning_quality", {}),
        ("complexity", {}),
    ],
    "strict": [
        ("strict_format", {}),
        ("execution", {"strict": True}),
        ("reasoning_quality", {}),
        ("complexity", {}),
    ],
    "spec_gated": [
        ("soft_format", {}),
        ("execution", {}),
        ("reasoning_quality", {"gate": "executes"}),
        ("complexity", {}),
    ],
    "strict_gated": [
        ("strict_format", {}),
        ("execution", {"strict": True}),
        ("reasoning_quality", {"gate": "correct"}),
        ("complexity", {}),
    ],
    "progress": [
        ("strict_format", {}),
        ("execution", {"progress": True}),
        ("reasoning_quality", {"gate": "progress"}),
        ("complexity", {"gate": "progress"}),
    ],
}


def _canonical(name: str) -> str:
    """Registry key for ``name`` or one of its aliases; ``ValueError`` listing the choices."""
    key = REWARD_ALIASES.get(name, name)
    if key not in REWARDS:
        choices = ", ".join(sorted([*REWARDS, *REWARD_ALIASES]))
        raise ValueError(f"unknown reward {name!r}; choose from {choices}")
    return key


def _accepted(cls: type[Reward]) -> set[str]:
    """Constructor keyword names of a reward class."""
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def build_reward(
    name: str, /, weight: float | None = None, **options: Any
) -> Callable[..., list[float]]:
    """A reward object by registry name (or alias) with an optional weight and options.

    ``options`` are constructor keywords of the reward class (``prefill``, ``rule``,
    ``state_match``, ``strict``, ``progress``, ``gate``, ``limits``, ``name``); an unknown one
    raises ``ValueError``.
    """
    cls, fixed = REWARDS[_canonical(name)]
    unknown = set(options) - _accepted(cls)
    if unknown:
        raise ValueError(
            f"reward {name!r} does not take option(s) {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(sorted(_accepted(cls) - {'weight'}))}"
        )
    return cls(weight=weight, **{**fixed, **options})


def build_profile(
    name: str,
    prefill: str = "",
    weights: dict[str, float] | None = None,
    **options: Any,
) -> list[Callable[..., list[float]]]:
    """The rewards of profile ``name``, in order, each with ``prefill``.

    ``weights`` overrides weights by reward name or alias. Each of ``options`` goes to every
    reward of the profile that accepts it (e.g. ``rule``, ``limits``, ``state_match`` to the
    execution reward); an option no reward accepts raises ``ValueError``.
    """
    if name not in REWARD_PROFILES:
        raise ValueError(
            f"unknown reward profile {name!r}; choose from {', '.join(REWARD_PROFILES)}"
        )
    overrides = {_canonical(k): float(v) for k, v in (weights or {}).items()}
    entries = REWARD_PROFILES[name]
    unused = set(overrides) - {reward for reward, _ in entries}
    if unused:
        raise ValueError(f"profile {name!r} has no reward(s) {', '.join(sorted(unused))} to weight")
    rewards, used = _route(
        [(reward_name, overrides.get(reward_name), fixed) for reward_name, fixed in entries],
        prefill,
        options,
    )
    unknown = set(options) - used
    if unknown:
        raise ValueError(
            f"no reward in profile {name!r} takes option(s) {', '.join(sorted(unknown))}"
        )
    return share_checker(rewards)


def build_rewards(
    names: list[str],
    weights: list[float | None] | None = None,
    prefill: str = "",
    **options: Any,
) -> list[Callable[..., list[float]]]:
    """Rewards by an explicit list of names (or aliases), in order, each with ``prefill``.

    ``weights`` (one per name, ``None`` = the reward's default) must match ``names`` in
    length. Each of ``options`` goes to every listed reward that accepts it (the execution
    options to the execution reward); options no listed reward takes are not an error here,
    since a list need not contain every kind of reward.
    """
    weights = list(weights) if weights else [None] * len(names)
    if len(weights) != len(names):
        raise ValueError(f"{len(weights)} weight(s) for {len(names)} reward(s)")
    rewards, _ = _route([(n, w, {}) for n, w in zip(names, weights, strict=True)], prefill, options)
    return share_checker(rewards)


def execution_checks(rewards: list[Callable[..., list[float]]]) -> list[ExecutionReward]:
    """The execution checks among ``rewards``: each execution reward, then the inner check of
    each gated reward (``.execution``)."""
    executions = [r for r in rewards if isinstance(r, ExecutionReward)]
    return executions + [r.execution for r in rewards if getattr(r, "execution", None) is not None]


def share_checker(
    rewards: list[Callable[..., list[float]]], checker: Any = None
) -> list[Callable[..., list[float]]]:
    """Give every execution check among ``rewards`` one checker (its database and gold-result
    caches): ``checker`` when given, else the first execution reward's. Returns ``rewards``."""
    executions = execution_checks(rewards)
    if checker is None and executions:
        checker = executions[0].checker
    for execution in executions:
        execution.checker = checker
    return rewards


def _route(
    entries: list[tuple[str, float | None, dict[str, Any]]],
    prefill: str,
    options: dict[str, Any],
) -> tuple[list[Callable[..., list[float]]], set[str]]:
    """Build each (name, weight, fixed options) with the ``options`` its class accepts.

    Returns the rewards and the option names some reward took.
    """
    used: set[str] = set()
    rewards = []
    for reward_name, weight, fixed in entries:
        cls = REWARDS[_canonical(reward_name)][0]
        accepted = _accepted(cls)
        extra = {k: v for k, v in options.items() if k in accepted and k not in fixed}
        used |= set(extra)
        rewards.append(build_reward(reward_name, weight, prefill=prefill, **fixed, **extra))
    return rewards, used
