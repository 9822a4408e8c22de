"""Write one benchmark's section of BENCHMARKS.md, between its start and end markers."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(key: str, title: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace the text between ``<!-- key:start -->`` and ``<!-- key:end -->``.

    A file without the markers gets a new ``## title`` section at its end.
    """
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    content = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start not in content or end not in content:
        content = content.rstrip() + f"\n\n## {title}\n\n{start}\n{end}\n"
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}", encoding="utf-8")
