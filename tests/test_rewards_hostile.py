"""Every reward on hostile completions: floats out, no exceptions, bounded work."""

from __future__ import annotations

import pytest

from sqlgrpo.rewards import build_profile

CONTEXT = "CREATE TABLE t (id INTEGER, name TEXT); INSERT INTO t VALUES (1, 'a');"
HOSTILE = [
    "<reasoning>" + "word " * 200_000 + "</reasoning><sql>SELECT id FROM t</sql>",  # ~1 MB
    "<reasoning>" * 50_000 + "</reasoning>" * 50_000 + "<sql>" * 50_000,
    "<reasoning>\x00\ud800 first then table</reasoning><sql>SELECT '\ud800\x00'</sql>",
    "<reasoning>r</reasoning><sql>" + "(" * 20_000 + "SELECT 1" + ")" * 20_000 + "</sql>",
    "<reasoning>r</reasoning><sql>SELECT 1; " + "SELECT 2; " * 10_000 + "</sql>",
    [{"role": "assistant", "content": None}],
    [
        {
            "role": "assistant",
            "content": [{"type": "image"}, {"type": "text", "text": "<sql>x</sql>"}],
        }
    ],
    "",
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("profile", ["spec", "strict"])
def test_every_reward_survives_hostile_completions(profile: str) -> None:
    n = len(HOSTILE)
    for func in build_profile(profile):
        got = func(["p"] * n, HOSTILE, sql=["SELECT id FROM t"] * n, sql_context=[CONTEXT] * n)
        assert len(got) == n
        assert all(isinstance(x, float) and 0.0 <= x <= func.weight for x in got), (func, got)
