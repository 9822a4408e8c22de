"""``sqlgrpo data``: validate, export, stats and (re)generate the bundled dataset."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sqlgrpo data {validate,export,stats,generate}``."""
    parser = subparsers.add_parser("data", help="inspect, validate, export or generate datasets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _help(parser))

    def source_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "path",
            metavar="PATH",
            help="'bundled' / 'bundled:test', a gretel file, a Spider or BIRD folder, or a hub id",
        )
        p.add_argument("--split", default=None, help="split to read (train / test / dev)")
        p.add_argument("--limit", type=int, default=None, help="read at most N samples")
        p.add_argument(
            "--skip-invalid",
            action="store_true",
            help="skip malformed rows (counted and reported) instead of stopping",
        )

    p = sub.add_parser("validate", help="build every database and execute every gold query")
    source_args(p)
    p.add_argument("--show", type=int, default=20, help="ids listed per group (default 20)")
    p.set_defaults(handler=_validate)

    p = sub.add_parser("export", help="write samples as gretel-format JSONL")
    source_args(p)
    p.add_argument("-o", "--output", required=True, help="output .jsonl file")
    p.add_argument(
        "--only-valid", action="store_true", help="keep only samples whose gold query executes"
    )
    p.add_argument(
        "--drop-empty", action="store_true", help="with --only-valid: also drop empty gold results"
    )
    p.set_defaults(handler=_export)

    p = sub.add_parser("stats", help="counts by tier, task type, domain and source")
    source_args(p)
    p.set_defaults(handler=_stats)

    p = sub.add_parser("generate", help="regenerate the bundled dataset (deterministic)")
    p.add_argument("-o", "--output", default=None, help="folder (default: the package's bundled/)")
    p.add_argument(
        "--check",
        action="store_true",
        help="regenerate in memory and compare with the shipped files; write nothing",
    )
    p.set_defaults(handler=_generate)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _load(args: argparse.Namespace):
    from sqlgrpo.data import DataError, load_samples

    try:
        return load_samples(
            args.path, split=args.split, limit=args.limit, skip_invalid=args.skip_invalid
        )
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if not args.skip_invalid and isinstance(exc, DataError) and _names_a_row(str(exc)):
            print("(use --skip-invalid to skip bad rows and count them)", file=sys.stderr)
        return None


def _names_a_row(message: str) -> bool:
    return ", line " in message or ", row " in message


def _print_skipped(result, show: int) -> None:
    if result.skipped:
        print(f"skipped {len(result.skipped)} invalid row(s):")
        for row in result.skipped[:show]:
            print(f"  {row}")
        if len(result.skipped) > show:
            print(f"  ... and {len(result.skipped) - show} more")


def _ids(ids: list[str], show: int) -> str:
    text = ", ".join(ids[:show])
    return text + (f", ... (+{len(ids) - show})" if len(ids) > show else "")


def _validate(args: argparse.Namespace) -> int:
    from sqlgrpo.data import validate_samples

    result = _load(args)
    if result is None:
        return 2
    report = validate_samples(result.samples, skipped=result.skipped)
    print(f"{report.total} sample(s) from {result.source}")
    _print_skipped(result, args.show)
    groups = report.failures_by_class()
    if groups:
        print(f"FAILURES: {len(report.failures)} sample(s)")
        for error_class, failures in groups.items():
            print(f"  {error_class}: {len(failures)}")
            for failure in failures[: args.show]:
                print(f"    {failure.id}: {failure.message[:160]}")
            if len(failures) > args.show:
                print(f"    ... and {len(failures) - args.show} more")
    else:
        print("failures: 0 (every database builds and every gold query executes)")
    if report.transpiled:
        print(f"note: {len(report.transpiled)} context(s) needed sqlglot transpiling to build")
    if report.empty_gold:
        print(f"warning: {len(report.empty_gold)} gold SELECT(s) return no rows: ")
        print(f"  {_ids(report.empty_gold, args.show)}")
    if report.duplicates:
        pairs = [f"{dup} (= {first})" for dup, first in report.duplicates]
        print(f"warning: {len(report.duplicates)} duplicate(s): {_ids(pairs, args.show)}")
    return 0 if report.ok else 1


def _export(args: argparse.Namespace) -> int:
    from sqlgrpo.data import validate_samples

    result = _load(args)
    if result is None:
        return 2
    samples = result.samples
    dropped = 0
    if args.only_valid:
        report = validate_samples(samples)
        bad = report.failed_ids() | (set(report.empty_gold) if args.drop_empty else set())
        kept = [s for s in samples if s.id not in bad]
        dropped = len(samples) - len(kept)
        samples = kept
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps(sample.to_record(), ensure_ascii=False) + "\n")
    print(f"wrote {len(samples)} sample(s) to {out}")
    if args.only_valid:
        print(f"dropped {dropped} sample(s) that failed validation")
    if result.skipped:
        print(f"skipped {len(result.skipped)} invalid input row(s)")
    return 0


def _stats(args: argparse.Namespace) -> int:
    result = _load(args)
    if result is None:
        return 2
    samples = result.samples
    print(f"{len(samples)} sample(s) from {result.source}")
    _print_skipped(result, 20)
    kinds = Counter("sql_context" if s.sql_context is not None else "db_path" for s in samples)
    print(f"databases: {dict(kinds)}")
    for key in ("source", "sql_complexity", "sql_task_type", "domain", "difficulty", "db_id"):
        counts = Counter(s.metadata.get(key, "(none)") for s in samples)
        if set(counts) == {"(none)"}:
            continue
        print(f"by {key}:")
        for value, count in counts.most_common(30):
            print(f"  {value}: {count}")
        if len(counts) > 30:
            print(f"  ... {len(counts) - 30} more value(s)")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from sqlgrpo.data.bundled.generate import BUNDLED_DIR, SEED, write_bundled

    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            write_bundled(tmp, SEED)
            names = ("train.jsonl", "test.jsonl", "manifest.json")
            differ = [
                n
                for n in names
                if not (BUNDLED_DIR / n).is_file()
                or (Path(tmp) / n).read_bytes() != (BUNDLED_DIR / n).read_bytes()
            ]
        if differ:
            print(f"bundled files out of date: {', '.join(differ)} (run `sqlgrpo data generate`)")
            return 1
        print("bundled files match the generator")
        return 0
    out = Path(args.output) if args.output else BUNDLED_DIR
    manifest = write_bundled(out, SEED)
    for name, split in manifest["splits"].items():
        print(f"{name}: {split['rows']} samples -> {out / split['file']}")
    print(f"held-out domains: {', '.join(manifest['held_out_domains'])}")
    print(f"held-out patterns: {', '.join(manifest['held_out_patterns'])}")
    return 0
