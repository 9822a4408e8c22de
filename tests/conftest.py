"""Shared fixtures: paths to the external datasets that sit beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
GRETEL_TRAIN = SHARED_DATASETS / "gretel" / "train.jsonl"
SPIDER_SUBSET = SHARED_DATASETS / "spider_train_subset"


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
