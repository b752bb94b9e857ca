"""``python -m esc_basicsr.benchmark``: the paper's efficiency table (ESC Section 4.2 style).

Parameters, multiply-accumulates (PyTorch's ``FlopCounterMode``, MACs = FLOPs / 2), latency
(median after warm-up) and the memory added by a forward pass, for ESC, ESC-light, ESC-FP,
ELAN-light and BasicSR's SwinIR-light (plus any BasicSR architecture named with
``--basicsr-arch``), at a 1280x720 output by default, on CPU or CUDA. Each model is measured in a
fresh Python process (``--no-isolate`` to disable) so that memory readings do not mix.

Examples::

    python -m esc_basicsr.benchmark --device cuda                       # paper setting, x2, 1280x720
    python -m esc_basicsr.benchmark --device cpu --threads 2 --lr-size 176x320 --scale 2 \\
        --models esc swinir_light --baseline swinir_light
    python -m esc_basicsr.benchmark --models esc --backends naive sdpa flex --json out.json
    python -m esc_basicsr.benchmark --no-timing                         # parameters and MACs only
    python -m esc_basicsr.benchmark --weights ESC_x2.pth my_realm.pth    # networks read off checkpoints
    python -m esc_basicsr.benchmark --train --device cpu --threads 2 --batch-size 8 \\
        --models esc_light swinir_light --baseline swinir_light           # one training iteration

See docs/benchmark.md for the definitions.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .tools.cli import PRECISION_CHOICES, attn_choices, parse_size, preset_choices

SWINIR_LIGHT: dict[str, Any] = dict(type='SwinIR', in_chans=3, img_size=64, window_size=8, img_range=1.,
                                    depths=[6, 6, 6, 6], embed_dim=60, num_heads=[6, 6, 6, 6], mlp_ratio=2,
                                    upsampler='pixelshuffledirect', resi_connection='1conv')
DEFAULT_MODELS = ('esc', 'esc_light', 'esc_fp', 'elan_light', 'swinir_light')
RESULT_MARKER = '@@esc_basicsr.benchmark@@'
FLEX_CPU_NOTE = ('flex on the CPU runs FlexAttention\'s unfused eager reference (it materialises every score '
                 'matrix): correct but slow, shown for reference only')


@dataclass
class Entry:
    """One row of the benchmark: a network description and an attention backend."""

    label: str
    network_g: dict[str, Any]
    attn: str | None = None
    notes: list[str] = field(default_factory=list)


def lr_size(lr: tuple[int, int] | None, output: tuple[int, int], scale: int) -> tuple[int, int]:
    """Input ``(H, W)``: ``lr`` if given, else the output size (``W x H``, e.g. 1280x720) / scale, rounded."""
    if lr is not None:
        return lr
    out_w, out_h = output
    return max(round(out_h / scale), 1), max(round(out_w / scale), 1)


def parse_basicsr_arch(text: str) -> tuple[str, dict[str, Any]]:
    """``'EDSR:{"num_feat": 64}'`` (JSON keyword arguments, optional) -> ``('EDSR', {...})``."""
    name, _, kwargs = text.partition(':')
    try:
        opts = json.loads(kwargs) if kwargs.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f'--basicsr-arch {text!r}: the part after ":" must be a JSON object ({exc})') from None
    if not isinstance(opts, dict):
        raise ValueError(f'--basicsr-arch {text!r}: the part after ":" must be a JSON object')
    return name.strip(), opts


def make_entries(models: Sequence[str], basicsr_archs: Sequence[str], backends: Sequence[str],
                 scale: int) -> tuple[list[Entry], list[str]]:
    """Benchmark rows for ``models`` (preset names or ``swinir_light``) and ``basicsr_archs``.

    Architectures that take ``attn_type`` (the ESC family) get one row per backend. Returns the
    rows and notes (models skipped, caveats).
    """
    from .archs.presets import PRESETS
    from .tools.loading import accepts, architecture, complete_network_g, network_from_preset

    entries: list[Entry] = []
    notes: list[str] = []
    for name in models:
        key = name.lower().replace('-', '_')
        if key == 'swinir_light':
            entries.append(Entry('swinir_light', dict(SWINIR_LIGHT, upscale=scale)))
            continue
        if key not in PRESETS:
            raise ValueError(f'unknown model {name!r}; choose from {sorted([*PRESETS, "swinir_light"])} '
                             'or name a BasicSR architecture with --basicsr-arch')
        entries.append(Entry(key, network_from_preset(key, scale)))
    for text in basicsr_archs:
        name, opts = parse_basicsr_arch(text)
        entries.append(Entry(name, complete_network_g(dict(opts, type=name), scale)))

    out: list[Entry] = []
    for entry in entries:
        if not accepts(architecture(entry.network_g['type']), 'attn_type'):
            out.append(entry)
            continue
        for backend in backends:
            label = entry.label if len(backends) == 1 and backend == 'auto' else f'{entry.label}[{backend}]'
            out.append(Entry(label, entry.network_g, backend))
    labels = [e.label for e in out]
    for label in set(labels):
        n = labels.count(label)
        if n > 1:  # the same architecture twice: number them
            for i, e in enumerate([e for e in out if e.label == label]):
                e.label = f'{label}#{i + 1}'
    return out, notes


def weights_entries(paths: Sequence[str], scale: int | None) -> tuple[list[Entry], int]:
    """Rows for checkpoints (network from the weights, :func:`esc_basicsr.tools.loading.describe_weights`)
    and the common scale: ``scale`` (which each must agree with), else theirs, else 2."""
    from .tools.loading import describe_weights

    entries: list[Entry] = []
    scales: list[int] = []
    for path in paths:
        network_g, found = describe_weights(path, scale)
        entries.append(Entry(os.path.splitext(os.path.basename(path))[0], network_g))
        scales.append(found)
    other = next((i for i, s in enumerate(scales) if s != scales[0]), None)
    if other is not None:
        raise ValueError(f'--weights: {paths[0]} is x{scales[0]} but {paths[other]} is x{scales[other]}: '
                         'one scale per benchmark')
    return entries, scale if scale is not None else (scales[0] if scales else 2)


def expand_backends(entry: Entry, backends: Sequence[str]) -> list[Entry]:
    """One row per attention backend for the ESC family (``attn_type``), else the row itself."""
    from .tools.loading import accepts, architecture

    if not accepts(architecture(entry.network_g['type']), 'attn_type'):
        return [entry]
    if len(backends) == 1 and backends[0] == 'auto':
        return [Entry(entry.label, entry.network_g, 'auto')]
    return [Entry(f'{entry.label}[{b}]', entry.network_g, b) for b in backends]


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one entry in this process (``spec`` from :func:`main`); returns its result row."""
    import torch

    from .archs.deploy import deploy
    from .tools.loading import build_network
    from .tools.profiling import count_macs, count_params, measure
    from .tools.runtime import resolve_device, resolve_dtype

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
    if getattr(model, 'arbitrary_scale', False):  # ESCLTE: timed as rendering at this row's scale
        from .layers.lte import FixedScale

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

    from .tools.profiling import measure_train_step

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


def merge_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the rounds of a model: median latency and memory, counts from the first round."""
    ok = [r for r in results if not r.get('error')]
    if not ok:
        return results[0]
    row = dict(ok[0])
    for key in ('latency_ms', 'mem_added_mb', 'mem_peak_mb'):
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            row[key] = statistics.median(values)
    if 'step_ms' in row:  # training rows: their time columns follow the median too
        row['step_ms'] = row['latency_ms']
        row['images_per_s'] = row['batch_size'] / (row['step_ms'] / 1000)
    if len(results) > 1:
        row['rounds_latency_ms'] = [r.get('latency_ms') for r in ok]
    return row


def run_isolated(spec: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """:func:`run_worker` in a fresh Python process (clean memory readings, own thread settings)."""
    env = dict(os.environ)
    if spec.get('threads'):
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(spec['threads'])
    cmd = [sys.executable, '-m', 'esc_basicsr.benchmark', '--worker', json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'error': f'timed out after {timeout:g} s'}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {'error': f'worker exited with {proc.returncode}: ' + ' | '.join(tail)}


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return format(value, spec)


def add_ratios(rows: list[dict[str, Any]], baseline: str | None) -> None:
    """Add ``ratio`` (latency / baseline latency) and ``mem_ratio`` (added memory / baseline's)."""
    base = next((r for r in rows if r['label'] == baseline), None) if baseline else None
    for row in rows:
        row['ratio'] = row['mem_ratio'] = None
        if base is None:
            continue
        if row.get('latency_ms') and base.get('latency_ms'):
            row['ratio'] = row['latency_ms'] / base['latency_ms']
        if row.get('mem_added_mb') and base.get('mem_added_mb'):
            row['mem_ratio'] = row['mem_added_mb'] / base['mem_added_mb']


def _macs_g(row: dict[str, Any]) -> float | None:
    return row['macs'] / 1e9 if row.get('macs') is not None else None


# (heading, value of a row, format): the columns between "params" and "memory added"
_INFERENCE_COLUMNS = (('MACs (G)', _macs_g, '.1f'), ('latency (ms)', lambda r: r.get('latency_ms'), '.1f'))
_TRAIN_COLUMNS = (('step (ms)', lambda r: r.get('step_ms'), '.0f'),
                  ('images/s', lambda r: r.get('images_per_s'), '.2f'))


def format_table(rows: list[dict[str, Any]], baseline: str | None, train: bool = False) -> str:
    """Markdown table of the result rows (``train``: training-step rows of ``--train``)."""
    middle = _TRAIN_COLUMNS if train else _INFERENCE_COLUMNS
    ratio_head = f' vs {baseline}' if baseline else ''
    heads = ['model', 'attn', 'params (K)', *(m[0] for m in middle), 'memory added (MB)', 'peak (MB)',
             f'time ratio{ratio_head}', f'memory ratio{ratio_head}']
    lines = ['| ' + ' | '.join(heads) + ' |', '| --- | --- |' + ' ---: |' * (len(heads) - 2)]
    for r in rows:
        if r.get('error'):
            cells = [r['label'], '-', '-', f'error: {r["error"][:120]}'] + ['-'] * (len(heads) - 4)
        else:
            cells = [r['label'], r.get('attn') or '-', _fmt(r['params'] / 1e3, '.1f'),
                     *(_fmt(get(r), spec) for _, get, spec in middle),
                     _fmt(r.get('mem_added_mb'), '.0f'), _fmt(r.get('mem_peak_mb'), '.0f'),
                     _fmt(r.get('ratio'), '.2f'), _fmt(r.get('mem_ratio'), '.2f')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    """One CSV row per result (scalar fields only)."""
    keys = ['label', 'arch', 'attn', 'scale', 'lr_h', 'lr_w', 'params', 'macs', 'latency_ms', 'mem_added_mb',
            'mem_peak_mb', 'ratio', 'mem_ratio', 'device', 'precision', 'threads', 'error']
    from .tools.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, 'lr_h': row['lr_size'][0], 'lr_w': row['lr_size'][1]})


def write_plot(path: str, rows: list[dict[str, Any]], title: str) -> None:
    """Scatter of latency (or MACs without timing) against parameters, one labelled point per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not r.get('error')]
    timed = any(r.get('latency_ms') for r in rows)
    key, ylabel = ('latency_ms', 'latency (ms)') if timed else ('macs', 'multiply-accumulates (G)')
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for r in rows:
        y = r.get(key)
        if y is None:
            continue
        y = y / 1e9 if key == 'macs' else y
        ax.scatter(r['params'] / 1e3, y, s=30)
        ax.annotate(r['label'], (r['params'] / 1e3, y), textcoords='offset points', xytext=(4, 4), fontsize=8)
    ax.set_xlabel('parameters (K)')
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from .tools.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:  # keeps the extension, from which matplotlib takes the format
            fig.savefig(tmp)
    finally:
        plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m esc_basicsr.benchmark', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='*', default=None,
                   help=f'presets ({", ".join(preset_choices())}) and/or swinir_light '
                        f'(default: {" ".join(DEFAULT_MODELS)}, none with --weights)')
    p.add_argument('--weights', nargs='+', default=[], metavar='CKPT',
                   help='checkpoints whose networks are measured, each read off its weights (one scale for all)')
    p.add_argument('--basicsr-arch', action='append', default=[], metavar='TYPE[:JSON]',
                   help='another registered architecture, e.g. \'EDSR:{"num_feat": 64, "num_block": 16}\' '
                        '(scale and RGB channel arguments are filled in); repeatable')
    p.add_argument('--backends', nargs='+', default=['auto'], choices=attn_choices(),
                   help='attention backends of the ESC family, one row each (default: auto)')
    p.add_argument('--scale', type=int, default=None,
                   help='upscaling factor (default: that of --weights, else 2; an error if it disagrees with them)')
    size = p.add_mutually_exclusive_group()
    size.add_argument('--output-size', type=parse_size, default=(1280, 720), metavar='WxH',
                      help='output size, width x height (default 1280x720); the input is this / scale')
    size.add_argument('--lr-size', type=parse_size, default=None, metavar='HxW', help='input size, height x width')
    p.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto (default)')
    p.add_argument('--precision', default='fp32', choices=PRECISION_CHOICES)
    p.add_argument('--fp16', dest='precision', action='store_const', const='fp16', help='= --precision fp16')
    p.add_argument('--bf16', dest='precision', action='store_const', const='bf16', help='= --precision bf16')
    p.add_argument('--threads', type=int, default=None, help='CPU threads (torch.set_num_threads)')
    p.add_argument('--warmup', type=int, default=None, help='untimed passes (default: CPU 1, CUDA 5)')
    p.add_argument('--repeats', type=int, default=None, help='timed passes, median reported (default: CPU 3, CUDA 20)')
    p.add_argument('--baseline', default=None, help='label of the row that ratios are relative to, e.g. swinir_light')
    p.add_argument('--no-timing', dest='timing', action='store_false', help='parameters and MACs only')
    p.add_argument('--no-macs', dest='macs', action='store_false', help='skip the MAC count')
    p.add_argument('--no-isolate', dest='isolate', action='store_false',
                   help='measure in this process (CPU memory readings then include earlier models)')
    p.add_argument('--rounds', type=int, default=1,
                   help='repeat the isolated runs of all models round-robin N times and report each model\'s '
                        'median: on a shared machine a change of load then hits every model alike (default 1)')
    p.add_argument('--timeout', type=float, default=None, help='seconds per model (isolated runs)')
    p.add_argument('--csv', default=None, help='write the results as CSV')
    p.add_argument('--json', default=None, help='write the configuration and results as JSON')
    p.add_argument('--plot', default=None, help='write a PNG of latency vs parameters')
    train = p.add_argument_group('training step (--train)')
    train.add_argument('--train', action='store_true',
                       help='time one training iteration (forward, L1 loss, backward, AdamW step) instead of '
                            'inference; bf16/fp16 run under autocast with float32 weights')
    train.add_argument('--batch-size', type=int, default=None,
                       help='training batch (default: the recipe\'s 64 on CUDA, 8 on the CPU)')
    train.add_argument('--patch', type=int, default=64, help='LR patch size (default 64: the recipe\'s GT 128 at x2)')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return p


@dataclass
class Plan:
    """What one benchmark run measures: rows, sizes and repetitions (from the arguments)."""

    entries: list[Entry]
    notes: list[str]
    config: dict[str, Any]
    lr_size: tuple[int, int]
    warmup: int
    repeats: int
    rounds: int


def make_plan(args: argparse.Namespace) -> Plan:
    """Validate the arguments and decide the rows; raises ``ValueError``/``KeyError``/``OSError``."""
    import torch

    from .tools.output_paths import check_distinct_files
    from .tools.runtime import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    resolve_dtype(args.precision, device)
    weight_entries, args.scale = weights_entries(args.weights, args.scale)
    models = args.models if args.models is not None else ([] if args.weights else list(DEFAULT_MODELS))
    entries, notes = make_entries(models, args.basicsr_arch, args.backends, args.scale)
    entries = [e for w in weight_entries for e in expand_backends(w, args.backends)] + entries
    check_distinct_files({'--json': args.json, '--csv': args.csv, '--plot': args.plot}, {})
    if args.baseline and args.baseline not in [e.label for e in entries]:
        raise ValueError(f'--baseline {args.baseline!r} is not one of the rows: {[e.label for e in entries]}')
    if args.train:
        args.batch_size = args.batch_size or (64 if device.type == 'cuda' else 8)
        if args.batch_size < 1 or args.patch < 1:
            raise ValueError('--batch-size and --patch must be >= 1')
        if not args.timing:
            raise ValueError('--train measures time and memory: it cannot be combined with --no-timing')
    if device.type == 'cpu' and 'flex' in args.backends and args.timing:
        notes.append(FLEX_CPU_NOTE)
    cuda = device.type == 'cuda'
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    repeats = args.repeats if args.repeats is not None else (20 if cuda else 3)
    h, w = (args.patch, args.patch) if args.train else lr_size(args.lr_size, args.output_size, args.scale)
    config = {'device': str(device), 'device_name': torch.cuda.get_device_name(device) if cuda else None,
              'precision': args.precision, 'threads': args.threads, 'scale': args.scale, 'lr_size': [h, w],
              'out_size': [h * args.scale, w * args.scale], 'warmup': warmup, 'repeats': repeats,
              'isolated': args.isolate and args.timing, 'torch': torch.__version__, 'baseline': args.baseline,
              'mode': 'train' if args.train else 'inference', 'batch_size': args.batch_size if args.train else 1}
    rounds = max(1, args.rounds) if args.isolate and args.timing else 1
    config['rounds'] = rounds
    return Plan(entries, notes, config, (h, w), warmup, repeats, rounds)


def run_plan(plan: Plan, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every row (round-robin over ``plan.rounds``); returns one merged result per row."""
    results: list[list[dict[str, Any]]] = [[] for _ in plan.entries]
    base = {'lr_size': list(plan.lr_size), 'device': plan.config['device'], 'precision': args.precision,
            'threads': args.threads, 'warmup': plan.warmup, 'repeats': plan.repeats, 'timing': args.timing,
            'scale': args.scale, 'train': args.train, 'batch_size': args.batch_size, 'patch': args.patch}
    for r in range(plan.rounds):
        for i, entry in enumerate(plan.entries):
            spec = dict(base, network_g=entry.network_g, attn=entry.attn, macs=args.macs and r == 0 and not args.train)
            round_txt = f' round {r + 1}/{plan.rounds}' if plan.rounds > 1 else ''
            print(f'[{i + 1}/{len(plan.entries)}{round_txt}] {entry.label} ...', end='', file=sys.stderr, flush=True)
            start = time.perf_counter()
            if args.isolate and args.timing:  # counting alone needs no fresh process
                result = run_isolated(spec, args.timeout)
            else:
                try:
                    result = run_worker(spec)
                except Exception as exc:  # keep going: report it in the table
                    result = {'error': f'{type(exc).__name__}: {exc}'}
            print(f' {result.get("error") or "done"} ({time.perf_counter() - start:.0f} s)', file=sys.stderr)
            results[i].append(result)
    h, w = plan.lr_size
    rows = [{'label': entry.label, 'arch': entry.network_g['type'], 'scale': args.scale, 'lr_size': [h, w],
             'device': plan.config['device'], 'precision': args.precision, **merge_rounds(res)}
            for entry, res in zip(plan.entries, results)]
    add_ratios(rows, args.baseline)
    return rows


def report(plan: Plan, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Print the table and notes; write the JSON/CSV/PNG outputs that were asked for."""
    (h, w), cfg = plan.lr_size, plan.config
    threads = f', {args.threads or cfg.get("threads") or "default"} threads' if cfg['device'] == 'cpu' else ''
    if args.train:
        title = (f'training step x{args.scale}: batch {args.batch_size} of {h}x{w} LR patches, L1 + AdamW, '
                 f'{cfg["device"]}{threads}, {args.precision}')
        table = format_table(rows, args.baseline, train=True)
    else:
        title = (f'x{args.scale}, input {h}x{w} -> output {h * args.scale}x{w * args.scale} (HxW), {cfg["device"]}'
                 f'{threads}, {args.precision}')
        table = format_table(rows, args.baseline)
    timing = f'; time: median of {plan.repeats} after {plan.warmup} warm-up' if args.timing else ''
    print(f'\n{title}{timing}\n')
    print(table)
    for note in plan.notes + [n for e in plan.entries for n in e.notes]:
        print(f'\nnote: {note}')
    if args.json:
        from .tools.atomic import write_text
        write_text(args.json, json.dumps({'config': cfg, 'notes': plan.notes, 'results': rows}, indent=2))
    if args.csv:
        write_csv(args.csv, rows)
    if args.plot:
        write_plot(args.plot, rows, title)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (0 ok, 1 a model failed, 2 bad arguments)."""
    args = build_parser().parse_args(argv)
    if args.worker is not None:
        result = run_worker(json.loads(args.worker))
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0
    try:
        plan = make_plan(args)
    except (ValueError, KeyError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    rows = run_plan(plan, args)
    report(plan, rows, args)
    return 1 if any(r.get('error') for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
