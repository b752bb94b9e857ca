"""The relative position bias as low-rank factors (layers/low_rank_bias.py): the rank meets its tolerance, the
converted attention stays within the bound that tolerance implies, the converted network runs every size,
batch, backend and ONNX export, and an exact factorisation reproduces the reference fixture."""
from __future__ import annotations

import math

import pytest
import torch

from esc_basicsr.archs import ESC
from esc_basicsr.archs.deploy import deploy
from esc_basicsr.layers import FlashBiasAttention, WindowAttention
from esc_basicsr.layers.attention_backends import relative_position_bias
from esc_basicsr.layers.low_rank_bias import attention_error_bound, convert_low_rank_bias, factorize_bias, \
    low_rank_window_attention, parse_low_rank_spec, trained_like_table
from esc_basicsr.layers.padding import pad_to_multiple

from tests.conftest import load_fixture

# head dim 16, window 8 (N = 64): small enough for exact SVDs in milliseconds
TINY = dict(dim=32, pdim=8, kernel_size=5, n_blocks=2, conv_blocks=1, window_size=8, num_heads=2,
            upscaling_factor=2)


def random_table(heads: int, window: int, seed: int = 0, std: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(heads, (2 * window - 1) ** 2, generator=g) * std


def tiny_esc(attn_type: str = 'sdpa', tables: str = 'random', seed: int = 0) -> ESC:
    torch.manual_seed(seed)
    model = ESC(**TINY, attn_type=attn_type)
    with torch.no_grad():
        for i, m in enumerate(x for x in model.modules() if isinstance(x, WindowAttention)):
            table = random_table(m.num_heads, m.window_size, seed + i) if tables == 'random' else \
                trained_like_table(m.num_heads, m.window_size, seed + i)
            m.relative_position_bias.copy_(table)
    return deploy(model)


@pytest.mark.parametrize('tables', ['random', 'trained_like'])
@pytest.mark.parametrize('tol', [1e-1, 1e-2, 1e-3])
def test_factor_error_is_within_the_tolerance_at_the_smallest_rank(tables, tol):
    table = random_table(3, 6) if tables == 'random' else trained_like_table(3, 6)
    bias = relative_position_bias(table, 6).double()
    f = factorize_bias(bias, tolerance=tol)
    assert f.pos_q.shape == f.pos_k.shape == (3, 36, f.rank) and f.pos_q.dtype == torch.float32
    product = f.pos_q.double() @ f.pos_k.double().transpose(-2, -1) / math.sqrt(f.rank)
    err = (product - bias).abs().max().item()
    assert err == pytest.approx(f.max_error) and err <= tol
    if f.rank > 1:  # one dimension fewer misses the tolerance
        assert factorize_bias(bias, rank=f.rank - 1).max_error > tol
    s = torch.linalg.svdvals(bias)
    assert f.rank <= int((s > tol).sum(-1).max())  # never more than the spectral bound asks


def test_trained_like_tables_need_a_lower_rank_than_random_ones():
    ranks = {kind: factorize_bias(relative_position_bias(t, 8), tolerance=1e-2).rank
             for kind, t in (('random', random_table(4, 8)), ('trained_like', trained_like_table(4, 8)))}
    assert ranks['trained_like'] < ranks['random'], ranks


def test_full_rank_is_exact_and_arguments_are_checked():
    bias = relative_position_bias(random_table(2, 4), 4)
    assert factorize_bias(bias, rank=1000).rank == 16  # capped at N
    assert factorize_bias(bias, rank=16).max_error < 1e-5
    for kwargs in ({}, {'tolerance': 1e-3, 'rank': 4}, {'tolerance': -1.0}, {'rank': 0}):
        with pytest.raises(ValueError):
            factorize_bias(bias, **kwargs)
    with pytest.raises(ValueError, match='full rank'):
        factorize_bias(bias * 1e9, tolerance=1e-9)  # float32 factors cannot reproduce that


def test_spec_parsing():
    assert parse_low_rank_spec('1e-3') == {'tolerance': 1e-3}
    assert parse_low_rank_spec('tol:0.01') == {'tolerance': 0.01}
    assert parse_low_rank_spec('rank:32') == {'rank': 32}
    for bad in ('rank:0', 'rank:x', 'tol:-1', 'nan', 'size:3'):
        with pytest.raises(ValueError, match='tolerance'):
            parse_low_rank_spec(bad)


def _layer_bound(attn: WindowAttention, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Per output channel, the largest change of ``attn(x)`` when every score moves by at most ``eps``: each
    attention channel by ``(exp(2 eps) - 1) max|v_c|``, mixed by ``to_out``'s weights (``(C,)``)."""
    c = attn.dim
    v = attn.to_qkv(pad_to_multiple(x, attn.window_size))[:, 2 * c:]
    v_max = v.abs().amax(dim=(0, 2, 3))
    return attn.to_out.weight[:, :, 0, 0].abs() @ attention_error_bound(eps, v_max)


@pytest.mark.parametrize('backend', ['naive', 'sdpa'])
@pytest.mark.parametrize('tol', [3e-1, 3e-2, 3e-3])
def test_converted_layer_is_within_the_bound_of_its_tolerance(backend, tol):
    torch.manual_seed(0)
    attn = WindowAttention(32, 8, 2, backend).eval()
    with torch.no_grad():
        attn.relative_position_bias.copy_(trained_like_table(2, 8))
        new, f = low_rank_window_attention(attn, tolerance=tol)
        assert isinstance(new, FlashBiasAttention) and new.rank == f.rank < 64
        x = torch.randn(2, 32, 19, 13)
        diff = (new(x) - attn(x)).abs().amax(dim=(0, 2, 3))
        bound = _layer_bound(attn, x, f.max_error)
    assert (diff <= bound + 1e-5).all(), (diff - bound).max()
    assert diff.max() > 1e-6  # a real approximation: the bound is not vacuous


def test_converted_network_stays_within_each_layers_bound_on_its_own_activations():
    """Every converted layer, fed what the converted network feeds it, within the bound of its factors' error."""
    model = tiny_esc()
    originals = {n: m for n, m in model.named_modules() if isinstance(m, WindowAttention)}
    report = convert_low_rank_bias(model, tolerance=1e-2)
    assert [r.name for r in report] == list(originals) and all(r.max_error <= 1e-2 for r in report)
    seen = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, (i[0], o)))
             for n in originals]
    with torch.no_grad():
        model(torch.rand(2, 3, 21, 30))
        for r in report:
            x, out = seen[r.name]
            diff = (out - originals[r.name](x)).abs().amax(dim=(0, 2, 3))
            assert (diff <= _layer_bound(originals[r.name], x, r.max_error) + 1e-5).all()
    for h in hooks:
        h.remove()


@pytest.mark.parametrize('backend', ['naive', 'sdpa', 'flex'])
def test_exact_conversion_equals_the_network_at_every_size_and_batch(backend):
    """At a tolerance below float32 noise the converted network is the original (sizes down to 1x1, batch 2)."""
    original = tiny_esc(backend)
    converted = tiny_esc(backend)
    report = convert_low_rank_bias(converted, tolerance=1e-5)
    assert not any(isinstance(m, WindowAttention) for m in converted.modules()) and len(report) == 2
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for size in [(1, 1), (5, 7), (8, 8), (17, 9), (24, 40)]:
            x = torch.rand(2, 3, *size, generator=g)
            out = converted(x)
            torch.testing.assert_close(out, original(x), atol=1e-5, rtol=0)
            torch.testing.assert_close(out[1:], converted(x[1:]), atol=1e-5, rtol=0)  # batch = one by one


def test_converted_state_dict_holds_factors_instead_of_tables():
    model = tiny_esc()
    convert_low_rank_bias(model, rank=5)
    keys = model.state_dict().keys()
    assert not any(k.endswith('relative_position_bias') for k in keys)
    assert model.state_dict()['blocks.0.attn.flashbias_q'].shape == (2, 64, 5)
    assert convert_low_rank_bias(torch.nn.Conv2d(3, 3, 1), rank=5) == []


def test_fixture_reproduced_by_an_exact_conversion():
    """esc_x2 (the authors' ESC, random weights): every attention as factors of full rank 1024 reproduces the
    fixture's output in float32, in both backends of the low-rank path."""
    fix = load_fixture('esc_x2.pt')
    model = ESC(**fix['kwargs'], attn_type='sdpa')
    model.load_state_dict(fix['state_dict'])
    report = convert_low_rank_bias(deploy(model), rank=1024)
    assert [r.rank for r in report] == [1024] * 5 and max(r.max_error for r in report) < 1e-4
    for backend in ('sdpa', 'naive'):
        for m in model.modules():
            if isinstance(m, FlashBiasAttention):
                m.attn_type = backend
        with torch.no_grad():
            out = model(fix['input'].clone())
        assert (out - fix['output']).abs().max().item() <= 1e-4


def test_onnx_export_of_a_converted_network(tmp_path):
    pytest.importorskip('onnxruntime')
    from esc_basicsr.tools.onnx_export import export_onnx, verify_onnx

    model = tiny_esc('sdpa', tables='trained_like')
    convert_low_rank_bias(model, tolerance=1e-3)
    path = str(tmp_path / 'low_rank.onnx')
    export_onnx(model, path, (2, 3, 21, 19))
    results = verify_onnx(model, path, [(1, 3, 30, 17), (3, 3, 9, 40), (1, 3, 2, 3)])
    assert [r['output'] for r in results] == [(1, 3, 60, 34), (3, 3, 18, 80), (1, 3, 4, 6)]
    assert max(r['max_abs_diff'] for r in results) < 1e-4
