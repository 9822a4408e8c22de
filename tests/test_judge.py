"""The judge against a real OpenAI-style HTTP server on loopback (no internet)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sqlgrpo.evaluation.judge import (
    JUDGE_PROMPT,
    JudgeConfig,
    build_prompt,
    judge_eval_dir,
    parse_judgement,
    read_predictions,
    select_records,
)

FIXTURES = Path(__file__).parent / "fixtures"
PREDICTIONS = FIXTURES / "eval_predictions.jsonl"
GOOD_REPLY = (
    "SQL_SCORE: {sql}\nREASONING_SCORE: 4\nFORMAT_SCORE: 5\nEDUCATIONAL_SCORE: 4\n"
    "OVERALL_SCORE: {overall}\nEXPLANATION: ok\nERROR_TYPE: {err}"
)

# What the server does for the k-th request (0-based) about one question:
# (status, reply text or None for an error body, seconds to sleep first)
Behaviour = Callable[[str, int], tuple[int, str | None, float]]


@dataclass
class FakeServer:
    behaviour: Behaviour
    requests: list[dict] = field(default_factory=list)
    per_question: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""


def _question_of(prompt: str) -> str:
    return prompt.split("QUESTION:\n", 1)[1].split("\n", 1)[0].strip()


def _make_handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][0]["content"]
            question = _question_of(prompt)
            with state.lock:
                state.requests.append(body)
                k = state.per_question.get(question, 0)
                state.per_question[question] = k + 1
            status, reply, sleep_s = state.behaviour(question, k)
            if sleep_s:
                time.sleep(sleep_s)
            if reply is None:
                payload = {"error": {"message": f"status {status}", "type": "server_error"}}
            else:
                payload = {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                }
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

    return Handler


@pytest.fixture
def server() -> Iterator[Callable[[Behaviour], FakeServer]]:
    started: list[ThreadingHTTPServer] = []

    def start(behaviour: Behaviour) -> FakeServer:
        state = FakeServer(behaviour)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        return state

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def eval_dir(tmp_path: Path) -> Path:
    shutil.copy(PREDICTIONS, tmp_path / "predictions.jsonl")
    return tmp_path


def _cfg(state: FakeServer, **kw: object) -> JudgeConfig:
    opts: dict = {"model": "judge-test", "base_url": state.url, "backoff_s": 0.01}
    opts.update(kw)
    return JudgeConfig(**opts)


def _always_good(question: str, k: int) -> tuple[int, str | None, float]:
    return 200, GOOD_REPLY.format(sql=5, overall=4.5, err="none"), 0.0


def _replies() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "eval_judge_replies.jsonl").open()]


@pytest.mark.parametrize("case", _replies(), ids=lambda c: c["name"])
def test_parse_judgement_fixture(case: dict) -> None:
    parsed = parse_judgement(case["reply"])
    assert parsed.scores == case["scores"]
    assert parsed.status == case["status"]
    assert parsed.overall_source == case["overall_source"]
    assert parsed.error_type == case["error_type"]
    assert parsed.explanation == case["explanation"]


def test_prompt_is_the_spec_prompt_filled_from_the_record() -> None:
    record = read_predictions(PREDICTIONS)[0]
    prompt = build_prompt(record)
    assert prompt.startswith("As an SQL expert, evaluate this text-to-SQL conversion.")
    assert "  DATABASE SCHEMA:\n  " + record["sql_context"] in prompt
    assert "  GOLD SQL (CORRECT):\n  SELECT COUNT(*) FROM vessels;" in prompt
    assert prompt.endswith("ERROR_TYPE: [none/syntax/logic/format/other]")
    assert JUDGE_PROMPT.count("{") == 4


def test_select_records_is_deterministic_subset() -> None:
    records = [{"id": str(i)} for i in range(100)]
    a = select_records(records, 50, seed=3)
    assert a == select_records(records, 50, seed=3)
    assert len({r["id"] for r in a}) == 50
    assert a != select_records(records, 50, seed=4)
    assert select_records(records, None, seed=3) == records


def test_judge_summary_and_cache_prevents_second_call(server, eval_dir: Path) -> None:
    def behaviour(question: str, k: int) -> tuple[int, str | None, float]:
        if "Delete" in question:  # the failing DML row: judge gives a low SQL score
            return 200, GOOD_REPLY.format(sql=2, overall=3.0, err="logic"), 0.0
        return _always_good(question, k)

    state = server(behaviour)
    run = judge_eval_dir(eval_dir, _cfg(state, concurrency=3))
    assert run.api_calls == 6 and len(state.requests) == 6
    assert state.requests[0]["model"] == "judge-test"
    s = run.summary
    assert s["n"] == 6 and s["n_scored"] == 6 and s["n_errors"] == 0
    assert s["dimensions"]["sql"]["count_4_5"] == 5
    assert s["dimensions"]["format"]["count_5"] == 6
    assert s["overall_ge_4"] == {"count": 5, "of": 6, "share": 5 / 6, "computed_from_dimensions": 0}
    assert s["error_types"] == {"none": 5, "logic": 1}
    agreement = s["sql_score_vs_execution"]
    # matches: p1 p2 p5 p6 (judge high); p3 no match, judge high; p4 no match, judge low
    assert agreement["judge_high_and_match"] == 4
    assert agreement["judge_high_no_match"] == 1
    assert agreement["judge_low_and_no_match"] == 1
    assert agreement["rate"] == 5 / 6
    assert json.loads((eval_dir / "judge_summary.json").read_text())["n"] == 6
    lines = (eval_dir / "judgements.jsonl").read_text().splitlines()
    assert len(lines) == 6

    again = judge_eval_dir(eval_dir, _cfg(state))
    assert again.api_calls == 0 and len(state.requests) == 6
    assert again.summary["n_cached"] == 6
    assert again.summary["dimensions"] == s["dimensions"]


def test_retries_on_500_and_429(server, eval_dir: Path) -> None:
    def behaviour(question: str, k: int) -> tuple[int, str | None, float]:
        if k == 0:
            return (500 if "vessels" in question else 429), None, 0.0
        return _always_good(question, k)

    state = server(behaviour)
    run = judge_eval_dir(eval_dir, _cfg(state, max_retries=2))
    assert run.summary["n_scored"] == 6 and run.summary["n_errors"] == 0
    assert len(state.requests) == 12  # every question: one failure, one success


def test_gives_up_after_retries_and_records_error(server, eval_dir: Path) -> None:
    state = server(lambda q, k: (503, None, 0.0))
    run = judge_eval_dir(eval_dir, _cfg(state, max_retries=1, limit=2, seed=0))
    assert run.summary["n"] == 2 and run.summary["n_errors"] == 2
    assert run.summary["n_scored"] == 0
    assert run.summary["dimensions"]["sql"]["n_scored"] == 0  # not zeros: nothing scored
    assert all(j["status"] == "error" and "503" in j["error"] for j in run.judgements)
    assert len(state.requests) == 4


def test_client_error_is_not_retried(server, eval_dir: Path) -> None:
    state = server(lambda q, k: (400, None, 0.0))
    run = judge_eval_dir(eval_dir, _cfg(state, max_retries=3, limit=1))
    assert run.summary["n_errors"] == 1 and len(state.requests) == 1


def test_timeout_is_retried_and_errors_are_not_cached(server, eval_dir: Path) -> None:
    def slow_first(question: str, k: int) -> tuple[int, str | None, float]:
        return (*_always_good(question, k)[:2], 8.0 if k == 0 else 0.0)

    state = server(slow_first)
    run = judge_eval_dir(eval_dir, _cfg(state, timeout_s=2.0, max_retries=0, limit=1))
    assert run.summary["n_errors"] == 1
    assert "Timeout" in run.judgements[0]["error"]
    # The failure was not cached: the rerun asks again and now gets an answer.
    run = judge_eval_dir(eval_dir, _cfg(state, timeout_s=2.0, max_retries=0, limit=1))
    assert run.summary["n_scored"] == 1 and run.api_calls == 1

    state2 = server(slow_first)
    (eval_dir / "judge_cache.jsonl").unlink()
    run = judge_eval_dir(eval_dir, _cfg(state2, timeout_s=2.0, max_retries=1, limit=1))
    assert run.summary["n_scored"] == 1 and run.api_calls == 2


def test_malformed_reply_recorded_not_zero(server, eval_dir: Path) -> None:
    state = server(lambda q, k: (200, "Looks fine to me!", 0.0))
    run = judge_eval_dir(eval_dir, _cfg(state, limit=3))
    s = run.summary
    assert s["n_unparsed"] == 3 and s["n_scored"] == 0
    assert s["overall_ge_4"]["share"] is None
    for j in run.judgements:
        assert j["status"] == "unparsed"
        assert set(j["score_status"].values()) == {"missing"}
        assert all(v is None for v in j["scores"].values())


def test_missing_predictions_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="predictions.jsonl"):
        judge_eval_dir(tmp_path, JudgeConfig(base_url="http://127.0.0.1:9/v1"))


def test_bad_predictions_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "predictions.jsonl").write_text('{"id": "a"}\n{broken\n')
    with pytest.raises(ValueError, match=r"predictions.jsonl:2:"):
        judge_eval_dir(tmp_path, JudgeConfig(base_url="http://127.0.0.1:9/v1"))


def test_cli_judge(server, eval_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from sqlgrpo.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["judge", str(eval_dir)]) == 2  # no key, no base url: clear refusal
    assert "OPENAI_API_KEY" in capsys.readouterr().out
    state = server(_always_good)
    assert main(["judge", str(eval_dir), "--base-url", state.url, "--limit", "0"]) == 0
    out = capsys.readouterr().out
    assert "judged 6 of 6" in out and "overall >= 4.0: 6/6" in out
    assert (eval_dir / "judge_summary.json").exists()
