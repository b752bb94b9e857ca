"""Run a plan of steps within a time limit, leaving every result so far on disk (the GPU scripts' engine).

A lent GPU gives one command at most 10 minutes and the whole loan 15; a step that overruns must not cost
the results of the others. So a :class:`Plan` is a list of :class:`Step` s, each with a budget in seconds,
whose budgets plus a reserve fit the plan's limit (checked when the plan is made). Step ``i`` must end by the
sum of the budgets of steps ``1..i`` (time a step leaves unused rolls over to the next, an overrun never
eats a later step's share); a step still running then gets SIGINT (pytest writes its junit XML and summary
on it), :data:`GRACE_S` seconds later SIGKILL, its whole process group. A step that no longer has
:data:`MIN_STEP_S` seconds is skipped. After every step the summary (``<plan>_<GPU>.md``) and the steps as
JSON (``<plan>_<GPU>.json``) are rewritten whole (temporary file + rename), so a cut run keeps both.

Standard library only: it runs before the installation step, with whatever Python the script chose.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

GRACE_S = 5.0  # SIGINT -> SIGKILL
MIN_STEP_S = 5.0  # a step with less than this left is skipped


@dataclass
class Step:
    """One command of a plan.

    Attributes:
        name: unique, also the stem of its log (``logs/<name>.log``).
        budget_s: seconds it may take (the time it leaves unused rolls over to the next step).
        argv: the command, run in the repository root.
        kind: ``setup`` (its failure stops the run), ``tests`` (pytest, junit XML ``logs/<name>.xml``),
            ``bench`` (its log's Markdown table goes into the summary) or ``measure``.
        budget_flag: the command takes its own budget: ``[budget_flag, timeout - 10 s]`` is appended.
    """

    name: str
    budget_s: float
    argv: list[str]
    kind: str = 'measure'
    budget_flag: str | None = None


@dataclass
class Plan:
    """Steps whose budgets plus ``reserve_s`` (final writes, the last SIGINT grace) fit ``limit_s``."""

    name: str
    limit_s: float
    reserve_s: float
    steps: list[Step]

    def __post_init__(self) -> None:
        if self.total_s > self.limit_s + 1e-6:
            raise ValueError(f'{self.name}: budgets {self.total_s:.0f} s > limit {self.limit_s:.0f} s')

    @property
    def logs(self) -> str:
        """The folder of the steps' logs, in the output folder."""
        return f'{self.name}_logs'

    @property
    def total_s(self) -> float:
        return sum(s.budget_s for s in self.steps) + self.reserve_s

    def table(self) -> str:
        """The plan as Markdown: each step's budget and the deadline it must meet."""
        lines = [f'{self.name}: {len(self.steps)} steps, budgets + reserve = {self.total_s:.0f} s '
                 f'<= limit {self.limit_s:.0f} s', '', '| step | kind | budget (s) | ends by (s) |',
                 '| --- | --- | ---: | ---: |']
        end = 0.0
        for s in self.steps:
            end += s.budget_s
            lines.append(f'| {s.name} | {s.kind} | {s.budget_s:.0f} | {end:.0f} |')
        lines.append(f'| (reserve) | | {self.reserve_s:.0f} | {end + self.reserve_s:.0f} |')
        return '\n'.join(lines)


@dataclass
class StepResult:
    """What became of a step: ``status`` ``pending``, ``ok``, ``failed``, ``timeout`` or ``skipped``."""

    name: str
    kind: str
    budget_s: float
    status: str = 'pending'
    rc: int | None = None
    timeout_s: float | None = None
    seconds: float | None = None
    note: str = ''
    tests: dict[str, object] = field(default_factory=dict)


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` under a temporary name and rename it: ``path`` is always complete."""
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    tmp.write_text(text, encoding='utf-8')
    os.replace(tmp, path)


def _default_sigint() -> None:
    """In the step's process, before it starts: SIGINT back to its default. A job started in the background
    by a non-interactive shell (``cmd &``, as a CI or device runner may do) inherits SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler: pytest would neither stop nor write its junit XML when cut."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_command(argv: Sequence[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> int | None:
    """Run ``argv`` with stdout and stderr into ``log``; ``None`` when cut at ``timeout`` seconds."""
    with open(log, 'w', encoding='utf-8') as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(env or os.environ, PYTHONUNBUFFERED='1'), preexec_fn=_default_sigint)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGINT, GRACE_S), (signal.SIGKILL, None)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            proc.wait()
            return None


def junit_counts(xml: Path, log: Path) -> dict[str, object]:
    """Test counts from pytest's junit XML, the failed tests, and the test a cut run was in (from the log)."""
    out: dict[str, object] = {}
    if xml.exists():
        try:
            suite = ET.parse(xml).getroot()
            suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
            for key in ('tests', 'failures', 'errors', 'skipped'):
                out[key] = int(suite.get(key, 0))
            out['failed'] = [f'{"::".join(filter(None, (c.get("classname"), c.get("name"))))}: '
                             + (bad.get('message') or '')[:200]
                             for c in suite.iter('testcase') for bad in list(c)
                             if bad.tag in ('failure', 'error')]
        except (ET.ParseError, AttributeError, ValueError) as exc:
            out['xml_error'] = str(exc)
    if log.exists():
        lines = log.read_text(errors='replace').splitlines()
        # pytest -v writes 'file::test ' before running a test and its outcome after: a bare one was cut
        running = [ln.strip() for ln in lines if '::' in ln and len(ln.split()) == 1]
        if running:
            out['running_when_cut'] = running[-1]
    return out


def log_tail(log: Path, n: int = 15) -> str:
    if not log.exists():
        return ''
    return '\n'.join(log.read_text(errors='replace').splitlines()[-n:])


def summary_markdown(plan: Plan, results: Sequence[StepResult], header: str, logs: Path, elapsed: float) -> str:
    """The run so far: the plan with each step's outcome, then what each step found."""
    lines = [header, '', f'Limit {plan.limit_s:.0f} s, {elapsed:.0f} s used so far; budgets + reserve '
             f'{plan.total_s:.0f} s. Logs: `{logs.name}/`.', '',
             '| step | kind | budget (s) | timeout (s) | taken (s) | status | note |',
             '| --- | --- | ---: | ---: | ---: | --- | --- |']
    for r in results:
        t = '-' if r.timeout_s is None else f'{r.timeout_s:.0f}'
        s = '-' if r.seconds is None else f'{r.seconds:.0f}'
        lines.append(f'| {r.name} | {r.kind} | {r.budget_s:.0f} | {t} | {s} | {r.status} | {r.note} |')
    env = logs / 'env.txt'
    if env.exists():
        lines += ['', '## Environment', '', '```', env.read_text().strip(), '```']
    for r in results:
        if r.status in ('pending', 'skipped'):
            continue
        log = logs / f'{r.name}.log'
        if r.kind == 'tests':
            c = r.tests
            counts = ', '.join(f'{c[k]} {k}' for k in ('tests', 'failures', 'errors', 'skipped') if k in c)
            lines += ['', f'## {r.name} ({r.status})', '', counts or 'no junit XML']
            lines += [f'- FAILED {f}' for f in c.get('failed', [])]  # type: ignore[union-attr]
            if c.get('running_when_cut') and r.status == 'timeout':
                lines.append(f'- cut while running {c["running_when_cut"]}')
        elif r.kind == 'bench' and log.exists():
            table = [ln for ln in log.read_text(errors='replace').splitlines() if ln.startswith('|')]
            lines += ['', f'## {r.name} ({r.status})', ''] + (table or ['(no table)'])
        if r.status != 'ok' and (r.kind != 'tests' or 'tests' not in r.tests):  # tests: the XML names failures
            lines += ['', f'{r.name}: last lines of `{logs.name}/{log.name}`', '', '```', log_tail(log), '```']
    return '\n'.join(lines) + '\n'


def run_plan(plan: Plan, out_dir: Path, tag: str, header: str,
             clock: Callable[[], float] = time.monotonic) -> tuple[list[StepResult], Path]:
    """Run ``plan``'s steps in order within its limit; returns the results and the summary's path.

    Writes ``out_dir/<plan>_<tag>.md`` and ``.json`` after every step and the logs into ``out_dir/<plan>_logs/``.
    """
    logs = out_dir / plan.logs
    logs.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / f'{plan.name}_{tag}.md', out_dir / f'{plan.name}_{tag}.json'
    results = [StepResult(s.name, s.kind, s.budget_s) for s in plan.steps]
    start, ends_by, stop = clock(), 0.0, ''

    def write() -> None:
        elapsed = clock() - start
        write_whole(md, summary_markdown(plan, results, header, logs, elapsed))
        write_whole(js, json.dumps({'plan': plan.name, 'limit_s': plan.limit_s, 'total_s': plan.total_s,
                                    'elapsed_s': elapsed, 'steps': [asdict(r) for r in results]}, indent=2))

    write()
    for step, res in zip(plan.steps, results):
        ends_by += step.budget_s
        timeout = ends_by - (clock() - start) - GRACE_S
        if stop:
            res.status, res.note = 'skipped', stop
        elif timeout < MIN_STEP_S:
            res.status, res.note = 'skipped', f'no time left ({timeout + GRACE_S:.0f} s to its deadline)'
        else:
            argv = list(step.argv) + ([step.budget_flag, f'{max(timeout - 10, 1):.0f}'] if step.budget_flag else [])
            res.timeout_s = timeout
            print(f'[{plan.name}] {step.name}: up to {timeout:.0f} s ...', file=sys.stderr, flush=True)
            t0 = clock()
            rc = run_command(argv, logs / f'{step.name}.log', timeout)
            res.seconds, res.rc = clock() - t0, rc
            # pytest: 5 = nothing collected (e.g. a file without CUDA tests left)
            res.status = 'timeout' if rc is None else ('ok' if rc == 0 or (step.kind == 'tests' and rc == 5)
                                                       else 'failed')
            if rc is None:
                res.note = f'cut at {timeout:.0f} s'
            if step.kind == 'tests':
                res.tests = junit_counts(logs / f'{step.name}.xml', logs / f'{step.name}.log')
            print(f'[{plan.name}] {step.name}: {res.status} ({res.seconds:.0f} s)', file=sys.stderr, flush=True)
        if step.kind == 'setup' and res.status != 'ok' and not stop:
            stop = f'{step.name} {res.status}'  # nothing after it can run
            print(log_tail(logs / f'{step.name}.log', 5), file=sys.stderr)
        write()
    return results, md


def exit_code(results: Sequence[StepResult]) -> int:
    """2: the setup failed with 2 (missing wheels, no CUDA); 0: every step ok; 1 otherwise."""
    setup = [r for r in results if r.kind == 'setup' and r.status != 'ok']
    if setup:
        return 2 if setup[0].rc == 2 else 1
    return 0 if all(r.status == 'ok' for r in results) else 1
