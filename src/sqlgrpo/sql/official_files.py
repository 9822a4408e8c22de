"""Official-format Spider files scored with sqlgrpo's checker: a gold file
(``SQL<TAB>db_id`` a line) and a prediction file (``SQL`` a line), read as the official
evaluator reads them, each question judged on its database (and, for the test suite, on every
other database in its folder)."""

from __future__ import annotations

from pathlib import Path

from sqlgrpo.sql.execution import ExecutionChecker
from sqlgrpo.sql.sandbox import SandboxLimits
from sqlgrpo.sql.spider_official import OFFICIAL_TIMEOUT_S


def read_official_file(path: str | Path) -> list[list[str]]:
    """Lines of an official-format gold (``SQL<TAB>db_id``) or prediction (``SQL``) file,
    split on tabs after stripping, blank lines (session breaks) skipped, as the evaluator
    reads them."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip().split("\t") for line in lines if line.strip()]


def score_files(
    gold_file: str | Path,
    pred_file: str | Path,
    db_dir: str | Path,
    *,
    rule: str = "spider_official",
    test_suite: bool = True,
) -> list[bool]:
    """Per-question verdicts for official-format files: the i-th prediction line against the
    i-th gold line on ``db_dir/<db_id>/<db_id>.sqlite`` (and, with ``test_suite``, every
    other ``*.sqlite`` in that folder, as the evaluator does). Raises ``ValueError`` when the
    files hold different numbers of questions or a gold line has no database."""
    golds, preds = read_official_file(gold_file), read_official_file(pred_file)
    if len(golds) != len(preds):
        raise ValueError(
            f"{pred_file}: {len(preds)} predictions for {len(golds)} gold lines in {gold_file}"
        )
    # The evaluator fetches whole results and allows 60 s a statement: no row cap here either.
    limits = SandboxLimits(timeout_s=OFFICIAL_TIMEOUT_S, max_rows=100_000_000)
    checker = ExecutionChecker(rule, limits=limits, test_suite=test_suite)
    verdicts = []
    for number, (gold, pred) in enumerate(zip(golds, preds, strict=True), start=1):
        if len(gold) < 2:
            raise ValueError(f"{gold_file}: question {number} has no db_id after a tab")
        db_path = Path(db_dir) / gold[1] / f"{gold[1]}.sqlite"
        outcome = checker.check(pred[0], gold[0], db_path=str(db_path))
        verdicts.append(outcome.match)
    return verdicts
