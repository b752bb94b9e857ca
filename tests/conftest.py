"""Shared test fixtures: paths to the reference fixtures and a CUDA skip marker."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# copies of ../shared/fixtures (outputs of the authors' reference code), kept in the repo
FIXTURES = Path(os.environ.get('ESC_BASICSR_FIXTURES', REPO / 'tests' / 'fixtures'))

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def load_fixture(name: str) -> dict:
    path = FIXTURES / name
    return torch.load(path, weights_only=True)


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)
    yield
