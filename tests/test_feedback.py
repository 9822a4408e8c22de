"""Execution feedback at inference: the observation turn for any chat template, the loop's turn
limits, hostile statements in a turn, bounded observations, every turn in the eval record and
in ``ask``'s answer, and ``--turns 1`` unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sqlgrpo.ask import Asker, AskError, open_database
from sqlgrpo.cli import main
from sqlgrpo.data import (
    PromptConfig,
    build_messages,
    load_samples,
    observation_message,
    observation_turn,
    render_prompt,
    render_sample_prompt,
)
from sqlgrpo.evaluation.evaluate import EvalConfig, evaluate
from sqlgrpo.evaluation.metrics import feedback_summary
from sqlgrpo.generation import GenerationConfig
from sqlgrpo.generation.backends import sampling_variant
from sqlgrpo.generation.feedback import (
    EMPTY_OBSERVATION,
    NO_SQL_OBSERVATION,
    TRUNCATION_MARK,
    FeedbackConfig,
    bound_observation,
    feedback_rounds,
    generate_with_feedback,
)
from sqlgrpo.sql import Database, SandboxLimits
from sqlgrpo.sql.parsing import extract_sql

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = FIXTURES / "eval_samples.jsonl"
PREFILL = "<reasoning>\n"
HANG = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r;"
# one SQLite instruction that runs long: the sandbox sends it to its worker, killed at the deadline
BOMB = "SELECT instr(printf('%.*c', 999999, 'a'), printf('%.*c', 499990, 'a') || 'b');"
LONG_NAME = "capacity_" + "x" * 400
EMPTY_SQL = "SELECT name FROM t WHERE id = 9;"
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _answer(sql: str) -> str:
    """A completion after the prefill: reasoning closed, then the SQL in tags."""
    return f"First, read the schema.\nThen write the query.\n</reasoning>\n<sql>\n{sql}\n</sql>"


class TurnScript:
    """Answers each prompt with the scripted completion for its question and turn (the turn is
    one more than the observations the prompt holds); records every prompt it saw."""

    name = "turn-script"

    def __init__(self, script: dict[str, list[str]], questions: dict[str, str]) -> None:
        self.script = script
        self.questions = questions  # question text -> script key
        self.prompts: list[str] = []

    def answer(self, prompt: str) -> str:
        keys = [key for q, key in self.questions.items() if q in prompt]
        assert len(keys) == 1, "each prompt holds exactly one known question"
        turn = prompt.count("<observation>")
        self.prompts.append(prompt)
        return self.script[keys[0]][turn]

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        for start in range(0, len(prompts), 3):
            idx = list(range(start, min(start + 3, len(prompts))))
            yield idx, [[self.answer(prompts[i])] for i in idx]


@pytest.fixture(scope="module")
def tokenizer(tiny: tuple[object, object]) -> object:
    return tiny[1]


def _eval_questions() -> dict[str, str]:
    rows = [json.loads(line) for line in SAMPLES.open()]
    return {r["sql_prompt"]: r["id"] for r in rows}


# ---------------------------------------------------------------- the observation turn


@pytest.mark.parametrize("prefill", ["", PREFILL])
@pytest.mark.parametrize("template", ["chatml", "gemma"])
def test_observation_turn_continues_the_conversation_the_template_renders(
    tokenizer: object, prefill: str, template: str
) -> None:
    """prompt + answer + observation turn == the template's own rendering of the conversation
    with the answer as an assistant turn and the observation as a user turn."""
    import copy

    tok = copy.deepcopy(tokenizer)
    if template == "gemma":  # a template without a system role or a tool format
        tok.chat_template = GEMMA_TEMPLATE
    sample = load_samples(str(SAMPLES)).samples[0]
    cfg = PromptConfig(prefill=prefill)
    answer = _answer("SELECT nme FROM wind_farms;")
    observation = "error (missing_column): no such column: nme"
    continued = render_sample_prompt(sample, cfg, tok) + answer
    continued += observation_turn(observation, tok, prefill)
    conversation = build_messages(sample, cfg) + [
        {"role": "assistant", "content": prefill + answer},
        {"role": "user", "content": observation_message(observation)},
    ]
    assert continued == render_prompt(conversation, tok, prefill)
    assert f"<observation>\n{observation}\n</observation>" in continued


def test_a_template_that_drops_the_answer_is_refused(tokenizer: object) -> None:
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}\n"
        "{% endif %}{% endfor %}"
    )
    with pytest.raises(ValueError, match="does not keep an assistant turn"):
        observation_turn("error (syntax): near x", tok)


def test_long_observations_are_cut_to_the_token_bound(tokenizer: object) -> None:
    text = f"error (missing_column): no such column: {LONG_NAME}"
    cut = bound_observation(text, tokenizer, 16)
    ids = tokenizer(cut, add_special_tokens=False)["input_ids"]
    assert len(ids) <= 16 and cut.endswith(TRUNCATION_MARK)
    assert text.startswith(cut[: -len(TRUNCATION_MARK)])
    assert bound_observation("error (syntax): near x", tokenizer, 16) == "error (syntax): near x"
    assert len(bound_observation(text, None, 16)) == 64  # no tokenizer: 4 characters a token


# ---------------------------------------------------------------- the loop


def _loop(answers: dict[int, list[str]], cfg: FeedbackConfig, db: Database) -> tuple:
    """The loop over scripted answers (conversation i answers ``answers[i]`` turn by turn)."""
    answers = dict(enumerate(answers[k] for k in sorted(answers)))
    asked: list[tuple[list[int], list[str]]] = []
    position = dict.fromkeys(answers, 0)

    def again(indices: list[int], observations: list[str]) -> list[str]:
        asked.append((indices, observations))
        for i in indices:
            position[i] += 1
        return [answers[i][position[i]] for i in indices]

    turns = feedback_rounds(
        [answers[i][0] for i in sorted(answers)],
        cfg,
        extract=extract_sql,
        execute=lambda i, sql: db.run(sql),
        answer_again=again,
        prefill=PREFILL,
    )
    return turns, asked


def test_turn_limits_and_what_each_answer_is_told() -> None:
    db = Database.from_context(
        "CREATE TABLE t (id INTEGER, name TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');",
        SandboxLimits(timeout_s=0.5),
    )
    answers = {
        0: [_answer("SELECT nam FROM t;")] * 4,  # always fails: stops at the limit
        1: [_answer("SELECT name FROM t;")],  # rows: stands at once
        2: ["no tags", _answer("SELECT name FROM t WHERE id = 9;"), _answer("SELECT 1;")],
        3: [_answer("UPDATE t SET name = 'c' WHERE id = 9;")],  # a statement without rows stands
    }
    turns, asked = _loop(answers, FeedbackConfig(turns=3), db)
    assert [len(t) for t in turns] == [3, 1, 3, 1]
    assert [t.outcome for t in turns[0]] == ["missing_column"] * 3
    assert turns[0][0].observation == "error (missing_column): no such column: nam"
    assert turns[0][-1].observation is None  # nothing went back after the last turn
    assert [t.outcome for t in turns[2]] == ["no_sql", "empty", "rows"]
    assert [t.observation for t in turns[2]] == [NO_SQL_OBSERVATION, EMPTY_OBSERVATION, None]
    assert (turns[1][0].outcome, turns[3][0].outcome) == ("rows", "ran")
    assert [indices for indices, _ in asked] == [[0, 2], [0, 2]]  # each round in one batch

    _, asked_once = _loop({0: answers[0]}, FeedbackConfig(turns=1), db)
    assert asked_once == []  # one turn: nobody is asked again
    kept, _ = _loop({2: answers[2]}, FeedbackConfig(turns=3, retry_empty=False), db)
    assert [t.outcome for t in kept[0]] == ["no_sql", "empty"]  # an empty result stands


def test_hanging_and_bombing_statements_end_as_the_sandbox_classifies_them() -> None:
    db = Database.from_context("CREATE TABLE t (id INTEGER);", SandboxLimits(timeout_s=0.5))
    answers = {
        0: [_answer(HANG), _answer("SELECT count(*) FROM t;")],
        1: [_answer(BOMB), _answer("SELECT zeroblob(2000000);"), _answer("SELECT 1;")],
    }
    turns, _ = _loop(answers, FeedbackConfig(turns=3), db)
    assert [t.outcome for t in turns[0]] == ["timeout", "rows"]
    assert turns[0][0].observation.startswith("error (timeout): ")
    assert turns[1][0].outcome in ("timeout", "resource_limit")
    assert turns[1][1].outcome == "resource_limit"
    assert turns[1][2].outcome == "rows"


class RepeatScript:
    """A backend that answers greedily from ``greedy[conversation][turn]`` and, when asked for
    samples, with ``sampled[(conversation, turn)]``; the conversation is the ``Qn`` its prompt
    names, the turn one more than the observations it holds. Keeps each call's settings."""

    name = "repeat-script"

    def __init__(self, greedy: dict[int, list[str]], sampled: dict[tuple[int, int], list[str]]):
        self.cfg = GenerationConfig(show_progress=False, seed=7)
        self.greedy, self.sampled = greedy, sampled
        self.calls: list[tuple[float, int, int, list[int]]] = []

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        keys = [(int(p.split("Q", 1)[1].split(":")[0]), p.count("<observation>")) for p in prompts]
        self.calls.append(
            (self.cfg.temperature, self.cfg.num_samples, self.cfg.seed, [c for c, _ in keys])
        )
        if self.cfg.greedy:
            yield list(range(len(prompts))), [[self.greedy[c][t]] for c, t in keys]
        else:
            yield list(range(len(prompts))), [self.sampled[key] for key in keys]


def test_the_sampling_variant_decodes_as_many_sequences_a_batch() -> None:
    """Redraws of K samples a prompt batch batch_size // K prompts (K x 32 Spider prompts of
    ~1,500 tokens ran a 24 GiB machine out of memory); the original backend is untouched."""
    greedy = RepeatScript({}, {})
    greedy.cfg = GenerationConfig(show_progress=False, batch_size=32, seed=7)
    variant = sampling_variant(greedy, temperature=0.8, num_samples=4, seed=9)
    assert (variant.cfg.batch_size, variant.cfg.num_samples, variant.cfg.seed) == (8, 4, 9)
    assert variant.cfg.temperature == 0.8 and variant.greedy is greedy.greedy
    assert (greedy.cfg.batch_size, greedy.cfg.num_samples, greedy.cfg.temperature) == (32, 1, 0.0)
    assert sampling_variant(greedy, temperature=1.0, num_samples=64, seed=0).cfg.batch_size == 1


def test_a_repeated_answer_is_redrawn_by_sampling(tokenizer: object) -> None:
    db = Database.from_context(
        "CREATE TABLE t (id INTEGER, name TEXT); INSERT INTO t VALUES (1, 'a');",
        SandboxLimits(timeout_s=0.5),
    )
    greedy = {
        0: [
            _answer("SELECT nam FROM t;"),
            _answer("SELECT  nam\nFROM t;"),  # repeats itself
            _answer("SELECT nam FROM t;"),
        ],
        1: [_answer("SELECT x FROM t;"), _answer("SELECT x FROM t;"), _answer("SELECT y FROM t;")],
        2: [_answer("SELECT z FROM t;"), _answer("SELECT name FROM t;")],  # new SQL: kept
        3: [_answer(EMPTY_SQL), _answer(EMPTY_SQL), _answer("SELECT name FROM t WHERE id = 8;")],
    }
    sampled = {
        # a repeat, a new failing query, a new one that stands: the one that stands is taken
        (0, 1): [_answer("SELECT nam FROM t;"), _answer("SELECT nme FROM t;"),
                 _answer("SELECT name FROM t;")],
        # nothing new that runs: the first new SQL is taken (no SQL at all does not count)
        (1, 1): [_answer("SELECT x FROM t;"), "no tags", _answer("SELECT y FROM t;")],
        # nothing new at all: the greedy repeat stays
        (1, 2): [_answer("SELECT x FROM t;"), _answer("SELECT y FROM t;"), "no tags"],
        # the repeat ran (empty): a failing query never replaces it, another empty one may
        (3, 1): [_answer("SELECT nm FROM t;"), _answer("SELECT name FROM t WHERE id = 8;")],
        (3, 2): [_answer("SELECT nm FROM t;"), _answer("SELECT name FROM u;")],
    }  # fmt: skip
    prompts = [f"Q{i}: which names?\n" for i in range(4)]

    def run(cfg: FeedbackConfig) -> tuple[list, RepeatScript]:
        script = RepeatScript(greedy, sampled)
        turns = generate_with_feedback(
            script, prompts, [greedy[i][0] for i in range(4)], cfg, tokenizer=tokenizer,
            extract=extract_sql, execute=lambda i, sql: db.run(sql), prefill=PREFILL,
        )  # fmt: skip
        return turns, script

    turns, script = run(FeedbackConfig(turns=3, retry_samples=3, retry_temperature=0.9))
    assert [[t.sql for t in c] for c in turns] == [
        ["SELECT nam FROM t;", "SELECT name FROM t;"],
        ["SELECT x FROM t;", "SELECT y FROM t;", "SELECT y FROM t;"],
        ["SELECT z FROM t;", "SELECT name FROM t;"],
        [EMPTY_SQL, "SELECT name FROM t WHERE id = 8;", "SELECT name FROM t WHERE id = 8;"],
    ]
    assert [[t.redrawn for t in c] for c in turns] == [
        [False, True], [False, True, False], [False, False], [False, True, False],
    ]  # fmt: skip
    assert [t.outcome for t in turns[3]] == ["empty"] * 3
    assert turns[0][1].outcome == "rows" and turns[1][2].outcome == "missing_column"
    # greedy rounds ask every waiting conversation; the draws only the repeats, seeded by round
    assert script.calls == [
        (0.0, 1, 7, [0, 1, 2, 3]), (0.9, 3, 8, [0, 1, 3]), (0.0, 1, 7, [1, 3]),
        (0.9, 3, 9, [1, 3]),
    ]  # fmt: skip
    records = [
        {"id": i, "match": False, "turns": [{**t.to_dict(), "executed": t.outcome == "rows"}
                                            for t in c]}
        for i, c in enumerate(turns)
    ]  # fmt: skip
    summary = feedback_summary(records)
    assert summary["redrawn"] == 3
    assert summary["per_turn"]["2"]["executable_rate"] == pytest.approx(2 / 4)

    plain, plain_script = run(FeedbackConfig(turns=3))  # off: the greedy repeat stays
    assert [t.outcome for t in plain[0]] == ["missing_column"] * 3
    assert not any(t.redrawn for c in plain for t in c)
    assert all(call[0] == 0.0 for call in plain_script.calls)

    with pytest.raises(ValueError, match="turns >= 2"):
        FeedbackConfig(turns=1, retry_samples=2)
    with pytest.raises(ValueError, match="retry_samples must be >= 0"):
        FeedbackConfig(turns=2, retry_samples=-1)
    with pytest.raises(ValueError, match="retry_temperature"):
        FeedbackConfig(turns=2, retry_samples=2, retry_temperature=0.0)


# ---------------------------------------------------------------- evaluation


SCRIPT = {
    # wrong column (a long name: its observation is cut), fixed at turn 2
    "s1": [
        _answer(f"SELECT {LONG_NAME} FROM wind_farms WHERE country = 'USA';"),
        _answer("SELECT name FROM wind_farms WHERE country = 'USA';"),
    ],
    "s2": [_answer(HANG), _answer("SELECT COUNT(*) FROM wind_farms WHERE country = 'Spain';")],
    "s3": [
        "I would sum the capacities.",
        _answer("SELECT country, SUM(capacity) FROM farms GROUP BY country;"),
        _answer("SELECT country, SUM(capacity) FROM wind_farms GROUP BY country;"),
    ],
    # right (the gold result is empty too), told it returned nothing, changed to a wrong one
    "s4": [
        _answer("SELECT name FROM wind_farms WHERE capacity > 1000;"),
        _answer("SELECT name FROM wind_farms;"),
    ],
    "s5": [_answer("UPDATE wind_farms SET capacity = 150 WHERE name = 'Wind Farm 1';")],
    "s6": [_answer("INSERT INTO wind_farms VALUES ('Wind Farm 4', 50, 'France');")],
    "s7": [_answer(BOMB), _answer("SELECT zeroblob(2000000);"), _answer("SELECT nme FROM w;")],
}


def _eval(
    tmp_path: Path, tokenizer: object, turns: int, name: str
) -> tuple[dict, dict, TurnScript]:
    script = TurnScript(SCRIPT, _eval_questions())
    cfg = EvalConfig(
        model="scripted",
        data=str(SAMPLES),
        out_dir=str(tmp_path / name),
        prefill=PREFILL,
        timeout_s=0.5,
        feedback=FeedbackConfig(turns=turns),
        generation=GenerationConfig(show_progress=False),
    )
    result = evaluate(cfg, tokenizer=tokenizer, generator=script)
    lines = (tmp_path / name / "predictions.jsonl").read_text().splitlines()
    return result.metrics, {json.loads(x)["id"]: json.loads(x) for x in lines}, script


def test_eval_keeps_every_turn_and_reports_each(tmp_path: Path, tokenizer: object) -> None:
    metrics, records, script = _eval(tmp_path, tokenizer, 3, "three")
    assert {i: len(r["turns"]) for i, r in records.items()} == {
        "s1": 2, "s2": 2, "s3": 3, "s4": 2, "s5": 1, "s6": 1, "s7": 3,
    }  # fmt: skip
    matches = {i: [t["match"] for t in r["turns"]] for i, r in records.items()}
    assert matches == {
        "s1": [False, True], "s2": [False, True], "s3": [False, False, True],
        "s4": [True, False], "s5": [True], "s6": [True], "s7": [False, False, False],
    }  # fmt: skip
    for r in records.values():  # the record scores its last turn
        assert r["completion"] == r["turns"][-1]["completion"]
        assert r["match"] == r["turns"][-1]["match"] and r["raw_output"].startswith(PREFILL)
        assert r["turns"][-1]["observation"] is None
    assert [t["outcome"] for t in records["s2"]["turns"]] == ["timeout", "rows"]
    assert [t["outcome"] for t in records["s3"]["turns"]] == ["no_sql", "missing_table", "rows"]
    assert records["s4"]["turns"][0]["observation"] == EMPTY_OBSERVATION
    assert records["s7"]["turns"][1]["outcome"] == "resource_limit"
    cut = records["s1"]["turns"][0]["observation"]
    assert cut.endswith(TRUNCATION_MARK) and cut.startswith("error (missing_column): ")
    assert len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= 64

    # what the model saw at its second and third turns: its answers, then each observation
    second = next(p for p in script.prompts if "Spain" in p and "<observation>" in p)
    assert second.count("<observation>") == 1 and HANG in second
    assert "error (timeout): " in second and second.endswith("assistant\n" + PREFILL)
    third = [p for p in script.prompts if "total capacity" in p][-1]
    assert third.index(NO_SQL_OBSERVATION) < third.index("no such table: farms")

    feedback = metrics["feedback"]
    per_turn = {
        t: (v["execution_accuracy"], v["executable_rate"]) for t, v in feedback["per_turn"].items()
    }
    assert per_turn == {
        "1": pytest.approx((3 / 7, 3 / 7)),
        "2": pytest.approx((4 / 7, 5 / 7)),
        "3": pytest.approx((5 / 7, 6 / 7)),
    }
    assert metrics["execution_accuracy"] == pytest.approx(5 / 7)  # the headline: the last turn
    paired = feedback["final_vs_first"]
    assert (paired["gained_ids"], paired["lost_ids"]) == (["s1", "s2", "s3"], ["s4"])
    assert paired["p_value"] == pytest.approx(0.625)
    assert feedback["turns_used"] == {"1": 2, "2": 3, "3": 2}
    saved = json.loads((tmp_path / "three" / "metrics.json").read_text())
    assert saved["settings"]["feedback"]["turns"] == 3

    # turn 1 alone is the single-turn evaluation
    single, single_records, _ = _eval(tmp_path, tokenizer, 1, "one")
    assert "feedback" not in single and not any("turns" in r for r in single_records.values())
    assert feedback["per_turn"]["1"]["execution_accuracy"] == single["execution_accuracy"]
    assert feedback["per_turn"]["1"]["executable_rate"] == single["executable_rate"]
    for i, r in single_records.items():
        assert r["completion"] == records[i]["turns"][0]["completion"]


def test_resume_needs_the_same_turns(tmp_path: Path, tokenizer: object) -> None:
    _eval(tmp_path, tokenizer, 2, "ev")
    with pytest.raises(ValueError, match="feedback"):
        _eval(tmp_path, tokenizer, 3, "ev")


def test_turns_need_one_conversation_per_question() -> None:
    with pytest.raises(ValueError, match="num_samples 1"):
        EvalConfig(
            model="m",
            data="d",
            feedback=FeedbackConfig(turns=2),
            generation=GenerationConfig(num_samples=2, temperature=0.7),
        )
    with pytest.raises(ValueError, match="turns must be >= 1"):
        FeedbackConfig(turns=0)


def test_turns_one_leaves_a_real_model_run_unchanged(tmp_path: Path, tiny: tuple) -> None:
    """With the tiny random model (greedy): --turns 1 writes the same predictions as an
    evaluation that never heard of turns, and turn 1 of a 3-turn run is that evaluation."""
    model, tokenizer = tiny

    def run(name: str, **options: object) -> tuple[dict, bytes]:
        cfg = EvalConfig(
            model="tiny",
            data=str(SAMPLES),
            out_dir=str(tmp_path / name),
            prefill=PREFILL,
            generation=GenerationConfig(max_new_tokens=6, batch_size=4, show_progress=False),
            **options,
        )
        metrics = evaluate(cfg, model=model, tokenizer=tokenizer).metrics
        return metrics, (tmp_path / name / "predictions.jsonl").read_bytes()

    plain, plain_bytes = run("plain")
    _, one_bytes = run("one", feedback=FeedbackConfig(turns=1))
    assert one_bytes == plain_bytes
    three, three_bytes = run("three", feedback=FeedbackConfig(turns=3))
    plain_records = [json.loads(x) for x in plain_bytes.decode().splitlines()]
    three_records = {json.loads(x)["id"]: json.loads(x) for x in three_bytes.decode().splitlines()}
    for r in plain_records:
        turns = three_records[r["id"]]["turns"]
        assert turns[0]["completion"] == r["completion"] and 1 <= len(turns) <= 3
        for earlier in turns[:-1]:  # a turn was followed by another only after an observation
            assert earlier["observation"] is not None
    assert three["feedback"]["per_turn"]["1"]["executable_rate"] == plain["executable_rate"]


# ---------------------------------------------------------------- ask


SCHEMA_SCRIPT = (
    "CREATE TABLE farm (farm_id INTEGER PRIMARY KEY, name TEXT, cows INTEGER);\n"
    "INSERT INTO farm VALUES (1, 'North', 10), (2, 'South', 25), (3, 'East', 7);\n"
)


def _run_folder(tmp_path: Path) -> Path:
    import yaml

    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"prefill": PREFILL}))
    return run


def test_ask_answers_again_after_an_error(tmp_path: Path, tokenizer: object) -> None:
    schema = tmp_path / "farm.sql"
    schema.write_text(SCHEMA_SCRIPT)
    question = "Which farms have more than 8 cows?"
    script = TurnScript(
        {"q": [_answer("SELECT nam FROM farm WHERE cows > 8;"), _answer(HANG),
               _answer("SELECT name FROM farm WHERE cows > 8;")]},
        {question: "q"},
    )  # fmt: skip
    asker = Asker(
        str(_run_folder(tmp_path)), open_database(schema=schema), generator=script,
        tokenizer=tokenizer, feedback=FeedbackConfig(turns=3),
    )  # fmt: skip
    answer = asker.ask(question)
    assert answer.sql == "SELECT name FROM farm WHERE cows > 8;"
    assert sorted(answer.result.rows) == [("North",), ("South",)]
    record = answer.to_dict()
    assert [t["outcome"] for t in record["turns"]] == ["missing_column", "timeout", "rows"]
    assert record["completion"] == PREFILL + record["turns"][-1]["completion"]
    assert answer.prompt == asker.prompt(question)  # the first prompt; later ones extend it

    single = Asker(
        str(_run_folder(tmp_path / "b")), open_database(schema=schema),
        generator=TurnScript(script.script, {question: "q"}), tokenizer=tokenizer,
    )  # fmt: skip
    assert "turns" not in single.ask(question).to_dict()  # --turns 1: the record as before
    with pytest.raises(AskError, match="--samples 1"):
        Asker(
            str(_run_folder(tmp_path / "c")), open_database(schema=schema), generator=script,
            tokenizer=tokenizer, samples=2, temperature=0.7, feedback=FeedbackConfig(turns=2),
        )  # fmt: skip


def test_cli_flags_reach_eval_and_ask(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("eval", "ask"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "--turns" in out and "--observation-tokens" in out and "--retry-empty" in out
        assert "--retry-samples" in out and "--retry-temperature" in out
