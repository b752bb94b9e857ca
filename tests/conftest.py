"""Shared test fixtures: paths to the reference fixtures and the ``cuda`` marker (skipped without CUDA)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# copies of ../shared/fixtures (outputs of the authors' reference code), kept in the repo
FIXTURES = Path(os.environ.get('ESC_BASICSR_FIXTURES', REPO / 'tests' / 'fixtures'))

# GPU-only tests are marked ``cuda`` (pytest.ini) and skipped here when CUDA is missing;
# ``requires_cuda`` is that marker
requires_cuda = pytest.mark.cuda


def pytest_collection_modifyitems(config, items) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs CUDA')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)


def load_fixture(name: str) -> dict:
    path = FIXTURES / name
    return torch.load(path, weights_only=True)


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)
    yield
