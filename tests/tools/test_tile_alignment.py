"""Tiles align to the table's input grid for esc_basicsr networks (ESCRealM: window x unshuffle)."""
from __future__ import annotations

import pytest
import torch

from esc_basicsr.archs import ESCRealM, build, network_g
from esc_basicsr.tools.tiling import tile_alignment, tiled_forward

SMALL = dict(dim=16, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=4, num_heads=1)


@pytest.mark.parametrize('scale,expected', [(1, 128), (2, 64), (4, 32)])
def test_escrealm_tiles_align_to_window_times_unshuffle(scale: int, expected: int) -> None:
    opt = network_g('esc_realm', scale)
    model = build('esc_realm', scale)
    assert tile_alignment(model, opt) == expected == model.unshuffle * opt['window_size']
    assert tile_alignment(model) == 32  # without network_g: the attention windows on the modules


def test_other_networks_keep_the_attribute_scan() -> None:
    esc = build('esc', 2)
    assert tile_alignment(esc, network_g('esc', 2)) == tile_alignment(esc) == 32
    elan = build('elan_light', 2)
    assert tile_alignment(elan, network_g('elan_light', 2)) == tile_alignment(elan) == 16
    assert tile_alignment(esc, {'type': 'SwinIR', 'window_size': 8}) == 32  # not ours: the scan


def test_escrealm_x2_tiles_see_the_trunk_window_grid() -> None:
    """ESCRealM x2 runs its trunk on the input unshuffled by 2: window 4 there is a grid of 8 input
    pixels. Freshly initialised (dynamic kernels zero: no global pooling), its output depends on
    nearby pixels only, so tiles on that grid with context beyond the receptive field are exact;
    tiles on the attention window alone (the attribute scan: 4) cut the trunk's windows."""
    torch.manual_seed(0)
    model = ESCRealM(**SMALL, upscaling_factor=2, upsampler='pixelshuffledirect').eval()
    opt = {'type': 'ESCRealM', **SMALL, 'upscaling_factor': 2, 'upsampler': 'pixelshuffledirect'}
    assert tile_alignment(model, opt) == 8 and tile_alignment(model) == 4
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        whole = model(x)
        aligned = tiled_forward(model, x, 2, tile=12, tile_pad=24, align=tile_alignment(model, opt))
        window_only = tiled_forward(model, x, 2, tile=12, tile_pad=24, align=tile_alignment(model))
    assert aligned.shape == whole.shape == (1, 3, 128, 160)
    assert (aligned - whole).abs().max() < 1e-5
    assert (window_only - whole).abs().max() > 1e-2
