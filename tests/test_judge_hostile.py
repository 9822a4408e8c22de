"""Issue 18: a misbehaving judge endpoint (loopback server) ends in time, says what it
sent, and a transient fault is retried and never cached as an answer."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sqlgrpo.evaluation.judge import JudgeConfig, judge_eval_dir

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = (
    "SQL_SCORE: 5\nREASONING_SCORE: 4\nFORMAT_SCORE: 5\nEDUCATIONAL_SCORE: 4\n"
    "OVERALL_SCORE: 4.5\nEXPLANATION: ok\nERROR_TYPE: none"
)


def _completion(content: str | None) -> bytes:
    return json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()


#: mode -> (content type, body) of the first reply; later replies are good.
FIRST_REPLY = {
    "html": ("text/html", b"<html><body><h1>Sign in to the proxy</h1></body></html>"),
    "empty_content": ("application/json", _completion("")),
    "null_content": ("application/json", _completion(None)),
    "no_choices": ("application/json", b'{"id": "c", "object": "chat.completion", "choices": []}'),
    "malformed_json": ("application/json", b'{"id": "c", "choices": [{"index": 0, "mess'),
    "empty_body": ("application/json", b""),
    "json_null": ("application/json", b"null"),
    "json_list": ("application/json", b"[1, 2, 3]"),
    "content_not_text": ("application/json", _completion(None).replace(b"null", b"[1]", 1)),
}


class _Handler(BaseHTTPRequestHandler):
    mode = "good"
    calls = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers["Content-Length"]))
        with _Handler.lock:
            k = _Handler.calls
            _Handler.calls += 1
        mode = _Handler.mode
        try:
            if mode == "trickle":
                body = _completion(GOOD)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.5)
                return
            ctype, body = FIRST_REPLY[mode] if k == 0 else ("application/json", _completion(GOOD))
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Handler.calls = 0
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def eval_dir(tmp_path: Path) -> Path:
    shutil.copy(FIXTURES / "eval_predictions.jsonl", tmp_path / "predictions.jsonl")
    return tmp_path


def _cfg(url: str, **kw: object) -> JudgeConfig:
    opts: dict = {"model": "judge-test", "base_url": url, "backoff_s": 0.01, "limit": 1}
    opts.update(kw)
    return JudgeConfig(**opts)


@pytest.mark.timeout(30)
def test_trickling_server_ends_at_the_overall_deadline(url: str, eval_dir: Path) -> None:
    _Handler.mode = "trickle"
    started = time.monotonic()
    run = judge_eval_dir(eval_dir, _cfg(url, timeout_s=3.0, max_retries=0))
    elapsed = time.monotonic() - started
    assert run.summary["n_errors"] == 1 and "deadline" in run.judgements[0]["error"]
    assert elapsed < 3.0 + 1.5, elapsed


@pytest.mark.parametrize("mode", sorted(FIRST_REPLY))
def test_bad_reply_is_named_and_not_cached(url: str, eval_dir: Path, mode: str) -> None:
    _Handler.mode = mode
    run = judge_eval_dir(eval_dir, _cfg(url, max_retries=0))
    assert run.summary["n_errors"] == 1, run.judgements
    error = run.judgements[0]["error"]
    assert "attribute" not in error
    if mode == "html":
        assert "HTML" in error
    # Not cached: the next run asks again and gets the (now good) answer.
    run = judge_eval_dir(eval_dir, _cfg(url, max_retries=0))
    assert run.summary["n_scored"] == 1 and run.api_calls == 1


@pytest.mark.parametrize("mode", sorted(FIRST_REPLY))
def test_bad_reply_is_retried(url: str, eval_dir: Path, mode: str) -> None:
    _Handler.mode = mode
    run = judge_eval_dir(eval_dir, _cfg(url, max_retries=1))
    assert run.summary["n_scored"] == 1 and run.api_calls == 2, run.judgements
