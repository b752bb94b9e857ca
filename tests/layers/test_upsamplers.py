"""The real-world family's reusable upsamplers: DySample (against the authors' forward, its initial
arrangement, any size, reduced precision) and UniUpsample (every method's layout, MetaUpsample, loading)."""
from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from esc_basicsr.layers import UPSAMPLERS, DySample, UniUpsample
from tests.helpers.weights import randomize_parameters


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights everywhere (DySample's zero-initialised scope would hide the offsets)."""
    return randomize_parameters(model, 0.1, seed)


# ----------------------------------------------------------------------------------------- DySample

def reference_dysample(layer: DySample, x: torch.Tensor) -> torch.Tensor:
    """The authors' DySample forward, transcribed (with the normaliser unpinned)."""
    offset = layer.offset(x) * layer.scope(x).sigmoid() * 0.5 + layer.init_pos
    b, _, h, w = offset.shape
    offset = offset.view(b, 2, -1, h, w)
    coords_h = torch.arange(h) + 0.5
    coords_w = torch.arange(w) + 0.5
    coords = torch.stack(torch.meshgrid([coords_w, coords_h], indexing='ij')).transpose(1, 2)
    coords = coords.unsqueeze(1).unsqueeze(0).type(x.dtype)
    normalizer = torch.tensor([w, h], dtype=x.dtype).view(1, 2, 1, 1, 1)
    coords = 2 * (coords + offset) / normalizer - 1
    s = layer.scale
    coords = F.pixel_shuffle(coords.reshape(b, -1, h, w), s).view(b, 2, -1, s * h, s * w)
    coords = coords.permute(0, 2, 3, 4, 1).contiguous().flatten(0, 1)
    out = F.grid_sample(x.reshape(b * layer.groups, -1, h, w), coords, mode='bilinear', align_corners=False,
                        padding_mode='border').view(b, -1, s * h, s * w)
    return layer.end_conv(out)


@pytest.mark.parametrize('scale', [1, 2, 3, 4])
@pytest.mark.parametrize('groups', [1, 4])
def test_dysample_init_pos_is_the_reference_arrangement(scale: int, groups: int) -> None:
    h = torch.arange((-scale + 1) / 2, (scale - 1) / 2 + 1) / scale
    expected = torch.stack(torch.meshgrid([h, h], indexing='ij')).transpose(1, 2).repeat(1, groups, 1)
    assert torch.equal(DySample(8, 3, scale, groups).init_pos, expected.reshape(1, -1, 1, 1))


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_dysample_matches_the_reference_forward(scale: int) -> None:
    layer = randomize(DySample(16, 3, scale, groups=4), seed=scale)
    x = torch.randn(2, 16, 7, 10)
    with torch.no_grad():
        out = layer(x)
        assert out.shape == (2, 3, 7 * scale, 10 * scale)
        assert (out - reference_dysample(layer, x)).abs().max().item() < 1e-5
        # channels-last input (the ESC family's CPU format) gives the same
        cl = layer(x.contiguous(memory_format=torch.channels_last))
        assert (cl - out).abs().max().item() < 1e-6


@pytest.mark.parametrize('scale', [2, 3])
def test_dysample_starts_as_bilinear_upsampling(scale: int) -> None:
    """Zero offsets sample the sub-pixel centres: exactly bilinear upsampling (edges clamped)."""
    layer = DySample(8, scale=scale, groups=2, end_convolution=False)
    torch.nn.init.zeros_(layer.offset.weight)
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        out = layer(x)
    ref = F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False)
    assert (out - ref).abs().max().item() < 1e-5


def test_dysample_any_size_batches_half_precision_and_errors() -> None:
    layer = randomize(DySample(8, 3, 4, groups=4)).eval()
    x = torch.rand(3, 8, 1, 1)
    with torch.no_grad():
        out = layer(x)
        assert out.shape == (3, 3, 4, 4) and torch.isfinite(out).all()
        assert (out - torch.cat([layer(x[i:i + 1]) for i in range(3)])).abs().max().item() < 1e-6
        y = torch.rand(1, 8, 9, 11)
        bf16 = layer.to(torch.bfloat16)(y.to(torch.bfloat16))
        assert bf16.dtype == torch.bfloat16 and (bf16.float() - layer.float()(y)).abs().max().item() < 0.05
    with pytest.raises(ValueError, match='multiple of groups'):
        DySample(10, 3, 2, groups=4)


# -------------------------------------------------------------------------------------- UniUpsample

def expected_to_img(up: str, s: int, dim: int, mid: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the unified upsampler, from the authors' layout rules (docs of PAPER.md)."""
    convs: dict[int, tuple[int, int]] = {}
    if s == 1 or up == 'conv':
        convs[0] = (3, dim)
    elif up == 'pixelshuffledirect':
        convs[0] = (3 * s * s, dim)
    elif up == 'pixelshuffle':
        convs[0] = (mid, dim)
        factors = [3] if s == 3 else [2] * int(math.log2(s))
        i = 2
        for f in factors:
            convs[i] = (f * f * mid, mid)
            i += 2
        convs[i] = (3, mid)
    elif up == 'nearest+conv':
        if s == 3:
            convs.update({0: (dim, dim), 3: (dim, dim), 5: (3, dim)})
        else:
            i = 0
            for _ in range(int(math.log2(s))):
                convs[i] = (dim, dim)
                i += 3
            convs[i] = (dim, dim)
            convs[i + 2] = (3, dim)
    else:  # dysample
        i = 0
        if mid != dim:
            convs[0] = (mid, dim)
            i = 2
        n = 2 * 4 * s * s
        out = {f'{i}.init_pos': (1, n, 1, 1), f'{i}.end_conv.weight': (3, mid, 1, 1), f'{i}.end_conv.bias': (3,),
               f'{i}.offset.weight': (n, mid, 1, 1), f'{i}.offset.bias': (n,), f'{i}.scope.weight': (n, mid, 1, 1)}
        for j, (o, c) in convs.items():
            out.update({f'{j}.weight': (o, c, 3, 3), f'{j}.bias': (o,)})
        return out
    out = {}
    for j, (o, c) in convs.items():
        out.update({f'{j}.weight': (o, c, 3, 3), f'{j}.bias': (o,)})
    return out


@pytest.mark.parametrize('up', UPSAMPLERS)
@pytest.mark.parametrize('scale', [1, 2, 3, 4, 8])
@pytest.mark.parametrize('mid', [8, 16])
def test_uni_upsample_layout_meta_and_shape(up: str, scale: int, mid: int) -> None:
    supported = scale == 1 or up != 'conv'
    if not supported:
        with pytest.raises(ValueError, match='scale 1'):
            UniUpsample(up, scale, 16, 3, mid)
        return
    m = UniUpsample(up, scale, 16, 3, mid)
    sd = m.state_dict()
    meta = sd.pop('MetaUpsample')
    assert meta.dtype == torch.uint8
    assert meta.tolist() == [2, UPSAMPLERS.index(up), scale, 16, 3, mid, 4]
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_to_img(up, scale, 16, mid)
    with torch.no_grad():
        assert m(torch.rand(2, 16, 3, 5)).shape == (2, 3, 3 * scale, 5 * scale)


def test_uni_upsample_unsupported_scales_and_methods() -> None:
    for up in ('pixelshuffle', 'nearest+conv'):
        with pytest.raises(ValueError, match='powers of two'):
            UniUpsample(up, 5, 16)
    with pytest.raises(ValueError, match='upsampler must be one of'):
        UniUpsample('transpose+conv', 2, 16)


def test_uni_upsample_meta_buffer_loading(caplog: pytest.LogCaptureFixture) -> None:
    m = UniUpsample('pixelshuffle', 2, 16, 3, 8)
    sd = m.state_dict()
    # a checkpoint without the buffer (older code) loads strictly; the buffer keeps its value
    del sd['MetaUpsample']
    UniUpsample('pixelshuffle', 2, 16, 3, 8).load_state_dict(sd, strict=True)
    # another layout version of the same upsampler (traiNNer's version 3) loads silently
    sd = m.state_dict()
    sd['MetaUpsample'] = sd['MetaUpsample'].clone()
    sd['MetaUpsample'][0] = 3
    other = UniUpsample('pixelshuffle', 2, 16, 3, 8)
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        other.load_state_dict(sd, strict=True)
    assert other.MetaUpsample.tolist()[0] == 2 and not caplog.records
    # a checkpoint that describes another upsampler is named in the log (same weights: loads)
    sd['MetaUpsample'][1] = UPSAMPLERS.index('nearest+conv')
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        other.load_state_dict(sd, strict=True)
    assert "saved from the upsampler 'nearest+conv' x2 (16 -> 3, mid 8" in caplog.text
    assert other.MetaUpsample.tolist() == m.MetaUpsample.tolist()
