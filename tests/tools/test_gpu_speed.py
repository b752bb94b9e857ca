"""The GPU speed measurement of issue 21 (scripts/gpu_speed.sh, benchmarks/gpu_speed: the project's own harness,
outside the installed package, imported from the repository root): the dry run on the CPU goes through every row
a CPU can run and writes the JSON and the goals; the budget skips what no longer fits; the goals are judged as
the issue states them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_plans, timebox
from benchmarks.gpu_speed import run as gpu_speed
from benchmarks.gpu_speed.plan import GOALS, Row, Sizes, expected_seconds, plan_rows, row_spec
from benchmarks.gpu_speed.report import Result, evaluate_goals
from benchmarks.gpu_speed.run import run_matrix

REPO = Path(__file__).resolve().parents[2]


def test_dry_run_of_the_script(tmp_path):
    """``scripts/gpu_speed.sh --dry-run "my runs"`` called from another folder: every row that a CPU can run
    succeeds (tiny sizes), the others say why; the JSON holds every goal and the Markdown names them; exact
    settings reproduce the float32 reference. The relative OUT_DIR is the caller's (issue 27: it was written
    into the checkout, the script changing to it first), and the steps' summary lies beside the results."""
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    env.pop('OUT', None)
    assert not (REPO / 'my runs').exists()
    # a loaded CI machine: the plan's budgets are a GPU's, the dry run only needs to finish
    proc = subprocess.run(['bash', str(REPO / 'scripts' / 'gpu_speed.sh'), '--dry-run', '--limit-s', '1200',
                           'my runs'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1300)
    out = tmp_path / 'my runs'
    log = out / 'gpu_speed_run_logs' / 'measure.log'
    assert proc.returncode == 0, proc.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else '')
    assert not (REPO / 'my runs').exists()
    steps = json.loads((out / 'gpu_speed_run_CPU_dry_run.json').read_text())['steps']
    assert [(s['name'], s['status']) for s in steps] == [('install', 'ok'), ('measure', 'ok')]
    data = json.loads((out / 'gpu_speed_CPU__dry_run.json').read_text())
    rows = {r['label']: r for r in data['rows']}
    assert list(rows) == [r.label for r in plan_rows()]
    for label, r in rows.items():
        cuda_only = r['row']['mode'] == 'fp16' or r['row']['settings'].get('cuda_graphs')
        assert (r['status'], bool(cuda_only)) in (('ok', False), ('skipped', True)), (label, r['reason'])
    assert [g['key'] for g in data['goals']] == list(GOALS)
    exact = [r['result'] for label, r in rows.items() if label.startswith('esc/strict') and 'lowrank' not in label]
    assert len(exact) == 3 and all(x['max_abs_err'] <= 1e-5 for x in exact)
    assert rows['esc/strict/compile']['result']['new_size_graphs'] == 0  # a new size compiles nothing
    assert rows['esc/bf16/lowrank16']['result']['notes'][0].startswith('low-rank bias: ranks 16 of 64')
    assert rows['train/esc/bf16']['result']['vs_swinir'] > 0
    md = (out / 'gpu_speed_CPU__dry_run.md').read_text()
    assert md.startswith('# GPU speed (issue 21) on CPU (dry run)') and 'DRY RUN' in md
    assert all(text in md for text in GOALS.values())
    assert (out / 'gpu_speed_run_logs' / 'env.txt').read_text().startswith('python ')


def test_budget_lists_every_row_and_the_main_candidates_fit():
    """With gpu_speed.sh's default limit, the budget the measurement gets holds the reference, the baselines and
    the candidates that could reach the goals (compile, CUDA graphs, the low-rank bias) at their expected time."""
    rows = plan_rows()
    seconds = [expected_seconds(r, 5, 20, 2, 10) for r in rows]
    assert all(s > 0 for s in seconds)
    measure = gpu_plans.speed_plan('python3', Path('out')).steps[-1].budget_s
    budget = measure - timebox.GRACE_S - 10  # what benchmarks.timebox passes as --budget-s
    first = {r.label for r in rows if r.setting == 'default' or r.kind == 'reference'} | \
        {'esc/bf16/compile', 'esc/bf16/cudagraphs', 'esc/bf16/lowrank16'}
    assert {r.label for r in rows[:len(first)]} == first  # the budget cuts from the end
    assert sum(seconds[:len(first)]) <= budget
    assert gpu_speed.main(['--plan']) == 0


def test_rows_that_no_longer_fit_are_skipped(monkeypatch):
    calls = []
    monkeypatch.setattr(gpu_speed, 'run_row', lambda spec, isolate, timeout: calls.append(timeout) or
                        {'latency_ms': 1.0})
    rows = [Row('reference_cpu', 'reference', 'esc', 'strict'), Row('esc/tf32', 'inference', 'esc', 'tf32'),
            Row('esc/tf32/compile', 'inference', 'esc', 'tf32', {'compile': True})]
    sizes = Sizes(device='cuda')
    monkeypatch.setattr(gpu_speed.os.path, 'exists', lambda path: True)  # the reference output
    results = run_matrix(rows, sizes, budget_s=40, isolate=True, dry_run=False)
    assert [r.status for r in results] == ['ok', 'ok', 'skipped'] and 'budget' in results[2].reason
    assert all(0 < t <= 40 for t in calls)  # never past the budget (the script's time box ends there)


def _result(label: str, kind: str, model: str, mode: str, settings: dict | None = None, **data) -> Result:
    res = Result(Row(label, kind, model, mode, settings or {}), 1.0, status='ok')
    res.data = data
    return res


def test_goals_as_the_issue_states_them():
    ok = dict(max_abs_err=2e-6, output_finite=True, first_call_ms=3000.0, new_size_graphs=0, new_size_ms=50.0,
              mem_added_mb=450.0)
    results = [
        _result('esc/strict', 'inference', 'esc', 'strict', latency_ms=92.0, mean_rel_err=0.0, **ok),
        _result('esc/tf32', 'inference', 'esc', 'tf32', latency_ms=63.5, mean_rel_err=1e-3, **ok),
        _result('esc/bf16', 'inference', 'esc', 'bf16', latency_ms=55.0, mean_rel_err=0.010, **ok),
        # fastest, but its error is 3x the default's: not counted
        _result('esc/bf16/lowrank16', 'inference', 'esc', 'bf16', {'low_rank_bias': {'rank': 16}}, latency_ms=9.0,
                mean_rel_err=0.030, **ok),
        _result('esc/bf16/compile', 'inference', 'esc', 'bf16', {'compile': True}, latency_ms=16.0,
                mean_rel_err=0.012, **dict(ok, first_call_ms=40_000.0)),
        _result('esc/strict/compile', 'inference', 'esc', 'strict', {'compile': True}, latency_ms=44.0,
                mean_rel_err=0.0, **dict(ok, max_abs_err=3e-5)),
        _result('train/esc/bf16', 'train', 'esc', 'bf16', latency_ms=60.0),
        _result('train/swinir_light/bf16', 'train', 'swinir_light', 'bf16', latency_ms=100.0),
    ]
    goals = {g.key: g for g in evaluate_goals(results, 'NVIDIA H200')}
    assert goals['infer_reduced'].row == 'esc/bf16/compile' and goals['infer_reduced'].met  # 16 <= 0.3 x 55.4
    assert goals['infer_tf32'].met is False  # 63.5 > 0.5 x 62.9
    assert goals['infer_strict'].row == 'esc/strict' and goals['infer_strict'].met is False  # compile: 3e-5 off
    assert goals['exact_fp32'].met is False and goals['exact_fp32'].row == 'esc/strict/compile'
    # exact settings only (a low-rank bias is an approximation by design: judged per row, in the speed goals)
    assert goals['reduced_error'].met and goals['reduced_error'].measured == '1 of 1 rows within'
    assert goals['first_call'].met is False and goals['no_recompile'].met
    assert goals['train_bf16'].met is False and goals['train_fp32'].met is None  # 0.6x; no fp32 training row
    assert goals['memory'].met
    # on another GPU the authors' time is not known: our default setting of this run stands for it
    assert 'proxy' in {g.key: g for g in evaluate_goals(results, 'NVIDIA H100')}['infer_reduced'].target


def test_arguments_are_checked(capsys):
    assert gpu_speed.main(['--only', 'nope']) == 2
    assert 'unknown rows' in capsys.readouterr().err
    if not __import__('torch').cuda.is_available():
        assert gpu_speed.main(['--out', 'unused']) == 2
        assert 'no CUDA device' in capsys.readouterr().err


@pytest.mark.parametrize('label', ['esc/bf16/flexA', 'train/esc/bf16/compile'])
def test_row_specs(label):
    row = next(r for r in plan_rows() if r.label == label)
    spec = row_spec(row, Sizes(), '/ref.pt')
    assert spec['device'] == 'cuda' and spec['seed'] == 0 and spec['bias_tables'] == 'trained_like'
    if row.kind == 'train':
        assert spec['train'] and spec['batch_size'] == 32 and spec['lr_size'] == [64, 64] and spec['compile']
    else:
        assert spec['lr_size'] == [360, 640] and spec['autocast'] and spec['tf32'] == 'on'
        assert spec['compare_to'] == '/ref.pt' and spec['new_size'] == [288, 500]
        assert json.loads(spec['flex_kernel_options'])['BLOCK_M'] == 64
