"""The GPU scripts fit a lent GPU (issue 28): their time plans fit one device command (540 s) each and 13
minutes together; a step cut by its timeout leaves the summary, its own partial results and every earlier
step's; the installation uses the carried wheels only; ``scripts/gpu_check.sh --dry-run`` runs the whole plan on
the CPU (the CUDA tests collected and skipped, the benchmark at tiny sizes)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import gpu_plans, timebox
from benchmarks.timebox import Plan, Step, run_plan

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def test_the_plans_fit_one_command_each_and_the_loan_together():
    out = Path('out')
    check = gpu_plans.check_plan(PY, out, 'GPU', root=REPO)
    speed = gpu_plans.speed_plan(PY, out)
    assert check.total_s <= check.limit_s <= gpu_plans.COMMAND_LIMIT_S
    assert speed.total_s <= speed.limit_s <= gpu_plans.COMMAND_LIMIT_S
    assert check.limit_s + speed.limit_s <= 13 * 60 == gpu_plans.LOAN_COMMANDS_S
    # tests first (most important chunk first), the benchmark after, four chunks whatever files exist
    kinds = [s.kind for s in check.steps]
    assert kinds == ['setup', 'tests', 'tests', 'tests', 'tests', 'bench']
    assert check.steps[1].argv[-2:] == ['tests/layers/test_flex_compile.py', 'tests/tools/test_speed_settings.py']
    assert '--ignore' in check.steps[4].argv
    missing = gpu_plans.check_plan(PY, out, 'GPU', root=out)  # no chunk file exists: all the time to the rest
    assert [s.name for s in missing.steps] == ['install', 'tests_rest', 'bench_fp32']
    assert missing.total_s == check.total_s
    for limit in (300, 540):  # --limit-s scales the plan, which still fits
        for plan in (gpu_plans.check_plan(PY, out, 'GPU', limit_s=limit, bench=False, root=REPO),
                     gpu_plans.speed_plan(PY, out, limit_s=limit)):
            assert plan.total_s == pytest.approx(limit)
    with pytest.raises(ValueError, match='budgets 30 s > limit 20 s'):
        Plan('p', 20, 0, [Step('a', 30, ['true'])])


def test_plan_printed_and_bad_limits_refused(capsys):
    assert gpu_plans.main(['check', '--out', 'unused', '--plan']) == 0
    printed = capsys.readouterr().out
    assert 'budgets + reserve = 360 s <= limit 360 s' in printed and '| bench_fp32 | bench | 60 | 340 |' in printed
    assert gpu_plans.main(['speed', '--out', 'unused', '--plan', '--', '--only', 'esc/bf16']) == 0
    assert gpu_plans.speed_plan(PY, Path('o'), extra=['--only', 'esc/bf16']).steps[-1].argv[-2:] == \
        ['--only', 'esc/bf16']
    assert gpu_plans.main(['check', '--out', 'unused', '--plan', '--', '--only', 'x']) == 2
    assert 'for gpu_speed.sh only' in capsys.readouterr().err
    assert gpu_plans.main(['speed', '--out', 'unused', '--plan', '--limit-s', '100']) == 2
    assert capsys.readouterr().err.startswith('error: --limit-s 100 is too small: at least 150 s')


def test_a_step_cut_by_its_timeout_leaves_the_summary_and_the_earlier_results(tmp_path, monkeypatch):
    """A tiny budget: the second step (pytest with a test that sleeps) is cut by SIGINT at its deadline and still
    writes its junit XML (the test that passed, the one it was in); a step that ignores SIGINT is killed GRACE_S
    later; the steps around them keep their results and the summary is whole after every step."""
    monkeypatch.setattr(timebox, 'GRACE_S', 4.0)  # pytest writes its junit XML within it, also on a loaded machine
    monkeypatch.setattr(timebox, 'MIN_STEP_S', 0.5)
    (tmp_path / 'test_sleepy.py').write_text(
        'import time\n\ndef test_quick():\n    pass\n\ndef test_sleeps():\n    time.sleep(120)\n\n'
        'def test_never_reached():\n    pass\n')
    logs = tmp_path / 'p_logs'
    write = f'open({str(tmp_path / "{}.txt")!r}, "w").write("done")'
    plan = Plan('p', 48, 1, [
        Step('first', 5, [PY, '-c', write.format('first')]),
        Step('pytest', 20, [PY, '-m', 'pytest', '-v', '-p', 'no:cacheprovider', f'--junitxml={logs}/pytest.xml',
                            str(tmp_path / 'test_sleepy.py')], kind='tests'),
        Step('stubborn', 8, [PY, '-c', 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); '
                                       'print("ignoring", flush=True); time.sleep(120)']),
        Step('last', 5, [PY, '-c', write.format('last')]),
    ])
    # as under `bash .ci/run &` or a device runner: a background job inherits SIGINT ignored, and the steps
    # must still be interruptible (pytest then writes its junit XML)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        start = time.monotonic()
        results, md = run_plan(plan, tmp_path, 'TAG', '# test plan')
        elapsed = time.monotonic() - start
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [r.status for r in results] == ['ok', 'timeout', 'timeout', 'ok']
    assert elapsed <= plan.limit_s  # every step ended by its deadline (the budgets before it summed)
    assert (tmp_path / 'first.txt').read_text() == 'done' and (tmp_path / 'last.txt').read_text() == 'done'
    tests = results[1].tests
    assert tests['tests'] == 1 and tests['failures'] == 0  # test_quick, written on SIGINT
    assert str(tests['running_when_cut']).endswith('test_sleepy.py::test_sleeps')
    assert 'ignoring' in (logs / 'stubborn.log').read_text()
    text = md.read_text()
    assert text.startswith('# test plan') and '| pytest | tests | 20 |' in text and 'timeout' in text
    assert 'cut while running' in text
    steps = json.loads((tmp_path / 'p_TAG.json').read_text())['steps']
    assert [s['status'] for s in steps] == ['ok', 'timeout', 'timeout', 'ok']
    assert timebox.exit_code(results) == 1


def test_a_failed_installation_stops_the_run_and_says_why(tmp_path):
    plan = Plan('p', 48, 1, [Step('install', 20, [PY, '-c', 'import sys; print("error: no wheels"); sys.exit(2)'],
                                  kind='setup'),
                             Step('tests', 10, [PY, '-c', 'pass'], kind='tests')])
    results, md = run_plan(plan, tmp_path, 'TAG', '# t')
    assert [(r.status, r.rc) for r in results] == [('failed', 2), ('skipped', None)]
    assert 'install failed' in results[1].note and 'error: no wheels' in md.read_text()
    assert timebox.exit_code(results) == 2
    # an installation without the time to run stops the run as well
    plan.steps[0].budget_s = timebox.MIN_STEP_S + timebox.GRACE_S - 1
    results, _ = run_plan(plan, tmp_path, 'TAG', '# t')
    assert [r.status for r in results] == ['skipped', 'skipped'] and timebox.exit_code(results) == 1


def _script(name: str, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO,
            timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', str(REPO / 'scripts' / name), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_without_wheels_the_scripts_stop_and_ask_no_registry(tmp_path):
    """The Python cannot import the modules (a wrapper failing every ``-c`` import check) and the wheel folder
    is empty: one ``error:`` line naming prepare.sh, exit code 2, no ``.venv`` made (scripts/setup_env.sh was
    the old fallback, which needs a package registry), the summary written all the same."""
    fake = tmp_path / 'python'
    fake.write_text(f'#!/bin/sh\n[ "$1" = "-c" ] && exit 1\nexec {PY} "$@"\n')
    fake.chmod(0o755)
    (tmp_path / 'wheels').mkdir()
    env = dict(os.environ, PYTHON=str(fake), GPU_WHEELS=str(tmp_path / 'wheels'), PYTHONPATH=str(REPO))
    env.pop('OUT', None)
    for script in ('gpu_check.sh', 'gpu_speed.sh'):
        out = tmp_path / script
        proc = _script(script, str(out), env=env, timeout=120)
        assert proc.returncode == 2, proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error: ')]
        assert len(errors) == 1 and 'holds no wheels' in errors[0] and 'prepare.sh' in errors[0], proc.stderr
        assert 'Traceback' not in proc.stderr
        summaries = list(out.glob('gpu_*.md'))  # gpu_check_<GPU>.md, gpu_speed_run_<GPU>.md
        assert len(summaries) == 1 and '| install | setup |' in summaries[0].read_text()
        assert 'skipped' in summaries[0].read_text() and 'holds no wheels' in summaries[0].read_text()


def _fake_python(tmp_path: Path, pip_rc: int) -> tuple[Path, Path]:
    """A Python whose import check fails until its ``pip`` (recorded, not run) has installed, once."""
    calls, installed = tmp_path / 'pip_calls', tmp_path / 'installed'
    fake = tmp_path / 'python'
    fake.write_text(f"""#!/bin/sh
if [ "$1" = "-c" ]; then [ -e {installed} ] && exit 0; exit 1; fi
if [ "$1 $2" = "-m pip" ]; then echo "$*" >> {calls}; [ {pip_rc} = 0 ] && touch {installed}; exit {pip_rc}; fi
exec {PY} "$@"
""")
    fake.chmod(0o755)
    return fake, calls


@pytest.mark.parametrize('pip_rc', [0, 1])
def test_with_wheels_the_installation_uses_them_and_no_index(tmp_path, pip_rc):
    """scripts/gpu_env.sh with wheels: the wheels, then this checkout (reinstalled: a warm machine may hold an
    earlier copy's package), both with --no-index; a failed pip is one ``error:`` line and exit code 2."""
    fake, calls = _fake_python(tmp_path, pip_rc)
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    (wheels / 'addict-2.4.0-py3-none-any.whl').write_bytes(b'')
    env = dict(os.environ, GPU_WHEELS=str(wheels), PYTHONPATH=str(REPO))
    proc = subprocess.run(['bash', 'scripts/gpu_env.sh', str(fake), str(tmp_path / 'logs'), '1', 'torch basicsr'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    pips = calls.read_text().splitlines()
    assert all('--no-index' in c and '--no-deps' in c for c in pips)
    if pip_rc:
        assert proc.returncode == 2 and proc.stderr.splitlines()[-1].startswith('error: installing from ')
        return
    assert proc.returncode == 0, proc.stderr
    assert len(pips) == 2 and pips[0].endswith('addict-2.4.0-py3-none-any.whl')
    assert pips[1].endswith('--force-reinstall .')
    assert 'TF32 defaults' in (tmp_path / 'logs' / 'env.txt').read_text()


def test_the_harness_is_outside_the_installed_package():
    """Issue 26: the GPU goal harness lives in benchmarks/ (not installed); the package neither holds nor
    imports it, and setup.py packages esc_basicsr only."""
    assert not list((REPO / 'esc_basicsr').rglob('gpu_speed*'))
    for path in (REPO / 'esc_basicsr').rglob('*.py'):
        text = path.read_text()
        assert 'import benchmarks' not in text and 'from benchmarks' not in text, path
    assert "find_packages(include=['esc_basicsr', 'esc_basicsr.*'])" in (REPO / 'setup.py').read_text()


def test_arguments_are_checked():
    for script in ('gpu_check.sh', 'gpu_speed.sh'):
        proc = _script(script, '--bogus', timeout=60)
        assert proc.returncode == 2 and proc.stderr.startswith('error: unknown option --bogus'), proc.stderr
        proc = _script(script, 'a', 'b', timeout=60)
        assert proc.returncode == 2 and 'one OUT_DIR only' in proc.stderr


@pytest.mark.slow
def test_dry_run_of_the_gpu_check(tmp_path):
    """The whole plan on the CPU: every step ok, a junit XML per test chunk, the benchmark's JSON and table, the
    environment; a relative OUT_DIR is the caller's."""
    env = dict(os.environ, PYTHON=PY, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    env.pop('OUT', None)
    proc = _script('gpu_check.sh', '--dry-run', '--limit-s', '1200', 'check out', env=env, cwd=tmp_path,
                   timeout=1300)
    out = tmp_path / 'check out'
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'budgets + reserve = 1200 s <= limit 1200 s' in proc.stderr
    data = json.loads((out / 'gpu_check_CPU_dry_run.json').read_text())
    assert [(s['name'], s['status']) for s in data['steps']] == [
        ('install', 'ok'), ('tests_flex', 'ok'), ('tests_precision', 'ok'), ('tests_matrix', 'ok'),
        ('tests_rest', 'ok'), ('bench_fp32', 'ok')]
    assert all(s['tests']['tests'] > 0 and s['tests']['failures'] == 0 for s in data['steps'] if s['kind'] == 'tests')
    logs = out / 'gpu_check_logs'
    assert 'TF32 defaults' in (logs / 'env.txt').read_text()
    assert len(list(logs.glob('tests_*.xml'))) == 4
    rows = json.loads((out / 'gpu_check_CPU_dry_run_x2_fp32.json').read_text())
    assert 'swinir_light' in json.dumps(rows)
    md = (out / 'gpu_check_CPU_dry_run.md').read_text()
    assert '| swinir_light |' in md and 'DRY RUN' in md
