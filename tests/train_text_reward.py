"""`sqlgrpo train` with one more reward registered, ``text_checksum``: a deterministic score of
the completion's text that varies between the tiny random model's completions, so every GRPO
group has a spread of rewards, nonzero advantages and a real backward (the SQL rewards are
all 0 for a model that never writes the tags).

Run as a script, it is the ``sqlgrpo`` command line (``python tests/train_text_reward.py
train ...``), so it can be killed like a real run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from sqlgrpo.rewards.base import Reward
from sqlgrpo.rewards.registry import REWARDS


class TextChecksumReward(Reward):
    """``(sum of the completion's code points mod 101) / 100``, times the weight."""

    default_name = "text_checksum"

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float]:
        return [self.weight * (sum(map(ord, text)) % 101) / 100 for text in self.texts(completions)]


REWARDS.setdefault("text_checksum", (TextChecksumReward, {}))


if __name__ == "__main__":
    from sqlgrpo.cli import main

    sys.exit(main(sys.argv[1:]))
