"""The tools' speed settings (tools/speed_settings.py): whole-network compile equals eager and compiles once for
every image size, and leaves FlexAttention's per-variant entries alone; CUDA graphs are refused off CUDA; the
environment settings reach the layers. On the CPU the compiler backend is aot_eager (dynamo's graphs and guards
are the backend's inputs, so one graph here is one graph with inductor; inductor itself did not finish compiling
a tiny ESC on this machine's two cores in 20 minutes)."""
from __future__ import annotations

import argparse

import pytest
import torch
from torch._dynamo.utils import counters

from esc_basicsr.archs import ESC
from esc_basicsr.archs.deploy import deploy
from esc_basicsr.layers import attention_backends, config
from esc_basicsr.layers.memory_format import prefers_channels_last
from esc_basicsr.tools.speed_settings import CompiledNetwork, SpeedSettings, add_arguments

from tests.conftest import requires_cuda
from tests.helpers.compile_checks import assert_cuda_graphs_recorded, assert_graphs, cache_entries, compiled_graphs
from tests.helpers.cuda import tf32

# head dim 16: what compiled FlexAttention runs on CUDA
TINY = dict(dim=32, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2,
            upscaling_factor=2)
SIZES = [(20, 28), (33, 17), (8, 8)]  # several windows padded and not, and one window


def tiny(attn_type: str, device: str = 'cpu') -> ESC:
    torch.manual_seed(0)
    return deploy(ESC(**TINY, attn_type=attn_type)).to(device)


def parse(*argv: str) -> SpeedSettings:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return SpeedSettings.from_args(p.parse_args(list(argv)))


# first calls that duck sizing turned into a graph of their own before (issue 28): dynamo gave sizes equal in
# the first call one symbol and guarded on their equality; later sizes breaking it compiled again
# (each case traces the network anew: ~15 s on 2 idle cores, 75 s on loaded ones; all but one marked slow)
FIRST_SIZES = {
    'square': (1, 16, 16),  # height == width: "x.size()[3] == x.size()[2]"
    'windows == heads': pytest.param((1, 8, 16), marks=pytest.mark.slow),  # 2 windows, 2 heads
    'windows == head dim': pytest.param((1, 32, 32), marks=pytest.mark.slow),  # 16 windows, head dim 16
    'one window': pytest.param((1, 8, 8), marks=pytest.mark.slow),  # a size of 1 (size-oblivious), square
    'batch == channels': pytest.param((3, 20, 28), marks=pytest.mark.slow),  # batch 3, the RGB channels
}
LATER_SIZES = [(20, 28), (33, 17), (8, 8), (16, 40), (80, 120)]  # padded and not, one window, 150 windows


@pytest.mark.parametrize('first', FIRST_SIZES.values(), ids=FIRST_SIZES.keys())
def test_compiled_network_equals_eager_with_one_graph_for_every_size(first):
    """Whatever the first image, the later ones (same batch) reuse its graph: one graph, no recompile.
    Before the shape settings of one_graph_shapes, square and one-window first images compiled 2 graphs,
    and 3 with a batch of 2 after them."""
    model = tiny('sdpa')
    torch._dynamo.reset()
    counters.clear()
    run = SpeedSettings(compile=True, compile_backend='aot_eager').wrap(model)
    assert isinstance(run, CompiledNetwork) and run.model is model
    g = torch.Generator().manual_seed(0)
    batch = first[0]
    with torch.inference_mode():
        for size in [first[1:]] + LATER_SIZES:
            x = torch.rand(batch, 3, *size, generator=g)
            torch.testing.assert_close(run(x), model(x), atol=1e-5, rtol=0)
    assert_graphs(1)
    assert cache_entries(type(model).forward.__code__) == 1
    torch._dynamo.reset()


@pytest.mark.slow
def test_compiled_network_batch_sizes_on_the_cpu():
    """Batches of 1, 2 and 3 (2 = heads, 3 = channels): at most two graphs on a CPU, where PyTorch's convolution
    picks its kernel by batch size (1, 2-15, 16 and more: ATen's use_mkldnn) and dynamo guards on that choice;
    duck sizing no longer adds any (before: 3 graphs)."""
    model = tiny('sdpa')
    torch._dynamo.reset()
    counters.clear()
    run = SpeedSettings(compile=True, compile_backend='aot_eager').wrap(model)
    with torch.inference_mode():
        for batch in (1, 2, 3, 2, 1):
            x = torch.rand(batch, 3, 20, 28)
            torch.testing.assert_close(run(x), model(x), atol=1e-5, rtol=0)
    assert compiled_graphs() <= 2, dict(counters['stats'])
    torch._dynamo.reset()


def test_compiled_network_takes_flex_in_and_leaves_the_per_variant_entries_alone(monkeypatch):
    """Inside the compiled network flex_attention is part of its graph (no per-variant entry is made); the
    same model run eagerly afterwards uses its per-variant entry as before."""
    torch._dynamo.reset()
    flex = attention_backends.compile_flex(backend='aot_eager')
    monkeypatch.setattr(attention_backends, '_flex_function', lambda device: flex)
    model = tiny('flex')
    reference = tiny('sdpa')
    run = SpeedSettings(compile=True, compile_backend='aot_eager').wrap(model)
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = run(x)
        assert flex.codes() == {}
        eager = model(x)
    assert len(flex.codes()) == 1
    torch.testing.assert_close(out, reference(x).detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(eager, out, atol=1e-5, rtol=0)
    torch._dynamo.reset()


def test_settings_from_flags_and_their_checks():
    assert parse() == SpeedSettings() and SpeedSettings().describe() == 'default'
    s = parse('--cuda-graphs', '--channels-last', '--low-rank-bias', 'rank:16', '--flex-kernel-options',
              '{"BLOCK_M": 64}')
    assert s.compile and s.cuda_graphs and s.low_rank_bias == {'rank': 16}
    assert s.describe() == 'compile+cuda-graphs, channels-last, low-rank bias rank 16, flex {"BLOCK_M": 64}'
    assert SpeedSettings.from_spec(s.to_spec()) == s
    with pytest.raises(ValueError, match='CUDA device'):
        s.check(torch.device('cpu'))
    with pytest.raises(ValueError, match='not for --train'):
        parse('--low-rank-bias', '1e-3').check(torch.device('cpu'), training=True)
    with pytest.raises(ValueError, match='--flex-kernel-options'):
        parse('--flex-kernel-options', '{BLOCK_M: 64}')
    with pytest.raises(ValueError, match='tolerance'):
        parse('--low-rank-bias', 'rank:0')
    parse('--channels-last').check(torch.device('cpu'), training=True)
    # --compile: for training too; on a CPU only with a test backend (inductor is refused there, see below)
    SpeedSettings(compile=True, compile_backend='aot_eager').check(torch.device('cpu'), training=True)
    with pytest.raises(ValueError, match='--compile is for CUDA devices'):
        parse('--compile').check(torch.device('cpu'), training=True)


def test_infer_compile_on_a_cpu_is_refused_in_one_line(tmp_path, capsys):
    """Issue 27/28: infer --compile on a CPU ran PyTorch's C++ compile for minutes without a word (not done after
    76 s for a 12x12 image; 20 minutes here). Refused before anything is loaded, in one line, exit 2."""
    import time

    import cv2
    import numpy as np

    from esc_basicsr import infer

    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), np.zeros((12, 12, 3), np.uint8))
    torch.save({'params': tiny('sdpa').state_dict()}, tmp_path / 'w.pth')
    start = time.monotonic()
    code = infer.main(['-i', str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '--weights', str(tmp_path / 'w.pth'),
                       '--device', 'cpu', '--compile', '--quiet'])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - start < 30
    assert err.startswith('error: --compile is for CUDA devices') and err.count('\n') == 1, err
    assert 'minutes' in err and not (tmp_path / 'out').exists()
    from esc_basicsr import benchmark  # the same rule, the same line

    assert benchmark.main(['--compile', '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --compile is for CUDA devices') and err.count('\n') == 1, err


# ----------------------------------------------------------------------------- ESC-LTE (issue 27)
def tiny_lte():
    from esc_basicsr.archs.esc_lte_arch import ESCLTE

    from tests.conftest import TINY_ESC_LTE

    torch.manual_seed(0)
    return ESCLTE(**TINY_ESC_LTE).eval()


def test_compile_of_an_arbitrary_scale_network_compiles_what_runs():
    """ESC-LTE renders through Python loops over tiles and pixel chunks (upscale): --compile compiles the encoder
    and the decoder's MLP those loops call, one graph each for every size, chunk and tile, in a copy sharing the
    weights. Before, the compiled whole network was never called (0 graphs) and nothing said so."""
    from esc_basicsr.layers.lte import FixedScale

    model = tiny_lte()
    torch._dynamo.reset()
    counters.clear()
    run = SpeedSettings(compile=True, compile_backend='aot_eager').wrap(model)
    assert run.model is model and len(run.compiled_parts) == 2
    assert not isinstance(model.encoder, torch._dynamo.eval_frame.OptimizedModule)  # the model stays as it was
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for (h, w), size, kwargs in [((16, 16), (40, 40), {}), ((13, 21), (33, 52), {'tile': 8, 'tile_pad': 4}),
                                     ((8, 8), (20, 17), {'chunk': 100})]:
            x = torch.rand(1, 3, h, w, generator=g)
            torch.testing.assert_close(run.upscale(x, size, **kwargs), model.upscale(x, size, **kwargs),
                                       atol=1e-5, rtol=0)
    assert_graphs(2)  # the encoder's and the MLP's, each reused for every size, tile and chunk
    # the benchmark's fixed-scale view goes the same way
    fixed = FixedScale(model, 2.5)
    view = SpeedSettings(compile=True, compile_backend='aot_eager').wrap(fixed)
    assert view.model is fixed and fixed.net is model
    with torch.inference_mode():
        x = torch.rand(1, 3, 12, 12, generator=g)
        torch.testing.assert_close(view(x), fixed(x), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='--cuda-graphs does not apply to an arbitrary-scale network'):
        CompiledNetwork(model, cuda_graphs=True)
    torch._dynamo.reset()


def test_infer_compile_of_esc_lte_calls_the_compiled_parts(tmp_path, capsys):
    """Through infer: the compiled parts run (counted graphs and calls) and the image equals the eager run's."""
    import cv2
    import numpy as np

    from esc_basicsr import infer

    from tests.conftest import TINY_ESC_LTE

    (tmp_path / 'in').mkdir()
    image = (np.random.default_rng(0).random((13, 18, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), image)
    torch.save({'params': tiny_lte().state_dict()}, tmp_path / 'w.pth')
    opt = tmp_path / 'lte.yml'
    opt.write_text('network_g:\n  type: ESCLTE\n' + ''.join(f'  {k}: {v}\n' for k, v in TINY_ESC_LTE.items()))
    base = ['-i', str(tmp_path / 'in'), '--weights', str(tmp_path / 'w.pth'), '--opt', str(opt), '--device', 'cpu',
            '--scale', '2.5', '--quiet']
    assert infer.main(base + ['-o', str(tmp_path / 'eager')]) == 0
    torch._dynamo.reset()
    counters.clear()
    assert infer.main(base + ['-o', str(tmp_path / 'compiled'), '--compile', '--compile-backend', 'aot_eager']) == 0
    assert_graphs(2)
    eager = cv2.imread(str(tmp_path / 'eager' / 'a.png')).astype(int)
    compiled = cv2.imread(str(tmp_path / 'compiled' / 'a.png')).astype(int)
    assert eager.shape == (32, 45, 3) and np.abs(compiled - eager).max() <= 1
    torch._dynamo.reset()


def test_environment_settings_reach_the_layers(monkeypatch):
    for env in (config.CHANNELS_LAST_ENV, config.FLEX_KERNEL_OPTIONS_ENV):
        # set, then deleted: monkeypatch restores (removes) what apply_environment writes into os.environ; a
        # bare delenv of an unset variable records nothing, and the kernel options leaked into later tests
        monkeypatch.setenv(env, '')
        monkeypatch.delenv(env)
    try:
        config.channels_last_override.cache_clear()
        assert not prefers_channels_last(torch.device('cuda'))
        SpeedSettings(channels_last=True, flex_kernel_options='{"num_warps": 2}').apply_environment()
        assert prefers_channels_last(torch.device('cuda'))
        assert config.flex_kernel_options() == (('num_warps', 2),)
    finally:
        monkeypatch.undo()
        config.channels_last_override.cache_clear()
        config.flex_kernel_options.cache_clear()


def test_prepare_converts_and_reports():
    model = tiny('sdpa')
    notes = SpeedSettings(low_rank_bias={'rank': 8}, channels_last=True).prepare(model)
    assert notes == ['low-rank bias: ranks 8 of 64 (largest bias error ' + notes[0].split('error ')[1]]
    assert model.blocks[0].attn.rank == 8
    assert model.to_img.weight.is_contiguous(memory_format=torch.channels_last)
    assert 'nothing converted' in SpeedSettings(low_rank_bias={'rank': 8}).prepare(torch.nn.Conv2d(3, 3, 1))[0]


@requires_cuda
def test_cuda_graphs_equal_eager_at_two_sizes():
    """Strict fp32: CUDA graphs (compiled, reduce-overhead) give eager's output at two sizes, each size its own
    recording, and a returned output survives the next call (it is copied out of the graph's pool)."""
    torch._dynamo.reset()
    counters.clear()
    model = tiny('auto', 'cuda')
    run = SpeedSettings(cuda_graphs=True).wrap(model)
    g = torch.Generator().manual_seed(0)
    with tf32(False), torch.inference_mode():
        for size in [(40, 72), (33, 17)]:
            x = torch.rand(1, 3, *size, generator=g).cuda()
            ref = model(x)
            first = run(x)
            second = run(x + 1)
            torch.testing.assert_close(first, ref, atol=1e-4, rtol=0)
            torch.testing.assert_close(second, model(x + 1), atol=1e-4, rtol=0)
    # graphs were recorded (the first call of a size warms up, the next records) and none was skipped: equal
    # outputs alone pass when inductor silently runs without CUDA graphs
    assert_cuda_graphs_recorded(expected_min=2, device_index=torch.device('cuda').index or 0)
    torch._dynamo.reset()


def test_the_cuda_graph_check_fails_without_graphs():
    """The check above fails where no graph was recorded (on this CPU: none at all) and where inductor counted
    a graph it ran without CUDA graphs."""
    from tests.helpers.compile_checks import recorded_cuda_graphs

    counters.clear()
    assert recorded_cuda_graphs(0) == 0
    with pytest.raises(AssertionError, match='0 CUDA graph'):
        assert_cuda_graphs_recorded(expected_min=1)
    counters['inductor']['cudagraph_skips'] += 1  # what inductor counts for each graph it ran without
    with pytest.raises(AssertionError, match='skipped CUDA graphs 1 time'):
        assert_cuda_graphs_recorded(expected_min=1)
    counters.clear()
