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


def test_compiled_network_equals_eager_with_one_graph_for_every_size():
    model = tiny('sdpa')
    torch._dynamo.reset()
    counters.clear()
    run = SpeedSettings(compile=True, compile_backend='aot_eager').wrap(model)
    assert isinstance(run, CompiledNetwork) and run.model is model
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for size in SIZES:
            x = torch.rand(1, 3, *size, generator=g)
            torch.testing.assert_close(run(x), model(x), atol=1e-5, rtol=0)
    assert counters['stats']['unique_graphs'] == 1, dict(counters['stats'])
    assert not counters['graph_break'], dict(counters['graph_break'])
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
    parse('--compile', '--channels-last').check(torch.device('cpu'), training=True)  # both fine for training


def test_environment_settings_reach_the_layers(monkeypatch):
    for env in (config.CHANNELS_LAST_ENV, config.FLEX_KERNEL_OPTIONS_ENV):
        monkeypatch.delenv(env, raising=False)
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
    torch._dynamo.reset()
