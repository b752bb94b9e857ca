"""What ``python -m esc_basicsr.benchmark`` measures, and measuring it: the rows (presets, BasicSR
architectures, checkpoints; one per attention backend where the architecture has one), the sizes and repetitions
decided from the arguments, and the round-robin run over the rows with each row measured by
:mod:`.benchmark_worker` (in a fresh process by default). The table and files: :mod:`.benchmark_report`.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .benchmark_worker import run_isolated, run_worker

SWINIR_LIGHT: dict[str, Any] = dict(type='SwinIR', in_chans=3, img_size=64, window_size=8, img_range=1.,
                                    depths=[6, 6, 6, 6], embed_dim=60, num_heads=[6, 6, 6, 6], mlp_ratio=2,
                                    upsampler='pixelshuffledirect', resi_connection='1conv')
DEFAULT_MODELS = ('esc', 'esc_light', 'esc_fp', 'elan_light', 'swinir_light')
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
    """Input ``(H, W)``: ``lr`` if given, else the output size ``(H, W)`` (e.g. 720x1280) / scale, rounded."""
    if lr is not None:
        return lr
    out_h, out_w = output
    return max(round(out_h / scale), 1), max(round(out_w / scale), 1)


def parse_basicsr_arch(text: str) -> tuple[str, dict[str, Any]]:
    """``'EDSR:{"num_feat": 64}'`` (JSON keyword arguments, optional) -> ``('EDSR', {...})``."""
    from .cli import json_argument

    name, _, kwargs = text.partition(':')
    shown = text if len(text) <= 80 else f'{text[:60]}... ({len(text)} characters)'  # one line, not 100,000 [
    try:
        opts = json_argument(kwargs, f'--basicsr-arch {shown!r}') if kwargs.strip() else {}
    except ValueError as exc:
        raise ValueError(f'{exc}; the part after ":" must be a JSON object') from None
    if not isinstance(opts, dict):
        raise ValueError(f'--basicsr-arch {shown!r}: the part after ":" must be a JSON object')
    return name.strip(), opts


def make_entries(models: Sequence[str], basicsr_archs: Sequence[str], backends: Sequence[str],
                 scale: int) -> tuple[list[Entry], list[str]]:
    """Benchmark rows for ``models`` (preset names or ``swinir_light``) and ``basicsr_archs``.

    Architectures with an attention backend (the table's ``backend_arg``) get one row per backend.
    Returns the rows and notes (models skipped, caveats).
    """
    from ..archs.presets import PRESETS
    from ..archs.table import backend_argument
    from .loading import complete_network_g, network_from_preset

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
        if backend_argument(entry.network_g['type']) is None:
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
    from .loading import describe_weights
    from .options_check import check_weights_file, load_error_message

    entries: list[Entry] = []
    scales: list[int] = []
    for path in paths:
        check_weights_file(path)
        try:
            network_g, found = describe_weights(path, scale)
        except (ValueError, KeyError) as exc:  # the tools' own messages (scale, detection), naming the file
            message = str(exc.args[0] if exc.args else exc)
            raise ValueError(message if str(path) in message else f'--weights {path}: {message}') from None
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes torch.load raise: one line
            first = next((line for line in str(exc).splitlines() if line.strip()), '')[:200]
            raise ValueError(load_error_message(path, exc) or f'--weights {path}: cannot be read as a PyTorch '
                             f'checkpoint, damaged or not one ({type(exc).__name__}: {first})') from None
        entries.append(Entry(os.path.splitext(os.path.basename(path))[0], network_g))
        scales.append(found)
    other = next((i for i, s in enumerate(scales) if s != scales[0]), None)
    if other is not None:
        raise ValueError(f'--weights: {paths[0]} is x{scales[0]} but {paths[other]} is x{scales[other]}: '
                         'one scale per benchmark')
    return entries, scale if scale is not None else (scales[0] if scales else 2)


def expand_backends(entry: Entry, backends: Sequence[str]) -> list[Entry]:
    """One row per attention backend for architectures with one (the table's ``backend_arg``), else the
    row itself."""
    from ..archs.table import backend_argument

    if backend_argument(entry.network_g['type']) is None:
        return [entry]
    if len(backends) == 1 and backends[0] == 'auto':
        return [Entry(entry.label, entry.network_g, 'auto')]
    return [Entry(f'{entry.label}[{b}]', entry.network_g, b) for b in backends]


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
    settings: Any = None  # the speed settings (tools.speed_settings.SpeedSettings) of every row


def make_plan(args: argparse.Namespace) -> Plan:
    """Validate the arguments and decide the rows; raises ``ValueError``/``KeyError``/``OSError``."""
    import torch

    from dataclasses import replace

    from .runtime import resolve_device, resolve_dtype
    from .speed_settings import SpeedSettings
    from ..utils.output_paths import check_distinct_files

    outputs = {'--json': args.json, '--csv': args.csv, '--plot': args.plot}
    check_distinct_files(outputs, {'--weights': args.weights})  # before anything is read
    check_output_folders(outputs)  # before the long run, not when the results are written
    check_repetitions(args)
    device = resolve_device(args.device)
    resolve_dtype(args.precision, device)
    settings = replace(SpeedSettings.from_args(args), compile_backend=getattr(args, 'compile_backend', None))
    settings.check(device, training=args.train)
    if getattr(args, 'autocast', False) and args.precision == 'fp32' and not args.train:
        raise ValueError('--autocast runs bf16/fp16 under autocast: give --precision bf16 or fp16')
    weight_entries, args.scale = weights_entries(args.weights, args.scale)
    models = args.models if args.models is not None else ([] if args.weights else list(DEFAULT_MODELS))
    entries, notes = make_entries(models, args.basicsr_arch, args.backends, args.scale)
    entries = [e for w in weight_entries for e in expand_backends(w, args.backends)] + entries
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
              'mode': 'train' if args.train else 'inference', 'batch_size': args.batch_size if args.train else 1,
              'settings': settings.describe(), 'tf32': getattr(args, 'tf32', 'default'),
              'autocast': bool(getattr(args, 'autocast', False)) or args.train}
    rounds = args.rounds
    config['rounds'] = rounds
    return Plan(entries, notes, config, (h, w), warmup, repeats, rounds, settings)


def check_output_folders(outputs: dict[str, str | None]) -> None:
    """Raise ``OSError`` (naming the option) unless each output file's folder, or the nearest existing folder
    above it, takes a new file: a read-only folder is found before the benchmark runs, not after. Nothing is
    created here."""
    from pathlib import Path

    from ..utils.atomic import check_writable

    for option, path in outputs.items():
        if not path:
            continue
        folder = Path(path).absolute().parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            check_writable(folder)
        except OSError as exc:
            raise OSError(f'{option} {path}: cannot write there ({exc.strerror or exc})') from None


def check_repetitions(args: argparse.Namespace) -> None:
    """Refuse repetition flags that would be ignored: ``--rounds`` and ``--timeout`` act on isolated timed
    runs only (the worker processes), so not with ``--no-isolate`` or ``--no-timing``."""
    if args.isolate and args.timing:
        return
    why = '--no-isolate' if not args.isolate else '--no-timing'
    if args.rounds > 1:
        raise ValueError(f'--rounds repeats the isolated timed runs of every model: it does nothing with {why}')
    if args.timeout is not None:
        raise ValueError(f'--timeout limits each isolated run (a fresh process): it does nothing with {why}')


def timing_text(plan: Plan) -> str:
    """What the latency column is, as it was measured: ``median of 3 timed passes after 1 warm-up pass`` and, with
    ``--rounds``, how the rounds were merged."""
    passes = f'{plan.repeats} timed pass{"es" if plan.repeats != 1 else ""}'
    text = f'median of {passes}' if plan.repeats > 1 else 'one timed pass'
    text += f' after {plan.warmup} warm-up pass{"es" if plan.warmup != 1 else ""}'
    if plan.rounds > 1:
        text += f'; the median of {plan.rounds} rounds of that (round-robin over the models)'
    return text + (', each model in a fresh process' if plan.config.get('isolated') else ', all in this process')


def run_plan(plan: Plan, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every row (round-robin over ``plan.rounds``); returns one merged result per row."""
    results: list[list[dict[str, Any]]] = [[] for _ in plan.entries]
    base = {'lr_size': list(plan.lr_size), 'device': plan.config['device'], 'precision': args.precision,
            'threads': args.threads, 'warmup': plan.warmup, 'repeats': plan.repeats, 'timing': args.timing,
            'scale': args.scale, 'train': args.train, 'batch_size': args.batch_size, 'patch': args.patch,
            'tf32': plan.config['tf32'], 'autocast': plan.config['autocast'],
            **(plan.settings.to_spec() if plan.settings is not None else {})}
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
