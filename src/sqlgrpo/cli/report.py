"""`sqlgrpo report RUN_DIR [--baseline DIR] [--label DIR=NAME]`: HTML + Markdown report of a
run, leading with the headline table and figure (every model on every split, paired)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` command."""
    p = subparsers.add_parser(
        "report",
        help="HTML + Markdown report: reward curves, metrics, tiers, samples, judge",
        description="Write RUN_DIR/report.html (self-contained) and report.md from a training run "
        "folder and/or an evaluation folder; --baseline adds a before/after comparison. The page "
        "opens on a headline table and figure: each model (base, warm-up, GRPO) on each split, "
        "strict format, executable rate and EX, with the examples the run's model gained and "
        "lost against each and the McNemar p-value. Without --baseline or --group, the "
        "comparisons `sqlgrpo demo` recorded in RUN_DIR/report_inputs.json are used.",
    )
    p.add_argument("run_dir", help="training run folder or evaluation folder")
    p.add_argument(
        "--baseline",
        action="append",
        default=None,
        help="evaluation folder to compare against (repeatable: base model, warm-up, ...)",
    )
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR)")
    p.add_argument("--examples", type=int, default=4, help="sample completions shown (default 4)")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument(
        "--split", default=None, help="name of the split RUN_DIR's evaluation is on (titles)"
    )
    p.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="TITLE=DIR,DIR[,...]",
        help="evaluations of the same models on another split (repeatable): a metrics table "
        "of its own, the last folder compared with each other one",
    )
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="DIR=NAME",
        help="name the column of evaluation folder DIR (repeatable; default: GRPO for the "
        "run's own evaluation, base / warm-up as the demo recorded them, else the folder name)",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sqlgrpo.evaluation.report import (
        REPORT_INPUTS_FILE,
        EvalGroup,
        ReportConfig,
        build_report,
        parse_label,
        recorded_report_config,
    )

    try:
        labels = dict(parse_label(text) for text in args.label)
        recorded = None
        if not args.baseline and not args.group:
            recorded = recorded_report_config(args.run_dir)
        if recorded is not None:
            print(f"comparisons recorded in {Path(args.run_dir) / REPORT_INPUTS_FILE}")
            cfg = replace(
                recorded,
                out_dir=args.out,
                n_examples=args.examples,
                title=args.title,
                split=args.split or recorded.split,
                labels={**recorded.labels, **labels},
            )
        else:
            cfg = ReportConfig(
                run_dir=args.run_dir,
                baseline_dir=args.baseline,
                out_dir=args.out,
                n_examples=args.examples,
                title=args.title,
                split=args.split,
                groups=[EvalGroup.parse(text) for text in args.group],
                labels=labels,
            )
        paths = build_report(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"sqlgrpo report: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {paths.html}")
    print(
        f"wrote {paths.markdown} (+{len(paths.images)} images in {paths.markdown.parent / 'report_files'})"
    )
    return 0
