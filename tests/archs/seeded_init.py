"""Configurations whose seeded initialisation is pinned by ``init_stats.json`` (tests/archs), and how.

``torch.manual_seed(0)`` then building a configuration must give a state_dict with the same keys, in the
same order, and the same initial values as the code of commit 349a764 (before the shared ESC trunk
builder): the order in which parameters are created decides both the initial values (RNG consumption)
and the order of the optimiser's state, which resuming relies on. ESC-RIB's (``esc_rib_x*``), which came
after the builder, are those of its code as merged (ec4666b).

The values are pinned so that they hold on any CPU with this torch, not bit for bit: orthogonal
initialisation goes through LAPACK's QR and ``normal_`` through vectorised or scalar ``log``/``cos``,
which round differently with other CPUs, BLAS code paths and thread counts (measured: the statistics
below move by at most 1e-6 standard deviations, with ``ATEN_CPU_CAPABILITY=default``; see
docs/architecture.md). So:

- the layout is exact: each module's keys, their order, shapes and dtypes (a hash of them);
- values exact by construction are exact: integer buffers, and tensors filled with one value (zeros,
  ones, constants);
- every other tensor is pinned by its mean, standard deviation and a projection on fixed pseudo-random
  weights (which value sits where: a tensor drawn again, or two tensors' draws swapped, move it by ~0.5),
  compared within :data:`TOLERANCE` standard deviations (the mean: of its standard deviation plus its size).

Record once on unchanged code with ``python -m tests.archs.seeded_init`` (writes ``init_stats.json``).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Union

import torch

from esc_basicsr.archs import build
from esc_basicsr.archs.table import presets

STATS = Path(__file__).with_name('init_stats.json')
UPSAMPLERS = ('conv', 'pixelshuffledirect', 'pixelshuffle', 'nearest+conv', 'dysample')
# in standard deviations of the tensor (the projection is already in those units): 100x the largest change
# other CPU code paths gave, 1/10 of a re-scaling by 0.1%, 1/5000 of a tensor drawn again
TOLERANCE = 1e-4
# initialised by ``nn.init.orthogonal_`` (ESC's shared large kernel, ESC-FP's spatial kernel)
ORTHOGONAL = ('plk_filter', 'lk_spatial')

# a tensor's record: [mean, std, projection] | 'fill <value>' | 'int <values>' | 'int sha256 <hex>'
Record = Union[list[float], str]
# a module's row: [module, layout hash, [record per key]]
Row = list


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


def seeded_state_dict(preset: str, scale: int, overrides: dict[str, Any]) -> dict[str, torch.Tensor] | str:
    """The state_dict after ``manual_seed(0)``, or the error message when the configuration is refused."""
    torch.manual_seed(0)
    try:
        return build(preset, scale, **overrides).state_dict()
    except ValueError as exc:
        return f'ValueError: {exc}'


_PATTERN = torch.empty(0, dtype=torch.float64)
_PATTERN_SUMS = torch.zeros(1, dtype=torch.float64)


def _pattern(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` fixed weights in [-1, 1) (golden-ratio steps in float64: the same on every machine) and their sum,
    from one table grown to the largest tensor seen."""
    global _PATTERN, _PATTERN_SUMS
    if n > _PATTERN.numel():
        _PATTERN = torch.arange(n, dtype=torch.float64).mul_(0.6180339887498949).frac_().mul_(2).sub_(1)
        _PATTERN_SUMS = torch.cat([torch.zeros(1, dtype=torch.float64), _PATTERN.cumsum(0)])
    return _PATTERN[:n], _PATTERN_SUMS[n]


def record(tensor: torch.Tensor) -> Record:
    """What pins one tensor: ``'int <values>'`` (a hash if more than 16), ``'fill <value>'`` when every element is
    one value, else ``[mean, std, projection]`` (7 significant digits), the projection being
    ``sum(w * (x - mean)) / (std * sqrt(n))`` on the fixed weights ``w`` of :func:`_pattern`."""
    if not tensor.is_floating_point():
        if tensor.numel() <= 16:
            return 'int ' + ','.join(str(v) for v in tensor.reshape(-1).tolist())
        return 'int sha256 ' + hashlib.sha256(tensor.contiguous().cpu().numpy().tobytes()).hexdigest()[:16]
    x = tensor.detach().cpu().reshape(-1)
    low, high = torch.aminmax(x)
    if low == high:
        return f'fill {low.item()!r}'
    # sums in float64 (a few passes; Welford's std_mean is 5x slower): no cancellation to fear at init,
    # where a tensor's mean is at most a few standard deviations
    n, x = x.numel(), x.double()
    w, w_sum = _pattern(n)
    mean = x.sum() / n
    std = (torch.dot(x, x) / n - mean * mean).clamp_min(0).sqrt()
    projection = (torch.dot(x, w) - mean * w_sum) / (std * math.sqrt(n))
    return [float(f'{v.item():.7g}') for v in (mean, std, projection)]


def layout_hash(state: dict[str, torch.Tensor], keys: list[str]) -> str:
    """A hash of the keys, in order, with their dtypes and shapes."""
    text = ''.join(f'{k} {state[k].dtype} {tuple(state[k].shape)}\n' for k in keys)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rows(state: dict[str, torch.Tensor]) -> list[Row]:
    """``[[module, layout hash, [record per key]], ...]`` in state_dict order."""
    modules: dict[str, list[str]] = {}
    for key in state:
        modules.setdefault(group(key), []).append(key)
    return [[name, layout_hash(state, keys), [record(state[k]) for k in keys]] for name, keys in modules.items()]


def differences(state: dict[str, torch.Tensor], recorded: list[Row], tolerance: float = TOLERANCE) -> list[str]:
    """Where ``state`` differs from the recorded rows: one line per module whose layout changed, per value
    exact by construction that changed, per statistic off by more than ``tolerance`` standard deviations."""
    got = rows(state)
    if [r[0] for r in got] != [r[0] for r in recorded]:
        return [f'modules or their order changed: {[r[0] for r in got]} (recorded {[r[0] for r in recorded]})']
    keys: dict[str, list[str]] = {}
    for key in state:
        keys.setdefault(group(key), []).append(key)
    found = []
    for (name, layout, records), (_, want_layout, want_records) in zip(got, recorded):
        if layout != want_layout:
            found.append(f'{name}: keys, their order, shapes or dtypes changed ({len(records)} keys now)')
            continue
        for key, have, want in zip(keys[name], records, want_records):
            if isinstance(have, str) or isinstance(want, str):  # exact by construction
                if have != want:
                    found.append(f'{key}: {have} (recorded {want})')
                continue
            (mean, std, proj), (w_mean, w_std, w_proj) = have, want
            off = {'mean': abs(mean - w_mean) / (w_std + abs(w_mean)), 'std': abs(std - w_std) / w_std,
                   'projection': abs(proj - w_proj)}
            found += [f'{key}: {stat} {have[i]:.7g} (recorded {want[i]:.7g})'
                      for i, (stat, error) in enumerate(off.items()) if error > tolerance]
    return found


def orthonormal_error(tensor: torch.Tensor) -> float:
    """How far the rows (or columns, if fewer) of ``tensor`` flattened to 2-D are from orthonormal: the largest
    element of ``|W W^T - I|`` (float64)."""
    w = tensor.detach().double().flatten(1)
    w = w if w.shape[0] <= w.shape[1] else w.T
    return (w @ w.T - torch.eye(w.shape[0], dtype=w.dtype)).abs().max().item()


def write_stats() -> None:
    """Record ``init_stats.json``: each configuration's list of ``[module, row id]`` (or its refusal), and the
    rows by id (shared by configurations that build the same module alike), one per line."""
    recorded_rows: dict[str, Row] = {}
    configs: dict[str, Any] = {}
    for name, config in configurations().items():
        state = seeded_state_dict(*config)
        if isinstance(state, str):
            configs[name] = state
            continue
        configs[name] = []
        for row in rows(state):
            row_id = hashlib.sha256(json.dumps(row).encode()).hexdigest()[:10]
            recorded_rows[row_id] = row
            configs[name].append([row[0], row_id])

    def block(items: dict[str, Any]) -> str:  # one line per entry, for readable diffs
        return ',\n'.join(f'{json.dumps(k)}: {json.dumps(v, separators=(",", ":"))}' for k, v in sorted(items.items()))

    recorded_with = json.dumps({'torch': torch.__version__.split('+')[0]})
    text = f'{{\n"_recorded_with": {recorded_with},\n"configs": {{\n{block(configs)}\n}},\n' \
           f'"rows": {{\n{block(recorded_rows)}\n}}\n}}\n'
    STATS.write_text(text)
    print(f'{STATS}: {len(configs)} configurations ({sum(isinstance(v, str) for v in configs.values())} refused), '
          f'{len(recorded_rows)} distinct module rows')


def load_stats() -> tuple[dict[str, Any], dict[str, list[Row] | str]]:
    """(``_recorded_with``, configuration -> its rows or its refusal) from ``init_stats.json``."""
    data = json.loads(STATS.read_text())
    by_id = data['rows']
    configs = {name: v if isinstance(v, str) else [by_id[row_id] for _, row_id in v]
               for name, v in data['configs'].items()}
    return data['_recorded_with'], configs


if __name__ == '__main__':
    torch.set_num_threads(2)  # as the tests (tests/conftest.py); any other count gives the same within TOLERANCE
    write_stats()
