"""One row of ``python -m esc_basicsr.benchmark`` measured: parameters, MACs, latency and memory of a
network (or one training step), in this process or in a fresh one.

``python -m esc_basicsr.tools.benchmark_worker SPEC_JSON`` is the fresh process: it prints the result
row as JSON after :data:`RESULT_MARKER`, so that nothing else the network prints is taken for it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Sequence

RESULT_MARKER = '@@esc_basicsr.benchmark@@'


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one entry in this process (``spec`` from :func:`main`); returns its result row."""
    import torch

    from ..archs.deploy import deploy
    from ..archs.table import network_arbitrary_scale
    from .loading import build_network
    from .profiling import count_macs, count_params, measure
    from .runtime import resolve_device, resolve_dtype

    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device = resolve_device(spec['device'])
    dtype = resolve_dtype(spec['precision'], device)
    h, w = spec['lr_size']
    model = build_network(spec['network_g'], spec.get('attn'))
    params = count_params(model)  # before folding (ELAN's BatchNorm), as papers count them
    if spec.get('train'):
        return {'params': params, **_train_row(model, spec, device, dtype)}
    model = deploy(model)
    if network_arbitrary_scale(spec['network_g']):  # ESCLTE: timed as rendering at this row's scale
        from ..layers.lte import FixedScale

        model = FixedScale(model, spec.get('scale', 2))
    row: dict[str, Any] = {'params': params, 'attn': _backends(model, device, dtype, requires_grad=False)}
    if spec.get('timing', True):
        model = model.to(device=device, dtype=dtype)
        x = torch.rand(1, 3, h, w, device=device, dtype=dtype)
        row.update(measure(model, x, spec['warmup'], spec['repeats']))
        del x
    if spec.get('macs', True):
        row['macs'] = count_macs(model, (1, 3, h, w))
    row['threads'] = torch.get_num_threads() if device.type == 'cpu' else None
    return row


def _backends(model: Any, device: Any, dtype: Any, requires_grad: bool) -> str:
    """The attention backends ``model``'s layers run (each resolved with its own head dim)."""
    layers = [m for m in model.modules() if getattr(m, 'attn_type', None) is not None and hasattr(m, 'backend')]
    return ','.join(sorted({m.backend(device, dtype, requires_grad) for m in layers}))


def _train_row(model: Any, spec: dict[str, Any], device: Any, dtype: Any) -> dict[str, Any]:
    """One training iteration of ``model`` (train form, float32 weights, autocast for bf16/fp16)."""
    import torch

    from .profiling import measure_train_step

    b, p, r = spec['batch_size'], spec['patch'], spec['scale']
    model = model.to(device).train()
    lq = torch.rand(b, 3, p, p, device=device)
    gt = torch.rand(b, 3, r * p, r * p, device=device)
    amp = None if dtype == torch.float32 else dtype
    row = measure_train_step(model, lq, gt, spec['warmup'], spec['repeats'], amp_dtype=amp)
    row['attn'] = _backends(model, device, dtype, requires_grad=True)
    row['batch_size'] = b
    row['images_per_s'] = b / (row['step_ms'] / 1000)
    row['latency_ms'] = row['step_ms']  # the time that ratios compare
    row['threads'] = torch.get_num_threads() if device.type == 'cpu' else None
    return row


def run_isolated(spec: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """:func:`run_worker` in a fresh Python process (clean memory readings, own thread settings)."""
    env = dict(os.environ)
    if spec.get('threads'):
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(spec['threads'])
    cmd = [sys.executable, '-m', 'esc_basicsr.tools.benchmark_worker', json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'error': f'timed out after {timeout:g} s'}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {'error': f'worker exited with {proc.returncode}: ' + ' | '.join(tail)}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the row ``argv[0]`` (a JSON spec from :func:`run_isolated`) and print it after the marker."""
    spec = json.loads((sys.argv[1:] if argv is None else argv)[0])
    print(RESULT_MARKER + json.dumps(run_worker(spec)), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
