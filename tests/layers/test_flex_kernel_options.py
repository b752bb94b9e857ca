"""FlexAttention's kernel_options (ESC_BASICSR_FLEX_KERNEL_OPTIONS): read once by the layers' configuration,
handed to every flex_attention call (eager, per-variant compiled, inside a compiled model), changing no value on
the CPU. Whether a set pays on a GPU: scripts/gpu_speed.sh measures it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.attention.flex_attention as flex_module

from esc_basicsr.layers import WindowAttention, attention_backends, config

OPTIONS = '{"num_warps": 2, "BLOCK_M": 32, "BLOCK_N": 32, "num_stages": 2}'
PAIRS = (('BLOCK_M', 32), ('BLOCK_N', 32), ('num_stages', 2), ('num_warps', 2))


@pytest.fixture
def kernel_options(monkeypatch):
    """Set ESC_BASICSR_FLEX_KERNEL_OPTIONS for one test (the cached value re-read before and after)."""
    def set_options(text: str | None) -> None:
        if text is None:
            monkeypatch.delenv(config.FLEX_KERNEL_OPTIONS_ENV, raising=False)
        else:
            monkeypatch.setenv(config.FLEX_KERNEL_OPTIONS_ENV, text)
        config.flex_kernel_options.cache_clear()
    yield set_options
    monkeypatch.delenv(config.FLEX_KERNEL_OPTIONS_ENV, raising=False)
    config.flex_kernel_options.cache_clear()


def test_options_are_parsed_and_checked(kernel_options):
    kernel_options(None)
    assert config.flex_kernel_options() == ()
    kernel_options(OPTIONS)
    assert config.flex_kernel_options() == PAIRS
    for bad in ('{BLOCK_M: 64}', '[64]', '{"BLOCK_M": [64]}'):
        kernel_options(bad)
        with pytest.raises(ValueError, match=config.FLEX_KERNEL_OPTIONS_ENV):
            config.flex_kernel_options()


def _spy(monkeypatch) -> list:
    seen = []
    real = flex_module.flex_attention

    def spy(*args, **kwargs):
        seen.append(kwargs.get('kernel_options'))
        return real(*args, **kwargs)

    monkeypatch.setattr(flex_module, 'flex_attention', spy)
    return seen


def test_eager_flex_gets_the_options_and_computes_the_same(monkeypatch, kernel_options):
    torch.manual_seed(0)
    attn = WindowAttention(32, 8, 2, 'flex').eval()
    x = torch.randn(2, 32, 13, 19)
    with torch.no_grad():
        kernel_options(None)
        plain = attn(x)
        kernel_options(OPTIONS)
        seen = _spy(monkeypatch)
        out = attn(x)
    assert seen and all(s == dict(PAIRS) for s in seen)
    assert torch.equal(out, plain)


def test_compiled_flex_variant_carries_the_options(monkeypatch, kernel_options):
    """The per-variant compiled entry (aot_eager on the CPU) is keyed and named by the options and runs with
    them; the output is sdpa's."""
    kernel_options(OPTIONS)
    torch._dynamo.reset()
    compiled = attention_backends.compile_flex(backend='aot_eager')
    monkeypatch.setattr(attention_backends, '_flex_function', lambda device: compiled)
    torch.manual_seed(0)
    attn = WindowAttention(32, 8, 2, 'flex').eval()
    ref = WindowAttention(32, 8, 2, 'sdpa').eval()
    ref.load_state_dict(attn.state_dict())
    x = torch.randn(1, 32, 16, 24)
    with torch.no_grad():
        out = attn(x)
        torch.testing.assert_close(out, ref(x), atol=1e-5, rtol=0)
    (variant, code), = compiled.codes().items()
    assert variant.kernel_options == PAIRS and code.co_name.endswith('_BLOCK_M32_BLOCK_N32_num_stages2_num_warps2')
    torch._dynamo.reset()
