"""Shared fixtures: paths to the external datasets that sit beside the repo, and a tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
GRETEL_TRAIN = SHARED_DATASETS / "gretel" / "train.jsonl"
SPIDER_SUBSET = SHARED_DATASETS / "spider_train_subset"


@pytest.fixture(autouse=True)
def cpu_without_bf16_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """``precision: auto`` decides as on a CPU without bf16 matrix units (fp32), whatever CPU
    runs the suite, so outputs compared across paths stay exact on every machine; the bf16
    paths are tested by asking for them (tests/test_precision.py)."""
    import sqlgrpo.models.precision as precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda cpuinfo=None: [])


@pytest.fixture(scope="session")
def gretel_train_path() -> Path:
    """The gretel sample in ../shared; skips when this clone has no ../shared."""
    if not GRETEL_TRAIN.exists():
        pytest.skip(f"needs the shared gretel sample at {GRETEL_TRAIN}")
    return GRETEL_TRAIN


@pytest.fixture(scope="session")
def spider_subset_path() -> Path:
    """The Spider subset in ../shared; skips when this clone has no ../shared."""
    if not (SPIDER_SUBSET / "train.json").exists():
        pytest.skip(f"needs the shared Spider subset at {SPIDER_SUBSET}")
    return SPIDER_SUBSET


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    """A tiny random Llama and its tokenizer (``eval_tiny_model``), fresh for each module."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eval_tiny_model import tiny_model_dir

    path = tiny_model_dir(tmp_path_factory.mktemp("model"))
    return AutoModelForCausalLM.from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="session")
def pg_cluster() -> object:
    """A throwaway PostgreSQL cluster (tests/pg_cluster.py), stopped at the end of the session.

    Skips with the reason when no server can be started here; in CI (``CI=true``) that is a
    failure instead: the PostgreSQL tests must always run there."""
    pytest.importorskip("psycopg", reason="needs psycopg (pip install 'sqlgrpo[engines]')")
    from pg_cluster import ClusterUnavailable, PgCluster

    try:
        cluster = PgCluster().start()
    except ClusterUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests, but no server started: {exc}")
        pytest.skip(f"no PostgreSQL server could be started: {exc}")
    yield cluster
    cluster.stop()
