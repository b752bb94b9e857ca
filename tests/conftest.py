"""Shared test helpers: the reference fixtures (paths, loading, reproduction), the ``cuda`` marker (skipped
without CUDA), an LMDB image reader and the tiny ESC-LTE that the BasicSR and tool tests share.

Tests import them as ``from tests.conftest import ...``; the small networks of every table row and the cases
of the table harness from ``tests/helpers/arch_cases.py``; helpers of one folder only live beside its tests
(``tests/integration/helpers.py``)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# copies of ../shared/fixtures (outputs of the authors' reference code), kept in the repo
FIXTURES = Path(os.environ.get('ESC_BASICSR_FIXTURES', REPO / 'tests' / 'fixtures'))
# fixtures not copied into the repo yet are read from the shared folder beside it
SHARED_FIXTURES = REPO.parent / 'shared' / 'fixtures'
# every reference fixture, one or more per architecture
FIXTURE_FILES = ['esc_x2.pt', 'esc_light_x4.pt', 'esc_fp_x2.pt', 'esc_real_x4_small.pt', 'esc_real_dysample_x4.pt',
                 'esc_realm_x2_pixelshuffle_unshuffle.pt', 'elan_light_x4.pt', 'esc_lte_x2.5.pt', 'escrib_x2.pt',
                 'escrib_flashbias_x4_small.pt']
REFERENCE_NAMES = {'ESC+LTE': 'ESCLTE'}  # a fixture's reference architecture name -> ours
# a tiny ESC-LTE (network_g without type) for the BasicSR and command-line tests
TINY_ESC_LTE = dict(dim=16, pdim=4, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2,
                    hidden_dim=16, imnet_hidden=[16, 16])

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


@pytest.fixture
def attn_env(monkeypatch):
    """Set ``ESC_BASICSR_ATTN`` for one test (the override is read once and cached): ``attn_env('naive')``."""
    from esc_basicsr.layers.config import ATTN_ENV, attn_override

    def set_env(value: str) -> None:
        monkeypatch.setenv(ATTN_ENV, value)
        attn_override.cache_clear()
    yield set_env
    monkeypatch.delenv(ATTN_ENV, raising=False)
    attn_override.cache_clear()


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


def fixture_path(name: str) -> Path:
    """``tests/fixtures/name``, else the shared copy; skips the test when neither exists."""
    for folder in (FIXTURES, SHARED_FIXTURES):
        if (folder / name).exists():
            return folder / name
    pytest.skip(f'fixture {name} not available')


def load_fixture_or_skip(name: str) -> dict:
    return torch.load(fixture_path(name), weights_only=True)


def require_arch(name: str) -> None:
    """Skip the test if the architecture table has no entry ``name``."""
    from esc_basicsr.archs import ARCHITECTURES

    if name not in ARCHITECTURES:
        pytest.skip(f'{name} has no entry in the architecture table yet')


def run_fixture(model: torch.nn.Module, fix: dict) -> torch.Tensor:
    """The model's output on the fixture's input (at the fixture's output size if arbitrary-scale)."""
    with torch.no_grad():
        if 'out_hw' in fix:  # arbitrary scale: the output size is an argument
            return model.upscale(fix['input'], tuple(fix['out_hw']))
        return model(fix['input'])


def assert_reproduces(model: torch.nn.Module, fix: dict) -> None:
    """The model gives the fixture's output (ELAN at rgb_range 255: float32 rounds at ~3e-5 of the
    hundreds, so within 1e-5 x rgb_range of the float64 reference)."""
    out = run_fixture(model, fix)
    if 'output_float64' in fix:
        tol = 1e-5 * fix['kwargs']['rgb_range']
        torch.testing.assert_close(out, fix['output_float64'].float(), atol=tol, rtol=0)
    else:
        torch.testing.assert_close(out, fix['output'], atol=1e-4, rtol=0)


def read_lmdb_image(path: Path, key: str):
    """The image stored under ``key`` in a BasicSR LMDB (``np.ndarray`` as OpenCV decodes it)."""
    import cv2
    import lmdb
    import numpy as np

    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        buf = txn.get(key.encode())
    env.close()
    return cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
