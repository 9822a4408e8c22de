"""`sqlgrpo report RUN_DIR [--baseline DIR]`: HTML + Markdown report of a run."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` command."""
    p = subparsers.add_parser(
        "report",
        help="HTML + Markdown report: reward curves, metrics, tiers, samples, judge",
        description="Write RUN_DIR/report.html (self-contained) and report.md from a training run "
        "folder and/or an evaluation folder; --baseline adds a before/after comparison.",
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
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sqlgrpo.evaluation.report import EvalGroup, ReportConfig, build_report

    try:
        cfg = ReportConfig(
            run_dir=args.run_dir,
            baseline_dir=args.baseline,
            out_dir=args.out,
            n_examples=args.examples,
            title=args.title,
            split=args.split,
            groups=[EvalGroup.parse(text) for text in args.group],
        )
        paths = build_report(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"wrote {paths.html}")
    print(
        f"wrote {paths.markdown} (+{len(paths.images)} images in {paths.markdown.parent / 'report_files'})"
    )
    return 0
