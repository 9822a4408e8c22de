"""The report: self-contained HTML with inlined plots and tables, a Markdown twin, and
(when Chromium is installed) a headless render."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sqlgrpo.cli import main
from sqlgrpo.evaluation.metrics import aggregate
from sqlgrpo.evaluation.report import ReportConfig, build_report, reward_curves

FIXTURES = Path(__file__).parent / "fixtures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _eval_dir(path: Path, predictions: Path, rule: str = "seed") -> Path:
    path.mkdir(parents=True)
    shutil.copy(predictions, path / "predictions.jsonl")
    records = [json.loads(line) for line in predictions.open()]
    metrics = aggregate(records) | {"compare_rule": rule}
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "eval_run", run)
    _eval_dir(run / "eval", FIXTURES / "eval_predictions.jsonl")
    return run


@pytest.fixture
def baseline_dir(tmp_path: Path) -> Path:
    return _eval_dir(tmp_path / "base", FIXTURES / "eval_predictions_baseline.jsonl")


def _images(page: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    ]


def test_reward_curves_read_trl_keys() -> None:
    rows = [
        json.loads(line)
        for line in (FIXTURES / "eval_run" / "metrics.jsonl").open()
        if line.endswith("}\n")
    ]
    curves = reward_curves(rows)
    assert set(curves) == {
        "soft_format_reward_func",
        "execute_query_reward_func",
        "reasoning_quality_reward",
        "complexity_reward",
        "reward (total)",
    }
    assert len(curves["complexity_reward"]) == 20
    assert curves["soft_format_reward_func"][0] == (
        1.0,
        rows[0]["rewards/soft_format_reward_func/mean"],
    )


def test_report_with_baseline(run_dir: Path, baseline_dir: Path) -> None:
    paths = build_report(ReportConfig(run_dir=str(run_dir), baseline_dir=str(baseline_dir)))
    page = paths.html.read_text()
    images = _images(page)
    # headline + reward curves + tiers by complexity + by gold kind
    assert len(images) == 4
    assert all(img.startswith(PNG_MAGIC) for img in images)
    assert "<table>" in page and "execution accuracy (strict &lt;sql&gt;)" in page
    # headline values of both evaluations are in the table (run: 4/6, baseline: 3/6)
    assert "<td>0.667</td>" in page and "<td>0.500</td>" in page
    # paired comparison: gained p1, p2; lost p3; McNemar exact p for 2 vs 1 is 1.0
    assert "<td>gained (wrong → right)</td><td>2</td>" in page
    assert "<td>lost (right → wrong)</td><td>1</td>" in page
    assert "<td>McNemar exact p-value (two-sided)</td><td>1</td>" in page
    assert "1 unreadable line(s) in metrics.jsonl skipped (lines [21])" in page
    assert "Sample completions" in page and "How many vessels are there?" in page
    assert "src='http" not in page and "<script" not in page  # self-contained
    md = paths.markdown.read_text()
    assert "| execution accuracy (strict <sql>) |" in md
    for img in paths.images:
        assert img.read_bytes().startswith(PNG_MAGIC)
        assert f"](report_files/{img.name})" in md


def test_report_escapes_hostile_output(run_dir: Path) -> None:
    pred = run_dir / "eval" / "predictions.jsonl"
    records = [json.loads(line) for line in pred.open()]
    records[0]["raw_output"] = "<script>alert(1)</script><sql>SELECT 1</sql>"
    records[0]["match"] = True
    pred.write_text("".join(json.dumps(r) + "\n" for r in records))
    page = build_report(ReportConfig(run_dir=str(run_dir))).html.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_report_includes_judge_summary(run_dir: Path) -> None:
    summary = {
        "n": 6,
        "n_scored": 5,
        "n_errors": 1,
        "n_unparsed": 0,
        "dimensions": {
            "sql": {
                "n_scored": 5,
                "count_4_5": 4,
                "count_5": 2,
                "mean": 4.0,
                "missing": 0,
                "malformed": 0,
            }
        },
        "overall_ge_4": {"count": 4, "of": 5, "share": 0.8},
        "error_types": {"none": 4, "logic": 1},
        "sql_score_vs_execution": {"rate": 0.8, "n": 5, "judge_high_no_match": 1},
    }
    (run_dir / "eval" / "judge_summary.json").write_text(json.dumps(summary))
    page = build_report(ReportConfig(run_dir=str(run_dir))).html.read_text()
    assert "LLM judge" in page
    assert "4 / 5 (0.800)" in page and "logic: 1, none: 4" in page


def test_report_training_only_uses_completions(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "eval_run", run)
    (run / "completions.jsonl").write_text(
        json.dumps(
            {
                "step": 3,
                "completion": "<reasoning>r</reasoning><sql>SELECT 2</sql>",
                "rewards": {"soft_format_reward_func": 1.0},
            }
        )
        + "\n"
    )
    paths = build_report(ReportConfig(run_dir=str(run), out_dir=str(tmp_path / "out")))
    page = paths.html.read_text()
    assert len(_images(page)) == 1
    assert "soft_format_reward_func = 1.000" in page
    assert paths.html.parent == tmp_path / "out"


def test_report_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        build_report(ReportConfig(run_dir=str(tmp_path / "missing")))
    with pytest.raises(FileNotFoundError, match="nothing to report"):
        build_report(ReportConfig(run_dir=str(tmp_path)))


def test_cli_report(run_dir: Path, baseline_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_dir), "--baseline", str(baseline_dir)]) == 0
    out = capsys.readouterr().out
    assert "report.html" in out and (run_dir / "report.md").exists()


def test_renders_in_headless_chromium(run_dir: Path, baseline_dir: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip(
            "chromium not installed (apt-get install chromium) - headless render not checked"
        )
    paths = build_report(ReportConfig(run_dir=str(run_dir), baseline_dir=str(baseline_dir)))
    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-quic",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1200,2000",
                paths.html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    from matplotlib.image import imread

    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    inked = (pixels.min(axis=2) < 0.9).mean()  # share of non-white pixels
    assert inked > 0.02, "the page rendered (nearly) blank"


def test_report_baseline_without_shared_ids(run_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    rows = [
        json.loads(line) | {"id": "x" + json.loads(line)["id"]}
        for line in (FIXTURES / "eval_predictions.jsonl").open()
    ]
    other.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = _eval_dir(tmp_path / "otherbase", other)
    page = build_report(ReportConfig(run_dir=str(run_dir), baseline_dir=str(base))).html.read_text()
    assert "share no example ids" in page and "McNemar exact p-value" not in page
    headline = page.split("<h2>", 2)[1]
    assert "<td>no shared ids</td>" in headline
    assert "<td>McNemar p → GRPO</td><td>–</td><td>–</td>" in headline


def test_report_with_two_baselines(run_dir: Path, baseline_dir: Path, tmp_path: Path) -> None:
    """Base and warm-up side by side with the trained model: one paired table per baseline."""
    warmup = _eval_dir(tmp_path / "warmup", FIXTURES / "eval_predictions_baseline.jsonl")
    page = build_report(
        ReportConfig(run_dir=str(run_dir), baseline_dir=[str(baseline_dir), str(warmup)])
    ).html.read_text()
    # columns named by role: baselines by their folders, the run's own evaluation as GRPO
    assert "<th>base [rule seed]</th><th>warmup [rule seed]</th><th>GRPO [rule seed]</th>" in page
    assert page.count("McNemar exact p-value") == 2
    assert "Paired comparison (same examples): warmup vs GRPO" in page


def test_report_with_a_second_split(run_dir: Path, baseline_dir: Path, tmp_path: Path) -> None:
    """A group on another split gets its own metrics table and paired comparisons, titled."""
    from sqlgrpo.evaluation.report import EvalGroup

    held = [
        _eval_dir(tmp_path / "held" / name, FIXTURES / predictions)
        for name, predictions in (
            ("heldout_base", "eval_predictions_baseline.jsonl"),
            ("heldout_grpo", "eval_predictions.jsonl"),
        )
    ]
    group = EvalGroup("held-out rows", tuple(str(d) for d in held))
    md = build_report(
        ReportConfig(
            run_dir=str(run_dir), baseline_dir=str(baseline_dir), split="test", groups=[group]
        )
    ).markdown.read_text()
    assert "## test: Metrics" in md and "## held-out rows: Metrics" in md
    assert "## held-out rows: Paired comparison (same examples)" in md
    assert md.count("McNemar exact p-value") == 2
    # the group's table names its folders and carries their numbers (run 4/6, baseline 3/6)
    held_table = md.split("## held-out rows: Metrics", 1)[1].split("##", 1)[0]
    assert "heldout_base" in held_table and "heldout_grpo" in held_table
    assert "0.667" in held_table and "0.5" in held_table


def test_cli_report_group_spelling(run_dir: Path, baseline_dir: Path, tmp_path: Path) -> None:
    from sqlgrpo.evaluation.report import EvalGroup

    assert EvalGroup.parse("held out=a,b,c") == EvalGroup("held out", ("a", "b", "c"))
    for bad in ("no-equals", "=a,b", "title=a"):
        with pytest.raises(ValueError, match="TITLE=DIR,DIR"):
            EvalGroup.parse(bad)
    group = f"again={baseline_dir},{run_dir / 'eval'}"
    assert main(["report", str(run_dir), "--baseline", str(baseline_dir), "--group", group]) == 0
    assert "## again: Metrics" in (run_dir / "report.md").read_text()
    assert main(["report", str(run_dir), "--group", "again=" + str(baseline_dir)]) == 1


def test_cli_report_repeated_baseline(run_dir: Path, baseline_dir: Path) -> None:
    args = [
        "report",
        str(run_dir),
        "--baseline",
        str(baseline_dir),
        "--baseline",
        str(baseline_dir),
    ]
    assert main(args) == 0


def test_rolling_mean_smooths_the_raw_points() -> None:
    from sqlgrpo.evaluation.report import rolling_mean, smoothing_window

    assert rolling_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert rolling_mean([0.0, 1.0, 0.0, 1.0, 0.0, 1.0], 3) == pytest.approx(
        [0.0, 0.5, 1 / 3, 2 / 3, 1 / 3, 2 / 3]
    )
    assert (
        smoothing_window(20) == 3 and smoothing_window(250) == 25 and smoothing_window(1000) == 25
    )
    with pytest.raises(ValueError):
        rolling_mean([1.0], 0)


def test_report_names_the_rule_and_shows_judge_agreement(run_dir: Path) -> None:
    from sqlgrpo.evaluation.agreement import judge_execution_agreement

    records = [json.loads(line) for line in (run_dir / "eval" / "predictions.jsonl").open()]
    metrics_path = run_dir / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) | {"compare_rule": "spider_official"}
    metrics_path.write_text(json.dumps(metrics))
    # A scripted judge that praises every output: the wrong ones are "praised but wrong".
    judgements = [
        {
            "id": r["id"],
            "match": r["match"],
            "status": "ok",
            "scores": {"sql": 5.0},
            "explanation": f"fine {r['id']}",
        }
        for r in records
    ]
    agreement = judge_execution_agreement(judgements)
    summary = {"n": len(records), "n_scored": len(records), "sql_score_vs_execution": agreement}
    (run_dir / "eval" / "judge_summary.json").write_text(json.dumps(summary))
    page = build_report(ReportConfig(run_dir=str(run_dir))).html.read_text()
    assert "[rule spider_official]" in page and "<td>comparison rule</td>" in page
    wrong = [r for r in records if not r["match"]]
    assert f"{len(wrong)} output(s) the judge scored &gt;= 4 whose SQL returns the wrong" in page
    for r in wrong:
        assert f"fine {r['id']}" in page
    right = len(records) - len(wrong)
    assert f"<tr><td>&gt;= 4</td><td>{right}</td><td>{len(wrong)}</td></tr>" in page


def test_report_shows_voting_and_bird_rows(run_dir: Path) -> None:
    metrics_path = run_dir / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) | {
        "compare_rule": "spider_official",
        "settings": {"test_suite": True},
        "voting": {
            "method": "execution",
            "n": 6,
            "n_samples": 4,
            "greedy_execution_accuracy": 0.5,
            "voted_execution_accuracy": 0.625,
            "pass_at_n": 0.875,
        },
        "bird": {"n": 6, "ex": 50.0, "soft_f1": 61.25, "r_ves": 48.5, "n_timed": 6},
    }
    metrics_path.write_text(json.dumps(metrics))
    page = build_report(ReportConfig(run_dir=str(run_dir))).html.read_text()
    assert "<td>voted execution accuracy (execution vote)</td><td>0.625</td>" in page
    assert "<td>pass@N of the voted samples</td><td>0.875</td>" in page
    assert "<td>BIRD Soft-F1 (0-100)</td><td>61.250</td>" in page
    assert "<td>BIRD R-VES (0-100)</td><td>48.500</td>" in page
    assert "spider_official + test suite" in page


def _paired_eval(path: Path, right: int, n: int = 20, strict: bool = True) -> Path:
    """An evaluation of ``n`` examples (ids q0..) whose first ``right`` are correct."""
    rows = [
        {
            "id": f"q{i}",
            "question": f"question {i}",
            "match": i < right,
            "match_lenient": i < right,
            "format_ok": strict,
            "format_strict_ok": strict,
            "executed": i < right + 2,
            "gold_kind": "select_rows",
        }
        for i in range(n)
    ]
    predictions = path.parent / f"{path.name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return _eval_dir(path, predictions)


def _demo_layout(root: Path) -> dict[str, Path]:
    """The demo's folders: base 0/20, warm-up 10/20, GRPO 20/20 on the test split; 1, 2, 4 of 6
    on the held-out rows; a training run folder around the GRPO evaluations."""
    train = root / "runs" / "demo" / "train"
    shutil.copytree(FIXTURES / "eval_run", train)
    (train / "config.yaml").write_text("model_name_or_path: tiny\n")
    return {
        "train": train,
        "base": _paired_eval(root / "runs" / "demo" / "eval_base", 0, strict=False),
        "warm-up": _paired_eval(root / "runs" / "demo" / "eval_warmup", 10),
        "GRPO": _paired_eval(train / "eval_grpo", 20),
        "held base": _paired_eval(root / "runs" / "demo" / "heldout_base", 1, n=6),
        "held warm-up": _paired_eval(root / "runs" / "demo" / "heldout_warmup", 2, n=6),
        "held GRPO": _paired_eval(train / "heldout_grpo", 4, n=6),
    }


def _demo_config(f: dict[str, Path]) -> ReportConfig:
    """The report configuration the demo builds (role names as labels)."""
    from sqlgrpo.evaluation.report import EvalGroup

    held = (f["held base"], f["held warm-up"], f["held GRPO"])
    labels = {str(f[n]): n for n in ("base", "warm-up", "GRPO")}
    labels |= {str(d): n for d, n in zip(held, ("base", "warm-up", "GRPO"), strict=True)}
    return ReportConfig(
        run_dir=str(f["train"]),
        baseline_dir=[str(f["base"]), str(f["warm-up"])],
        eval_dir=str(f["GRPO"]),
        split="test rows",
        groups=[EvalGroup("held-out rows", tuple(str(d) for d in held))],
        labels=labels,
    )


def _section(md: str, title_start: str) -> str:
    return next(s for s in md.split("\n## ") if s.startswith(title_start))


def test_headline_leads_with_roles_and_the_consoles_p(tmp_path: Path) -> None:
    from sqlgrpo.evaluation.metrics import compare_runs, format_p_value, mcnemar_exact_p

    f = _demo_layout(tmp_path)
    paths = build_report(_demo_config(f))
    md = paths.markdown.read_text()
    titles = [s.split("\n", 1)[0] for s in md.split("\n## ")[1:]]
    # the answer first, then the curves, then the detailed tables
    assert titles[0] == "Headline: base / warm-up / GRPO"
    assert titles[1] == "Training reward curves"
    assert titles.index("test rows: Metrics") > 1
    headline = _section(md, "Headline")
    assert "| split | metric | base | warm-up | GRPO |" in headline
    assert "| test rows | examples | 20 | 20 | 20 |" in headline
    assert "|  | strict format | 0.000 | 1.000 | 1.000 |" in headline
    assert "|  | EX [rule seed] | 0.000 | 0.500 | 1.000 |" in headline
    # GRPO gained all 20 of base's misses and 10 of warm-up's, lost none
    assert "|  | gained / lost → GRPO | +20 / -0 | +10 / -0 | – |" in headline
    p_base, p_warm = mcnemar_exact_p(20, 0), mcnemar_exact_p(10, 0)
    assert format_p_value(p_base) == "1.91e-06"  # 2 / 2**20: never printed as 0.000
    assert f"|  | McNemar p → GRPO | {format_p_value(p_base)} | {format_p_value(p_warm)} | – |" in (
        headline
    )
    # the held-out split's rows sit in the same table, under the same role columns
    held = compare_runs(f["held base"], f["held GRPO"])
    assert "| held-out rows | examples | 6 | 6 | 6 |" in headline
    assert f"|  | gained / lost → GRPO | +{held.gained} / -{held.lost} | +2 / -0 | – |" in headline
    # the headline figure is the page's first image; detailed tables keep the role names
    page = paths.html.read_text()
    first_img = _images(page)[0]
    assert first_img.startswith(PNG_MAGIC)
    assert page.index("<img") < page.index("Training reward curves")
    assert "(same examples): base vs GRPO" in md and "(same examples): warm-up vs GRPO" in md
    assert "| metric | base [rule seed] | warm-up [rule seed] | GRPO [rule seed] |" in md
    detailed = _section(md, "test rows: Paired comparison (same examples): base vs GRPO")
    assert f"| McNemar exact p-value (two-sided) | {format_p_value(p_base)} |" in detailed


def test_report_rebuilds_the_recorded_comparisons_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo records its comparisons relative to the run folder; `sqlgrpo report RUN_DIR`
    run from elsewhere, with the run named by another path, shows the same headline."""
    from sqlgrpo.evaluation.report import save_report_inputs

    monkeypatch.chdir(tmp_path)
    f = _demo_layout(Path("."))  # relative paths, as the demo gets them
    cfg = _demo_config(f)
    first = build_report(cfg).markdown.read_text()
    save_report_inputs(cfg)
    (f["train"] / "report.md").unlink()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = tmp_path / "runs" / "demo" / "train"
    assert main(["report", str(run)]) == 0
    assert "report_inputs.json" in capsys.readouterr().out
    again = (run / "report.md").read_text()
    assert _section(again, "Headline") == _section(first, "Headline")

    # --label renames a column; the recorded names stay for the others
    label = f"{tmp_path / 'runs' / 'demo' / 'eval_base'}=SmolLM2 base"
    assert main(["report", str(run), "--label", label]) == 0
    headline = _section((run / "report.md").read_text(), "Headline")
    assert "| split | metric | SmolLM2 base | warm-up | GRPO | base |" in headline

    # --baseline replaces the recorded comparisons: folders are named by their names
    assert main(["report", str(run), "--baseline", str(tmp_path / f["warm-up"])]) == 0
    headline = _section((run / "report.md").read_text(), "Headline")
    assert "| split | metric | eval_warmup | GRPO |" in headline


def test_cli_report_bad_label_is_a_clear_error(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(run_dir), "--label", "no-name"]) == 1
    assert "expected DIR=NAME" in capsys.readouterr().err
