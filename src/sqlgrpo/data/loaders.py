"""Load gretel files, the gretel hub dataset, Spider / BIRD folders and the bundled set."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlgrpo.data.sample import (
    METADATA_KEYS,
    DataError,
    LoadResult,
    Sample,
    SkippedRow,
    check_type,
    id_key,
)
from sqlgrpo.data.schema import create_statements, sqlite_schema

logger = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLED_SPLITS = ("train", "test")
GRETEL_HUB_ID = "gretelai/synthetic_text_to_sql"
GRETEL_REQUIRED = ("sql_prompt", "sql_context", "sql")
GRETEL_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")

# A row as read from a file: (position label for messages, 0-based index, parsed row or error).
_Row = tuple[str, int, "dict[str, Any] | DataError"]


def load_samples(
    source: str,
    *,
    split: str | None = None,
    limit: int | None = None,
    skip_invalid: bool = False,
) -> LoadResult:
    """Load samples from ``source``.

    ``source`` is ``"bundled"`` (``split`` train [default] or test; also ``"bundled:test"``),
    a gretel-format file (.jsonl/.json/.parquet/.csv), a Spider or BIRD folder, or a hub
    dataset id such as ``gretelai/synthetic_text_to_sql``. Bad rows raise ``DataError``
    naming the file, row and problem; with ``skip_invalid`` they are skipped and counted.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if source == "bundled" or source.startswith("bundled:"):
        _, _, suffix = source.partition(":")
        if suffix and split and suffix != split:
            raise ValueError(f"source {source!r} conflicts with split={split!r}")
        return _load_bundled(suffix or split or "train", limit, skip_invalid)
    path = Path(source).expanduser()
    if path.is_dir():
        if _is_bird_folder(path):
            return _load_bird(path, split, limit, skip_invalid)
        if _is_spider_folder(path):
            return _load_spider(path, split, limit, skip_invalid)
        raise DataError(
            f"{path}: not a Spider folder (tables.json / database/) "
            "nor a BIRD folder (dev_databases/ or train_databases/)"
        )
    if path.is_file():
        return _load_gretel_file(path, split, limit, skip_invalid)
    if path.suffix.lower() in GRETEL_SUFFIXES or source.startswith((".", "/", "~")):
        raise DataError(f"{path}: no such file or folder")
    if source.count("/") == 1:
        return _load_hub(source, split, limit, skip_invalid)
    raise DataError(f"{source}: no such file or folder, and not a hub dataset id (owner/name)")


# --------------------------------------------------------------------------- gretel


def _load_bundled(split: str, limit: int | None, skip_invalid: bool) -> LoadResult:
    if split not in BUNDLED_SPLITS:
        raise ValueError(f"bundled dataset has splits {BUNDLED_SPLITS}, not {split!r}")
    path = BUNDLED_DIR / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: bundled file missing; run `sqlgrpo data generate`")
    return _collect(
        f"bundled:{split}",
        _read_jsonl(path),
        path.name,
        limit,
        skip_invalid,
        source="bundled",
        file_label=str(path),
    )


def _load_gretel_file(
    path: Path, split: str | None, limit: int | None, skip_invalid: bool
) -> LoadResult:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows: Iterable[_Row] = _read_jsonl(path)
    elif suffix == ".json":
        rows = _read_json_list(path)
    elif suffix == ".parquet":
        rows = _read_parquet(path)
    elif suffix == ".csv":
        rows = _read_csv(path)
    else:
        raise DataError(f"{path}: unknown file type {suffix!r}; expected one of {GRETEL_SUFFIXES}")
    if split is not None:
        rows = _filter_split(rows, split, path)
    source = "bundled" if path.parent == BUNDLED_DIR else "gretel"
    return _collect(
        str(path), rows, path.name, limit, skip_invalid, source=source, file_label=str(path)
    )


def _filter_split(rows: Iterable[_Row], split: str, path: Path) -> Iterator[_Row]:
    for where, index, row in rows:
        if isinstance(row, dict) and "split" not in row:
            raise DataError(
                f"{path}, {where}: split={split!r} asked for but the row has no 'split'"
            )
        if not isinstance(row, dict) or row["split"] == split:
            yield where, index, row


def _not_utf8(exc: UnicodeDecodeError) -> DataError:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return DataError(f"not valid UTF-8 (byte 0x{byte} at column {exc.start + 1})")


def _read_jsonl(path: Path) -> Iterator[_Row]:
    with path.open("rb") as handle:
        index = 0
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield f"line {lineno}", index, _not_utf8(exc)
                index += 1
                continue
            if not line.strip():
                continue
            where = f"line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, index, DataError(f"malformed JSON ({exc.msg})")
            else:
                if isinstance(row, dict):
                    yield where, index, row
                else:
                    yield where, index, DataError("expected a JSON object")
            index += 1


def _read_text(path: Path) -> str:
    """The file as UTF-8 text; DataError naming the file, line and byte when it is not."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}, line {line}: {_not_utf8(exc)}") from None


def _read_json_list(path: Path) -> Iterator[_Row]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed JSON at line {exc.lineno} ({exc.msg})") from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects")
    for index, row in enumerate(data):
        where = f"row {index}"
        if isinstance(row, dict):
            yield where, index, row
        else:
            yield where, index, DataError("expected a JSON object")


def _read_parquet(path: Path) -> Iterator[_Row]:
    import pyarrow.parquet as pq  # installed with `datasets`

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(f"{path}: unreadable parquet file ({exc})") from exc
    for index, row in enumerate(table.to_pylist()):
        yield f"row {index}", index, row


def _read_csv(path: Path) -> Iterator[_Row]:
    # surrogateescape keeps reading past a bad byte; the row holding it is then reported.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames and any(_has_bad_bytes(f) for f in reader.fieldnames):
            raise DataError(f"{path}, line 1: the header is not valid UTF-8")
        for index, row in enumerate(reader):
            where = f"line {reader.line_num}"
            if None in row:
                yield where, index, DataError("more fields than the header")
            elif any(_has_bad_bytes(v) for v in row.values() if isinstance(v, str)):
                bad = next(v for v in row.values() if isinstance(v, str) and _has_bad_bytes(v))
                byte = next(ord(c) - 0xDC00 for c in bad if "\udc80" <= c <= "\udcff")
                yield where, index, DataError(f"not valid UTF-8 (byte 0x{byte:02x})")
            else:
                yield where, index, dict(row)


def _has_bad_bytes(text: str) -> bool:
    """True when ``text`` holds bytes that were not UTF-8 (decoded with surrogateescape)."""
    return any("\udc80" <= c <= "\udcff" for c in text) if not text.isascii() else False


#: Gretel columns read as text (a row may leave the optional ones out or null).
TEXT_COLUMNS = ("sql_prompt", "sql_context", "sql", "db_path", "schema", "evidence")


def _gretel_sample(row: dict[str, Any], file_name: str, index: int, source: str) -> Sample:
    """One gretel row; rows exported from SQLite sources carry ``db_path`` instead of a context.

    The known columns must have their types (text; ``id`` a string or a number; metadata
    text, a number or a boolean): a wrong one is a DataError naming the column, never a
    value silently converted, replaced or dropped."""
    for column in TEXT_COLUMNS:
        check_type(column, row.get(column), (str,), "text")
    for column in METADATA_KEYS:
        check_type(column, row.get(column), (str, int, float, bool), "text or a number")
    db_path = row.get("db_path") if not row.get("sql_context") else None
    required = ("sql_prompt", "sql") if isinstance(db_path, str) else GRETEL_REQUIRED
    missing = [c for c in required if not isinstance(row.get(c), str) or not row[c].strip()]
    if missing:
        raise DataError(f"missing or empty column(s) {', '.join(missing)}")
    if isinstance(db_path, str):
        schema = row.get("schema") or sqlite_schema(db_path)
    else:
        schema = create_statements(row["sql_context"])
        if not schema:
            raise DataError("sql_context has no CREATE TABLE / CREATE VIEW statement")
    source_id = row.get("id")
    # DataError for a list, an object, a boolean, NaN; a blank id names nothing: numbered
    sample_id = id_key(source_id) if source_id is not None else ""
    if not sample_id.strip():
        source_id, sample_id = None, f"{source}:{file_name}:{index}"
    elif isinstance(source_id, str):
        source_id = None  # the key is the id itself
    metadata = {k: str(row[k]) for k in METADATA_KEYS if row.get(k) not in (None, "")}
    metadata.setdefault("source", source)
    return Sample(
        id=sample_id,
        question=row["sql_prompt"].strip(),
        schema=schema,
        sql=row["sql"].strip(),
        sql_context=None if isinstance(db_path, str) else row["sql_context"],
        db_path=db_path if isinstance(db_path, str) else None,
        evidence=row.get("evidence") or None,
        metadata=metadata,
        source_id=source_id,
    )


def _collect(
    label: str,
    rows: Iterable[_Row],
    file_name: str,
    limit: int | None,
    skip_invalid: bool,
    *,
    source: str,
    file_label: str,
) -> LoadResult:
    result = LoadResult(source=label)
    for where, index, row in rows:
        if limit is not None and len(result.samples) >= limit:
            break
        try:
            if isinstance(row, DataError):
                raise row
            result.samples.append(_gretel_sample(row, file_name, index, source))
        except DataError as exc:
            if not skip_invalid:
                raise DataError(f"{file_label}, {where}: {exc}") from None
            result.skipped.append(SkippedRow(file_label, where, str(exc)))
    _log_skips(result)
    return result


def _load_hub(
    dataset_id: str, split: str | None, limit: int | None, skip_invalid: bool
) -> LoadResult:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise DataError(f"{dataset_id}: loading hub datasets needs `datasets`") from exc
    hub_split = split or "train"
    try:
        data = datasets.load_dataset(dataset_id, split=hub_split)
    except Exception as exc:  # network / offline / unknown id all surface differently
        raise DataError(
            f"{dataset_id} (split {hub_split!r}): could not load from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}). Offline? Use the bundled dataset (source "
            "'bundled') or a local gretel-format file instead."
        ) from exc
    name = dataset_id.replace("/", "__")
    rows = ((f"row {i}", i, dict(r)) for i, r in enumerate(data))
    return _collect(
        f"{dataset_id}:{hub_split}",
        rows,
        f"{name}:{hub_split}",
        limit,
        skip_invalid,
        source="gretel",
        file_label=f"{dataset_id}:{hub_split}",
    )


# --------------------------------------------------------------------------- Spider / BIRD


def _is_spider_folder(path: Path) -> bool:
    return (path / "tables.json").is_file() or (path / "database").is_dir()


def _is_bird_folder(path: Path) -> bool:
    return (path / "dev_databases").is_dir() or (path / "train_databases").is_dir()


def _question_files(path: Path, split: str | None, candidates: dict[str, list[str]]) -> list[Path]:
    """Pick the question files of ``split`` (or, with no split, the first split present:
    a warning then names the split read when it is not the first one, e.g. train without
    dev.json)."""
    if split is not None and split not in candidates:
        raise ValueError(f"{path}: unknown split {split!r}; expected one of {list(candidates)}")
    for name in [split] if split else list(candidates):
        for group in candidates[name]:
            files = [path / f for f in group.split("+")]
            if all(f.is_file() for f in files):
                first = next(iter(candidates))
                if split is None and name != first:
                    logger.warning(
                        "%s: no --split given and no %s: read the %s split (%s)",
                        path,
                        " / ".join(candidates[first]),
                        name,
                        ", ".join(f.name for f in files),
                    )
                return files
    wanted = [g for name in ([split] if split else list(candidates)) for g in candidates[name]]
    raise DataError(f"{path}: no question file found (looked for {', '.join(wanted)})")


def _read_question_file(path: Path) -> list[Any]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed JSON at line {exc.lineno} ({exc.msg})") from exc
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of examples")
    return data


def _load_sqlite_folder(
    *,
    kind: str,
    files: list[Path],
    db_dirs: list[Path],
    sql_key: str,
    limit: int | None,
    skip_invalid: bool,
) -> LoadResult:
    split = "dev" if files[0].name == "dev.json" else "train"
    result = LoadResult(
        source=f"{files[0].parent} (split {split}: {', '.join(f.name for f in files)})"
    )
    schemas: dict[str, str | DataError] = {}
    for file in files:
        for index, row in enumerate(_read_question_file(file)):
            if limit is not None and len(result.samples) >= limit:
                break
            where = f"row {index}"
            try:
                sample = _sqlite_sample(kind, row, index, db_dirs, sql_key, schemas)
            except DataError as exc:
                message = f"{file}, {where}: {exc}"
                if not skip_invalid:
                    raise DataError(message) from None
                result.skipped.append(SkippedRow(str(file), where, str(exc)))
            else:
                result.samples.append(sample)
    _log_skips(result)
    return result


def _sqlite_sample(
    kind: str,
    row: Any,
    index: int,
    db_dirs: list[Path],
    sql_key: str,
    schemas: dict[str, str | DataError],
) -> Sample:
    if not isinstance(row, dict):
        raise DataError("expected a JSON object")
    missing = [k for k in ("question", sql_key, "db_id") if not isinstance(row.get(k), str)]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}")
    db_id = row["db_id"]
    db_path = next(
        (
            d / db_id / f"{db_id}.sqlite"
            for d in db_dirs
            if (d / db_id / f"{db_id}.sqlite").exists()
        ),
        db_dirs[0] / db_id / f"{db_id}.sqlite",
    )
    if db_id not in schemas:
        try:
            schemas[db_id] = sqlite_schema(db_path)
        except DataError as exc:
            schemas[db_id] = DataError(f"db_id {db_id!r}: {exc}")
        else:
            if not schemas[db_id]:
                schemas[db_id] = DataError(
                    f"db_id {db_id!r}: {db_path}: empty database (no tables)"
                )
    schema = schemas[db_id]
    if isinstance(schema, DataError):
        raise schema
    metadata = {"db_id": db_id, "source": kind}
    if row.get("difficulty"):
        metadata["difficulty"] = str(row["difficulty"])
    return Sample(
        id=f"{kind}:{db_id}:{index}",
        question=row["question"].strip(),
        schema=schema,
        sql=row[sql_key].strip(),
        db_path=str(db_path),
        evidence=(row.get("evidence") or "").strip() or None,
        metadata=metadata,
    )


def _load_spider(
    path: Path, split: str | None, limit: int | None, skip_invalid: bool
) -> LoadResult:
    candidates = {
        "dev": ["dev.json"],
        "train": ["train_spider.json+train_others.json", "train_spider.json", "train.json"],
    }
    files = _question_files(path, split, candidates)
    logger.info("Spider folder %s: reading %s", path, ", ".join(f.name for f in files))
    return _load_sqlite_folder(
        kind="spider",
        files=files,
        db_dirs=[path / "database", path / "test_database"],
        sql_key="query",
        limit=limit,
        skip_invalid=skip_invalid,
    )


def _load_bird(path: Path, split: str | None, limit: int | None, skip_invalid: bool) -> LoadResult:
    files = _question_files(path, split, {"dev": ["dev.json"], "train": ["train.json"]})
    logger.info("BIRD folder %s: reading %s", path, ", ".join(f.name for f in files))
    db_dir = path / ("dev_databases" if files[0].name == "dev.json" else "train_databases")
    return _load_sqlite_folder(
        kind="bird",
        files=files,
        db_dirs=[db_dir],
        sql_key="SQL",
        limit=limit,
        skip_invalid=skip_invalid,
    )


def _log_skips(result: LoadResult) -> None:
    if result.skipped:
        logger.warning(
            "%s: skipped %d invalid row(s), e.g. %s",
            result.source,
            len(result.skipped),
            result.skipped[0],
        )
    logger.info("%s: loaded %d sample(s)", result.source, len(result.samples))
