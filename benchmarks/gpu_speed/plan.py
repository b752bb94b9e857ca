"""What ``python -m benchmarks.gpu_speed`` measures (issue 21): the goals, the rows in order of importance
with their expected seconds on an H200, the sizes, and each row's worker spec
(:mod:`esc_basicsr.tools.benchmark_worker`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

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
    # what could reach the goals first (launch overhead, flash kernels), the tuning after
    rows += [candidate('bf16', 'compile', 'whole-network compile', compile=True),
             candidate('bf16', 'cudagraphs', 'compile + CUDA graphs', compile=True, cuda_graphs=True),
             candidate('bf16', 'lowrank16', 'low-rank bias, rank 16', low_rank_bias={'rank': 16}),
             flex['flexA'],
             candidate('bf16', 'channels_last', 'channels-last', channels_last=True),
             flex['flexB'], flex['flexC'],
             candidate('tf32', 'compile', 'whole-network compile', compile=True),
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
    """The :mod:`esc_basicsr.tools.benchmark_worker` spec of ``row``."""
    from esc_basicsr.tools.benchmark_plan import SWINIR_LIGHT
    from esc_basicsr.tools.loading import network_from_preset

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


def budget_table(rows: Sequence[Row]) -> str:
    """Each row's expected seconds on an H200, and the running total (``--plan``)."""
    total, lines = 0.0, ['row | expected s | total s']
    for r in rows:
        s = expected_seconds(r, 5, 20, 2, 10)
        total += s
        lines.append(f'{r.label} | {s:.0f} | {total:.0f}')
    return '\n'.join(lines)
