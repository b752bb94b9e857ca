"""Assertions on what torch.compile did, shared by the CUDA tests and the CPU tests that show each one failing
on a deliberately broken setup (tests/helpers/test_compile_checks.py).

Why not ``caplog``: the ``torch`` and ``torch._dynamo`` loggers do not propagate to the root logger (nor does
``basicsr``'s once BasicSR set it up), so a ``caplog`` check of dynamo's warnings can never fail.
:class:`LogCapture` attaches its handler to the loggers themselves.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import types
from typing import Iterator, Mapping

import torch

# the loggers whose warnings say that a compiled path was given up: dynamo's (recompile limit, graph breaks
# on errors) and ours (esc_basicsr logs to BasicSR's logger)
WATCHED_LOGGERS = ('torch._dynamo', 'basicsr')


class LogCapture(logging.Handler):
    """Every record of level >= WARNING reaching the :data:`WATCHED_LOGGERS`, attached to them directly."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return '\n'.join(f'{r.name}: {r.getMessage()}' for r in self.records)


@contextlib.contextmanager
def capture_compile_warnings() -> Iterator[LogCapture]:
    """A :class:`LogCapture` on :data:`WATCHED_LOGGERS` for the block (their levels lowered to WARNING if
    higher, restored after)."""
    handler = LogCapture()
    loggers = [logging.getLogger(name) for name in WATCHED_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.level > logging.WARNING or lg.level == logging.NOTSET:
            lg.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)


def assert_no_compile_warnings(capture: LogCapture) -> None:
    """No recompile-limit warning from dynamo, no "stopped compiling" from esc_basicsr."""
    text = capture.text
    assert 'recompile_limit' not in text and 'stopped compiling' not in text, text


def frame_counts() -> dict[str, int]:
    """Dynamo's frame counters so far: ``{'total': tried, 'ok': compiled}``."""
    from torch._dynamo.utils import counters

    return {'total': counters['frames']['total'], 'ok': counters['frames']['ok']}


def cache_entries(code: types.CodeType) -> int:
    """Compiled versions (graphs) dynamo holds for ``code``; more than one means it recompiled."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list
    return len(_debug_get_cache_entry_list(code))


def assert_one_graph_each(codes: Mapping[object, types.CodeType], frames_before: Mapping[str, int]) -> None:
    """Each code compiled exactly once (one graph, no recompile) and every frame dynamo tried since
    ``frames_before`` compiled (nothing ran uncompiled)."""
    versions = {str(key): cache_entries(code) for key, code in codes.items()}
    assert all(n == 1 for n in versions.values()), f'recompiled: {versions}'
    frames = frame_counts()
    attempts, ok = frames['total'] - frames_before['total'], frames['ok'] - frames_before['ok']
    assert attempts == ok == len(codes), f'frames tried {attempts}, compiled {ok}, codes {len(codes)}'


def compiled_graphs() -> int:
    """Graphs dynamo has compiled since its counters were last cleared."""
    from torch._dynamo.utils import counters

    return counters['stats']['unique_graphs']


def assert_graphs(expected: int) -> None:
    """Exactly ``expected`` graphs compiled (since the counters were cleared) and no graph break."""
    from torch._dynamo.utils import counters

    assert compiled_graphs() == expected, f'{compiled_graphs()} graphs compiled, expected {expected}: ' \
                                          f'{dict(counters["stats"])}'
    assert not counters['graph_break'], dict(counters['graph_break'])


# ----------------------------------------------------------------------------- the fused FlexAttention ran
def flex_counts() -> collections.Counter:
    """A copy of what the FlexAttention path recorded (:data:`esc_basicsr.layers.attention_backends.flex_counts`)."""
    from esc_basicsr.layers.attention_backends import flex_counts as counts
    return collections.Counter(counts)


def assert_compiled_flex_ran(before: Mapping[str, int], min_calls: int = 1) -> None:
    """At least ``min_calls`` attention calls ran FlexAttention's compiled entry since ``before`` (a
    :func:`flex_counts`), and none ran FlexAttention's eager path or fell back to sdpa."""
    now = flex_counts()
    ran = {k: now[k] - before.get(k, 0) for k in now}
    assert ran.get('compiled', 0) >= min_calls, f'the compiled FlexAttention ran {ran.get("compiled", 0)} ' \
                                                f'times (expected >= {min_calls}); calls since: {ran}'
    assert not ran.get('sdpa_fallback') and not ran.get('eager'), f'flex fell back: {ran}'


# ----------------------------------------------------------------------------- gradients against a reference
def assert_gradients_close(grads: Mapping[str, torch.Tensor | None], ref: Mapping[str, torch.Tensor | None],
                           rtol: float, floor: float = 1e-6) -> None:
    """Each parameter's gradient equals the reference's within ``rtol`` of its norm plus ``floor`` of all the
    gradients' norm (for a parameter whose gradient is all rounding in reduced precision). Per parameter, not
    over all of them at once: a relative position bias table's gradient is ~4e-5 of a small ESC's, so halving
    it moves the total by 2e-5. A missing gradient, or a zero one where the reference has one, fails."""
    assert grads.keys() == ref.keys(), sorted(set(grads) ^ set(ref))
    missing = [n for n, g in grads.items() if g is None or (ref[n] is not None and ref[n].abs().sum() > 0
                                                             and g.abs().sum() == 0)]
    assert not missing, f'no gradient for {missing}'
    got = {n: g.detach().double().cpu() for n, g in grads.items()}
    want = {n: r.detach().double().cpu() for n, r in ref.items()}
    total = torch.cat([w.flatten() for w in want.values()]).norm()
    errors = {n: (got[n] - want[n]).norm() for n in got}
    bad = {n: round((errors[n] / want[n].norm().clamp_min(1e-30)).item(), 4) for n in got
           if errors[n] > rtol * want[n].norm() + floor * total}
    assert not bad, f'relative gradient error above {rtol}: {bad}'


# ----------------------------------------------------------------------------- CUDA graphs recorded
def recorded_cuda_graphs(device_index: int = 0) -> int:
    """CUDA graphs recorded by inductor's CUDA-graph trees on ``device_index`` in this thread (0 where none
    was made: no manager, or warm-up runs only)."""
    from torch._inductor import cudagraph_trees

    manager = cudagraph_trees.get_manager(device_index, create_if_none_exists=False)
    if manager is None:
        return 0
    count, stack = 0, [node for nodes in manager.roots.values() for node in nodes]
    while stack:
        node = stack.pop()
        if isinstance(node, cudagraph_trees.CUDAGraphNode):
            count += 1
        stack.extend(child for children in getattr(node, 'children', {}).values() for child in children)
    return count


def assert_cuda_graphs_recorded(expected_min: int, device_index: int = 0) -> None:
    """At least ``expected_min`` CUDA graphs recorded and none skipped (inductor counts each graph it ran
    without CUDA graphs in ``counters['inductor']['cudagraph_skips']`` and logs why)."""
    from torch._dynamo.utils import counters

    skips = counters['inductor']['cudagraph_skips']
    assert skips == 0, f'inductor skipped CUDA graphs {skips} time(s) (its log says why)'
    recorded = recorded_cuda_graphs(device_index)
    assert recorded >= expected_min, f'{recorded} CUDA graph(s) recorded, expected >= {expected_min}'
