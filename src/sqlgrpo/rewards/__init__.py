"""The SPEC's four rewards (plus a strict format variant), ready for TRL's GRPOTrainer.

Each public function name below is a picklable reward object with the SPEC's default weight;
``build_reward`` / ``build_profile`` / ``build_rewards`` make configured ones. See ``docs/rewards.md``.
"""

from sqlgrpo.rewards.base import Reward, completion_text
from sqlgrpo.rewards.complexity import ComplexityReward
from sqlgrpo.rewards.execution import ExecutionReward
from sqlgrpo.rewards.format import FormatReward
from sqlgrpo.rewards.reasoning import ReasoningReward
from sqlgrpo.rewards.registry import (
    REWARD_PROFILES,
    REWARDS,
    build_profile,
    build_reward,
    build_rewards,
)

soft_format_reward_func = FormatReward()
strict_format_reward_func = FormatReward(strict=True)
complexity_reward = ComplexityReward()
reasoning_quality_reward = ReasoningReward()
execute_query_reward_func = ExecutionReward()

__all__ = [
    "REWARDS",
    "REWARD_PROFILES",
    "ComplexityReward",
    "ExecutionReward",
    "FormatReward",
    "ReasoningReward",
    "Reward",
    "build_profile",
    "build_reward",
    "build_rewards",
    "completion_text",
    "complexity_reward",
    "execute_query_reward_func",
    "reasoning_quality_reward",
    "soft_format_reward_func",
    "strict_format_reward_func",
]
