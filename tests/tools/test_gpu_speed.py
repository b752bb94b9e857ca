"""The GPU speed measurement of issue 21 (scripts/gpu_speed.sh, tools/gpu_speed.py): the dry run on the CPU goes
through every row a CPU can run and writes the JSON and the goals; the budget skips what no longer fits; the
goals are judged as the issue states them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from esc_basicsr.tools import gpu_speed
from esc_basicsr.tools.gpu_speed import run_matrix
from esc_basicsr.tools.gpu_speed_plan import GOALS, Row, Sizes, expected_seconds, plan_rows, row_spec
from esc_basicsr.tools.gpu_speed_report import Result, evaluate_goals

REPO = Path(__file__).resolve().parents[2]


def test_dry_run_of_the_script(tmp_path):
    """``scripts/gpu_speed.sh --dry-run``: every row that a CPU can run succeeds (tiny sizes), the others say why;
    the JSON holds every goal and the Markdown names them; exact settings reproduce the float32 reference."""
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    env.pop('OUT', None)
    proc = subprocess.run(['bash', str(REPO / 'scripts' / 'gpu_speed.sh'), '--dry-run', str(tmp_path)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:] + (tmp_path / 'speed.log').read_text()[-3000:]
    data = json.loads((tmp_path / 'gpu_speed_CPU__dry_run.json').read_text())
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
    md = (tmp_path / 'gpu_speed_CPU__dry_run.md').read_text()
    assert md.startswith('# GPU speed (issue 21) on CPU (dry run)') and 'DRY RUN' in md
    assert all(text in md for text in GOALS.values())
    assert (tmp_path / 'env.txt').read_text().startswith('python ')


def test_budget_lists_every_row_and_the_baselines_fit():
    rows = plan_rows()
    seconds = [expected_seconds(r, 5, 20, 2, 10) for r in rows]
    assert all(s > 0 for s in seconds)
    baselines = [s for r, s in zip(rows, seconds) if r.setting == 'default' or r.kind == 'reference']
    assert sum(baselines) < 420 / 2  # the baselines and the reference take under half the default budget
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
    assert all(60 <= t <= 40 + 30 for t in calls)  # at least 60 s, never past the budget by more than 30 s


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
