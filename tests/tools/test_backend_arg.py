"""The attention backend the tools set (``--attn``, ``--backends``) goes to the argument the architecture
table names (``ArchSpec.backend_arg``: ``attn_type`` in the ESC family, ``attn_backend`` in ESCRIB, whose
``attn_type`` is the authors' attention kind), for every row; ESCRIB from its weights alone through
``load_network``, ``export`` (ONNX parity) and ``benchmark``."""
from __future__ import annotations

import json
import re

import pytest
import torch
import yaml

import esc_basicsr  # noqa: F401  (registers the architectures in BasicSR)
from esc_basicsr.archs.table import ARCHITECTURES, backend_argument
from esc_basicsr.tools.loading import build_network, load_network
from ..helpers.weights import randomize_parameters

from ..helpers.arch_cases import small_case

TINY_FLASHBIAS = dict(type='ESCRIB', dim=16, pdim=4, kernel_size=7, n_blocks=1, conv_blocks=1, window_size=8,
                      num_heads=2, upscaling_factor=2, exp_ratio=1.25, attn_type='FlashBias', rank=4, gate_type='DWC')


def _attention_backends(model: torch.nn.Module) -> set[str]:
    """The backends held by the attention layers (each one's ``attn_type`` attribute)."""
    return {m.attn_type for m in model.modules() if getattr(m, 'attn_type', None) is not None and hasattr(m, 'backend')}


@pytest.mark.parametrize('name', list(ARCHITECTURES))
def test_build_network_sets_the_rows_backend_argument(name: str) -> None:
    spec = ARCHITECTURES[name]
    assert backend_argument(name) == spec.backend_arg
    network_g = {'type': name, **small_case(name).kwargs()}
    model = build_network(network_g, attn_type='naive')
    if spec.backend_arg is None:
        assert _attention_backends(model) == set()
    else:
        assert _attention_backends(model) == {'naive'}
        assert _attention_backends(build_network(network_g)) == {'auto'}  # None: the description's


def test_escrib_keeps_its_attention_kind() -> None:
    model = build_network(TINY_FLASHBIAS, attn_type='sdpa')
    assert model.attn_kind == 'FlashBias' and _attention_backends(model) == {'sdpa'}
    assert backend_argument('SwinIR') is None  # BasicSR's own architectures have none


def test_benchmark_rows_per_backend() -> None:
    from esc_basicsr.tools.benchmark_plan import make_entries

    entries, _ = make_entries(['esc_rib', 'elan_light'], [], ['naive', 'sdpa'], 2)
    assert [(e.label, e.attn) for e in entries] == [('esc_rib[naive]', 'naive'), ('esc_rib[sdpa]', 'sdpa'),
                                                    ('elan_light', None)]


def test_escrib_from_weights_alone(tmp_path, capsys) -> None:
    """Detected from its weights (DDP prefix, params_ema), the backend of --attn lands on attn_backend:
    load_network, export (deployed checkpoint, ONNX within 1e-4 of PyTorch), benchmark."""
    from esc_basicsr.benchmark import main as benchmark
    from esc_basicsr.export import main as export

    torch.manual_seed(0)
    model = randomize_parameters(build_network(TINY_FLASHBIAS), 0.1, 0)
    weights = tmp_path / 'net.pth'
    torch.save({'params_ema': {f'module.{k}': v for k, v in model.state_dict().items()}}, weights)
    loaded = load_network(weights, attn_type='naive')
    assert type(loaded.model).__name__ == 'ESCRIB' and loaded.scale == 2
    assert loaded.model.attn_kind == 'FlashBias' and _attention_backends(loaded.model) == {'naive'}
    x = torch.rand(2, 3, 11, 13)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model.eval()(x), atol=1e-5, rtol=0)

    rc = export(['--weights', str(weights), '--attn', 'sdpa', '-o', str(tmp_path / 'deployed.pth'),
                 '--onnx', str(tmp_path / 'net.onnx')])
    out = capsys.readouterr().out
    assert rc == 0, out
    diffs = [float(d) for d in re.findall(r'max abs diff ([0-9.e+-]+)', out)]
    assert diffs and max(diffs) < 1e-4
    deployed = torch.load(tmp_path / 'deployed.pth', weights_only=True)
    assert deployed['network_g']['type'] == 'ESCRIB' and deployed['network_g']['attn_type'] == 'FlashBias'
    assert load_network(tmp_path / 'deployed.pth', attn_type='sdpa').model.attn_kind == 'FlashBias'

    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': TINY_FLASHBIAS}))
    assert load_network(weights, opt=tmp_path / 'opt.yml').model.attn_kind == 'FlashBias'

    result = tmp_path / 'b.json'
    assert benchmark(['--weights', str(weights), '--backends', 'naive', 'sdpa', '--no-timing', '--no-macs',
                      '--no-isolate', '--json', str(result)]) == 0
    rows = json.loads(result.read_text())['results']
    assert [(r['label'], r['attn']) for r in rows] == [('net[naive]', 'naive'), ('net[sdpa]', 'sdpa')]
