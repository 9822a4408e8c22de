"""LLM-as-a-judge (SPEC section 4) over any OpenAI-compatible chat endpoint.

The judge reads an evaluation folder's ``predictions.jsonl``, asks the model to
score each output with the spec's prompt, parses the five scores robustly
(missing or malformed scores are recorded as such, never as zeros), and writes
``judgements.jsonl`` and ``judge_summary.json`` beside the predictions.

Replies are cached by a hash of (model, prompt) in an append-only JSONL file, so
a rerun only pays for what is not in the cache yet.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import random
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlgrpo.data.jsonl import read_jsonl
from sqlgrpo.evaluation.agreement import judge_execution_agreement

logger = logging.getLogger(__name__)

JUDGE_PROMPT = """As an SQL expert, evaluate this text-to-SQL conversion. Score each dimension from 1-5 (1=poor, 5=excellent).
  DATABASE SCHEMA:
  {sql_context}
  QUESTION:
  {sql_prompt}
  GOLD SQL (CORRECT):
  {sql}
  MODEL OUTPUT:
  {model_output}
  Provide scores in this exact format:
  SQL_SCORE: [1-5] - Does the SQL work and produce correct results?
  REASONING_SCORE: [1-5] - Is the reasoning clear, logical, and references correct schema?
  FORMAT_SCORE: [1-5] - Does it follow <reasoning>...</reasoning><sql>...</sql> format?
  EDUCATIONAL_SCORE: [1-5] - Would this help someone learn SQL?
  OVERALL_SCORE: [average]
  EXPLANATION: [brief explanation of strengths/weaknesses]
  ERROR_TYPE: [none/syntax/logic/format/other]"""

SCORE_FIELDS = ("sql", "reasoning", "format", "educational", "overall")
ERROR_TYPES = ("none", "syntax", "logic", "format", "other")
JUDGEMENTS_FILE = "judgements.jsonl"
SUMMARY_FILE = "judge_summary.json"
CACHE_FILE = "judge_cache.jsonl"
RETRY_STATUS = {408, 409, 429}

_NUMBER = r"\[?\s*\**\s*(-?\d+(?:\.\d+)?)"


def _field_pattern(label: str) -> re.Pattern[str]:
    # Tolerates markdown (**SQL_SCORE:**), spaces for underscores and "4/5" or "[4]".
    words = label.replace("_", r"[_\s]")
    return re.compile(
        rf"^[\s*#>\-]*{words}\s*\**\s*[:=]\s*\**\s*(.*)$", re.IGNORECASE | re.MULTILINE
    )


_SCORE_PATTERNS = {name: _field_pattern(f"{name.upper()}_SCORE") for name in SCORE_FIELDS}
_EXPLANATION_PATTERN = re.compile(
    r"^[\s*#>\-]*EXPLANATION\s*\**\s*[:=]\s*\**\s*(.*?)(?=^[\s*#>\-]*ERROR[_\s]TYPE|\Z)",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)
_ERROR_TYPE_PATTERN = _field_pattern("ERROR_TYPE")


@dataclass
class JudgeConfig:
    """Settings for one judge run."""

    model: str = field(default="gpt-4o-mini", metadata={"help": "judge model name"})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible endpoint"})
    api_key: str | None = field(default=None, metadata={"help": "API key (local servers: any)"})
    concurrency: int = field(default=4, metadata={"help": "requests in flight"})
    timeout_s: float = field(default=60.0, metadata={"help": "per-request timeout"})
    max_retries: int = field(default=4, metadata={"help": "retries on 429/5xx/timeouts"})
    backoff_s: float = field(default=1.0, metadata={"help": "first retry delay, doubled each try"})
    max_backoff_s: float = field(default=30.0, metadata={"help": "cap on one retry delay"})
    temperature: float = field(default=0.0, metadata={"help": "judge sampling temperature"})
    max_tokens: int = field(default=512, metadata={"help": "judge reply budget"})
    limit: int | None = field(default=None, metadata={"help": "judge a random subset of N"})
    seed: int = field(default=0, metadata={"help": "seed for the random subset"})
    cache_path: str | None = field(default=None, metadata={"help": "cache file (default: DIR)"})
    max_reply_bytes: int = field(
        default=1_000_000,
        metadata={"help": "bytes of a reply's body read at most; a longer reply is malformed"},
    )

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.max_reply_bytes < 1:
            raise ValueError(f"max_reply_bytes must be >= 1, got {self.max_reply_bytes}")


@dataclass
class JudgeScores:
    """Parsed judge reply. A score is None when missing or malformed; see ``status``."""

    scores: dict[str, float | None]
    status: dict[str, str]  # per score: "ok" | "missing" | "malformed"
    overall_source: str | None  # "judge" | "computed" (mean of the four) | None
    explanation: str | None
    error_type: str | None  # one of ERROR_TYPES, "malformed", or None when missing
    error_type_raw: str | None

    @property
    def parsed_any(self) -> bool:
        """True when at least one score was read from the reply."""
        return any(s == "ok" for s in self.status.values())


def build_prompt(record: dict[str, Any]) -> str:
    """Fill the spec's judge prompt from one predictions.jsonl record."""
    context = record.get("sql_context") or record.get("schema") or ""
    return JUDGE_PROMPT.format(
        sql_context=context,
        sql_prompt=record.get("question", ""),
        sql=record.get("gold_sql", ""),
        model_output=record.get("raw_output", ""),
    )


def _parse_score(text: str, pattern: re.Pattern[str]) -> tuple[float | None, str]:
    found = pattern.search(text)
    if not found:
        return None, "missing"
    raw = found.group(1).strip()
    value = re.match(_NUMBER, raw)
    if not value or re.match(r"\[?\s*1\s*-\s*5\b", raw):  # echoed template "[1-5]"
        return None, "malformed"
    score = float(value.group(1))
    if not 1.0 <= score <= 5.0:
        return None, "malformed"
    return score, "ok"


def parse_judgement(text: str) -> JudgeScores:
    """Read the five scores, explanation and error type from a judge reply."""
    scores: dict[str, float | None] = {}
    status: dict[str, str] = {}
    for name in SCORE_FIELDS:
        scores[name], status[name] = _parse_score(text, _SCORE_PATTERNS[name])
    overall_source: str | None = "judge" if status["overall"] == "ok" else None
    dims = [scores[n] for n in ("sql", "reasoning", "format", "educational")]
    if overall_source is None and all(v is not None for v in dims):
        scores["overall"] = sum(v for v in dims if v is not None) / 4.0
        overall_source = "computed"
    explanation_match = _EXPLANATION_PATTERN.search(text)
    explanation = (
        explanation_match.group(1).strip().strip("*").strip() if explanation_match else None
    )
    error_raw: str | None = None
    error_type: str | None = None
    found = _ERROR_TYPE_PATTERN.search(text)
    if found:
        error_raw = found.group(1).strip()
        word = re.match(r"[\[\s*]*([a-zA-Z]+)", error_raw)
        error_type = word.group(1).lower() if word else "malformed"
        if error_type not in ERROR_TYPES:
            error_type = "malformed"
    return JudgeScores(scores, status, overall_source, explanation or None, error_type, error_raw)


class JudgeCache:
    """Append-only JSONL cache of judge replies keyed by a hash of (model, prompt)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, str] = {}
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                        self._entries[entry["key"]] = entry["reply"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        logger.warning("%s line %d: unreadable cache entry, ignored", path, lineno)

    @staticmethod
    def key(model: str, prompt: str) -> str:
        """Stable cache key for one request."""
        return hashlib.sha256(f"{model}\x00{prompt}".encode()).hexdigest()

    def get(self, key: str) -> str | None:
        """The cached reply, or None."""
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, reply: str) -> None:
        """Store a reply (written to disk at once)."""
        with self._lock:
            self._entries[key] = reply
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "reply": reply}) + "\n")

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class JudgeClient:
    """POSTs to an OpenAI-compatible ``/chat/completions`` endpoint with an overall deadline
    per request, a cap on the reply's size, and retries (exponential backoff).

    Each attempt is one HTTP/1.1 exchange on its own connection (``http.client``, honouring
    the ``*_proxy`` environment variables), run in a thread that this one waits for at most
    ``timeout_s``. Past that, the connection's socket is shut down, which ends the thread's
    blocked read at once, and the thread is joined: an abandoned request never keeps a
    socket or a thread (each caller holds at most one request thread at a time). At most
    ``max_reply_bytes`` of the body are read; a longer one (or a compressed one: we ask for
    ``identity``) is a malformed reply, never parsed, cached or written.
    """

    def __init__(self, cfg: JudgeConfig) -> None:
        self.cfg = cfg
        base = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        self.url = urllib.parse.urlsplit(base.rstrip("/") + "/chat/completions")
        if self.url.scheme not in ("http", "https") or not self.url.hostname:
            raise ValueError(f"judge base_url must be an http(s) URL, got {base!r}")
        api_key = cfg.api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key and not cfg.base_url:
            raise ValueError("no API key for the judge: set OPENAI_API_KEY or pass api_key")
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "Authorization": f"Bearer {api_key or 'not-needed'}",
            "User-Agent": "sqlgrpo-judge",
        }
        self.calls = 0
        self._lock = threading.Lock()

    def _delay(self, attempt: int, exc: Exception) -> float:
        delay = min(self.cfg.backoff_s * (2**attempt), self.cfg.max_backoff_s)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            try:
                delay = min(max(delay, float(retry_after)), self.cfg.max_backoff_s)
            except ValueError:
                pass
        return delay

    def _connection(self) -> http.client.HTTPConnection:
        """A connection to the endpoint, or to the proxy the environment names for it."""
        url, timeout = self.url, self.cfg.timeout_s
        https = url.scheme == "https"
        port = url.port or (443 if https else 80)
        proxy = urllib.request.getproxies().get(url.scheme)
        if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
            via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if not https:  # a plain proxy: the request line names the full URL
                return http.client.HTTPConnection(
                    via.hostname or "", via.port or 80, timeout=timeout
                )
            tunnel = http.client.HTTPSConnection(
                via.hostname or "", via.port or 80, timeout=timeout
            )
            tunnel.set_tunnel(url.hostname or "", port)  # CONNECT, then TLS to the endpoint
            return tunnel
        if https:
            return http.client.HTTPSConnection(url.hostname or "", port, timeout=timeout)
        return http.client.HTTPConnection(url.hostname or "", port, timeout=timeout)

    def _target(self, conn: http.client.HTTPConnection) -> str:
        path = self.url.path + (f"?{self.url.query}" if self.url.query else "")
        if not isinstance(conn, http.client.HTTPSConnection) and conn.host != self.url.hostname:
            return urllib.parse.urlunsplit(self.url)  # a plain HTTP proxy takes the full URL
        return path

    def _create(self, prompt: str) -> Any:
        """One request, ended after ``timeout_s`` whatever the server does; returns the parsed
        JSON reply or raises (:class:`JudgeStatusError`, :class:`JudgeReplyError`,
        :class:`JudgeTimeoutError`, ``OSError`` / ``http.client.HTTPException``)."""
        body = json.dumps(
            {
                "model": self.cfg.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens,
            }
        ).encode()
        exchange = _Exchange(self._connection(), self._target, self.headers, body, self.cfg)
        worker = threading.Thread(target=exchange.run, name="judge-request", daemon=True)
        worker.start()
        worker.join(self.cfg.timeout_s)
        if worker.is_alive():
            exchange.abort()  # wakes the blocked read: the thread ends and closes its socket
            worker.join(self.cfg.timeout_s)  # a connect still under way ends by its timeout
            if worker.is_alive():
                logger.warning("a judge request thread is still connecting after its deadline")
            raise JudgeTimeoutError(
                f"no complete reply within the {self.cfg.timeout_s:g} s deadline"
            )
        status, headers, data = exchange.outcome()
        if not 200 <= status < 300:
            raise JudgeStatusError(status, _error_text(data), headers.get("retry-after"))
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            return data  # _reply_text names what it is (an HTML page, text)

    def complete(self, prompt: str) -> str:
        """Return the reply text; raises the last error once retries are spent.

        Retried (up to ``max_retries``): timeouts (each attempt has an overall deadline of
        ``timeout_s``), connection errors, 429 and 5xx, and replies that are not a usable
        chat completion (malformed JSON, an HTML page, no choices, empty content, a body over
        ``max_reply_bytes``), which are therefore never cached as answers.
        """
        attempt = 0
        while True:
            with self._lock:
                self.calls += 1
            try:
                return _reply_text(self._create(prompt))
            except JudgeStatusError as exc:
                retryable = exc.status >= 500 or exc.status in RETRY_STATUS
                error: Exception = exc
            except (JudgeReplyError, JudgeTimeoutError, OSError, http.client.HTTPException) as exc:
                retryable, error = True, exc
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                retryable = True
                error = JudgeReplyError(f"malformed reply from the judge endpoint: {exc}")
            if not retryable or attempt >= self.cfg.max_retries:
                raise error
            delay = self._delay(attempt, error)
            logger.info("judge request failed (%s); retry %d in %.1fs", error, attempt + 1, delay)
            time.sleep(delay)
            attempt += 1


#: Where requests go without ``base_url`` (or ``$OPENAI_BASE_URL``).
OPENAI_BASE_URL = "https://api.openai.com/v1"


class _Exchange:
    """One HTTP request/response, run in its own thread; :meth:`abort` ends it from another."""

    def __init__(
        self,
        conn: http.client.HTTPConnection,
        target: Any,
        headers: dict[str, str],
        body: bytes,
        cfg: JudgeConfig,
    ) -> None:
        self.conn = conn
        self.target = target
        self.headers = headers
        self.body = body
        self.max_bytes = cfg.max_reply_bytes
        self._lock = threading.Lock()
        self._aborted = False
        self._sock: socket.socket | None = None
        self._result: tuple[int, dict[str, str], bytes] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self.conn.connect()
            with self._lock:
                # kept: http.client drops conn.sock once a closing response starts, while
                # the response still reads from this socket
                self._sock = self.conn.sock
                if self._aborted:
                    return
            self.conn.request("POST", self.target(self.conn), self.body, self.headers)
            response = self.conn.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}
            encoding = headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise JudgeReplyError(
                    f"the judge endpoint sent a {encoding!r}-encoded reply although asked for"
                    " identity; not decoded (its size could not be bounded)"
                )
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise JudgeReplyError(_too_big(int(declared), self.max_bytes))
            data = response.read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                raise JudgeReplyError(_too_big(None, self.max_bytes))
            self._result = (response.status, headers, data)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by outcome()
            self._error = exc
        finally:
            self.conn.close()

    def abort(self) -> None:
        """Shut the socket down (the blocked read returns at once; the fd stays the owner's
        to close, so no other connection can be hit by a reused descriptor)."""
        with self._lock:
            self._aborted = True
            sock = self._sock
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def outcome(self) -> tuple[int, dict[str, str], bytes]:
        """(status, lowercased headers, body) or the exception the exchange raised."""
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def _too_big(declared: int | None, cap: int) -> str:
    size = f"{declared} bytes" if declared is not None else f"more than {cap} bytes"
    return (
        f"the judge endpoint's reply is {size}, over max_reply_bytes={cap}: not read further,"
        " not parsed, not cached"
    )


def _error_text(data: bytes) -> str:
    """A short message from an error body (``{"error": {"message": ...}}`` or its text)."""
    text = data[:2000].decode("utf-8", "replace")
    try:
        message = json.loads(data)["error"]["message"]
        if isinstance(message, str):
            return message[:300]
    except (ValueError, KeyError, TypeError, IndexError):
        pass
    return " ".join(text[:300].split())


class JudgeStatusError(RuntimeError):
    """The judge endpoint answered with an HTTP error status."""

    def __init__(self, status: int, message: str, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retry_after = retry_after


class JudgeTimeoutError(TimeoutError):
    """A judge request did not complete within its overall deadline."""


class JudgeReplyError(ValueError):
    """The judge endpoint answered with something that is not a usable chat completion."""


def _reply_text(response: Any) -> str:
    """The reply's text; raises :class:`JudgeReplyError` naming what came back instead."""
    if isinstance(response, (str, bytes)):
        text = response.decode("utf-8", "replace") if isinstance(response, bytes) else response
        kind = "an HTML page" if "<html" in text[:500].lower() else "non-JSON text"
        if not text.strip():
            kind = "an empty body"
        snippet = " ".join(text[:120].split())
        raise JudgeReplyError(
            f"the judge endpoint replied with {kind}, not a chat completion (check --base-url):"
            f" {snippet!r}"
        )
    if not isinstance(response, dict):
        raise JudgeReplyError(f"reply is JSON {type(response).__name__}, not a chat completion")
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        raise JudgeReplyError("reply has no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise JudgeReplyError("the judge endpoint returned an empty reply")
    return content


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Read predictions.jsonl; a bad line raises naming the file and line."""
    return read_jsonl(path, require=("id",))


def select_records(
    records: list[dict[str, Any]], limit: int | None, seed: int
) -> list[dict[str, Any]]:
    """A deterministic random subset of ``limit`` records (all when limit is None)."""
    if limit is None or limit >= len(records):
        return list(records)
    picked = random.Random(seed).sample(range(len(records)), limit)
    return [records[i] for i in sorted(picked)]


def _judge_one(
    record: dict[str, Any], client: JudgeClient | None, cache: JudgeCache, model: str
) -> dict[str, Any]:
    prompt = build_prompt(record)
    key = JudgeCache.key(model, prompt)
    reply = cache.get(key)
    cached = reply is not None
    out: dict[str, Any] = {"id": record["id"], "match": record.get("match"), "cached": cached}
    if reply is None:
        if client is None:
            raise RuntimeError("judge client missing for an uncached prompt")
        try:
            reply = client.complete(prompt)
        except Exception as exc:  # recorded per row; the run goes on
            out.update(status="error", error=f"{type(exc).__name__}: {exc}", reply=None)
            return out
        cache.put(key, reply)
    parsed = parse_judgement(reply)
    out.update(
        status="ok" if parsed.parsed_any else "unparsed",
        reply=reply,
        scores=parsed.scores,
        score_status=parsed.status,
        overall_source=parsed.overall_source,
        explanation=parsed.explanation,
        error_type=parsed.error_type,
    )
    return out


def summarize(judgements: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec's summary: counts of 4-5 per dimension, share overall >= 4, error types,
    and agreement between the judge's SQL score (>= 4) and execution match."""
    n = len(judgements)
    scored = [j for j in judgements if j.get("status") == "ok"]
    dims: dict[str, dict[str, Any]] = {}
    for name in SCORE_FIELDS:
        values = [j["scores"][name] for j in scored if j["scores"].get(name) is not None]
        states = Counter(j["score_status"][name] for j in scored)
        dims[name] = {
            "n_scored": len(values),
            "count_4_5": sum(1 for v in values if v >= 4.0),
            "count_5": sum(1 for v in values if v >= 5.0),
            "mean": sum(values) / len(values) if values else None,
            "missing": states.get("missing", 0),
            "malformed": states.get("malformed", 0),
        }
    overall = [j["scores"]["overall"] for j in scored if j["scores"].get("overall") is not None]
    agreement = judge_execution_agreement(scored)
    return {
        "n": n,
        "n_scored": len(scored),
        "n_unparsed": sum(1 for j in judgements if j.get("status") == "unparsed"),
        "n_errors": sum(1 for j in judgements if j.get("status") == "error"),
        "n_cached": sum(1 for j in judgements if j.get("cached")),
        "dimensions": dims,
        "overall_ge_4": {
            "count": sum(1 for v in overall if v >= 4.0),
            "of": len(overall),
            "share": sum(1 for v in overall if v >= 4.0) / len(overall) if overall else None,
            "computed_from_dimensions": sum(
                1 for j in scored if j.get("overall_source") == "computed"
            ),
        },
        "error_types": dict(Counter(j.get("error_type") or "missing" for j in scored)),
        "sql_score_vs_execution": agreement,
    }


@dataclass
class JudgeRun:
    """What a judge run produced."""

    judgements: list[dict[str, Any]]
    summary: dict[str, Any]
    api_calls: int
    judgements_path: Path
    summary_path: Path


def judge_eval_dir(eval_dir: str | Path, cfg: JudgeConfig) -> JudgeRun:
    """Judge the predictions in ``eval_dir``; writes judgements.jsonl and judge_summary.json."""
    eval_dir = Path(eval_dir)
    pred_path = eval_dir / "predictions.jsonl"
    if not pred_path.exists():
        raise FileNotFoundError(f"{pred_path} not found: run `sqlgrpo eval --out {eval_dir}` first")
    records = select_records(read_predictions(pred_path), cfg.limit, cfg.seed)
    cache = JudgeCache(Path(cfg.cache_path) if cfg.cache_path else eval_dir / CACHE_FILE)
    pending = [r for r in records if cache.get(JudgeCache.key(cfg.model, build_prompt(r))) is None]
    client = JudgeClient(cfg) if pending else None
    logger.info(
        "judging %d outputs (%d cached) with %s",
        len(records),
        len(records) - len(pending),
        cfg.model,
    )
    with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
        judgements = list(pool.map(lambda r: _judge_one(r, client, cache, cfg.model), records))
    summary = summarize(judgements)
    summary["judge"] = {k: v for k, v in asdict(cfg).items() if k != "api_key"}
    out_path = eval_dir / JUDGEMENTS_FILE
    with out_path.open("w", encoding="utf-8") as fh:
        for j in judgements:
            fh.write(json.dumps(j) + "\n")
    summary_path = eval_dir / SUMMARY_FILE
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return JudgeRun(judgements, summary, client.calls if client else 0, out_path, summary_path)
