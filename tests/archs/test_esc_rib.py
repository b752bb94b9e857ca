"""ESCRIB (ESC-RIB, FlashBias ESC): the authors' fixtures in every backend, batches, sizes, training,
deployment folding, the scale-converting load, ONNX export, constructor errors, and its row of the
architecture table: preset, parameter counts, detection from weights alone (CPU)."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from esc_basicsr.archs import ARCHITECTURES, ESCRIB, build, convert_upsampler_scale, detect, from_state_dict, \
    network_g, network_input_multiple
from esc_basicsr.archs.esc_rib_arch import RIB_WINDOW
from esc_basicsr.archs.deploy import fold_geometric_ensemble, geometric_ensemble_folded
from esc_basicsr.layers import low_rank_backends
from tests.conftest import assert_reproduces_fixture, load_fixture
from tests.helpers.weights import randomize_parameters

FIXTURES = ['escrib_x2.pt', 'escrib_flashbias_x4_small.pt']
BACKENDS = ['naive', 'sdpa', 'flex', 'auto']
# which low-rank attention path each requested backend must run on a CPU
EXPECTED_PATH = {'naive': 'naive', 'sdpa': 'sdpa', 'flex': 'sdpa', 'auto': 'sdpa'}
TINY = dict(dim=16, pdim=4, kernel_size=7, n_blocks=1, conv_blocks=2, window_size=8, num_heads=2, exp_ratio=1.25,
            rank=4, rib_hidden_dim=8, rib_n_freqs=3, gate_type='DWC')


def tiny(kind: str = 'RIB', scale: int = 2, seed: int = 0, **kwargs) -> ESCRIB:
    """A small ESCRIB whose every parameter matters (the zero-initialised dynamic-kernel heads drawn too)."""
    torch.manual_seed(seed)
    net = ESCRIB(**dict(TINY, attn_type=kind, upscaling_factor=scale, **kwargs))
    return randomize_parameters(net, 0.1, seed)


@pytest.fixture
def attention_paths(monkeypatch):
    """The low-rank attention paths that ran (``naive`` / ``sdpa``), recorded in call order."""
    calls: list[str] = []
    for name in ('naive', 'sdpa'):
        real = getattr(low_rank_backends, f'_{name}_low_rank')
        monkeypatch.setattr(low_rank_backends, f'_{name}_low_rank',
                            lambda *a, _f=real, _n=name: calls.append(_n) or _f(*a))
    return calls


# ------------------------------------------------------------------------------------ the fixtures

@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('name', FIXTURES)
def test_reference_fixture_every_backend(name: str, backend: str, attention_paths: list) -> None:
    fix = load_fixture(name)
    assert_reproduces_fixture(ESCRIB(**fix['kwargs'], attn_backend=backend), fix)
    assert set(attention_paths) == {EXPECTED_PATH[backend]}


@pytest.mark.parametrize('env, path', [('naive', 'naive'), ('sdpa', 'sdpa'), ('flex', 'sdpa')])
def test_reference_fixture_with_env_override(env: str, path: str, attn_env, attention_paths: list) -> None:
    attn_env(env)
    fix = load_fixture('escrib_flashbias_x4_small.pt')
    assert_reproduces_fixture(ESCRIB(**fix['kwargs']), fix)  # attn_backend 'auto' follows the variable
    assert set(attention_paths) == {path}


def test_fixture_state_dicts_hold_parameters_only() -> None:
    fix = load_fixture('escrib_x2.pt')
    net = ESCRIB(**fix['kwargs'])
    assert set(net.state_dict()) == set(fix['state_dict']) == {n for n, _ in net.named_parameters()}
    assert net.blocks[0].attn.rib_coords.shape == (64 * 64, 42)


def test_authors_attn_type_spellings_and_backend_attribute() -> None:
    for spelling, kind in (('RIB', 'RIB'), ('rib', 'RIB'), ('FlashBias', 'FlashBias'), ('FLASHBIAS', 'FlashBias')):
        net = ESCRIB(**dict(TINY, attn_type=spelling, upscaling_factor=2), attn_backend='SDPA')
        assert net.attn_kind == kind
        # the tools read the backend from each attention module's ``attn_type``
        assert net.blocks[0].attn.attn_type == 'sdpa'


# -------------------------------------------------------------------------- batches, sizes, training

def test_eval_batch_equals_single_images() -> None:
    fix = load_fixture('escrib_flashbias_x4_small.pt')
    net = ESCRIB(**fix['kwargs']).eval()
    net.load_state_dict(fix['state_dict'])
    x = torch.cat([fix['input'], fix['input'].flip(-1), torch.rand_like(fix['input'])])
    with torch.no_grad():
        batched = net(x)
        single = torch.cat([net(x[i:i + 1]) for i in range(3)])
    assert (batched[:1] - fix['output']).abs().max() <= 1e-4
    assert (batched - single).abs().max() < 1e-4


@pytest.mark.parametrize('size', [(1, 1), (2, 3), (15, 17), (16, 16), (33, 5)])
def test_any_size_down_to_one_pixel(size: tuple[int, int]) -> None:
    """Window 32: the authors' code fails below 16 px (reflect padding larger than the side)."""
    fix = load_fixture('escrib_flashbias_x4_small.pt')
    net = ESCRIB(**fix['kwargs']).eval()
    net.load_state_dict(fix['state_dict'])
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, 4 * size[0], 4 * size[1]) and torch.isfinite(out).all()


@pytest.mark.parametrize('kind', ['RIB', 'FlashBias'])
@pytest.mark.parametrize('upsampler', ['pixelshuffle_direct', 'pixelshuffle', 'nn+conv'])
def test_train_mode_gradients_reach_every_parameter(kind: str, upsampler: str) -> None:
    net = tiny(kind, upsampler_type=upsampler, intermediate_dim=8, use_ln=True).train()
    out = net(torch.rand(2, 3, 12, 10))
    assert out.shape == (2, 3, 24, 20)
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('backend', ['sdpa', 'naive', 'flex'])
def test_cpu_training_steps_reduce_the_loss(backend: str) -> None:
    net = ESCRIB(**dict(TINY, attn_type='FlashBias', upscaling_factor=2), attn_backend=backend).train()
    torch.manual_seed(1)
    lq, gt = torch.rand(4, 3, 12, 12), torch.rand(4, 3, 24, 24)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = F.l1_loss(net(lq), gt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert net.blocks[0].attn.flashbias_q.grad.abs().sum() > 0  # the factors learn (the authors' zeros would not)


# --------------------------------------------------------------------------- folding, scale conversion

@pytest.mark.parametrize('name', FIXTURES)
def test_convert_folds_the_geometric_ensemble(name: str) -> None:
    fix = load_fixture(name)
    net = ESCRIB(**fix['kwargs']).eval()
    net.load_state_dict(fix['state_dict'])
    assert net.convert() is net and geometric_ensemble_folded(net)
    assert fold_geometric_ensemble(net) is net  # idempotent
    with torch.no_grad():
        assert (net(fix['input']) - fix['output']).abs().max() <= 1e-4
    fresh = ESCRIB(**fix['kwargs']).eval()  # a folded checkpoint loads into the training form
    fresh.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert (fresh(fix['input']) - fix['output']).abs().max() <= 1e-4


def _resized_blocks(weight: torch.Tensor, colors: int, r_in: int, r_out: int) -> torch.Tensor:
    """The authors' formula, one (colors, r, r) block per input tap: bilinear, align_corners False."""
    rest = weight.shape[1:]
    flat = weight.reshape(colors, r_in, r_in, -1)
    out = torch.empty(colors, r_out, r_out, flat.shape[-1])
    for c in range(colors):
        for j in range(flat.shape[-1]):
            out[c, :, :, j] = F.interpolate(flat[c, :, :, j][None, None], size=(r_out, r_out), mode='bilinear',
                                            align_corners=False)[0, 0]
    return out.reshape(colors * r_out * r_out, *rest)


def test_x2_checkpoint_loads_into_an_x4_model(caplog: pytest.LogCaptureFixture) -> None:
    fix = load_fixture('escrib_x2.pt')
    net = ESCRIB(**dict(fix['kwargs'], upscaling_factor=4)).eval()
    with caplog.at_level(logging.INFO, logger='basicsr'):
        net.load_state_dict(fix['state_dict'], strict=True)
    assert 'from x2 to x4' in caplog.text
    sd = net.state_dict()
    w2 = fix['state_dict']['upsampler.up_conv.weight']
    torch.testing.assert_close(sd['upsampler.up_conv.weight'], _resized_blocks(w2, 3, 2, 4), atol=1e-6, rtol=0)
    for key, value in fix['state_dict'].items():  # everything but the sub-pixel layer unchanged
        if not key.startswith('upsampler.up_conv'):
            assert torch.equal(sd[key], value), key
    with torch.no_grad():
        assert net(fix['input'][..., :20, :24]).shape == (1, 3, 80, 96)


def test_convert_upsampler_scale_layouts() -> None:
    src = tiny('RIB', 2, upsampler_type='pixelshuffle', intermediate_dim=6).state_dict()
    out = convert_upsampler_scale(src, 3, 'pixelshuffle')
    assert out['upsampler.up_conv.weight'].shape == (6 * 9, 6, 3, 3)  # F r^2 outputs, F = 6 colours
    torch.testing.assert_close(out['upsampler.up_conv.weight'],
                               _resized_blocks(src['upsampler.up_conv.weight'], 6, 2, 3), atol=1e-6, rtol=0)
    model = ESCRIB(**dict(TINY, upscaling_factor=3, upsampler_type='pixelshuffle', intermediate_dim=6))
    model.load_state_dict(src, strict=True)
    same = convert_upsampler_scale(src, 2, 'pixelshuffle')
    assert same['upsampler.up_conv.weight'] is src['upsampler.up_conv.weight']
    nn_conv = tiny('RIB', 2, upsampler_type='nn+conv', intermediate_dim=6).state_dict()
    assert convert_upsampler_scale(nn_conv, 4, 'nn+conv') == nn_conv  # no sub-pixel layer: unchanged
    const = {'upsampler.up_conv.weight': torch.ones(12, 5, 3, 3), 'upsampler.up_conv.bias': torch.ones(12)}
    resized = convert_upsampler_scale(const, 4)
    assert torch.equal(resized['upsampler.up_conv.bias'], torch.ones(48))  # weights 1/4 + 3/4: exact anywhere


# ------------------------------------------------------------------------------------------- export

@pytest.mark.parametrize('kind', ['RIB', 'FlashBias'])
def test_onnx_export_parity(kind: str, tmp_path) -> None:
    from esc_basicsr.tools.onnx_export import check_exportable, export_onnx, verify_onnx

    model = tiny(kind, 2, attn_backend='sdpa').convert().eval()  # folded: no rot90 in the graph
    check_exportable(model)
    path = str(tmp_path / 'escrib.onnx')
    export_onnx(model, path, (2, 3, 19, 21))
    # eager runs the fused kernel, the graph plain matmuls: compared at other sizes/batches, below half a window
    results = verify_onnx(model, path, [(1, 3, 30, 17), (3, 3, 9, 40), (1, 3, 2, 3)])
    assert [r['output'] for r in results] == [(1, 3, 60, 34), (3, 3, 18, 80), (1, 3, 4, 6)]
    assert max(r['max_abs_diff'] for r in results) < 1e-4


# ------------------------------------------------------------------------------------------- errors

def test_constructor_errors() -> None:
    kw = dict(TINY, upscaling_factor=2)
    with pytest.raises(ValueError, match='attn_backend=.sdpa.'):
        ESCRIB(**dict(kw, attn_type='SDPA'))  # a backend where the authors' kind goes
    with pytest.raises(ValueError, match='relative-position-bias'):
        ESCRIB(**dict(kw, attn_type='Flex'))
    with pytest.raises(ValueError, match='not implemented'):
        ESCRIB(**dict(kw, attn_type='RoPEViT'))
    with pytest.raises(ValueError, match='RIB'):
        ESCRIB(**dict(kw, attn_type='FlashAttention'))
    with pytest.raises(ValueError, match='attn_type'):
        ESCRIB(**kw, attn_backend='flash')
    with pytest.raises(ValueError, match='gate_type'):
        ESCRIB(**dict(kw, gate_type='Conv'))
    with pytest.raises(ValueError, match='upsampler_type'):
        ESCRIB(**kw, upsampler_type='pixelshuffledirect')
    with pytest.raises(ValueError, match='powers of two'):
        ESCRIB(**dict(kw, upscaling_factor=6), upsampler_type='nn+conv')
    with pytest.raises(ValueError, match='divisible'):
        ESCRIB(**dict(kw, num_heads=3))
    with pytest.raises(ValueError, match='rank'):
        ESCRIB(**dict(kw, rank=0))
    with pytest.raises(ValueError, match='pass rank explicitly'):
        ESCRIB(**dict(kw, dim=512, num_heads=2, rank=None))  # head_dim 256: no default rank
    with pytest.raises(TypeError):
        ESCRIB(**kw, flashbias_rnk=8)  # a misspelled option fails loudly


def test_rank_and_window_mismatches_fail_to_load() -> None:
    fix = load_fixture('escrib_flashbias_x4_small.pt')
    with pytest.raises(RuntimeError, match='flashbias_q'):  # the factors fix the window ...
        ESCRIB(**dict(fix['kwargs'], window_size=16)).load_state_dict(fix['state_dict'])
    with pytest.raises(RuntimeError, match='flashbias_q'):  # ... and the rank
        ESCRIB(**fix['kwargs'], rank=16).load_state_dict(fix['state_dict'])
    rib = load_fixture('escrib_x2.pt')
    with pytest.raises(RuntimeError, match='to_q'):
        ESCRIB(**dict(rib['kwargs'], rank=8)).load_state_dict(rib['state_dict'])
    # RIB weights do not fix the window: another window loads (and runs)
    ESCRIB(**dict(rib['kwargs'], window_size=32)).load_state_dict(rib['state_dict'], strict=True)


def test_flashbias_rank_is_used_when_rank_is_not_given() -> None:
    net = ESCRIB(**dict(TINY, attn_type='FlashBias', upscaling_factor=2, rank=None), flashbias_rank=7)
    assert net.blocks[0].attn.flashbias_q.shape == (2, 64, 7)
    net = ESCRIB(**dict(TINY, upscaling_factor=2, rank=3), flashbias_rank=7)
    assert net.blocks[0].attn.to_q.shape[-1] == 3


# ------------------------------------------------------------------ the table row: preset, detection

def test_preset_is_the_authors_test_configuration() -> None:
    """options/test/ESCRIB_X{2,3,4}.yaml of the authors' SST repository (../shared/reference/PAPER.md)."""
    for scale in (2, 3, 4):
        assert network_g('esc_rib', scale) == dict(
            type='ESCRIB', dim=64, pdim=16, kernel_size=13, n_blocks=5, conv_blocks=5, window_size=64, num_heads=4,
            exp_ratio=1.25, attn_type='RIB', rank=16, rib_hidden_dim=32, rib_n_freqs=10, gate_type='DWC',
            upscaling_factor=scale)
    spec = ARCHITECTURES['ESCRIB']
    assert spec.scales == (2, 3, 4) and spec.backend_arg == 'attn_backend' and spec.option_extras == {'attn_backend'}
    assert network_input_multiple(network_g('esc_rib', 2)) == 64
    assert [sum(p.numel() for p in build('esc_rib', s).parameters()) for s in (2, 3, 4)] == \
        [1_007_796, 1_016_451, 1_028_568]


def test_row_converts_checkpoints_as_the_network_loads_them() -> None:
    spec = ARCHITECTURES['ESCRIB']
    src = tiny('RIB', 2, upsampler_type='pixelshuffle', intermediate_dim=6).state_dict()
    kwargs = spec.arguments(dict(TINY, upscaling_factor=4, upsampler_type='pixelshuffle', intermediate_dim=6))
    converted = spec.convert_checkpoint(src, kwargs)
    expected = convert_upsampler_scale(src, 4, 'pixelshuffle')
    assert converted.keys() == expected.keys() and all(torch.equal(converted[k], expected[k]) for k in expected)


def _round_trip(kwargs: dict) -> None:
    torch.manual_seed(0)
    name, found = detect(ESCRIB(**kwargs).state_dict())
    assert (name, found) == ('ESCRIB', kwargs)


RIB_CASES = [
    dict(upscaling_factor=2, gate_type='DWC', upsampler_type='pixelshuffle_direct', use_ln=False, rib_n_freqs=10),
    dict(upscaling_factor=3, gate_type='Linear', upsampler_type='pixelshuffle_direct', use_ln=True, rib_n_freqs=0),
    dict(upscaling_factor=4, gate_type=None, upsampler_type='pixelshuffle', intermediate_dim=12, use_ln=False,
         rib_n_freqs=3),
    dict(upscaling_factor=3, gate_type='DWC', upsampler_type='pixelshuffle', intermediate_dim=20, use_ln=True,
         rib_n_freqs=2),
    dict(upscaling_factor=2, gate_type='DWC', upsampler_type='nn+conv', intermediate_dim=12, use_ln=False,
         rib_n_freqs=4),
    dict(upscaling_factor=4, gate_type='Linear', upsampler_type='nn+conv', intermediate_dim=16, use_ln=True,
         rib_n_freqs=1),
]
SIZES = dict(dim=24, pdim=8, kernel_size=7, n_blocks=2, conv_blocks=3, num_heads=2)


@pytest.mark.parametrize('case', RIB_CASES)
def test_rib_detection_round_trip(case: dict) -> None:
    _round_trip(dict(SIZES, window_size=RIB_WINDOW, exp_ratio=1.5, attn_type='RIB', rank=5, rib_hidden_dim=12,
                     **case))


@pytest.mark.parametrize('window, rank, scale', [(8, 6, 2), (12, 232, 4), (4, 3, 3)])
def test_flashbias_detection_reads_the_window_from_the_factors(window: int, rank: int, scale: int) -> None:
    _round_trip(dict(SIZES, window_size=window, exp_ratio=2.0, use_ln=False, attn_type='FlashBias', rank=rank,
                     gate_type='DWC', upscaling_factor=scale, upsampler_type='pixelshuffle_direct'))


def test_rib_window_is_a_documented_default_and_can_be_overridden() -> None:
    fix = load_fixture('escrib_x2.pt')
    assert detect(fix['state_dict'])[1]['window_size'] == RIB_WINDOW == 64
    model = from_state_dict(fix['state_dict'], window_size=32)
    assert model.blocks[0].attn.window_size == 32
    with torch.no_grad():
        out = model(fix['input'])
    assert out.shape == fix['output'].shape and (out - fix['output']).abs().max() > 1e-3  # another network


def test_nn_conv_x3_reads_as_x2() -> None:
    """One x3 step has the layout of one x2 step: detection assumes a power of two (documented)."""
    sd = ESCRIB(**dict(SIZES, window_size=8, upscaling_factor=3, upsampler_type='nn+conv', intermediate_dim=8,
                       rank=4)).state_dict()
    assert detect(sd)[1]['upscaling_factor'] == 2


def test_esc_and_escrib_are_told_apart() -> None:
    assert detect(build('esc', 2, n_blocks=1, conv_blocks=1).state_dict())[0] == 'ESC'
    assert detect(build('esc_rib', 2, n_blocks=1, conv_blocks=1).state_dict())[0] == 'ESCRIB'


def test_tags() -> None:
    spec = ARCHITECTURES['ESCRIB']
    assert spec.tags(spec.arguments(network_g('esc_rib', 4))) == ['64dim', '5blocks', 'window 64', 'RIB rank 16']
    default_rank = spec.arguments(dict(SIZES, window_size=8, upscaling_factor=2, attn_type='flashbias'))
    assert spec.tags(default_rank)[-1] == 'FlashBias rank 244'  # 256 - head dim 12
