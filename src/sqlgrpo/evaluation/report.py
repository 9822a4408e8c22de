"""Reports: a self-contained HTML page (PNG plots inlined as base64) and a Markdown twin.

Inputs, each optional but at least one required:
- a training run folder's ``metrics.jsonl`` (reward curves per component) and
  ``completions.jsonl`` (sample completions when there is no evaluation);
- an evaluation folder (``metrics.json`` + ``predictions.jsonl``): the run folder
  itself or its newest ``eval*`` subfolder, and optionally baselines to compare (the base
  and warm-up models) and groups of the same models on other splits;
- ``judge_summary.json`` beside the evaluation.

The page leads with the answer: one headline table and figure with every model (named by
role: ``base``, ``warm-up``, ``GRPO``; ``ReportConfig.labels`` names others) on every split,
strict format, executable rate and EX, with the examples the run's model gained and lost
against each other model and the McNemar p-value of that difference (printed by
:func:`~sqlgrpo.evaluation.metrics.format_p_value`, as the demo's console prints it). The
reward curves and the detailed tables follow. ``save_report_inputs`` records a report's
comparisons in the run folder (``report_inputs.json``, paths relative to it) so that
``sqlgrpo report RUN_DIR`` rebuilds the same page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlgrpo.data.jsonl import read_jsonl_lenient
from sqlgrpo.evaluation.metrics import PairedComparison, compare_runs, format_p_value
from sqlgrpo.evaluation.reward_curves import (  # noqa: F401 (rolling_mean, smoothing_window: report API)
    TOTAL,
    reward_curves_png,
    reward_series,
    rolling_mean,
    smoothing_window,
    training_curves,
)
from sqlgrpo.models.run_settings import RUN_CONFIG_FILE
from sqlgrpo.rewards.monitors import MONITORS

logger = logging.getLogger(__name__)

REPORT_INPUTS_FILE = "report_inputs.json"
#: The name of the run's own evaluation when the run folder is a training run.
TRAINED_ROLE = "GRPO"
#: The headline's rows: what a newcomer asks first of each model on each split.
HEADLINE_ROWS = (
    ("n", "examples"),
    ("format_rate_strict", "strict format"),
    ("executable_rate", "executable"),
    ("execution_accuracy", "EX"),
)

HEADLINE = (
    ("n", "examples"),
    ("execution_accuracy", "execution accuracy (strict <sql>)"),
    ("execution_accuracy_lenient", "execution accuracy (lenient extraction)"),
    ("execution_accuracy_excluding_empty_gold", "execution accuracy, empty-gold rows excluded"),
    ("format_rate", "format rate (SPEC 2.1 pattern)"),
    ("format_rate_strict", "format rate (strict)"),
    ("executable_rate", "executable rate"),
    ("pass_at_n", "pass@n (any sample correct)"),
    ("voting.greedy_execution_accuracy", "greedy execution accuracy (voted runs)"),
    ("voting.voted_execution_accuracy", "voted execution accuracy (execution vote)"),
    ("voting.pass_at_n", "pass@N of the voted samples"),
    ("bird.ex", "BIRD EX (0-100, rows as sets)"),
    ("bird.soft_f1", "BIRD Soft-F1 (0-100)"),
    ("bird.r_ves", "BIRD R-VES (0-100)"),
)
TIER_KEYS = (
    ("by_sql_complexity", "complexity tier"),
    ("by_gold_kind", "gold kind"),
    ("by_difficulty", "difficulty"),
)


@dataclass(frozen=True)
class EvalGroup:
    """Evaluations of several models on one split: the last is compared with each other one."""

    title: str
    dirs: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> EvalGroup:
        """``TITLE=DIR,DIR,...`` (the command line's spelling) as a group."""
        title, sep, dirs = text.partition("=")
        folders = tuple(d for d in dirs.split(",") if d)
        if not sep or not title.strip() or len(folders) < 2:
            raise ValueError(
                f"evaluation group {text!r}: expected TITLE=DIR,DIR[,...] (two folders or more)"
            )
        return cls(title.strip(), folders)


@dataclass
class ReportConfig:
    """What to report on and where to write it."""

    run_dir: str = field(metadata={"help": "training run or evaluation folder"})
    baseline_dir: str | list[str] | None = field(
        default=None,
        metadata={"help": "evaluation(s) to compare against, e.g. the base and warm-up models"},
    )
    out_dir: str | None = field(default=None, metadata={"help": "output folder (default: run_dir)"})
    n_examples: int = field(default=4, metadata={"help": "sample completions shown"})
    title: str | None = field(default=None, metadata={"help": "page title"})
    split: str | None = field(
        default=None,
        metadata={"help": "the split the run's own evaluation is on (titles its tables)"},
    )
    groups: list[EvalGroup] = field(
        default_factory=list,
        metadata={
            "help": "further evaluations on another split, each shown as its own metrics "
            "table with paired comparisons against its last folder"
        },
    )
    labels: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "evaluation folder -> the name its column gets (default: GRPO for a "
            "training run's own evaluation, else the folder's name)"
        },
    )
    eval_dir: str | None = field(
        default=None,
        metadata={"help": "the run's evaluation (default: run_dir itself or its newest eval*)"},
    )


def parse_label(text: str) -> tuple[str, str]:
    """``DIR=NAME`` (the command line's spelling) as (folder, name)."""
    folder, sep, name = text.partition("=")
    if not sep or not folder.strip() or not name.strip():
        raise ValueError(f"label {text!r}: expected DIR=NAME, e.g. runs/demo/eval_base=base")
    return folder.strip(), name.strip()


def save_report_inputs(cfg: ReportConfig) -> Path:
    """Record ``cfg``'s comparisons (baselines, groups, split, labels, the run's evaluation) in
    ``RUN_DIR/report_inputs.json``, each folder relative to the run folder, so that
    :func:`recorded_report_config` gives them back from any working directory."""
    run = Path(cfg.run_dir).resolve()

    def rel(folder: str) -> str:
        return Path(os.path.relpath(Path(folder).resolve(), run)).as_posix()

    wanted = [cfg.baseline_dir] if isinstance(cfg.baseline_dir, str) else (cfg.baseline_dir or [])
    record = {
        "baselines": [rel(d) for d in wanted],
        "eval_dir": rel(cfg.eval_dir) if cfg.eval_dir else None,
        "split": cfg.split,
        "groups": [{"title": g.title, "dirs": [rel(d) for d in g.dirs]} for g in cfg.groups],
        "labels": {rel(d): name for d, name in cfg.labels.items()},
    }
    path = run / REPORT_INPUTS_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def recorded_report_config(run_dir: str | Path) -> ReportConfig | None:
    """The comparisons :func:`save_report_inputs` recorded for ``run_dir``, or None."""
    run = Path(run_dir)
    path = run / REPORT_INPUTS_FILE
    if not path.is_file():
        return None
    record = _load_json(path)

    def folder(rel: str) -> str:
        return os.path.normpath(run / rel)

    try:
        return ReportConfig(
            run_dir=str(run),
            baseline_dir=[folder(d) for d in record.get("baselines", [])],
            eval_dir=folder(record["eval_dir"]) if record.get("eval_dir") else None,
            split=record.get("split"),
            groups=[
                EvalGroup(g["title"], tuple(folder(d) for d in g["dirs"]))
                for g in record.get("groups", [])
            ],
            labels={folder(d): name for d, name in record.get("labels", {}).items()},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a report_inputs record ({exc!r})") from exc


@dataclass
class ReportPaths:
    """Files the report wrote."""

    html: Path
    markdown: Path
    images: list[Path]


@dataclass
class _Figure:
    name: str
    caption: str
    png: bytes


@dataclass
class _Section:
    title: str
    html: str = ""
    markdown: str = ""
    figures: list[_Figure] = field(default_factory=list)


def find_eval_dir(path: Path) -> Path | None:
    """``path`` when it is an evaluation folder, else its newest ``eval*`` subfolder, else None."""
    if (path / "metrics.json").exists() and (path / "predictions.jsonl").exists():
        return path
    candidates = [
        p
        for p in path.glob("eval*")
        if (p / "metrics.json").exists() and (p / "predictions.jsonl").exists()
    ]
    return (
        max(candidates, key=lambda p: (p / "metrics.json").stat().st_mtime) if candidates else None
    )


def reward_curves(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Per reward component (and ``reward (total)``): (step, mean) points from TRL logs."""
    return {
        ("reward (total)" if name == TOTAL else name): [
            (float(x), y) for x, y in zip(steps, values, strict=True)
        ]
        for name, (steps, values) in reward_series(rows).items()
    }


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def plot_tiers(key: str, label: str, runs: list[tuple[str, dict[str, Any]]]) -> bytes:
    """Grouped bars: execution accuracy per tier for each evaluation."""
    from matplotlib.figure import Figure

    tiers = sorted({t for _, m in runs for t in (m.get(key) or {})})
    fig = Figure(figsize=(max(5.0, 1.4 * len(tiers) + 2), 3.4))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(runs)
    for j, (name, metrics) in enumerate(runs):
        groups = metrics.get(key) or {}
        values = [(groups.get(t) or {}).get("execution_accuracy") or 0.0 for t in tiers]
        xs = [i + (j - (len(runs) - 1) / 2) * width for i in range(len(tiers))]
        bars = ax.bar(xs, values, width=width, label=name, color=f"C{j}")
        for bar, t in zip(bars, tiers, strict=True):
            n = (groups.get(t) or {}).get("n", 0)
            ax.annotate(
                f"n={n}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(range(len(tiers)))
    ax.set_xticklabels(tiers, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("execution accuracy")
    ax.set_title(f"by {label}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> tuple[str, str]:
    """(HTML, Markdown) renderings of one table."""
    h = (
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(c)}</th>" for c in header)
        + "</tr></thead><tbody>"
    )
    for row in rows:
        h += "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>"
    h += "</tbody></table>"
    md = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    md += "".join(
        "| " + " | ".join(_fmt(c).replace("|", "\\|") for c in row) + " |\n" for row in rows
    )
    return h, md


def _rule(metrics: dict[str, Any]) -> str:
    """The comparison rule an evaluation used, as the report names it."""
    rule = str(metrics.get("compare_rule", "?"))
    if (metrics.get("settings") or {}).get("test_suite"):
        rule += " + test suite"
    return rule


def _lookup(metrics: dict[str, Any], key: str) -> Any:
    if key.startswith("rewards."):
        return metrics.get("rewards", {}).get(key[8:])
    value: Any = metrics
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _metrics_section(runs: list[tuple[str, dict[str, Any]]]) -> _Section:
    header = (
        ["metric"]
        + [f"{name} [rule {_rule(m)}]" for name, m in runs]
        + (["change"] if len(runs) == 2 else [])
    )
    rows: list[list[Any]] = [["comparison rule", *(_rule(m) for _, m in runs)]]
    if len(runs) == 2:
        rows[0].append(None)
    keys = (
        list(HEADLINE)
        + [
            (f"rewards.{r}", f"mean reward: {r}")
            for r in sorted({r for _, m in runs for r in m.get("rewards", {})})
        ]
        + [(f"monitors.{m}", f"hack monitor: {m} (share)") for m in MONITORS]
    )
    for key, label in keys:
        values = [_lookup(m, key) for _, m in runs]
        if all(v is None for v in values):
            continue
        row: list[Any] = [label, *values]
        if len(runs) == 2:
            a, b = values
            numeric = isinstance(a, int | float) and isinstance(b, int | float)
            row.append(
                (f"{b - a:+.3f}" if isinstance(b - a, float) else f"{b - a:+d}")
                if numeric
                else None
            )
        rows.append(row)
    h, md = _table(header, rows)
    rule = ", ".join(f"{name}: {m.get('compare_rule', '?')}" for name, m in runs)
    note = f"Results compared with the named rule ({rule}); see docs/evaluation.md."
    return _Section("Metrics", f"{h}<p class='note'>{html.escape(note)}</p>", f"{md}\n{note}\n")


def _paired_section(
    cmp: PairedComparison, names: tuple[str, str], rule: str | None = None
) -> _Section:
    rows = [
        ["shared ids", cmp.n_shared],
        [f"accuracy {names[0]}", cmp.accuracy_a],
        [f"accuracy {names[1]}", cmp.accuracy_b],
        ["gained (wrong → right)", cmp.gained],
        ["lost (right → wrong)", cmp.lost],
        ["both right / both wrong", f"{cmp.both_correct} / {cmp.both_wrong}"],
        ["McNemar exact p-value (two-sided)", format_p_value(cmp.p_value)],
    ]
    if cmp.only_in_a or cmp.only_in_b:
        rows.append(["ids in one run only", f"{cmp.only_in_a} / {cmp.only_in_b}"])
    if rule:
        rows.append(["comparison rule", rule])
    h, md = _table(["paired comparison", "value"], rows)
    return _Section(f"Paired comparison (same examples): {names[0]} vs {names[1]}", h, md)


def _judge_section(
    summary: dict[str, Any], records: list[dict[str, Any]] | None = None, rule: str = "?"
) -> _Section:
    rows = []
    for name, d in summary.get("dimensions", {}).items():
        rows.append(
            [
                name,
                d.get("n_scored"),
                d.get("count_4_5"),
                d.get("count_5"),
                d.get("mean"),
                d.get("missing", 0) + d.get("malformed", 0),
            ]
        )
    h1, md1 = _table(["dimension", "scored", "4-5", "5", "mean", "missing/malformed"], rows)
    ge4 = summary.get("overall_ge_4", {})
    agree = summary.get("sql_score_vs_execution", {})
    facts = [
        [
            "outputs judged",
            f"{summary.get('n_scored')} of {summary.get('n')} "
            f"({summary.get('n_errors', 0)} API errors, {summary.get('n_unparsed', 0)} unparsed)",
        ],
        ["overall >= 4.0", f"{ge4.get('count')} / {ge4.get('of')} ({_fmt(ge4.get('share'))})"],
        [
            "error types",
            ", ".join(f"{k}: {v}" for k, v in sorted(summary.get("error_types", {}).items())),
        ],
        [
            f"judge SQL score >= 4 agrees with execution match (rule {rule})",
            f"{_fmt(agree.get('rate'))} (n={agree.get('n')})",
        ],
        ["judge high but execution wrong", agree.get("judge_high_no_match")],
    ]
    if agree.get("kappa") is not None:
        facts.append(["Cohen's kappa, judge vs execution", agree["kappa"]])
    h2, md2 = _table(["judge summary", "value"], facts)
    h, md = h1 + h2, md1 + "\n" + md2
    table = agree.get("table")
    if table:
        th, tmd = _table(
            [f"judge SQL score (rule {rule})", "execution match", "execution wrong"],
            [[">= 4", *table[0]], ["< 4", *table[1]]],
        )
        h, md = h + th, md + "\n" + tmd
    praised = agree.get("praised_but_wrong") or []
    if praised:
        by_id = {str(r.get("id")): r for r in records or []}
        rows = [
            [
                p.get("id"),
                p.get("sql_score"),
                (by_id.get(str(p.get("id"))) or {}).get("sql") or "",
                p.get("explanation") or "",
            ]
            for p in praised
        ]
        ph, pmd = _table(
            ["praised but wrong: id", "SQL score", "predicted SQL", "judge said"], rows
        )
        note = (
            f"{len(praised)} output(s) the judge scored >= 4 whose SQL returns the wrong result "
            f"under rule {rule}."
        )
        h += f"<p class='note'>{html.escape(note)}</p>" + ph
        md += f"\n{note}\n\n" + pmd
    return _Section("LLM judge", h, md)


def _pick_examples(records: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    right = [r for r in records if r.get("match")]
    wrong = [r for r in records if not r.get("match")]
    half = n // 2
    picked = right[:half] + wrong[: n - half]
    return picked + [r for r in records if r not in picked][: n - len(picked)]


def _examples_section(records: list[dict[str, Any]], n: int) -> _Section:
    parts_h: list[str] = []
    parts_md: list[str] = []
    for r in _pick_examples(records, n):
        verdict = (
            "correct" if r.get("match") else f"wrong ({r.get('error_class') or 'result differs'})"
        )
        if "match" not in r:
            verdict = ""
        rewards = r.get("rewards") or {}
        reward_txt = ", ".join(f"{k} = {_fmt(v)}" for k, v in rewards.items())
        output = r.get("raw_output") or r.get("completion") or ""
        head = f"{r.get('id', '')} {verdict}".strip()
        parts_h.append(
            "<div class='example'>"
            f"<h4>{html.escape(head)}</h4>"
            f"<p><b>Question:</b> {html.escape(str(r.get('question', '')))}</p>"
            f"<p><b>Gold:</b> <code>{html.escape(str(r.get('gold_sql') or r.get('sql') or ''))}</code></p>"
            f"<pre>{html.escape(output)}</pre>"
            f"<p class='note'><b>Rewards:</b> {html.escape(reward_txt)}</p></div>"
        )
        parts_md.append(
            f"#### {head}\n\n**Question:** {r.get('question', '')}\n\n"
            f"**Gold:** `{r.get('gold_sql') or r.get('sql') or ''}`\n\n```\n{output}\n```\n\n"
            f"**Rewards:** {reward_txt}\n"
        )
    return _Section("Sample completions", "".join(parts_h), "\n".join(parts_md))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}
h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .7em;
text-align:left}th{background:#f3f3f3}td:not(:first-child){font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.6em;white-space:pre-wrap;
word-break:break-word;max-height:22em;overflow:auto;font-size:.85em}
.note{color:#666;font-size:.9em}.example{border-left:3px solid #ccc;padding-left:.8em;margin:1em 0}
code{background:#f3f3f3;padding:0 .2em}
"""


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc


def _eval_folder(name: str) -> Path:
    """The evaluation folder ``name`` names (itself or its newest ``eval*``); a clear error if none."""
    found = find_eval_dir(Path(name))
    if found is None:
        raise FileNotFoundError(f"{name}: no evaluation (metrics.json + predictions.jsonl) found")
    return found


@dataclass
class _Split:
    """Evaluations of several models on one split, named; when ``compared``, the last one is
    paired with each other one (``pairs``, by name)."""

    title: str
    titled: bool  # whether section titles name the split (the report shows several)
    names: list[str]
    dirs: list[Path]
    metrics: list[dict[str, Any]]
    pairs: dict[str, PairedComparison] = field(default_factory=dict)

    @property
    def runs(self) -> list[tuple[str, dict[str, Any]]]:
        return list(zip(self.names, self.metrics, strict=True))

    @property
    def rule(self) -> str:
        return " / ".join(sorted({_rule(m) for m in self.metrics}))


def _data_title(metrics: dict[str, Any]) -> str:
    """``data:split (N rows)`` of an evaluation: the split a report shows when none is named."""
    where = f"{metrics.get('data', '?')}" + (f":{metrics['split']}" if metrics.get("split") else "")
    return f"{where} ({metrics.get('n', '?')} rows)"


def _unique(names: list[str]) -> list[str]:
    """``names`` with a repeated one numbered (``base``, ``base (2)``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _split(title: str, titled: bool, names: list[str], dirs: list[Path], compared: bool) -> _Split:
    names = _unique(names)
    split = _Split(title, titled, names, dirs, [_load_json(d / "metrics.json") for d in dirs])
    if compared:
        for name, folder in zip(names[:-1], dirs[:-1], strict=True):
            split.pairs[name] = compare_runs(folder, dirs[-1])
    return split


def _comparison_sections(split: _Split) -> list[_Section]:
    """The split's detailed metrics table and a paired comparison of each model with the last."""
    sections = [_metrics_section(split.runs)]
    last = split.names[-1]
    for name, cmp in split.pairs.items():
        if cmp.n_shared:
            sections.append(_paired_section(cmp, (name, last), split.rule))
        else:
            msg = (
                f"{name} and {last} share no example ids: no paired comparison "
                "(use the same --data, --limit and --seed)."
            )
            sections.append(
                _Section("Paired comparison", f"<p class='note'>{html.escape(msg)}</p>", msg + "\n")
            )
    if split.titled:
        for sec in sections:
            sec.title = f"{split.title}: {sec.title}"
    return sections


def _gained_lost(cmp: PairedComparison) -> str:
    return f"+{cmp.gained} / -{cmp.lost}" if cmp.n_shared else "no shared ids"


def _headline_section(splits: list[_Split]) -> _Section:
    """Every model on every split, one column per model (by name), with the paired gained /
    lost and McNemar p of the last model against each other one; and the same as a figure."""
    columns: list[str] = []
    for split in splits:
        columns += [name for name in split.names if name not in columns]
    rows: list[list[Any]] = []
    for split in splits:
        by_name = dict(split.runs)
        for i, (key, label) in enumerate(HEADLINE_ROWS):
            if key == "execution_accuracy":
                label = f"EX [rule {split.rule}]"
            cells = [by_name[c].get(key) if c in by_name else None for c in columns]
            rows.append([split.title if i == 0 else "", label, *cells])
        if split.pairs:
            last = split.names[-1]
            pairs = [split.pairs.get(c) for c in columns]
            rows.append(["", f"gained / lost → {last}", *(c and _gained_lost(c) for c in pairs)])
            rows.append(
                [
                    "",
                    f"McNemar p → {last}",
                    *(c and c.n_shared and format_p_value(c.p_value) or None for c in pairs),
                ]
            )
    h, md = _table(["split", "metric", *columns], rows)
    note = (
        "strict format: the answer is exactly `<reasoning>...</reasoning><sql>...</sql>`; "
        "executable: its SQL runs; EX: execution accuracy, its result equal to the gold "
        "query's under the named rule (docs/evaluation.md). gained / lost: examples the "
        "compared model gets right that the column's model got wrong, and the reverse, on the "
        "examples both answered; p: two-sided exact McNemar test of gained against lost "
        "(a small p: the change is unlikely to be chance)."
    )
    sec = _Section(
        "Headline: " + " / ".join(columns),
        f"{h}<p class='note'>{html.escape(note.replace('`', ''))}</p>",
        f"{md}\n{note}\n",
    )
    caption = (
        "Strict format, executable rate and EX of each model on each split; beneath each "
        "panel, the paired gained / lost and McNemar p"
    )
    sec.figures.append(_Figure("headline", caption, plot_headline(splits, columns)))
    return sec


def plot_headline(splits: list[_Split], columns: list[str]) -> bytes:
    """One panel per split: strict format, executable and EX bars per model (a model keeps
    its colour across panels), the paired comparisons written beneath."""
    import textwrap

    from matplotlib.figure import Figure

    keys = [(k, label) for k, label in HEADLINE_ROWS if k != "n"]
    fig = Figure(figsize=(max(5.5, 4.6 * len(splits)), 4.0))
    for i, split in enumerate(splits):
        ax = fig.add_subplot(1, len(splits), i + 1)
        width = 0.8 / len(split.names)
        for j, (name, metrics) in enumerate(split.runs):
            values = [metrics.get(k) or 0.0 for k, _ in keys]
            xs = [x + (j - (len(split.names) - 1) / 2) * width for x in range(len(keys))]
            bars = ax.bar(xs, values, width=width, label=name, color=f"C{columns.index(name)}")
            for bar, value in zip(bars, values, strict=True):
                ax.annotate(
                    f"{value:.2f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([label for _, label in keys], fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.set_title(textwrap.fill(split.title, 48), fontsize=9)
        last = split.names[-1]
        ax.set_xlabel(
            "\n".join(
                f"{name} → {last}: {_gained_lost(cmp)}"
                + (f", p = {format_p_value(cmp.p_value)}" if cmp.n_shared else "")
                for name, cmp in split.pairs.items()
            ),
            fontsize=8,
        )
    handles = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.tight_layout()
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(handles),
        fontsize=9,
        frameon=False,
    )
    return _png(fig)


def _namer(cfg: ReportConfig, run: Path, eval_dir: Path | None) -> Any:
    """A folder's column name: its label, else ``GRPO`` for a training run's own evaluation,
    else the folder's name."""
    labels = {Path(folder).resolve(): name for folder, name in cfg.labels.items()}
    trained = (run / RUN_CONFIG_FILE).exists() or (run / "metrics.jsonl").exists()

    def name(given: str | None, folder: Path) -> str:
        for path in (folder, Path(given) if given else None):
            if path is not None and path.resolve() in labels:
                return labels[path.resolve()]
        if trained and eval_dir is not None and folder.resolve() == eval_dir.resolve():
            return TRAINED_ROLE
        return folder.name

    return name


def build_report(cfg: ReportConfig) -> ReportPaths:
    """Write report.html and report.md (plus PNGs for the Markdown) and return their paths."""
    from sqlgrpo.evaluation.metrics import read_records

    run = Path(cfg.run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such folder")
    out = Path(cfg.out_dir) if cfg.out_dir else run
    eval_dir = _eval_folder(cfg.eval_dir) if cfg.eval_dir else find_eval_dir(run)
    wanted = [cfg.baseline_dir] if isinstance(cfg.baseline_dir, str) else (cfg.baseline_dir or [])
    base_dirs = [_eval_folder(name) for name in wanted]
    name = _namer(cfg, run, eval_dir)

    splits: list[_Split] = []
    given: list[str | None] = list(wanted)
    dirs_of_run = base_dirs
    if eval_dir is not None:
        given, dirs_of_run = [*given, cfg.eval_dir], [*base_dirs, eval_dir]
    if dirs_of_run:
        title = cfg.split or _data_title(_load_json(dirs_of_run[-1] / "metrics.json"))
        names = [name(g, d) for g, d in zip(given, dirs_of_run, strict=True)]
        compared = eval_dir is not None
        splits.append(_split(title, cfg.split is not None, names, dirs_of_run, compared))
    for group in cfg.groups:
        dirs = [_eval_folder(folder) for folder in group.dirs]
        names = [name(g, d) for g, d in zip(group.dirs, dirs, strict=True)]
        splits.append(_split(group.title, True, names, dirs, True))

    sections: list[_Section] = [_headline_section(splits)] if splits else []
    log_path = run / "metrics.jsonl"
    if log_path.exists():
        rows, bad = read_jsonl_lenient(log_path)
        series = training_curves(rows)
        sec = _Section("Training reward curves")
        if series:
            sec.figures.append(
                _Figure(
                    "rewards",
                    "Mean reward per component, mean completion length and hack monitors "
                    "against training step",
                    reward_curves_png(series),
                )
            )
        else:
            sec.html = sec.markdown = f"{log_path.name} has no reward columns."
        if bad:
            msg = f"{len(bad)} unreadable line(s) in {log_path.name} skipped (lines {bad[:10]})."
            sec.html += f"<p class='note'>{html.escape(msg)}</p>"
            sec.markdown += f"\n{msg}\n"
        sections.append(sec)

    for split in splits:
        sections += _comparison_sections(split)
    runs = splits[0].runs if dirs_of_run else []  # the run's split (not a group's)
    tiers = _Section("Accuracy by tier")
    for key, label in TIER_KEYS:
        if any(m.get(key) for _, m in runs):
            tiers.figures.append(
                _Figure(
                    key,
                    f"Execution accuracy by {label} (rule: "
                    + ", ".join(f"{n} {_rule(m)}" for n, m in runs)
                    + ")",
                    plot_tiers(key, label, runs),
                )
            )
    if tiers.figures:
        sections.append(tiers)
    if eval_dir is not None:
        records = list(read_records(eval_dir / "predictions.jsonl").values())
        sections.append(_examples_section(records, cfg.n_examples))
        if (eval_dir / "judge_summary.json").exists():
            summary = _load_json(eval_dir / "judge_summary.json")
            rule = _rule(runs[-1][1]) if runs else "?"
            sections.append(_judge_section(summary, records, rule))
    elif (run / "completions.jsonl").exists():
        rows, _ = read_jsonl_lenient(run / "completions.jsonl")
        sections.append(_examples_section(rows[-cfg.n_examples :], cfg.n_examples))
    if not sections:
        raise FileNotFoundError(
            f"{run}: nothing to report (no metrics.jsonl from training, no evaluation folder)"
        )
    return _write(out, cfg.title or f"sqlgrpo report: {run.name}", run, sections)


def _write(out: Path, title: str, run: Path, sections: list[_Section]) -> ReportPaths:
    out.mkdir(parents=True, exist_ok=True)
    img_dir = out / "report_files"
    images: list[Path] = []
    body_h = [f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(str(run))}</p>"]
    body_md = [f"# {title}\n\n`{run}`\n"]
    for sec in sections:
        body_h.append(f"<h2>{html.escape(sec.title)}</h2>{sec.html}")
        body_md.append(f"## {sec.title}\n\n{sec.markdown}")
        for fig in sec.figures:
            data = base64.b64encode(fig.png).decode("ascii")
            body_h.append(
                f"<figure><img alt='{html.escape(fig.caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption class='note'>{html.escape(fig.caption)}</figcaption></figure>"
            )
            img_dir.mkdir(exist_ok=True)
            path = img_dir / f"{fig.name}.png"
            path.write_bytes(fig.png)
            images.append(path)
            body_md.append(f"![{fig.caption}](report_files/{fig.name}.png)\n")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body_h)
        + "</body></html>\n"
    )
    html_path = out / "report.html"
    md_path = out / "report.md"
    html_path.write_text(page, encoding="utf-8")
    md_path.write_text("\n".join(body_md), encoding="utf-8")
    return ReportPaths(html_path, md_path, images)
