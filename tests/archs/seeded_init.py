"""Configurations whose seeded initialisation is pinned by ``init_digests.json`` (tests/archs).

``torch.manual_seed(0)`` then building a configuration must give a state_dict with the same keys, in
the same order, and the same tensors as the code of commit 349a764 (before the shared ESC trunk
builder): the order in which parameters are created decides both the initial values (RNG
consumption) and the order of the optimiser's state, which resuming relies on.
ESC-RIB's (``esc_rib_x*``), which came after the builder, are those of its code as merged (ec4666b).

The values are those of this torch build at 2 threads (as the tests run, tests/conftest.py):
LAPACK's QR behind ``nn.init.orthogonal_`` rounds differently with other thread counts. Record once
with ``.venv/bin/python -m tests.archs.seeded_init`` (writes ``init_digests.json``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from esc_basicsr.archs import build
from esc_basicsr.archs.table import presets

DIGESTS = Path(__file__).with_name('init_digests.json')
UPSAMPLERS = ('conv', 'pixelshuffledirect', 'pixelshuffle', 'nearest+conv', 'dysample')


def configurations() -> dict[str, tuple[str, int, dict[str, Any]]]:
    """id -> (preset, scale, overrides): every preset at each of its scales, ESCRealM x1-x4 with every
    upsampler (unshuffled or not at x1, x2), ESC-Real with DySample."""
    configs: dict[str, tuple[str, int, dict[str, Any]]] = {}
    for preset, (spec, _) in presets().items():
        for scale in spec.scales or (1,):
            configs[f'{preset}_x{scale}'] = (preset, scale, {})
    configs['esc_real_x4_dysample'] = ('esc_real', 4, {'use_dysample': True})
    for scale in (1, 2, 3, 4):
        for upsampler in UPSAMPLERS:
            for unshuffle in (True, False) if scale < 3 else (True,):  # ignored at x3, x4
                configs[f'esc_realm_x{scale}_{upsampler}_unshuffle{int(unshuffle)}'] = (
                    'esc_realm', scale, {'upsampler': upsampler, 'unshuffle_mod': unshuffle})
    return configs


def group(key: str) -> str:
    """The module a state_dict key belongs to, for reporting: ``blocks.3``, ``to_img``, ``plk_filter``..."""
    parts = key.split('.')
    return '.'.join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]


def digest(preset: str, scale: int, overrides: dict[str, Any]) -> list[list[Any]] | str:
    """``[[module, number of keys, sha256], ...]`` in state_dict order after ``manual_seed(0)``, the
    hash over each key, dtype, shape and tensor bytes of the module in order; or the error message
    when the configuration is refused (ValueError)."""
    torch.manual_seed(0)
    try:
        model = build(preset, scale, **overrides)
    except ValueError as exc:
        return f'ValueError: {exc}'
    rows: list[list[Any]] = []
    for key, tensor in model.state_dict().items():
        name = group(key)
        if not rows or rows[-1][0] != name:
            rows.append([name, 0, hashlib.sha256()])
        data = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
        rows[-1][1] += 1
        rows[-1][2].update(f'{key} {tensor.dtype} {tuple(tensor.shape)}\n'.encode() + data)
    return [[name, n, h.hexdigest()] for name, n, h in rows]


if __name__ == '__main__':
    torch.set_num_threads(2)  # as the tests (tests/conftest.py)
    recorded = {name: digest(*config) for name, config in configurations().items()}
    recorded['_recorded_with'] = {'torch': torch.__version__, 'threads': torch.get_num_threads()}  # type: ignore
    lines = [f'{json.dumps(name)}: {json.dumps(rows, separators=(",", ":"))}'
             for name, rows in sorted(recorded.items())]
    DIGESTS.write_text('{\n' + ',\n'.join(lines) + '\n}\n')
    print(f'{DIGESTS}: {len(recorded)} configurations '
          f'({sum(isinstance(v, str) for v in recorded.values())} refused)')
