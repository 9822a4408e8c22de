"""Measuring a model: execution accuracy and its breakdowns (``evaluate``), paired comparisons
(McNemar), the LLM judge and its agreement with execution, reward curves, and the report that
puts them side by side."""

from sqlgrpo.evaluation.evaluate import EvalConfig, EvalResult, evaluate, prompted_eval_config
from sqlgrpo.evaluation.judge import JudgeConfig, judge_eval_dir
from sqlgrpo.evaluation.metrics import (
    PairedComparison,
    aggregate,
    compare_runs,
    format_p_value,
    mcnemar_exact_p,
)
from sqlgrpo.evaluation.report import EvalGroup, ReportConfig, build_report

__all__ = [
    "EvalConfig",
    "EvalGroup",
    "EvalResult",
    "JudgeConfig",
    "PairedComparison",
    "ReportConfig",
    "aggregate",
    "build_report",
    "compare_runs",
    "evaluate",
    "format_p_value",
    "judge_eval_dir",
    "mcnemar_exact_p",
    "prompted_eval_config",
]
