"""The time plans of ``scripts/gpu_check.sh`` and ``scripts/gpu_speed.sh``, and running them.

A lent GPU: 15 minutes of device time in all (its start, about a minute, included), at most 10 minutes a
command, no package index. The two scripts run as two commands on one warm machine:

- ``gpu_check`` (:data:`CHECK_LIMIT_S` = 360 s): the installation (40 s), the CUDA-marked tests in four
  chunks of 60 s, most important first (each its own pytest process, junit XML and log), then the paper's
  table in strict fp32 (ESC, ESC-light vs SwinIR-light, 60 s), 20 s in reserve.
- ``gpu_speed`` (:data:`SPEED_LIMIT_S` = 420 s): the installation (40 s; nothing to do on a machine the check
  installed), then :mod:`benchmarks.gpu_speed` with the rest (365 s, its own rows most important first,
  15 s in reserve).

Together 780 s = 13 minutes, each under 540 s (9 minutes), so both fit one loan with its start.
``--limit-s`` stretches or shrinks every step's budget in proportion (the reserve stays).

``python -m benchmarks.gpu_plans {check,speed} --python PY --out DIR [--dry-run] [--limit-s S] [--plan]
[-- ARGS for the measurement]`` (the scripts call it after resolving OUT_DIR and changing to the checkout).
``--dry-run``: the same plan on the CPU with tiny sizes (the CUDA tests are collected and skipped, the benchmark
runs at 16x16, the measurement runs :mod:`benchmarks.gpu_speed` ``--dry-run``).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from .timebox import Plan, Step, exit_code, run_plan

CHECK_LIMIT_S = 360.0
SPEED_LIMIT_S = 420.0
COMMAND_LIMIT_S = 540.0  # one device command: 600 s at most, 60 s kept for the transfers
LOAN_COMMANDS_S = 780.0  # both commands: 15 minutes less the start (~1 min) and the copies
INSTALL_S = 40.0
CHECK_RESERVE_S = 20.0
SPEED_RESERVE_S = 15.0
TEST_CHUNK_S = 60.0
BENCH_S = 60.0

# the CUDA tests, most important first: the compiled FlexAttention paths never run on a GPU, then the outputs
# against the fixtures and in reduced precision, the recompile matrix; the last chunk is everything else
TEST_CHUNKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('tests_flex', ('tests/layers/test_flex_compile.py', 'tests/tools/test_speed_settings.py')),
    ('tests_precision', ('tests/archs/test_precision_and_cuda.py', 'tests/archs/test_elan_precision.py',
                         'tests/archs/test_cuda_archs.py')),
    ('tests_matrix', ('tests/archs/test_flex_compile_matrix.py',)),
)
MODULES = {'check': 'torch basicsr esc_basicsr pytest', 'speed': 'torch basicsr esc_basicsr'}
# the plans' names: their summaries are <name>_<GPU>.md/.json, their logs <name>_logs/ (gpu_speed_<GPU>.* are the
# measurement's own files)
CHECK, SPEED = 'gpu_check', 'gpu_speed_run'


def _scale(limit_s: float, default_s: float, reserve_s: float) -> float:
    """The factor applied to every step's budget (not the reserve) for a limit of ``limit_s``."""
    least = reserve_s + (default_s - reserve_s) / 3
    if limit_s < least:
        raise ValueError(f'--limit-s {limit_s:g} is too small: at least {least:.0f} s')
    return (limit_s - reserve_s) / (default_s - reserve_s)


def install_step(py: str, logs: Path, dry_run: bool, which: str, k: float) -> Step:
    """``scripts/gpu_env.sh``: the wheels in ``.whl/`` only, then ``env.txt`` into ``logs``."""
    return Step('install', INSTALL_S * k, ['bash', 'scripts/gpu_env.sh', py, str(logs), str(int(dry_run)),
                                           MODULES[which]], kind='setup')


def check_plan(py: str, out_dir: Path, tag: str, dry_run: bool = False, limit_s: float = CHECK_LIMIT_S,
               bench: bool = True, root: Path = Path('.')) -> Plan:
    """The steps of ``gpu_check.sh`` (see the module's docstring)."""
    k = _scale(limit_s, CHECK_LIMIT_S, CHECK_RESERVE_S)
    logs = out_dir / f'{CHECK}_logs'
    pytest = [py, '-m', 'pytest', '-m', 'cuda', '-p', 'no:cacheprovider', '-v', '-rfEs', '--tb=short',
              '--durations=10']
    steps = [install_step(py, logs, dry_run, 'check', k)]
    named: list[str] = []
    for name, files in TEST_CHUNKS:
        present = [f for f in files if (root / f).exists()]  # a renamed file goes to the last chunk
        named += present
        if present:
            steps.append(Step(name, TEST_CHUNK_S * k, pytest + [f'--junitxml={logs / name}.xml', *present],
                              kind='tests'))
    rest = [a for f in named for a in ('--ignore', f)]
    chunks = len(steps) - 1  # four chunks' time in all: a missing one's goes to the last
    steps.append(Step('tests_rest', TEST_CHUNK_S * k * (len(TEST_CHUNKS) + 1 - chunks),
                      pytest + [f'--junitxml={logs / "tests_rest"}.xml', 'tests', *rest], kind='tests'))
    if bench:
        size = ['--device', 'cpu', '--lr-size', '16x16', '--threads', '1', '--warmup', '0', '--repeats', '1',
                '--no-macs', '--models', 'esc_light', 'swinir_light'] if dry_run else \
               ['--device', 'cuda', '--warmup', '3', '--repeats', '10', '--models', 'esc', 'esc_light',
                'swinir_light']
        steps.append(Step('bench_fp32', BENCH_S * k,
                          [py, '-m', 'esc_basicsr.benchmark', *size, '--precision', 'fp32', '--tf32', 'off',
                           '--scale', '2', '--baseline', 'swinir_light',
                           '--json', str(out_dir / f'gpu_check_{tag}_x2_fp32.json')], kind='bench'))
    else:  # the benchmark's time goes to the tests
        steps[-1].budget_s += BENCH_S * k
    return Plan(CHECK, limit_s, CHECK_RESERVE_S, steps)


def speed_plan(py: str, out_dir: Path, dry_run: bool = False, limit_s: float = SPEED_LIMIT_S,
               extra: Sequence[str] = ()) -> Plan:
    """The steps of ``gpu_speed.sh``: the installation, then the measurement with the rest of the limit."""
    logs = out_dir / f'{SPEED}_logs'
    k = _scale(limit_s, SPEED_LIMIT_S, SPEED_RESERVE_S)
    measure = SPEED_LIMIT_S - INSTALL_S - SPEED_RESERVE_S
    argv = [py, '-m', 'benchmarks.gpu_speed', '--out', str(out_dir), *(['--dry-run'] if dry_run else []), *extra]
    return Plan(SPEED, limit_s, SPEED_RESERVE_S,
                [install_step(py, logs, dry_run, 'speed', k),
                 Step('measure', measure * k, argv, budget_flag='--budget-s')])


def gpu_tag(dry_run: bool) -> str:
    """The GPU's name for file names (``NVIDIA_H200``), from nvidia-smi (before anything is installed)."""
    if dry_run:
        return 'CPU_dry_run'
    try:
        name = subprocess.run(['nvidia-smi', '--query-gpu=name', '--format=csv,noheader'], capture_output=True,
                              text=True, timeout=20).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return 'unknown_GPU'
    return ''.join(c if c.isalnum() else '_' for c in name).strip('_') or 'unknown_GPU'


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m benchmarks.gpu_plans', description=__doc__.split('\n\n')[0])
    p.add_argument('which', choices=('check', 'speed'))
    p.add_argument('--python', default=sys.executable, help='the Python that runs the steps (default: this one)')
    p.add_argument('--out', required=True, type=Path, help='output folder (absolute, or relative to the checkout)')
    p.add_argument('--dry-run', action='store_true', help='on the CPU, tiny sizes')
    p.add_argument('--limit-s', type=float, default=None,
                   help=f'seconds for the whole script (default: check {CHECK_LIMIT_S:g}, speed {SPEED_LIMIT_S:g})')
    p.add_argument('--no-bench', action='store_true', help='check: tests only (their chunks get its time)')
    p.add_argument('--plan', action='store_true', help='print the plan and run nothing')
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index('--') if '--' in argv else len(argv)
    extra = argv[cut + 1:]  # speed: for python -m benchmarks.gpu_speed
    args = build_parser().parse_args(argv[:cut])
    if extra and args.which != 'speed':
        print(f'error: arguments after -- are for gpu_speed.sh only: {extra}', file=sys.stderr)
        return 2
    tag = gpu_tag(args.dry_run)
    out = args.out
    try:
        if args.which == 'check':
            plan = check_plan(args.python, out, tag, args.dry_run, args.limit_s or CHECK_LIMIT_S,
                              not args.no_bench)
        else:
            plan = speed_plan(args.python, out, args.dry_run, args.limit_s or SPEED_LIMIT_S, extra)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(plan.table(), file=sys.stdout if args.plan else sys.stderr, flush=True)
    if args.plan:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    where = 'the CPU (DRY RUN: tiny sizes, the numbers mean nothing)' if args.dry_run else tag.replace('_', ' ')
    header = f'# {plan.name} on {where}, {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}'
    results, md = run_plan(plan, out, tag, header)
    rc = exit_code(results)
    print(f'{plan.name}: {sum(r.status == "ok" for r in results)} of {len(results)} steps ok; summary {md}',
          file=sys.stderr)
    return rc


if __name__ == '__main__':
    sys.exit(main())
