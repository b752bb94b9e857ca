"""Efficiency metrics of a network: parameters, multiply-accumulates, latency, peak memory.

* **MACs** are counted by PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` (which counts
  convolutions and matrix products, 2 FLOPs per MAC) on a copy of the model on the ``meta``
  device: no memory, no arithmetic, about a second for ESC at 640x360. Attention is counted with
  the ``naive`` backend (explicit ``q @ k^T`` and ``attn @ v`` products): the same MACs as the
  fused kernels, which the counter cannot see into (FlexAttention) or counts only for some
  kernels. Element-wise work (softmax, GELU, LayerNorm, additions) is not counted, as in papers.
* **Latency**: median of ``repeats`` timed forward passes after ``warmup`` passes, with the
  device synchronised around each pass. The first pass is timed on its own (``first_call_ms``:
  compilation, autotuning and allocations included).
* **Memory**: CUDA: ``torch.cuda.max_memory_allocated`` during one forward (after resetting the
  peak), minus what was allocated before it. CPU: growth of the process's resident-set peak
  (``VmHWM``, reset through ``/proc/self/clear_refs``) over the resident set before the first
  forward; a fresh process per model keeps allocator caches of other models out of it.
"""
from __future__ import annotations

import copy
import gc
import resource
import statistics
import sys
import time
from typing import Callable, Sequence

import torch
import torch.nn as nn

from .runtime import synchronize


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: Sequence[int], on_meta: bool = True) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on an input of ``input_size``.

    Args:
        model: the network (left untouched: a copy is counted).
        input_size: ``(B, C, H, W)``.
        on_meta: count on a ``meta``-device copy (no arithmetic). ``False`` runs a real forward
            on the model's device.

    Returns:
        ``FlopCounterMode`` FLOPs // 2 (convolutions and matrix products; see the module docs).
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device('meta') if on_meta else next(model.parameters()).device
    counted = copy.deepcopy(model).to(device) if on_meta else model
    saved = {}
    for module in counted.modules():  # explicit matmuls: countable for every backend
        if getattr(module, 'attn_type', None) is not None:
            saved[module] = module.attn_type
            module.attn_type = 'naive'
    dtype = next(model.parameters()).dtype
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            counted(torch.zeros(*input_size, device=device, dtype=dtype))
    finally:
        for module, attn_type in saved.items():
            module.attn_type = attn_type
    return counter.get_total_flops() // 2


def _proc_status_kb(field: str) -> int | None:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Current resident-set size of this process (``VmRSS``; ``ru_maxrss`` where /proc is missing)."""
    kb = _proc_status_kb('VmRSS')
    return kb * 1024 if kb is not None else peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident-set size of this process (``VmHWM``, else ``getrusage().ru_maxrss``)."""
    kb = _proc_status_kb('VmHWM')
    if kb is not None:
        return kb * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == 'darwin' else maxrss * 1024  # bytes on macOS, KiB on Linux


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); returns whether that was possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def measure(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, warmup: int = 2, repeats: int = 5) -> dict:
    """Latency and peak memory of ``model(x)`` on ``x``'s device (model already there; any callable, e.g. a
    compiled network).

    CPU: the first forward pass measures memory (before the allocator holds pages of earlier
    passes) and counts as a warm-up pass. CUDA: ``warmup`` passes first (at least one: compilation,
    cuDNN autotuning), then one pass with the peak statistics reset (allocator statistics are exact
    whatever is cached). Then ``repeats`` timed passes.

    Returns:
        ``latency_ms`` (median), ``latencies_ms`` (all timed passes), ``first_call_ms`` (the first pass),
        ``mem_added_mb`` (memory added by the forward at its peak), ``mem_peak_mb`` (CUDA: peak
        allocated; CPU: peak RSS of the process), ``mem_method``.
    """
    device = x.device
    with torch.inference_mode():
        gc.collect()
        if device.type == 'cuda':
            synchronize(device)
            start = time.perf_counter()
            model(x)  # the first of the warm-up passes
            synchronize(device)
            first = time.perf_counter() - start
            for _ in range(warmup - 1):
                model(x)
            synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            model(x)
            synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
            method = 'cuda max_memory_allocated'
        else:
            exact = reset_peak_rss()
            before = rss_bytes()
            start = time.perf_counter()
            model(x)
            first = time.perf_counter() - start
            peak = peak_rss_bytes()
            method = 'VmHWM after reset' if exact else 'ru_maxrss (upper bound)'
            for _ in range(max(warmup - 1, 0)):
                model(x)
        latencies = []
        for _ in range(max(repeats, 1)):
            synchronize(device)
            start = time.perf_counter()
            model(x)
            synchronize(device)
            latencies.append((time.perf_counter() - start) * 1000)
    return {'latency_ms': statistics.median(latencies), 'latencies_ms': latencies, 'first_call_ms': first * 1000,
            'mem_added_mb': max(peak - before, 0) / 2**20, 'mem_peak_mb': peak / 2**20, 'mem_method': method}


def measure_train_step(model: nn.Module, lq: torch.Tensor, gt: torch.Tensor, warmup: int = 1, repeats: int = 3,
                       lr: float = 5e-4, amp_dtype: torch.dtype | None = None) -> dict:
    """Time and peak memory of one training iteration: forward, L1 loss, backward, AdamW step.

    The optimizer is the ESC recipe's (AdamW, betas (0.9, 0.9)). Memory is measured over the
    first step (CUDA: peak allocated minus allocated before it, exact; CPU: growth of the peak
    resident set, which includes the optimizer state created by that step).

    Args:
        model: the network in train mode on ``lq``'s device.
        lq: ``(B, 3, h, w)`` input batch.
        gt: ``(B, 3, r*h, r*w)`` target batch.
        warmup: untimed steps after the measured first one.
        repeats: timed steps (median reported).
        lr: learning rate of the optimizer.
        amp_dtype: autocast dtype (``torch.bfloat16``/``torch.float16``), ``None`` for none.

    Returns:
        ``step_ms`` (median), ``steps_ms``, ``first_step_ms`` (the first step: compilation included),
        ``mem_added_mb``, ``mem_peak_mb``, ``mem_method``.
    """
    device = lq.device
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.9))
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = torch.nn.functional.l1_loss(model(lq).float(), gt)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    gc.collect()
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        first = time.perf_counter() - start
        peak, method = torch.cuda.max_memory_allocated(device), 'cuda max_memory_allocated'
    else:
        exact = reset_peak_rss()
        before = rss_bytes()
        start = time.perf_counter()
        step()
        first = time.perf_counter() - start
        peak = peak_rss_bytes()
        method = 'VmHWM after reset' if exact else 'ru_maxrss (upper bound)'
    for _ in range(max(warmup, 0)):
        step()
    times = []
    for _ in range(max(repeats, 1)):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return {'step_ms': statistics.median(times), 'steps_ms': times, 'first_step_ms': first * 1000,
            'mem_added_mb': max(peak - before, 0) / 2**20, 'mem_peak_mb': peak / 2**20, 'mem_method': method}
