"""``python -m benchmarks.gpu_speed``: issue 21's goals measured in one time-boxed run on a CUDA GPU.

Run by ``scripts/gpu_speed.sh`` (which installs from ``.whl/`` first, within a time box: benchmarks/gpu_plans.py).
Every row is measured by :mod:`esc_basicsr.tools.benchmark_worker` in a fresh process (``python -m
esc_basicsr.tools.benchmark_worker``), one after the other, and every ratio is between rows of this one run.
The rows, most important first:

1. ``reference_cpu``: ESC x2 at 360x640 (1280x720 output) in float32 on the CPU (``sdpa``): the output every GPU
   inference row is compared with (``max_abs_err``, ``mean_rel_err``).
2. Baselines: ESC (``attn_type auto`` = compiled FlexAttention) in strict fp32 (TF32 off), fp32 with TF32,
   bf16 and fp16 autocast; the training step (batch 32, LR patch 64, L1, AdamW) of ESC and BasicSR's
   SwinIR-light in fp32 (TF32) and bf16 autocast.
3. Candidates, one setting each (:mod:`esc_basicsr.tools.speed_settings`), in bf16 first, those that could
   reach issue 21's goals first: whole-network compile, compile with CUDA graphs (800+ kernel launches per
   forward become one replay), the low-rank bias (rank 16: q/k 32 wide, flash kernels), FlexAttention kernel
   options (set A), channels-last, kernel options B and C, compile in TF32, SwinIR-light inference, the
   low-rank bias at rank 240 (256 wide, the flash kernels' limit), compile in strict fp32, then further
   settings and precisions and the training step while the budget lasts (``--plan`` lists them with their
   expected seconds; ``scripts/gpu_speed.sh``'s default budget reaches kernel options C).

Every ESC row uses the same weights: default initialisation from seed 0 (realistic magnitudes: the fixtures'
random weights overflow fp16) with trained-looking relative position tables
(:func:`esc_basicsr.layers.low_rank_bias.trained_like_table`; no trained checkpoint travels with the package).
Inference rows also time one call at another size (288x500) and count the graphs dynamo compiled for it.

Budget: each row has an expected duration (:func:`.plan.expected_seconds`, from the H200 figures
of the project's GPU notes); a row that would no longer fit in ``--budget-s`` is skipped and listed as such,
and a row is stopped at ``--row-timeout-factor`` times its expected duration (at least 60 s, never past the
budget). The JSON and the
Markdown summary (goals met / unmet / not measured, with the GPU's name) are rewritten after every row, so a
run cut short still leaves its results. ``--dry-run`` runs every row that a CPU can run on tiny sizes, in this
process, with a tiny ESC and the ``eager`` compiler backend (checks the plumbing; its numbers mean nothing).

The rows, goals and sizes: :mod:`.plan`; ratios, goals met and the summary: :mod:`.report`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Any, Iterator, Sequence

from .plan import DRY_SIZES, Row, Sizes, budget_table, expected_seconds, plan_rows, row_spec
from .report import Result, add_ratios, evaluate_goals, summary_markdown


# ---------------------------------------------------------------------------------------------------------------
# Running the rows
# ---------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _row_scope() -> Iterator[None]:
    """A row run in this process (dry run) leaves nothing behind: environment settings, TF32 flags, dynamo."""
    import torch

    from esc_basicsr.layers import config

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
    from esc_basicsr.tools.benchmark_worker import run_isolated, run_worker

    if isolate:
        return run_isolated(spec, timeout)
    with _row_scope():
        try:
            return run_worker(spec)
        except Exception as exc:  # noqa: BLE001 - reported in the row, the run goes on
            return {'error': f'{type(exc).__name__}: {exc}'}


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
                # never past the budget: the script's time box cuts at the budget (+10 s to write the files)
                timeout = None if dry_run else min(max(60.0, timeout_factor * res.expected_s), budget_s - elapsed)
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


def _meta(results: Sequence[Result], args: argparse.Namespace, sizes: Sizes, elapsed: float) -> dict[str, Any]:
    import torch

    from esc_basicsr.version import __version__

    names = [args.device_name] if getattr(args, 'device_name', None) else \
        [r.data.get('device_name') for r in results if r.data.get('device_name')]
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
    from esc_basicsr.utils.atomic import write_text

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
    p = argparse.ArgumentParser(prog='python -m benchmarks.gpu_speed', description=__doc__.split('\n\n')[0])
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
        # the file names carry the GPU's name from the first row on (the first row runs on the CPU)
        args.device_name = torch.cuda.get_device_name(0)
    else:
        args.device_name = None
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
