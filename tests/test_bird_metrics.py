"""BIRD Soft-F1 and R-VES against the official mini-dev scripts' recorded outputs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlgrpo.sql.bird_metrics import (
    OFFICIAL_TIMEOUT_S,
    TimingConfig,
    clean_ratios,
    r_ves,
    rves_reward,
    soft_f1,
    time_ratio,
)
from sqlgrpo.sql.database import connect_read_only

OFFICIAL = json.loads(
    (Path(__file__).parent / "fixtures" / "bird_metrics_official.json").read_text()
)


def _rows(rows: list[list]) -> list[tuple]:
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("case", OFFICIAL["soft_f1_rows"], ids=lambda c: c["name"])
def test_soft_f1_on_rows(case: dict) -> None:
    got = soft_f1(_rows(case["pred"]), _rows(case["gold"]))
    assert got == pytest.approx(case["official_soft_f1"], abs=1e-12)


def test_soft_f1_of_a_failed_prediction_is_zero() -> None:
    assert soft_f1(None, [(1,)]) == 0.0


def test_soft_f1_and_ex_on_real_sql(spider_subset_path: Path) -> None:
    """Per question, on the Spider subset databases the official outputs came from."""
    got_f1, got_ex = [], []
    for case in OFFICIAL["soft_f1_sql"]:
        db = spider_subset_path / "database" / case["db_id"] / f"{case['db_id']}.sqlite"
        conn = connect_read_only(db)
        gold = conn.execute(case["gold"]).fetchall()
        try:
            pred = conn.execute(case["pred"]).fetchall()
        except sqlite3.Error:
            pred = None
        conn.close()
        got_f1.append(soft_f1(pred, gold))
        got_ex.append(int(pred is not None and set(pred) == set(gold)))
    assert got_f1 == pytest.approx([c["official_soft_f1"] for c in OFFICIAL["soft_f1_sql"]])
    assert got_ex == [c["official_ex"] for c in OFFICIAL["soft_f1_sql"]]


class ScriptedClock:
    """A clock under which run k (two readings each) lasts ``durations[k]`` seconds."""

    def __init__(self, durations: list[float]) -> None:
        readings, t = [], 1000.0
        for d in durations:
            readings += [t, t + d]
            t += d + 0.5
        self._it = iter(readings)

    def __call__(self) -> float:
        return next(self._it)


@pytest.fixture(scope="module")
def people_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bird") / "people.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(OFFICIAL["rves_context"])
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("case", OFFICIAL["rves_cases"], ids=lambda c: c["name"])
def test_rves_reward_with_scripted_timings(case: dict, people_db: Path) -> None:
    durations = case["durations"]
    cfg = TimingConfig(iterations=len(durations) // 2)
    ratio = time_ratio(case["pred"], case["gold"], people_db, cfg, timer=ScriptedClock(durations))
    assert rves_reward(ratio) == case["official_reward"]


def test_r_ves_total() -> None:
    total = OFFICIAL["rves_total"]
    assert r_ves(total["rewards"]) == pytest.approx(total["official_r_ves"])
    assert r_ves([]) is None


@pytest.mark.parametrize(
    ("ratio", "reward"),
    [(0, 0), (3.0, 1.25), (2.0, 1.25), (1.99, 1), (1.0, 1), (0.5, 0.75), (0.3, 0.5), (0.1, 0.25)],
)
def test_reward_buckets(ratio: float, reward: float) -> None:
    assert rves_reward(ratio) == reward


def test_clean_ratios_drops_outliers_and_equal_lists() -> None:
    ratios = [1.0] * 20 + [50.0]
    assert clean_ratios(ratios) == [1.0] * 20
    assert clean_ratios([2.0, 2.0]) == []  # std 0: nothing is strictly inside (officially too)


def test_real_timing_of_a_correct_prediction_scores(people_db: Path) -> None:
    ratio = time_ratio("SELECT name FROM people", "SELECT name FROM people", people_db)
    assert ratio > 0
    assert OFFICIAL_TIMEOUT_S == 30.0
    assert time_ratio("SELECT 1", "SELECT name FROM people", people_db) == 0.0
