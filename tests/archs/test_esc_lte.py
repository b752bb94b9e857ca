"""ESC-LTE (arbitrary scale): reference-fixture equality, batches, sampled coordinates, chunked and
tiled rendering, several scales, input errors.

Sizes, batches, gradients, state_dict round trips and deployment folding at a non-integer scale:
tests/archs/test_table_harness.py; the LTE layer on its own: tests/layers/test_lte.py."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from esc_basicsr.archs.esc_arch import ESC
from esc_basicsr.archs.esc_lte_arch import ESCLTE
from esc_basicsr.layers.lte import make_cell, make_coord, scaled_size

from tests.conftest import load_fixture

FIXTURE = 'esc_lte_x2.5.pt'
TINY = dict(dim=16, pdim=4, kernel_size=7, n_blocks=1, conv_blocks=2, window_size=8, num_heads=2, exp_ratio=1.25)
TINY_LTE = dict(TINY, hidden_dim=16, imnet_hidden=(16, 16))


@pytest.fixture(scope='module')
def fix() -> dict:
    return load_fixture(FIXTURE)


def fixture_model(fix: dict, **overrides) -> ESCLTE:
    kwargs = dict(fix['kwargs']['encoder'], hidden_dim=fix['kwargs']['hidden_dim'],
                  imnet_hidden=fix['kwargs']['imnet_hidden'], **overrides)
    net = ESCLTE(**kwargs).eval()
    net.load_state_dict(fix['state_dict'], strict=True)
    return net


def as_queries(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, H*W, 3), row-major like make_coord."""
    return img.flatten(2).transpose(1, 2)


@pytest.mark.parametrize('attn_type', ['auto', 'naive', 'sdpa'])
def test_reference_fixture_query_and_upscale(fix: dict, attn_type: str) -> None:
    net = fixture_model(fix, attn_type=attn_type)
    assert sum(p.numel() for p in net.parameters()) == fix['num_params']
    with torch.no_grad():
        pred = net.query(fix['input'], fix['coord'], fix['cell'])
        img = net.upscale(fix['input'], fix['out_hw'], chunk=1000)  # 3 chunks
        fwd = net(fix['input'], fix['coord'], fix['cell'])
    assert pred.shape == (1, 3000, 3)
    assert (pred - as_queries(fix['output'])).abs().max() <= 1e-4
    assert img.shape == fix['output'].shape
    assert (img - fix['output']).abs().max() <= 1e-4
    assert torch.equal(fwd, pred)


def test_fixture_coordinates_are_make_coord(fix: dict) -> None:
    h, w = fix['out_hw']
    assert torch.allclose(fix['coord'][0], make_coord((h, w)), atol=1e-6)
    assert torch.allclose(fix['cell'][0], make_cell((h, w), h * w))


def test_sampled_coordinates_and_batches(fix: dict) -> None:
    """Each query depends on its own coordinate only, and each image on itself only."""
    net = fixture_model(fix)
    ref = as_queries(fix['output'])[0]
    idx = torch.randperm(3000, generator=torch.Generator().manual_seed(0))[:500]
    other = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        single_other = net.query(other, fix['coord'][:, idx], fix['cell'][:, idx])
        batch = net.query(torch.cat([fix['input'], other]), fix['coord'][:, idx].expand(2, -1, -1),
                          fix['cell'][:, idx].expand(2, -1, -1))
    assert (batch[0] - ref[idx]).abs().max() <= 1e-4
    assert (batch[1] - single_other[0]).abs().max() <= 1e-4
    assert (batch[0] - batch[1]).abs().max() > 1e-2  # the two images really differ


def test_tiled_upscale_is_close_and_covers_every_pixel(fix: dict) -> None:
    net = fixture_model(fix)
    with torch.no_grad():
        whole = net.upscale(fix['input'], (47, 61))
        tiled = net.upscale(fix['input'], (47, 61), tile=8, tile_pad=8, chunk=500)
    assert tiled.shape == whole.shape == (1, 3, 47, 61)
    assert (tiled - whole).abs().max() < 2e-2  # only the encoder's far context differs
    assert (tiled - whole).abs().mean() < 2e-3


@pytest.mark.parametrize('scale', [1.5, 2.5, 3.7, 6.0])
def test_upscale_any_size(scale: float) -> None:
    torch.manual_seed(0)
    net = ESCLTE(**TINY_LTE).eval()
    lq = torch.rand(2, 3, 9, 13)
    size = scaled_size(9, 13, scale)
    with torch.no_grad():
        out = net.upscale(lq, size)
    assert out.shape == (2, 3, *size) and size == (round(9 * scale), round(13 * scale))
    assert out.min() >= 0 and out.max() <= 1


def test_untrained_decoder_gives_bilinear_skip() -> None:
    """With a zero decoder the output is the bilinear upsampling (the LTE skip)."""
    net = ESCLTE(**TINY_LTE).eval()
    nn.init.zeros_(net.imnet.layers[-1].weight)
    nn.init.zeros_(net.imnet.layers[-1].bias)
    lq = torch.rand(1, 3, 8, 10)
    with torch.no_grad():
        out = net.upscale(lq, (20, 25))
    bilinear = torch.nn.functional.interpolate(lq, size=(20, 25), mode='bilinear', align_corners=False)
    assert (out - bilinear).abs().max() < 1e-5


# ----------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize('size', [0, (10,), (10, 0), (10.5, 12), (-3, 4)])
def test_bad_size_raises(size) -> None:
    net = ESCLTE(**TINY_LTE).eval()
    with pytest.raises(ValueError, match='size must be'):
        net.upscale(torch.rand(1, 3, 8, 8), size)


def test_bad_query_shapes_raise() -> None:
    net = ESCLTE(**TINY_LTE).eval()
    lq, coord = torch.rand(2, 3, 8, 8), torch.zeros(2, 5, 2)
    with pytest.raises(ValueError, match='coord and cell'):
        net.query(lq, coord, torch.zeros(2, 5, 1))
    with pytest.raises(ValueError, match='coord and cell'):
        net.query(lq, coord[:1], torch.zeros(1, 5, 2))
    with pytest.raises(ValueError, match='lq must be'):
        net.query(torch.rand(2, 1, 8, 8), coord, coord)
    with pytest.raises(ValueError, match='hidden_dim'):
        ESCLTE(**TINY, hidden_dim=15)


def test_classic_checkpoint_into_esclte_raises() -> None:
    esc = ESC(**TINY, upscaling_factor=2)
    with pytest.raises(ValueError, match='fixed-scale checkpoint.*ESC'):
        ESCLTE(**TINY_LTE).load_state_dict(esc.state_dict())


def test_esclte_checkpoint_into_esc_raises(fix: dict) -> None:
    esc = ESC(**fix['kwargs']['encoder'], upscaling_factor=2)
    with pytest.raises(ValueError, match='arbitrary-scale.*ESCLTE'):
        esc.load_state_dict(fix['state_dict'])
