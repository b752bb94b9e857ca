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


def assert_reproduces_fixture(net: torch.nn.Module, fix: dict, atol: float = 1e-4) -> None:
    """``net`` (built from ``fix['kwargs']``) loads the reference state_dict strictly, has its parameter
    count and reproduces its output within ``atol``."""
    net.load_state_dict(fix['state_dict'], strict=True)
    assert sum(p.numel() for p in net.parameters()) == fix['num_params']
    with torch.no_grad():
        out = net.eval()(fix['input'].clone())
    assert out.shape == fix['output'].shape
    assert (out - fix['output']).abs().max().item() <= atol
