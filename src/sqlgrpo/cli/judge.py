"""`sqlgrpo judge EVAL_DIR`: LLM-as-a-judge (SPEC section 4) over an OpenAI-compatible API."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``judge`` command."""
    p = subparsers.add_parser(
        "judge",
        help="score an evaluation's outputs with an LLM judge (SPEC section 4)",
        description="Reads EVAL_DIR/predictions.jsonl, writes judgements.jsonl and "
        "judge_summary.json. Uses OPENAI_API_KEY for OpenAI, or --base-url for any "
        "OpenAI-compatible server (vLLM, llama.cpp server, Ollama). Replies are cached "
        "(EVAL_DIR/judge_cache.jsonl), so a rerun only pays for what is missing.",
    )
    p.add_argument("eval_dir", help="evaluation folder from `sqlgrpo eval`")
    p.add_argument("--model", default="gpt-4o-mini", help="judge model (default gpt-4o-mini)")
    p.add_argument("--base-url", default=None, help="e.g. http://localhost:8000/v1")
    p.add_argument("--api-key", default=None, help="default: $OPENAI_API_KEY")
    p.add_argument(
        "--limit", type=int, default=50, help="judge a random N (default 50, as the spec); 0 = all"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random subset (default 0)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    p.add_argument("--retries", type=int, default=4, help="retries on 429/5xx/timeouts (default 4)")
    p.add_argument("--cache", default=None, help="cache file (default EVAL_DIR/judge_cache.jsonl)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sqlgrpo.evaluation.judge import JudgeConfig, judge_eval_dir

    api_key = args.api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key and not args.base_url:
        print("error: set OPENAI_API_KEY, or pass --api-key, or --base-url for a local server")
        return 2
    cfg = JudgeConfig(
        model=args.model,
        base_url=args.base_url,
        api_key=api_key,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        max_retries=args.retries,
        limit=args.limit or None,
        seed=args.seed,
        cache_path=args.cache,
    )
    try:
        run = judge_eval_dir(args.eval_dir, cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    s = run.summary
    print(
        f"judged {s['n_scored']} of {s['n']} ({s['n_cached']} from cache, {run.api_calls} API calls, "
        f"{s['n_errors']} errors, {s['n_unparsed']} unparsed)"
    )
    for name, d in s["dimensions"].items():
        print(
            f"  {name:12s} 4-5: {d['count_4_5']}/{d['n_scored']}  5: {d['count_5']}/{d['n_scored']}"
        )
    ge4 = s["overall_ge_4"]
    share = "-" if ge4["share"] is None else f"{ge4['share']:.0%}"
    print(f"  overall >= 4.0: {ge4['count']}/{ge4['of']} ({share})")
    print(f"  error types: {s['error_types']}")
    agree = s["sql_score_vs_execution"]
    if agree["rate"] is not None:
        print(
            f"  judge SQL score >= 4 vs execution match: agree {agree['rate']:.0%} of {agree['n']}"
        )
    print(f"wrote {run.judgements_path} and {run.summary_path}")
    return 0 if s["n_errors"] == 0 else 1
