"""Truncated importance sampling between the learner and a sampler that is not bit-exact with
it (llama.cpp here, vLLM in TRL): the weight each completion token's loss term is multiplied
by, with TRL's four modes and bounds (GRPOConfig's ``vllm_importance_sampling_*`` settings)."""

from __future__ import annotations

import math
from typing import Any

IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def importance_weights(
    learner_logps: Any,
    sampler_logps: Any,
    mask: Any,
    mode: str = "sequence_mask",
    clip_min: float | None = None,
    clip_max: float | None = 3.0,
) -> Any:
    """``exp(learner - sampler)`` per token (``token_*``) or per completion, summed over its
    tokens (``sequence_*``; shape (B, 1)); ``*_truncate`` clamps it to [clip_min, clip_max],
    ``*_mask`` sets it to 0 outside that range. Tokens outside ``mask`` (padding) and tokens
    whose sampler log-probability is NaN contribute no correction."""
    import torch

    if mode not in IS_MODES:
        raise ValueError(f"importance sampling mode must be one of {IS_MODES}, got {mode!r}")
    diff = torch.nan_to_num((learner_logps - sampler_logps) * mask, nan=0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(dim=-1, keepdim=True)
    ratio = torch.exp(diff)
    low = -math.inf if clip_min is None else clip_min
    high = math.inf if clip_max is None else clip_max
    if mode.endswith("truncate"):
        return ratio.clamp(min=low, max=high)
    return ratio.masked_fill((ratio < low) | (ratio > high), 0.0)
