"""``python -m esc_basicsr.tools.gpu_speed``: issue 21's goals measured in one time-boxed run on a CUDA GPU.

Run by ``scripts/gpu_speed.sh`` (which installs from ``.whl/`` first). Every row is measured by
:mod:`.benchmark_worker` in a fresh process (``python -m esc_basicsr.tools.benchmark_worker``), one after the
other, and every ratio is between rows of this one run. The rows, most important first:

1. ``reference_cpu``: ESC x2 at 360x640 (1280x720 output) in float32 on the CPU (``sdpa``): the output every GPU
   inference row is compared with (``max_abs_err``, ``mean_rel_err``).
2. Baselines: ESC (``attn_type auto`` = compiled FlexAttention) in strict fp32 (TF32 off), fp32 with TF32,
   bf16 and fp16 autocast; the training step (batch 32, LR patch 64, L1, AdamW) of ESC and BasicSR's
   SwinIR-light in fp32 (TF32) and bf16 autocast.
3. Candidates, one setting each (:mod:`.speed_settings`), in bf16 first: FlexAttention kernel options (3
   sets), whole-network compile, compile with CUDA graphs, the low-rank bias (rank 16: q/k 32 wide), compile in
   TF32, channels-last, SwinIR-light inference, the low-rank bias at rank 240 (256 wide, the flash kernels'
   limit), compile in strict fp32, then further settings and precisions and the training step while the
   budget lasts (``--plan`` lists them with their expected seconds).

Every ESC row uses the same weights: default initialisation from seed 0 (realistic magnitudes: the fixtures'
random weights overflow fp16) with trained-looking relative position tables
(:func:`esc_basicsr.layers.low_rank_bias.trained_like_table`; no trained checkpoint travels with the package).
Inference rows also time one call at another size (288x500) and count the graphs dynamo compiled for it.

Budget: each row has an expected duration (:func:`expected_seconds`, from the H200 figures of the project's GPU
notes); a row that would no longer fit in ``--budget-s`` is skipped and listed as such, and a row is stopped at
``--row-timeout-factor`` times its expected duration (at least 60 s). The JSON and the Markdown summary (goals
met / unmet / not measured, with the GPU's name) are rewritten after every row, so a run cut short still leaves
its results. ``--dry-run`` runs every row that a CPU can run on tiny sizes, in this process, with a tiny ESC and
the ``eager`` compiler backend (checks the plumbing; its numbers mean nothing).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

# ---------------------------------------------------------------------------------------------------------------
# What the run measures against (issue 21) and the figures its budget is estimated from
# (../shared/reference/GPU.md: one H200, PyTorch 2.11, x2 at a 1280x720 output, batch 1)
# ---------------------------------------------------------------------------------------------------------------
AUTHORS_H200_MS = {'tf32': 62.9, 'fp16': 55.4}  # the authors' ESC (Flex): fp32 with TF32, fp16 autocast
AUTHORS_H200_MEM_MB = 645.0  # memory added by the authors' forward
OURS_H200_MS = {'strict': 92.0, 'tf32': 63.5, 'bf16': 55.0, 'fp16': 55.0}  # bf16 not measured: fp16's assumed
SWINIR_H200_MS = 780.0  # SwinIR-light inference, 683-867 ms
TRAIN_H200_MS = {('esc', 'tf32'): 138.7, ('esc', 'bf16'): 102.6, ('swinir_light', 'tf32'): 102.0,
                 ('swinir_light', 'bf16'): 103.3}
FLEX_COMPILE_S = 3.3  # first call with FlexAttention compiled (measured)
# not measured anywhere yet (estimates): a fresh process (imports, CUDA context), FlexAttention's forward and
# backward compiled for training, inductor over the whole ESC with dynamic shapes (forward; forward+backward)
PROCESS_S = 8.0
TRAIN_FLEX_COMPILE_S = 15.0
WHOLE_COMPILE_S = 60.0
WHOLE_TRAIN_COMPILE_S = 120.0
LOW_RANK_CONVERT_S = 10.0  # SVD of five layers' (4, 1024, 1024) biases in float64

GOALS = {  # issue 21
    'infer_reduced': 'inference fp16/bf16 <= 0.3x the authors\' time',
    'infer_tf32': 'inference fp32 with TF32 <= 0.5x the authors\' time',
    'infer_strict': 'inference strict fp32 <= 45 ms',
    'memory': 'memory added <= the authors\' (645 MB on the H200)',
    'train_bf16': 'training step bf16 <= 0.5x SwinIR-light\'s bf16 step (same run)',
    'train_fp32': 'training step fp32 (TF32) <= 70 ms',
    'exact_fp32': 'strict-fp32 outputs within 1e-5 of the float32 reference (exact settings)',
    'reduced_error': 'bf16/fp16 outputs within today\'s errors (<= 1.5x the default setting\'s, same precision)',
    'first_call': 'first call (compilation) < 5 s',
    'no_recompile': 'no recompilation when the image size changes',
}
STRICT_ATOL = 1e-5
REDUCED_ERROR_FACTOR = 1.5
FIRST_CALL_MS = 5000.0

# FlexAttention kernel options tried for head dim 16, windows of 1024 tokens (block sizes divide 128, the default
# sparse block size)
FLEX_OPTION_SETS = {
    'flexA': '{"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}',
    'flexB': '{"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8, "num_stages": 2}',
    'flexC': '{"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3}',
}
MODES = {  # precision mode -> (precision, tf32, autocast)
    'strict': ('fp32', 'off', False), 'tf32': ('fp32', 'on', False),
    'bf16': ('bf16', 'on', True), 'fp16': ('fp16', 'on', True),
}
# the dry run's network and sizes (CPU, seconds)
DRY_ESC = dict(type='ESC', dim=32, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2,
               upscaling_factor=2, exp_ratio=1.25)


@dataclass
class Row:
    """One row of the matrix.

    Attributes:
        label: unique name (``esc/bf16/compile``).
        kind: ``reference``, ``inference`` or ``train``.
        model: ``esc`` or ``swinir_light``.
        mode: a key of :data:`MODES`.
        settings: :class:`.speed_settings.SpeedSettings` spec keys (``compile``, ``low_rank_bias``, ...).
        attn: the ESC attention backend.
        setting: what is tried, in words (``default`` for the baselines).
        cast: bf16/fp16 by casting the network (the tools' ``--bf16``) instead of autocast.
    """

    label: str
    kind: str
    model: str
    mode: str
    settings: dict[str, Any] = field(default_factory=dict)
    attn: str = 'auto'
    setting: str = 'default'
    cast: bool = False

    @property
    def cuda_only(self) -> bool:
        return self.mode == 'fp16' or bool(self.settings.get('cuda_graphs'))


def plan_rows() -> list[Row]:
    """Every row, most important first (the budget cuts from the end)."""
    rows = [Row('reference_cpu', 'reference', 'esc', 'strict', attn='sdpa', setting='CPU float32 reference')]
    rows += [Row(f'esc/{m}', 'inference', 'esc', m) for m in ('strict', 'tf32', 'bf16', 'fp16')]
    rows += [Row(f'train/{model}/{m}', 'train', model, m)
             for model in ('esc', 'swinir_light') for m in ('tf32', 'bf16')]

    def candidate(mode: str, name: str, setting: str, kind: str = 'inference', **settings: Any) -> Row:
        prefix = 'train/esc' if kind == 'train' else 'esc'
        return Row(f'{prefix}/{mode}/{name}', kind, 'esc', mode, settings, setting=setting)

    flex = {name: candidate('bf16', name, f'flex kernel options {opts}', flex_kernel_options=opts)
            for name, opts in FLEX_OPTION_SETS.items()}
    rows += [*flex.values(),
             candidate('bf16', 'compile', 'whole-network compile', compile=True),
             candidate('bf16', 'cudagraphs', 'compile + CUDA graphs', compile=True, cuda_graphs=True),
             candidate('bf16', 'lowrank16', 'low-rank bias, rank 16', low_rank_bias={'rank': 16}),
             candidate('tf32', 'compile', 'whole-network compile', compile=True),
             candidate('bf16', 'channels_last', 'channels-last', channels_last=True),
             Row('swinir_light/tf32', 'inference', 'swinir_light', 'tf32', setting='SwinIR-light (BasicSR)'),
             candidate('bf16', 'lowrank240', 'low-rank bias, rank 240', low_rank_bias={'rank': 240}),
             candidate('strict', 'compile', 'whole-network compile', compile=True),
             candidate('bf16', 'lowrank_tol1e-2', 'low-rank bias, tolerance 1e-2', low_rank_bias={'tolerance': 1e-2}),
             candidate('strict', 'flexA', f'flex kernel options {FLEX_OPTION_SETS["flexA"]}',
                       flex_kernel_options=FLEX_OPTION_SETS['flexA']),
             candidate('tf32', 'cudagraphs', 'compile + CUDA graphs', compile=True, cuda_graphs=True),
             candidate('strict', 'lowrank_tol1e-3', 'low-rank bias, tolerance 1e-3',
                       low_rank_bias={'tolerance': 1e-3}),
             candidate('tf32', 'channels_last', 'channels-last', channels_last=True),
             candidate('fp16', 'compile', 'whole-network compile', compile=True),
             Row('esc/fp16/cast', 'inference', 'esc', 'fp16', setting='fp16 by casting the network (--fp16)',
                 cast=True),
             candidate('bf16', 'channels_last', 'channels-last', kind='train', channels_last=True),
             candidate('bf16', 'compile', 'whole-network compile', kind='train', compile=True)]
    labels = [r.label for r in rows]
    assert len(set(labels)) == len(labels), labels
    return rows


def expected_seconds(row: Row, warmup: int, repeats: int, train_warmup: int, train_repeats: int) -> float:
    """Seconds ``row`` is expected to take on an H200 (the figures at the top of this module)."""
    if row.kind == 'reference':
        return PROCESS_S + 2 * 3.0  # two forwards of ESC at 360x640 on 16 CPU cores (~3 s each, estimated)
    if row.kind == 'train':
        mode = 'tf32' if row.mode == 'strict' else row.mode
        step = TRAIN_H200_MS[(row.model, 'bf16' if mode == 'fp16' else mode)] / 1000
        compile_s = WHOLE_TRAIN_COMPILE_S if row.settings.get('compile') else \
            (TRAIN_FLEX_COMPILE_S if row.model == 'esc' else 0.0)
        return PROCESS_S + compile_s + (train_warmup + 1 + train_repeats) * step
    if row.model == 'swinir_light':
        return PROCESS_S + (2 + 1 + 5) * SWINIR_H200_MS / 1000  # its own warm-up 2, repeats 5
    latency = OURS_H200_MS[row.mode] / 1000
    compile_s = WHOLE_COMPILE_S if row.settings.get('compile') else FLEX_COMPILE_S
    convert_s = LOW_RANK_CONVERT_S if row.settings.get('low_rank_bias') else 0.0
    passes = warmup + 1 + repeats + 2  # + the output check and the call at a new size
    return PROCESS_S + compile_s + convert_s + passes * latency


# ---------------------------------------------------------------------------------------------------------------
# Row -> worker spec
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Sizes:
    """Sizes and repetitions of a run (the GPU's, or the dry run's)."""

    lr_size: tuple[int, int] = (360, 640)
    new_size: tuple[int, int] = (288, 500)
    batch: int = 32
    patch: int = 64
    warmup: int = 5
    repeats: int = 20
    train_warmup: int = 2
    train_repeats: int = 10
    device: str = 'cuda'
    threads: int | None = None  # of the CPU reference
    compile_backend: str | None = None
    esc: dict[str, Any] | None = None  # network_g of ESC (None: the preset)


# one thread: on a shared machine, a second OpenMP thread waiting for a busy core makes every small op take a
# scheduler slice
DRY_SIZES = Sizes(lr_size=(24, 40), new_size=(20, 28), batch=2, patch=16, warmup=1, repeats=1, train_warmup=0,
                  train_repeats=1, device='cpu', threads=1, compile_backend='eager', esc=DRY_ESC)


def row_spec(row: Row, sizes: Sizes, reference: str) -> dict[str, Any]:
    """The :mod:`.benchmark_worker` spec of ``row``."""
    from .benchmark_plan import SWINIR_LIGHT
    from .loading import network_from_preset

    precision, tf32, autocast = MODES[row.mode]
    esc = dict(sizes.esc) if sizes.esc is not None else network_from_preset('esc', 2)
    network_g = esc if row.model == 'esc' else dict(SWINIR_LIGHT, upscale=2)
    spec: dict[str, Any] = {
        'network_g': network_g, 'attn': row.attn if row.model == 'esc' else None, 'device': sizes.device,
        'precision': precision, 'tf32': tf32, 'autocast': autocast and not row.cast, 'scale': 2, 'seed': 0,
        'macs': False, 'timing': True, 'threads': sizes.threads if sizes.device == 'cpu' else None,
        'train': row.kind == 'train',
        **row.settings, 'compile_backend': sizes.compile_backend if row.settings.get('compile') else None}
    if row.model == 'esc':
        spec['bias_tables'] = 'trained_like'
    if row.kind == 'train':
        spec.update(lr_size=[sizes.patch, sizes.patch], batch_size=sizes.batch, patch=sizes.patch,
                    warmup=sizes.train_warmup, repeats=sizes.train_repeats)
        return spec
    spec.update(lr_size=list(sizes.lr_size), warmup=sizes.warmup, repeats=sizes.repeats)
    if row.kind == 'reference':
        spec.update(device='cpu', precision='fp32', tf32='default', autocast=False, warmup=0, repeats=1,
                    threads=sizes.threads or os.cpu_count(), save_output=reference)
        return spec
    if row.model == 'swinir_light':
        spec.update(warmup=min(sizes.warmup, 2), repeats=min(sizes.repeats, 5))
    else:
        spec.update(compare_to=reference, new_size=list(sizes.new_size))
    return spec


# ---------------------------------------------------------------------------------------------------------------
# Running the rows
# ---------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _row_scope() -> Iterator[None]:
    """A row run in this process (dry run) leaves nothing behind: environment settings, TF32 flags, dynamo."""
    import torch

    from ..layers import config

    keys = (config.CHANNELS_LAST_ENV, config.FLEX_KERNEL_OPTIONS_ENV)
    saved_env = {k: os.environ.get(k) for k in keys}
    saved_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        config.channels_last_override.cache_clear()
        config.flex_kernel_options.cache_clear()
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_tf32
        torch._dynamo.reset()


def run_row(spec: dict[str, Any], isolate: bool, timeout: float | None) -> dict[str, Any]:
    """Measure one row (a fresh process with ``isolate``); an error becomes the row's ``error``."""
    from .benchmark_worker import run_isolated, run_worker

    if isolate:
        return run_isolated(spec, timeout)
    with _row_scope():
        try:
            return run_worker(spec)
        except Exception as exc:  # noqa: BLE001 - reported in the row, the run goes on
            return {'error': f'{type(exc).__name__}: {exc}'}


@dataclass
class Result:
    """A row and what became of it (``status``: ``ok``, ``error``, ``skipped``)."""

    row: Row
    expected_s: float
    status: str = 'pending'
    reason: str = ''
    seconds: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


def run_matrix(rows: Sequence[Row], sizes: Sizes, budget_s: float, isolate: bool, dry_run: bool,
               timeout_factor: float = 2.5, on_row: Any = None) -> list[Result]:
    """Run ``rows`` in order within ``budget_s`` seconds; ``on_row(results)`` after each (writes the files)."""
    results = [Result(r, expected_seconds(r, 5, 20, 2, 10)) for r in rows]  # GPU estimates, also in a dry run
    work = tempfile.mkdtemp(prefix='gpu_speed_')
    reference = os.path.join(work, 'reference.pt')
    start = time.perf_counter()
    try:
        for res in results:
            elapsed = time.perf_counter() - start
            if res.row.cuda_only and sizes.device != 'cuda':
                res.status, res.reason = 'skipped', 'needs CUDA (dry run on the CPU)'
            elif res.row.kind == 'inference' and res.row.model == 'esc' and not os.path.exists(reference):
                res.status, res.reason = 'skipped', 'no reference output (reference_cpu did not run)'
            elif not dry_run and elapsed + res.expected_s > budget_s:
                res.status, res.reason = 'skipped', (f'budget: {elapsed:.0f} s used + {res.expected_s:.0f} s expected '
                                                     f'> {budget_s:.0f} s')
            else:
                timeout = None if dry_run else max(60.0, timeout_factor * res.expected_s)
                if timeout is not None:
                    timeout = min(timeout, max(budget_s - elapsed, 0) + 30)
                print(f'[{len([r for r in results if r.status != "pending"]) + 1}/{len(results)}] {res.row.label} '
                      f'(expected {res.expected_s:.0f} s) ...', end='', file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                res.data = run_row(row_spec(res.row, sizes, reference), isolate, timeout)
                res.seconds = time.perf_counter() - t0
                res.status = 'error' if res.data.get('error') else 'ok'
                res.reason = res.data.get('error', '')
                print(f' {res.status} ({res.seconds:.0f} s)', file=sys.stderr, flush=True)
            if on_row is not None:
                on_row(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------------------------------------------
# Ratios, goals and the summary
# ---------------------------------------------------------------------------------------------------------------
def _ok(results: Sequence[Result], **match: Any) -> list[Result]:
    out = []
    for r in results:
        if r.status != 'ok':
            continue
        if all(getattr(r.row, k) == v for k, v in match.items()):
            out.append(r)
    return out


def _find(results: Sequence[Result], label: str) -> Result | None:
    return next((r for r in results if r.row.label == label and r.status == 'ok'), None)


def add_ratios(results: Sequence[Result]) -> None:
    """``vs_default``: latency / the default setting's in the same precision; ``vs_swinir``: / SwinIR-light's
    (inference: its TF32 row; training: the same precision)."""
    swinir = _find(results, 'swinir_light/tf32')
    for r in _ok(results):
        ms = r.data.get('latency_ms')
        if not ms:
            continue
        if r.row.kind == 'inference' and r.row.model == 'esc':
            base = _find(results, f'esc/{r.row.mode}')
            if base is not None:
                r.data['vs_default'] = ms / base.data['latency_ms']
            if swinir is not None:
                r.data['vs_swinir'] = ms / swinir.data['latency_ms']
        elif r.row.kind == 'train':
            base = _find(results, f'train/esc/{r.row.mode}')
            if base is not None and r.row.model == 'esc':
                r.data['vs_default'] = ms / base.data['latency_ms']
            sw = _find(results, f'train/swinir_light/{r.row.mode}')
            if sw is not None:
                r.data['vs_swinir'] = ms / sw.data['latency_ms']


def output_ok(r: Result, results: Sequence[Result]) -> bool | None:
    """Whether an ESC inference row's output is unchanged in issue 21's sense: strict fp32 within
    :data:`STRICT_ATOL` of the reference, bf16/fp16 within :data:`REDUCED_ERROR_FACTOR` times the default
    setting's error in that precision (TF32: reported, not judged). The same rule for a low-rank bias (an
    approximation: it counts for a goal only where its error is that small). ``None``: not known."""
    d = r.data
    if d.get('max_abs_err') is None or not d.get('output_finite', True):
        return False if d.get('output_finite') is False else None
    if r.row.mode == 'strict':
        return d['max_abs_err'] <= STRICT_ATOL
    if r.row.mode == 'tf32':
        return True  # TF32 is a 10-bit mantissa by choice: reported, not judged
    base = _find(results, f'esc/{r.row.mode}')
    if base is None or base.data.get('mean_rel_err') is None:
        return None
    return d['mean_rel_err'] <= REDUCED_ERROR_FACTOR * base.data['mean_rel_err']


@dataclass
class Goal:
    """One goal of issue 21 as measured: ``met`` is True, False or None (not measured)."""

    key: str
    text: str
    target: str
    row: str = '-'
    measured: str = '-'
    met: bool | None = None
    note: str = ''


def _fastest(candidates: Sequence[Result], results: Sequence[Result]) -> Result | None:
    """The fastest ESC inference row whose output is unchanged (:func:`output_ok`; not known: counted)."""
    good = [r for r in candidates if r.data.get('latency_ms') and output_ok(r, results) is not False]
    return min(good, key=lambda r: r.data['latency_ms'], default=None)


def evaluate_goals(results: Sequence[Result], device_name: str | None) -> list[Goal]:
    """Issue 21's goals from the rows of this run (see :data:`GOALS`)."""
    h200 = bool(device_name and 'H200' in device_name)
    esc = [r for r in _ok(results, kind='inference', model='esc')]
    goals: list[Goal] = []

    def authors_ms(mode: str) -> tuple[float | None, str]:
        if h200:
            return AUTHORS_H200_MS[mode], 'the authors\' H200 time'
        base = next((b for b in (_find(results, f'esc/{m}') for m in (mode, 'bf16')) if b is not None), None)
        if base is None:
            return None, 'no baseline row'
        return base.data['latency_ms'], (f'proxy: our default {base.row.mode} in this run '
                                         '(the authors\' time within 1% on the H200)')

    def speed_goal(key: str, modes: Sequence[str], factor: float | None, absolute_ms: float | None,
                   authors_mode: str) -> Result | None:
        best = _fastest([r for r in esc if r.row.mode in modes], results)
        if absolute_ms is not None:
            target_ms, basis = absolute_ms, 'absolute (H100/H200)'
        else:
            ref, basis = authors_ms(authors_mode)
            target_ms = None if ref is None else factor * ref
        goal = Goal(key, GOALS[key], f'<= {target_ms:.1f} ms ({basis})' if target_ms else f'- ({basis})')
        if best is not None and target_ms is not None:
            goal.row, goal.measured = best.row.label, f'{best.data["latency_ms"]:.1f} ms'
            goal.met = best.data['latency_ms'] <= target_ms
            if best.row.settings.get('low_rank_bias'):
                goal.note = 'a low-rank bias: an approximation whose error passed the output rule here'
        goals.append(goal)
        return best

    bests = [speed_goal('infer_reduced', ('bf16', 'fp16'), 0.3, None, 'fp16'),
             speed_goal('infer_tf32', ('tf32',), 0.5, None, 'tf32'),
             speed_goal('infer_strict', ('strict',), None, 45.0, 'tf32')]
    bests = [b for b in bests if b is not None]
    mem = Goal('memory', GOALS['memory'], f'<= {AUTHORS_H200_MEM_MB:.0f} MB (the authors\' on the H200)')
    if bests:
        worst = max(bests, key=lambda r: r.data.get('mem_added_mb') or 0)
        mem.row, mem.measured = worst.row.label, f'{worst.data.get("mem_added_mb", float("nan")):.0f} MB'
        mem.met = all((b.data.get('mem_added_mb') or 0) <= AUTHORS_H200_MEM_MB for b in bests)
        mem.note = 'the largest of the rows above'
    goals.append(mem)

    tb = Goal('train_bf16', GOALS['train_bf16'], '<= 0.5x')
    esc_bf16 = [r for r in _ok(results, kind='train', model='esc', mode='bf16') if r.data.get('latency_ms')]
    swinir_bf16 = _find(results, 'train/swinir_light/bf16')
    if esc_bf16 and swinir_bf16 is not None:
        best = min(esc_bf16, key=lambda r: r.data['latency_ms'])
        ratio = best.data['latency_ms'] / swinir_bf16.data['latency_ms']
        tb.row, tb.measured = best.row.label, f'{best.data["latency_ms"]:.1f} ms = {ratio:.2f}x ' \
                                              f'({swinir_bf16.data["latency_ms"]:.1f} ms)'
        tb.target = f'<= {0.5 * swinir_bf16.data["latency_ms"]:.1f} ms (0.5x SwinIR-light in this run)'
        tb.met = ratio <= 0.5
    goals.append(tb)
    tf = Goal('train_fp32', GOALS['train_fp32'], '<= 70 ms (absolute, H100/H200)')
    esc_tf32 = [r for r in _ok(results, kind='train', model='esc', mode='tf32') if r.data.get('latency_ms')]
    if esc_tf32:
        best = min(esc_tf32, key=lambda r: r.data['latency_ms'])
        tf.row, tf.measured, tf.met = best.row.label, f'{best.data["latency_ms"]:.1f} ms', best.data['latency_ms'] <= 70
    goals.append(tf)

    exact = [r for r in esc if r.row.mode == 'strict' and not r.row.settings.get('low_rank_bias')
             and r.data.get('max_abs_err') is not None]
    ex = Goal('exact_fp32', GOALS['exact_fp32'], f'max abs err <= {STRICT_ATOL:g}')
    if exact:
        worst = max(exact, key=lambda r: r.data['max_abs_err'])
        ex.row, ex.measured = worst.row.label, f'{worst.data["max_abs_err"]:.2g} (largest of {len(exact)} rows)'
        ex.met = worst.data['max_abs_err'] <= STRICT_ATOL
    goals.append(ex)
    reduced = [r for r in esc if r.row.mode in ('bf16', 'fp16') and not r.row.settings.get('low_rank_bias')
               and r.row.label not in ('esc/bf16', 'esc/fp16')]
    judged = [(r, output_ok(r, results)) for r in reduced]
    red = Goal('reduced_error', GOALS['reduced_error'], f'mean rel err <= {REDUCED_ERROR_FACTOR}x default')
    if any(ok is not None for _, ok in judged):
        bad = [r.row.label for r, ok in judged if ok is False]
        red.measured = f'{len(judged) - len(bad)} of {len(judged)} rows within'
        red.row = ', '.join(bad) or '-'
        red.met = not bad
    goals.append(red)
    fc = Goal('first_call', GOALS['first_call'], '< 5 s, for the fastest rows above')
    if bests:
        slowest = max(bests, key=lambda r: r.data.get('first_call_ms') or 0)
        fc.row, fc.measured = slowest.row.label, f'{(slowest.data.get("first_call_ms") or 0) / 1000:.1f} s'
        fc.met = all((b.data.get('first_call_ms') or 0) < FIRST_CALL_MS for b in bests)
    goals.append(fc)
    nr = Goal('no_recompile', GOALS['no_recompile'], '0 graphs compiled at a new size, for the fastest rows above')
    sized = [b for b in bests if b.data.get('new_size_graphs') is not None]
    if sized:
        worst = max(sized, key=lambda r: r.data['new_size_graphs'])
        nr.row, nr.measured = worst.row.label, f'{worst.data["new_size_graphs"]} graph(s), ' \
                                               f'{worst.data["new_size_ms"] / 1000:.1f} s'
        nr.met = all(b.data['new_size_graphs'] == 0 for b in sized)
    goals.append(nr)
    return goals


def _f(value: Any, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return format(value / scale, spec)


def _met(met: bool | None) -> str:
    return {True: '**met**', False: 'unmet', None: 'not measured'}[met]


def summary_markdown(results: Sequence[Result], goals: Sequence[Goal], meta: dict[str, Any]) -> str:
    """The run as Markdown: goals, inference and training tables, the budget."""
    budget = f'budget {meta["budget_s"]} s'
    lines = [f'# GPU speed (issue 21) on {meta["device_name"]}', '',
             f'{meta["when"]}; torch {meta["torch"]}, CUDA {meta["cuda"]}; esc_basicsr {meta["version"]}'
             f'{", commit " + meta["commit"] if meta.get("commit") else ""}; '
             f'{"DRY RUN on the CPU (numbers mean nothing)" if meta["dry_run"] else budget}'
             f', {meta["elapsed_s"]:.0f} s used.', '',
             f'ESC x2, input {meta["lr_size"][0]}x{meta["lr_size"][1]}, batch 1, median of {meta["repeats"]} after '
             f'{meta["warmup"]} warm-up; training: batch {meta["batch"]} of {meta["patch"]}x{meta["patch"]} '
             'LR patches, '
             'L1 + AdamW. Same weights in every ESC row (seed 0, trained-like relative position tables). Errors: '
             'against ESC in float32 on the CPU. bf16/fp16 rows: autocast with TF32 on, unless marked as cast.', '',
             '## Goals', '', '| goal | target | row | measured | status | note |',
             '| --- | --- | --- | --- | --- | --- |']
    lines += [f'| {g.text} | {g.target} | {g.row} | {g.measured} | {_met(g.met)} | {g.note} |' for g in goals]
    lines += ['', '## Inference', '',
              '| row | setting | mode | attn | latency (ms) | vs default | vs SwinIR-light | first call (s) | '
              'new size: graphs / s | memory added (MB) | max abs err | mean rel err | status |',
              '| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |']
    for r in results:
        if r.row.kind == 'train':
            continue
        d = r.data
        new = (f'{d["new_size_graphs"]} / {d["new_size_ms"] / 1000:.2f}'
               if d.get('new_size_graphs') is not None else '-')
        status = r.status if r.status == 'ok' else f'{r.status}: {r.reason[:100]}'
        mode = f'{r.row.mode} (cast)' if r.row.cast else r.row.mode
        lines.append(f'| {r.row.label} | {r.row.setting} | {mode} | {d.get("attn") or "-"} '
                     f'| {_f(d.get("latency_ms"), ".1f")} '
                     f'| {_f(d.get("vs_default"), ".2f")} | {_f(d.get("vs_swinir"), ".3f")} '
                     f'| {_f(d.get("first_call_ms"), ".2f", 1000)} | {new} | {_f(d.get("mem_added_mb"), ".0f")} '
                     f'| {_f(d.get("max_abs_err"), ".2g")} | {_f(d.get("mean_rel_err"), ".2%")} | {status} |')
    lines += ['', '## Training step', '',
              '| row | setting | mode | step (ms) | vs default | vs SwinIR-light | first step (s) | peak memory (MB) '
              '| status |', '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |']
    for r in results:
        if r.row.kind != 'train':
            continue
        d = r.data
        status = r.status if r.status == 'ok' else f'{r.status}: {r.reason[:100]}'
        lines.append(f'| {r.row.label} | {r.row.setting} | {r.row.mode} | {_f(d.get("latency_ms"), ".1f")} '
                     f'| {_f(d.get("vs_default"), ".2f")} | {_f(d.get("vs_swinir"), ".2f")} '
                     f'| {_f(d.get("first_step_ms"), ".2f", 1000)} | {_f(d.get("mem_peak_mb"), ".0f")} | {status} |')
    notes = [f'{r.row.label}: {n}' for r in results for n in r.data.get('notes', [])]
    if notes:
        lines += ['', '## Notes', ''] + [f'- {n}' for n in notes]
    lines += ['', '## Budget (seconds: expected on an H200 from the GPU notes, and taken)', '',
              '| row | expected | taken |', '| --- | ---: | ---: |']
    lines += [f'| {r.row.label} | {r.expected_s:.0f} | {_f(r.seconds, ".0f")} |' for r in results]
    return '\n'.join(lines) + '\n'


def budget_table(rows: Sequence[Row]) -> str:
    """Each row's expected seconds on an H200, and the running total (``--plan``)."""
    total, lines = 0.0, ['row | expected s | total s']
    for r in rows:
        s = expected_seconds(r, 5, 20, 2, 10)
        total += s
        lines.append(f'{r.label} | {s:.0f} | {total:.0f}')
    return '\n'.join(lines)


def _meta(results: Sequence[Result], args: argparse.Namespace, sizes: Sizes, elapsed: float) -> dict[str, Any]:
    import torch

    from ..version import __version__

    names = [r.data.get('device_name') for r in results if r.data.get('device_name')]
    commit = None
    with contextlib.suppress(Exception):
        import subprocess
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10).stdout.strip() or None
    return {'device_name': names[0] if names else ('CPU (dry run)' if args.dry_run else 'no GPU row ran'),
            'when': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), 'torch': torch.__version__,
            'cuda': torch.version.cuda, 'python': platform.python_version(), 'version': __version__, 'commit': commit,
            'dry_run': args.dry_run, 'budget_s': args.budget_s, 'elapsed_s': elapsed, 'lr_size': list(sizes.lr_size),
            'warmup': sizes.warmup, 'repeats': sizes.repeats, 'batch': sizes.batch, 'patch': sizes.patch}


def write_outputs(out_dir: str, results: Sequence[Result], args: argparse.Namespace, sizes: Sizes,
                  elapsed: float) -> tuple[str, str]:
    """Write ``gpu_speed_<GPU>.json`` and ``.md`` into ``out_dir`` (atomically); returns their paths."""
    from ..utils.atomic import write_text

    add_ratios(results)
    meta = _meta(results, args, sizes, elapsed)
    goals = evaluate_goals(results, meta['device_name'] if not args.dry_run else None)
    name = 'gpu_speed_' + ''.join(c if c.isalnum() else '_' for c in meta['device_name']).strip('_')
    json_path, md_path = os.path.join(out_dir, name + '.json'), os.path.join(out_dir, name + '.md')
    payload = {'meta': meta, 'goals': [asdict(g) for g in goals],
               'rows': [{'label': r.row.label, 'row': asdict(r.row), 'status': r.status, 'reason': r.reason,
                         'expected_s': r.expected_s, 'seconds': r.seconds, 'result': r.data} for r in results]}
    write_text(json_path, json.dumps(payload, indent=2, default=str))
    write_text(md_path, summary_markdown(results, goals, meta))
    return json_path, md_path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m esc_basicsr.tools.gpu_speed', description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default=None, help='output folder (default: $OUT, else benchmarks/runs)')
    p.add_argument('--budget-s', type=float, default=420.0,
                   help='seconds for all rows; a row that would not fit is skipped (default 420)')
    p.add_argument('--row-timeout-factor', type=float, default=2.5,
                   help='a row is stopped at this many times its expected seconds, at least 60 (default 2.5)')
    p.add_argument('--only', nargs='+', default=None, metavar='LABEL',
                   help='run only these rows (reference_cpu is added for ESC inference rows)')
    p.add_argument('--dry-run', action='store_true',
                   help='on the CPU: tiny sizes, a tiny ESC, every row a CPU can run, in this process')
    p.add_argument('--isolate', action=argparse.BooleanOptionalAction, default=None,
                   help='each row in a fresh process (default: yes, except with --dry-run)')
    p.add_argument('--plan', action='store_true', help='print the rows and their expected seconds, run nothing')
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the matrix; exit code 0 when every row that ran succeeded, 1 otherwise, 2 for bad arguments."""
    args = build_parser().parse_args(argv)
    rows = plan_rows()
    if args.only:
        unknown = sorted(set(args.only) - {r.label for r in rows})
        if unknown:
            print(f'error: --only: unknown rows {unknown}; see --plan', file=sys.stderr)
            return 2
        wanted = set(args.only)
        if any(r.kind == 'inference' and r.model == 'esc' for r in rows if r.label in wanted):
            wanted.add('reference_cpu')
        rows = [r for r in rows if r.label in wanted]
    if args.plan:
        print(budget_table(rows))
        return 0
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print('error: no CUDA device visible to PyTorch (--dry-run checks the plumbing on a CPU)', file=sys.stderr)
            return 2
    sizes = DRY_SIZES if args.dry_run else Sizes()
    isolate = (not args.dry_run) if args.isolate is None else args.isolate
    out_dir = args.out or os.environ.get('OUT') or os.path.join('benchmarks', 'runs')
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    paths: list[str] = []

    def on_row(results: Sequence[Result]) -> None:
        paths[:] = write_outputs(out_dir, results, args, sizes, time.perf_counter() - start)

    results = run_matrix(rows, sizes, args.budget_s, isolate, args.dry_run, args.row_timeout_factor, on_row)
    if not paths:
        on_row(results)
    with open(paths[1]) as f:
        print(f.read())
    print(f'written: {paths[0]} and {paths[1]}', file=sys.stderr)
    return 1 if any(r.status == 'error' for r in results) else 0


if __name__ == '__main__':
    sys.exit(main())
