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
    active = 0  # requests being answered now
    max_active = 0
    generation = 0  # one per test server: a handler left over from an earlier test counts no more
    ended: list[float] = []  # when each request's handler returned
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers["Content-Length"]))
        with _Handler.lock:
            k = _Handler.calls
            _Handler.calls += 1
        mode = _Handler.mode
        with _Handler.lock:
            generation = _Handler.generation
            _Handler.active += 1
            _Handler.max_active = max(_Handler.max_active, _Handler.active)
        try:
            if mode in HOSTILE:
                HOSTILE[mode](self)
                return
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
        finally:
            with _Handler.lock:
                if generation == _Handler.generation:
                    _Handler.active -= 1
                    _Handler.ended.append(time.monotonic())


HUGE = 50_000_000  # bytes of body the hostile servers offer
_CHUNK = b"x" * 65536


def _huge_body(handler: BaseHTTPRequestHandler, chunked: bool) -> None:
    """A 200 reply whose body is a valid-looking completion padded to 50 MB."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    else:
        handler.send_header("Content-Length", str(HUGE))
    handler.end_headers()
    head = _completion(GOOD)[:-1] + b', "padding": "'
    sent = 0
    for piece in [head] + [_CHUNK] * (HUGE // len(_CHUNK)):
        if chunked:
            piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        handler.wfile.write(piece)
        sent += len(piece)
    if chunked:
        handler.wfile.write(b'1\r\n"\r\n1\r\n}\r\n0\r\n\r\n')


def _gzip(handler: BaseHTTPRequestHandler) -> None:
    import gzip

    body = gzip.compress(_completion(GOOD))
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _drip(handler: BaseHTTPRequestHandler) -> None:
    """Headers at once, then a good completion one byte every 0.1 s (about 25 s in all)."""
    body = _completion(GOOD)
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for byte in body:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.1)


HOSTILE = {
    "huge": lambda h: _huge_body(h, chunked=False),
    "huge_chunked": lambda h: _huge_body(h, chunked=True),
    "gzip": _gzip,
    "drip": _drip,
}


@pytest.fixture
def url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with _Handler.lock:
        _Handler.generation += 1
        _Handler.calls = 0
        _Handler.active = _Handler.max_active = 0
        _Handler.ended = []
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


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["huge", "huge_chunked"])
def test_a_50_mb_reply_is_cut_at_the_cap_and_never_cached(
    url: str, eval_dir: Path, mode: str
) -> None:
    import tracemalloc

    _Handler.mode = mode
    cap = 100_000
    tracemalloc.start()
    try:
        run = judge_eval_dir(eval_dir, _cfg(url, max_retries=1, max_reply_bytes=cap))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert run.summary["n_errors"] == 1 and run.summary["n_scored"] == 0
    error = run.judgements[0]["error"]
    assert "JudgeReplyError" in error and "max_reply_bytes=100000" in error, error
    assert run.api_calls == 2  # a malformed reply is retried, like any other
    assert not (eval_dir / "judge_cache.jsonl").exists()  # nothing cached
    assert (eval_dir / "judgements.jsonl").stat().st_size < 2_000  # nor written
    assert peak < 20 * cap + 2_000_000, peak  # never the 50 MB (the server sends it in 64 KB)


def test_a_compressed_reply_is_refused_not_decoded(url: str, eval_dir: Path) -> None:
    _Handler.mode = "gzip"
    run = judge_eval_dir(eval_dir, _cfg(url, max_retries=0))
    assert run.summary["n_errors"] == 1 and "gzip" in run.judgements[0]["error"]
    assert not (eval_dir / "judge_cache.jsonl").exists()


@pytest.mark.timeout(60)
def test_abandoned_requests_close_their_connections_and_threads_stay_bounded(
    url: str, eval_dir: Path
) -> None:
    """A drip-feeding server (a reply takes 25 s), six records, four at a time, two retries
    each: every attempt ends at its deadline with its connection closed, so there are never
    more request threads than ``concurrency``, none outlives the run, and the server sees
    every connection closed within a second (abandoned, they would drip on for 25 s)."""
    _Handler.mode = "drip"
    cfg = _cfg(url, timeout_s=1.0, max_retries=2, concurrency=4, limit=None)
    most = [0]
    running = threading.Event()
    running.set()

    def watch() -> None:
        while running.is_set():
            alive = sum(t.name == "judge-request" for t in threading.enumerate())
            most[0] = max(most[0], alive)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        run = judge_eval_dir(eval_dir, cfg)
    finally:
        elapsed = time.monotonic() - started
        running.clear()
        watcher.join()
    assert run.summary["n_errors"] == 6 and run.api_calls == 18
    assert all("deadline" in j["error"] for j in run.judgements)
    assert 1 <= most[0] <= cfg.concurrency, most[0]
    assert not [t for t in threading.enumerate() if t.name == "judge-request"]
    deadline = time.monotonic() + 1.0
    while _Handler.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _Handler.active == 0  # every dripping connection was closed by the client
    assert len(_Handler.ended) == 18
    # two rounds of attempts per worker thread (4 + 2 records) x 3 attempts x 1 s, plus backoff
    assert elapsed < 2 * 3 * (cfg.timeout_s + 0.5) + 2.0, elapsed
