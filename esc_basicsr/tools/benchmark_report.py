"""The results of ``python -m esc_basicsr.benchmark``: the Markdown table and notes it prints, and the
JSON, CSV and PNG (latency against parameters) files it writes, atomically.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from typing import Any

from .benchmark_plan import Plan, timing_text


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return format(value, spec)


def _macs_g(row: dict[str, Any]) -> float | None:
    return row['macs'] / 1e9 if row.get('macs') is not None else None


def _seconds(key: str):
    return lambda r: r[key] / 1000 if r.get(key) is not None else None


# (heading, value of a row, format): the columns between "params" and "memory added"
_INFERENCE_COLUMNS = (('MACs (G)', _macs_g, '.1f'), ('latency (ms)', lambda r: r.get('latency_ms'), '.1f'),
                      ('first call (s)', _seconds('first_call_ms'), '.2f'))
_TRAIN_COLUMNS = (('step (ms)', lambda r: r.get('step_ms'), '.0f'),
                  ('images/s', lambda r: r.get('images_per_s'), '.2f'),
                  ('first step (s)', _seconds('first_step_ms'), '.2f'))


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
    from ..utils.atomic import atomic_path

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
    from ..utils.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:  # keeps the extension, from which matplotlib takes the format
            fig.savefig(tmp)
    finally:
        plt.close(fig)


def report(plan: Plan, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Print the table and notes; write the JSON/CSV/PNG outputs that were asked for."""
    (h, w), cfg = plan.lr_size, plan.config
    threads = f', {args.threads or cfg.get("threads") or "default"} threads' if cfg['device'] == 'cpu' else ''
    if cfg['device'].startswith('cuda'):
        threads += f', TF32 {cfg.get("tf32", "default")}'
    if cfg.get('settings', 'default') != 'default':
        threads += f', {cfg["settings"]}'
    if args.train:
        title = (f'training step x{args.scale}: batch {args.batch_size} of {h}x{w} LR patches, L1 + AdamW, '
                 f'{cfg["device"]}{threads}, {args.precision}')
        table = format_table(rows, args.baseline, train=True)
    else:
        precision = f'{args.precision} autocast' if cfg.get('autocast') and args.precision != 'fp32' else args.precision
        title = (f'x{args.scale}, input {h}x{w} -> output {h * args.scale}x{w * args.scale} (HxW), {cfg["device"]}'
                 f'{threads}, {precision}')
        table = format_table(rows, args.baseline)
    timing = f'; time: {timing_text(plan)}' if args.timing else ''
    print(f'\n{title}{timing}\n')
    print(table)
    row_notes = [f'{r["label"]}: {n}' for r in rows for n in r.get('notes', [])]
    for note in plan.notes + [n for e in plan.entries for n in e.notes] + row_notes:
        print(f'\nnote: {note}')
    if args.json:
        from ..utils.atomic import write_text
        write_text(args.json, json.dumps({'config': cfg, 'notes': plan.notes, 'results': rows}, indent=2))
    if args.csv:
        write_csv(args.csv, rows)
    if args.plot:
        write_plot(args.plot, rows, title)
