"""One row of ``python -m esc_basicsr.benchmark`` measured: parameters, MACs, latency and memory of a
network (or one training step), in this process or in a fresh one, with the row's speed settings
(:mod:`.speed_settings`), TF32 mode and autocast.

Keys of a row's spec besides the benchmark's arguments, for measurements that compare rows (the GPU speed
matrix, benchmarks/gpu_speed): ``seed`` (the network's initialisation and the input are drawn from it, so that
rows in different processes hold the same weights), ``bias_tables: 'trained_like'`` (every window attention's
relative position table replaced by :func:`esc_basicsr.layers.low_rank_bias.trained_like_table`),
``new_size`` (``[h, w]``: one more call at that size after timing, reporting its time and the graphs dynamo
compiled for it), ``save_output`` / ``compare_to`` (a file: the output at the timed input saved, or compared:
``max_abs_err``, ``mean_rel_err``).

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
    from .speed_settings import SpeedSettings

    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device = resolve_device(spec['device'])
    dtype = resolve_dtype(spec['precision'], device)
    settings = SpeedSettings.from_spec(spec)
    settings.check(device, training=bool(spec.get('train')))
    settings.apply_environment()
    context = set_tf32(spec.get('tf32'))  # recorded in the row, with the device's name
    context['device_name'] = torch.cuda.get_device_name(device) if device.type == 'cuda' else None
    h, w = spec['lr_size']
    if spec.get('seed') is not None:
        torch.manual_seed(spec['seed'])
    model = build_network(spec['network_g'], spec.get('attn'))
    if spec.get('bias_tables') == 'trained_like':
        _trained_like_tables(model, spec.get('seed') or 0)
    params = count_params(model)  # before folding (ELAN's BatchNorm), as papers count them
    if spec.get('train'):
        settings.prepare(model)
        return {'params': params, **context, **_train_row(model, spec, device, dtype, settings)}
    model = deploy(model)
    if network_arbitrary_scale(spec['network_g']):  # ESCLTE: timed as rendering at this row's scale
        from ..layers.lte import FixedScale

        model = FixedScale(model, spec.get('scale', 2))
    notes = settings.prepare(model)
    row: dict[str, Any] = {'params': params, 'attn': _backends(model, device, dtype, requires_grad=False),
                           'settings': settings.describe(), **context}
    if notes:
        row['notes'] = notes
    if spec.get('timing', True):
        autocast = dtype if spec.get('autocast') and dtype != torch.float32 else None
        model = model.to(device=device, dtype=torch.float32 if autocast else dtype)
        run = settings.wrap(model)
        if autocast is not None:
            run = Autocast(run, device.type, autocast)
        row['autocast'] = autocast is not None
        run_dtype = torch.float32 if autocast else dtype
        x = _input((1, 3, h, w), spec.get('seed'), device, run_dtype)
        row.update(measure(run, x, spec['warmup'], spec['repeats']))
        if spec.get('save_output') or spec.get('compare_to'):
            row.update(_output_check(run, x, spec))
        if spec.get('new_size'):
            row.update(_new_size(run, spec['new_size'], spec.get('seed'), device, run_dtype))
        del x
    if spec.get('macs', True):
        row['macs'] = count_macs(model, (1, 3, h, w))
    row['threads'] = torch.get_num_threads() if device.type == 'cpu' else None
    return row


class Autocast:
    """``run(x)`` under ``torch.autocast(device_type, dtype)`` (the network keeps float32 weights)."""

    def __init__(self, run: Any, device_type: str, dtype: Any) -> None:
        self.run, self.device_type, self.dtype = run, device_type, dtype

    def __call__(self, x: Any) -> Any:
        import torch

        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.run(x)


def set_tf32(mode: str | None) -> dict[str, Any]:
    """CUDA TF32 for this process: ``on`` (matmuls and cuDNN convolutions), ``off`` (strict float32), ``default``
    / ``None`` (PyTorch's: convolutions on, matmuls off). Returns the flags in force."""
    import torch

    if mode not in (None, 'default', 'on', 'off'):
        raise ValueError(f'tf32 must be default, on or off, got {mode!r}')
    if mode in ('on', 'off'):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == 'on'
    return {'tf32': mode or 'default', 'tf32_matmul': torch.backends.cuda.matmul.allow_tf32,
            'tf32_cudnn': torch.backends.cudnn.allow_tf32}


def _input(shape: tuple[int, ...], seed: int | None, device: Any, dtype: Any) -> Any:
    """A uniform [0, 1) input, drawn on the CPU from ``seed`` (the same in every process) when given."""
    import torch

    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.rand(*shape, generator=generator).to(device=device, dtype=dtype)


def _trained_like_tables(model: Any, seed: int) -> None:
    """Every window attention's relative position table replaced by a smooth, trained-looking one."""
    import torch

    from ..layers import WindowAttention
    from ..layers.low_rank_bias import trained_like_table

    layers = [m for m in model.modules() if isinstance(m, WindowAttention)]
    with torch.no_grad():
        for i, m in enumerate(layers):
            m.relative_position_bias.copy_(trained_like_table(m.num_heads, m.window_size, seed + i))


def _output_check(run: Any, x: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Save the output at ``x`` (``save_output``) or compare it with a saved one (``compare_to``)."""
    import torch

    with torch.inference_mode():
        out = run(x).float().cpu()
    row: dict[str, Any] = {'output_finite': bool(torch.isfinite(out).all())}
    if spec.get('save_output'):
        torch.save(out, spec['save_output'])
    if spec.get('compare_to'):
        ref = torch.load(spec['compare_to'], weights_only=True)
        diff = (out - ref).abs()
        row['max_abs_err'] = diff.max().item()
        row['mean_rel_err'] = (diff.mean() / ref.abs().mean()).item()
    return row


def _new_size(run: Any, size: Sequence[int], seed: int | None, device: Any, dtype: Any) -> dict[str, Any]:
    """One call at another image size: its time and the graphs dynamo compiled for it (0: no recompilation)."""
    import time

    import torch
    from torch._dynamo.utils import counters

    from .runtime import synchronize

    x = _input((1, 3, *size), None if seed is None else seed + 1, device, dtype)
    graphs = counters['stats']['unique_graphs']
    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        run(x)
    synchronize(device)
    return {'new_size': list(size), 'new_size_ms': (time.perf_counter() - start) * 1000,
            'new_size_graphs': counters['stats']['unique_graphs'] - graphs}


def _backends(model: Any, device: Any, dtype: Any, requires_grad: bool) -> str:
    """The attention backends ``model``'s layers run (each resolved with its own head dim)."""
    layers = [m for m in model.modules() if getattr(m, 'attn_type', None) is not None and hasattr(m, 'backend')]
    return ','.join(sorted({m.backend(device, dtype, requires_grad) for m in layers}))


def _train_row(model: Any, spec: dict[str, Any], device: Any, dtype: Any, settings: Any = None) -> dict[str, Any]:
    """One training iteration of ``model`` (train form, float32 weights, autocast for bf16/fp16), compiled
    whole with ``settings.compile``."""
    import torch

    from .profiling import measure_train_step

    b, p, r = spec['batch_size'], spec['patch'], spec['scale']
    model = model.to(device).train()
    lq = _input((b, 3, p, p), spec.get('seed'), device, torch.float32)
    gt = _input((b, 3, r * p, r * p), None if spec.get('seed') is None else spec['seed'] + 1, device, torch.float32)
    amp = None if dtype == torch.float32 else dtype
    from .speed_settings import quiet_lru_warnings

    trained = model
    if settings is not None and settings.compile:
        kwargs = {'backend': settings.compile_backend} if settings.compile_backend else {}
        trained = torch.compile(model, **kwargs)  # an nn.Module sharing model's parameters
    with quiet_lru_warnings():
        row = measure_train_step(trained, lq, gt, spec['warmup'], spec['repeats'], amp_dtype=amp)
    row['settings'] = settings.describe() if settings is not None else 'default'
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
