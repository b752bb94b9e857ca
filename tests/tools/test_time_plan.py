"""The demo's time plan: the remaining iterations re-planned against the remaining time
(esc_basicsr.tools.time_plan), on simulated step times, and the schedule compressed on BasicSR's schedulers.
A training run of BasicSR's pipeline under a time plan: tests/integration/test_training_messages.py."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import torch

from esc_basicsr import demo, train
from esc_basicsr.tools import demo as demo_tools
from esc_basicsr.tools.time_plan import Replanner, compress_schedule

BUDGET = 11 * 60.0  # the demo's default: at most 11 min of training
STARTUP = 20.0  # BasicSR's start-up before the first iteration


def simulate(step_seconds, total: int = 400, deadline: float = BUDGET, min_iter: int = 150) -> tuple[float, Replanner]:
    """A training loop on a simulated clock: iteration i takes ``step_seconds(i)``; the re-planner sees every
    finished iteration, as the hook does. Returns (the time training ends, the re-planner)."""
    planner = Replanner(total, deadline, min_iter=min_iter, check_every=10)
    now, done = STARTUP, 0
    while done < planner.total_iter:
        done += 1
        now += step_seconds(done)
        planner.step(done, now)
    return now + planner.end_seconds, planner


def test_steady_load_keeps_the_plan():
    end, planner = simulate(lambda i: 1.2)  # 400 x 1.2 s + 20 s = 8.4 min: fits in 11
    assert planner.replans == [] and planner.total_iter == 400 and end < BUDGET


@pytest.mark.parametrize('slow_from, factor', [(1, 1.9), (150, 2.5), (300, 4.0)])
def test_load_that_comes_later_is_re_planned_and_ends_near_the_deadline(slow_from, factor):
    """The issue's run: planned at 1.2 s per step, then the machine slowed down (19.1 min instead of 11)."""
    step = lambda i: 1.2 if i < slow_from else 1.2 * factor  # noqa: E731
    unplanned = STARTUP + sum(step(i) for i in range(1, 401))
    assert unplanned > BUDGET + 60  # without re-planning it would overrun by more than a minute
    end, planner = simulate(step)
    assert planner.replans and planner.total_iter < 400
    assert BUDGET - 60 < end <= BUDGET + 10  # ends near the announced time, not long before or after
    assert all(r.new < r.old for r in planner.replans)


def test_noise_does_not_re_plan():
    """Steps that vary around a rate that fits: no re-plan (the tolerance of a few seconds)."""
    end, planner = simulate(lambda i: 1.5 if i % 3 else 1.0, deadline=STARTUP + 400 * 1.34 + 30)
    assert planner.replans == [] and end <= STARTUP + 400 * 1.34 + 30


def test_never_fewer_than_min_iter_and_says_it_is_over():
    end, planner = simulate(lambda i: 1.2 if i < 50 else 10.0)
    assert planner.total_iter == 150 and end > BUDGET
    assert re.fullmatch(r're-planned: \d+ iterations left \(no fewer are planned\) take [\d.]+ min, more than the '
                        r'[\d.]+ min left \(was \d+ left; 10\.00 s per iteration now\)', planner.replans[-1].message())


def test_message_names_the_iterations_and_minutes_left():
    planner = Replanner(400, deadline=400.0, check_every=10)
    assert planner.step(90, 80.0) is None  # the first stamp
    replan = planner.step(100, 100.0)  # 10 iterations at 2 s; 300 s left (295 before the final save): 147 fit
    assert replan.new == 100 + int((300 - planner.end_seconds) / 2.0)
    assert re.fullmatch(r're-planned: 147 iterations left fit in 4\.9 min \(was 300 left; 2\.00 s per iteration now\)',
                        replan.message())


def _model_with(scheduler_cls, **kwargs):
    net = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(net.parameters(), 1.0)
    model = type('Model', (), {})()
    model.schedulers = [scheduler_cls(optimizer, **kwargs)]
    model.opt = {'train': {'warmup_iter': 40}}
    return model, optimizer


def test_compress_schedule_cosine_ends_at_the_new_total():
    from basicsr.models.lr_scheduler import CosineAnnealingRestartLR

    model, optimizer = _model_with(CosineAnnealingRestartLR, periods=[400], restart_weights=[1], eta_min=0.0)
    for _ in range(200):
        optimizer.step()
        model.schedulers[0].step()
    compress_schedule(model, done=200, old=400, new=300)
    assert model.schedulers[0].periods == [300] and model.schedulers[0].cumulative_period == [300]
    for _ in range(100):
        optimizer.step()
        model.schedulers[0].step()
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.0, abs=1e-9)  # the cosine's end, at 300
    assert model.opt['train']['warmup_iter'] == 40  # already over: unchanged


def test_compress_schedule_milestones_and_warmup():
    from basicsr.models.lr_scheduler import MultiStepRestartLR

    model, _ = _model_with(MultiStepRestartLR, milestones=[10, 240, 340], gamma=0.5)
    compress_schedule(model, done=20, old=400, new=200)
    assert model.schedulers[0].milestones == Counter({10: 1, 120: 1, 170: 1})  # the passed one stays
    assert model.opt['train']['warmup_iter'] == 21  # 40 -> 20, but never before the next iteration


def test_demo_plan_holds_the_budget_and_the_deadline(tmp_path):
    plan = demo.plan_training(tmp_path, None, None, step_seconds=lambda _: 1.2)
    assert plan['total_iter'] == 400 and plan['budget_seconds'] == 660 and plan['min_iter'] == demo.MIN_ITERS
    assert plan['planned_seconds'] == pytest.approx(demo.STARTUP_SECONDS + 400 * 1.2 * demo.STEP_OVERHEAD, abs=0.1)
    assert demo_tools.set_deadline(tmp_path, demo.NAME, now=1000.0) == 'demo_plan.json'
    assert json.loads((tmp_path / 'demo_plan.json').read_text())['deadline'] == 1660.0
    states = tmp_path / 'experiments' / demo.NAME / 'training_states'
    states.mkdir(parents=True)
    (states / '300.state').touch()  # a resumed training has a quarter of its iterations left
    demo_tools.set_deadline(tmp_path, demo.NAME, now=1000.0)
    assert json.loads((tmp_path / 'demo_plan.json').read_text())['deadline'] == 1165.0
    (tmp_path / 'demo_plan.json').unlink()
    assert 'budget_seconds' not in demo.plan_training(tmp_path, None, 200)  # --iters: no time promise


def test_training_summary_says_planned_and_actual():
    plan = dict(total_iter=310, planned_seconds=546.0, budget_seconds=660.0,
                replans=[dict(at=200, old=400, new=330), dict(at=250, old=330, new=310)])
    assert demo_tools.training_summary(plan, 652.0) == \
        'Training: 10.9 min (planned about 9.1, at most 11; re-planned 2 times: 400 -> 310 iterations).'
    assert demo_tools.training_summary(dict(total_iter=400), 300.0) == 'Training: 5.0 min.'
    assert demo_tools.training_summary(plan, None) == 'Trained by an earlier run.'


def test_train_takes_time_plan_out_of_basicsr_arguments(tmp_path, monkeypatch, capsys):
    assert train._take_time_plan(['--time-plan', 'p.json', '-opt', 'x.yml', '--auto_resume']) == \
        ('p.json', ['-opt', 'x.yml', '--auto_resume'])
    assert train._take_time_plan(['-opt', 'x.yml', '--time-plan=q.json']) == ('q.json', ['-opt', 'x.yml'])
    assert train._take_time_plan(['-opt', 'x.yml']) == (None, ['-opt', 'x.yml'])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr('sys.argv', ['esc-train', '--time-plan', 'missing.json', '-opt', 'x.yml'])
    with pytest.raises(SystemExit) as exit_info:
        train.main()
    assert exit_info.value.code == 2 and capsys.readouterr().err == "error: --time-plan: no file 'missing.json'\n"
    (tmp_path / 'plan.json').write_text('{}')
    with pytest.raises(ValueError, match='single process'):
        train.main(['--time-plan', 'plan.json', '-opt', 'x.yml', '--launcher', 'pytorch'])


def test_demo_says_when_even_the_fewest_iterations_exceed_the_budget(tmp_path, capsys):
    plan = demo.plan_training(tmp_path, None, None, step_seconds=lambda _: 10.0)
    assert plan['total_iter'] == demo.MIN_ITERS
    assert 'take about 27.8 min, more than 11 min' in capsys.readouterr().out
    (tmp_path / 'demo_plan.json').unlink()
    demo.plan_training(tmp_path, None, None, step_seconds=lambda _: 1.2)
    assert 'about 9.1 min of training (at most 11 min: re-planned while it trains' in capsys.readouterr().out
