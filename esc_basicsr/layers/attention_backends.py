"""The one place that decides how windowed self-attention with a relative position bias runs.

Backends (``attn_type``), case-insensitive so the authors' ``Naive/SDPA/Flex`` spellings work:

* ``naive``: explicit ``softmax(q k^T / sqrt(d) + bias) v``, processed in chunks of windows so the
  score matrix of the whole image is never held at once in inference. Reference numerics.
* ``sdpa``: :func:`torch.nn.functional.scaled_dot_product_attention` with the bias as a float
  mask, letting PyTorch pick its fused kernel for the device (runs on CPU and GPU).
* ``flex``: FlexAttention with the relative position bias computed inside the fused kernel as a
  ``score_mod`` (the paper's flash-style path). Compiled lazily on first CUDA use; on the CPU it
  runs FlexAttention's unfused eager reference (correct, slow).
  FlexAttention has no backward on the CPU (nor on MPS): there, while autograd records
  (training), ``flex`` runs as ``sdpa`` (the same attention; logged once), so that option files
  written for GPUs (the authors' ``attn_type: Flex``) also train on a CPU.
* ``auto`` (default): resolved per call from the input's device and the layer's shapes: ``flex`` on
  CUDA when available and able to run them (:func:`flex_supports`), else ``sdpa`` (logged once per
  reason). ``ESC_BASICSR_ATTN=naive|sdpa|flex`` overrides what ``auto`` picks.

On CUDA ``flex`` runs compiled, one compiled entry per variant (:class:`CompiledFlex`): dynamo's
recompile limit, shared by every compiled ``flex_attention`` of a process, would otherwise send the
9th variant (dtype, grad mode, window, heads) to FlexAttention's unfused path without a word. Inside a
model compiled as a whole (``torch.compile(model)``, the tools' ``--compile``) the model's graph takes
``flex_attention`` in instead. ``ESC_BASICSR_FLEX_KERNEL_OPTIONS`` (:func:`~.config.flex_kernel_options`)
gives every call FlexAttention's ``kernel_options`` (block sizes, warps, stages of the compiled kernel).

Attention whose bias is given by low-rank positional factors concatenated to q and k (RIB /
FlashBias, :mod:`esc_basicsr.layers.rib_attention`) goes through the same resolver:
:func:`~.low_rank_backends.resolve_low_rank_backend` and :func:`~.low_rank_backends.low_rank_attention`.

Nothing is compiled or imported eagerly: importing this module and constructing models is cheap.
"""
from __future__ import annotations

import builtins
import collections
import contextlib
import functools
import logging
import re
import types
from typing import Any, Callable, NamedTuple

import torch
import torch.nn.functional as F

from . import cpu_bias_attention
from .config import ATTN_ENV, ATTN_TYPES, attn_override, flex_kernel_options
from .export_state import is_exporting

# devices whose FlexAttention has a forward but no backward (torch raises NotImplementedError)
FLEX_NO_BACKWARD_DEVICES = frozenset({'cpu', 'mps'})
# what stands in for flex there while training: the same attention, fused kernels with autograd
FLEX_TRAINING_FALLBACK = 'sdpa'
logger = logging.getLogger('basicsr')
_logged_fallbacks: set[str] = set()  # a plain set, not an lru_cache (export tooling clears those)
# What the flex path ran, per attention call made outside a compiled graph: 'compiled' (a per-variant
# compiled entry, inductor's fused kernel on CUDA), 'eager' (FlexAttention's unfused eager path: a device
# without compiled flex, or a call dynamo ran uncompiled), 'sdpa_fallback' (a variant dynamo gave up on,
# run as sdpa). Lets tests and tools check that the fused kernel really ran (flex requested is not flex run).
flex_counts: collections.Counter[str] = collections.Counter()
# Upper bound of score-matrix elements the naive backend materialises per chunk (64 MB fp32).
NAIVE_CHUNK_ELEMS = 16 * 1024 * 1024


def normalize_attn_type(attn_type: str) -> str:
    """Validate and lower-case an ``attn_type`` option (``'Flex'`` -> ``'flex'``)."""
    if not isinstance(attn_type, str) or attn_type.lower() not in ATTN_TYPES:
        raise ValueError(f'attn_type must be one of {ATTN_TYPES} (case-insensitive), got {attn_type!r}')
    return attn_type.lower()


@functools.lru_cache(maxsize=None)
def flex_available() -> bool:
    """Whether ``torch.nn.attention.flex_attention`` can be imported in this PyTorch."""
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except Exception:  # pragma: no cover - depends on the installed torch
        return False
    return True


# --------------------------------------------------------------------- what compiled FlexAttention can run
# Devices where ``flex`` runs torch.compile'd (inductor's Triton kernel); elsewhere it runs
# FlexAttention's eager reference, which takes any head dim and dtype.
FLEX_COMPILED_DEVICES = frozenset({'cuda'})
# inductor (torch/_inductor/kernel/flex/flex_attention.py, lowering of flex_attention): "NYI: embedding
# dimension of the query, key, and value must be at least 16" (Triton's tl.dot needs K >= 16); seen on
# an H200 with PyTorch 2.11. Head dims that are not powers of two are padded by the kernel (accepted).
FLEX_MIN_HEAD_DIM = 16
# the dtypes PyTorch's own FlexAttention tests compile on CUDA (float64 is only their eager reference)
FLEX_COMPILED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def flex_supports(head_dim: int | None, dtype: torch.dtype | None, device_type: str) -> str | None:
    """Why ``flex`` cannot run an attention of these shapes on ``device_type``, or ``None`` if it can.

    A pure function of its arguments (tested without a GPU). ``None`` for ``head_dim``/``dtype``
    means unknown: not checked.

    Args:
        head_dim: channels per head of q, k and v.
        dtype: dtype of q, k and v (under autocast: the autocast dtype, see :func:`attention_dtype`).
        device_type: ``'cuda'``, ``'cpu'``, ...

    Returns:
        ``None``, or the reason in words (it names the head dim or dtype).
    """
    if device_type not in FLEX_COMPILED_DEVICES:
        return None
    if head_dim is not None and head_dim < FLEX_MIN_HEAD_DIM:
        return (f'head dim {head_dim} (channels / heads) is below {FLEX_MIN_HEAD_DIM}, the smallest that '
                f'FlexAttention\'s compiled kernel accepts on {device_type.upper()} (PyTorch\'s inductor refuses it)')
    if dtype is not None and dtype not in FLEX_COMPILED_DTYPES:
        names = ', '.join(str(d).replace('torch.', '') for d in FLEX_COMPILED_DTYPES)
        return (f'{str(dtype).replace("torch.", "")} is not a dtype FlexAttention\'s compiled kernel is built and '
                f'tested for on {device_type.upper()} ({names})')
    return None


def attention_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of q, k and v projected from ``x``: autocast's for ``x``'s device when it is on
    (autocast does not cast float64), else ``x.dtype``."""
    autocast = _autocast_dtype(x.device.type)
    if autocast is not None and x.is_floating_point() and x.dtype != torch.float64:
        return autocast
    return x.dtype


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """Autocast's dtype on ``device_type``; ``None`` when off (or a device without autocast, e.g. meta)."""
    try:
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    except RuntimeError:
        return None


def resolve_backend(attn_type: str, device: torch.device, requires_grad: bool | None = None, *,
                    head_dim: int | None = None, dtype: torch.dtype | None = None) -> str:
    """Map a normalised ``attn_type`` to the concrete backend for ``device`` and the layer's shapes.

    Args:
        attn_type: ``auto`` | ``naive`` | ``sdpa`` | ``flex`` (see :func:`normalize_attn_type`).
        device: where the attention runs.
        requires_grad: whether a backward pass will go through the attention. Default (``None``):
            whether autograd is recording (:func:`torch.is_grad_enabled`), i.e. training.
        head_dim: channels per head (``None``: unknown, not checked).
        dtype: dtype of q, k and v (``None``: unknown, not checked).

    Returns:
        ``naive``, ``sdpa`` or ``flex``. ``auto`` gives ``flex`` on CUDA only where
        :func:`flex_supports` allows it, else ``sdpa`` (logged once per reason). ``flex`` with
        ``requires_grad`` on a device whose FlexAttention has no backward (CPU, MPS) gives ``sdpa``,
        logged once per device type.

    Raises:
        RuntimeError: ``flex`` is requested but this PyTorch has no FlexAttention.
        ValueError: ``flex`` is requested (``attn_type`` or ``ESC_BASICSR_ATTN``) for shapes its
            compiled kernel cannot run (before anything is compiled); the message says why.
    """
    if attn_type == 'auto':
        override = attn_override()
        if override:
            attn_type = normalize_attn_type(override)
            if attn_type != 'auto':
                return _resolve_requested(attn_type, device, requires_grad, head_dim, dtype,
                                          f'{ATTN_ENV}={override}')
        if device.type != 'cuda' or not flex_available():
            return 'sdpa'
        reason = flex_supports(head_dim, dtype, device.type)
        if reason is not None:
            _log_once(reason, f'esc_basicsr: attn_type "auto" runs "sdpa" for this attention: {reason}.',
                      logging.INFO)
            return 'sdpa'
        return 'flex'
    return _resolve_requested(attn_type, device, requires_grad, head_dim, dtype, f'attn_type "{attn_type}"')


def _resolve_requested(attn_type: str, device: torch.device, requires_grad: bool | None, head_dim: int | None,
                       dtype: torch.dtype | None, origin: str) -> str:
    """An explicitly requested backend (``origin``: where the request came from, for messages)."""
    if attn_type != 'flex':
        return attn_type
    if not flex_available():
        raise RuntimeError(f'{origin} needs torch.nn.attention.flex_attention (PyTorch >= 2.5); '
                           'use "sdpa" or "auto".')
    reason = flex_supports(head_dim, dtype, device.type)
    if reason is not None:
        raise ValueError(f'{origin} cannot run this attention: {reason}. Use attn_type "auto" (it runs "sdpa" '
                         'where flex cannot) or "sdpa".')
    if device.type in FLEX_NO_BACKWARD_DEVICES:
        if requires_grad is None:
            requires_grad = torch.is_grad_enabled()
        if requires_grad:
            _log_once(device.type, f'esc_basicsr: attn_type "flex": FlexAttention has no backward on '
                                   f'{device.type.upper()}, so attention with gradients (training) runs as '
                                   f'"{FLEX_TRAINING_FALLBACK}" there (the same attention); inference without '
                                   'gradients keeps "flex".', logging.INFO)
            return FLEX_TRAINING_FALLBACK
    return 'flex'


def _log_once(key: str, message: str, level: int) -> None:
    if key in _logged_fallbacks:
        return
    _logged_fallbacks.add(key)
    logger.log(level, message)


@functools.lru_cache(maxsize=8)
def relative_position_index(window_size: int, device: torch.device) -> torch.Tensor:
    """``(N, N)`` index into a ``(2w-1)^2`` bias table, ``N = w*w`` (row-major window tokens).

    Index of (query, key) = ``(key_row - query_row + w - 1) * (2w - 1) + (key_col - query_col + w - 1)``,
    as in the reference. Built with tensor ops (milliseconds), cached per window size and device, as a
    normal tensor even when first asked for under ``torch.inference_mode`` (an inference tensor in the
    cache would make every later training step fail: "Inference tensors cannot be saved for backward").
    """
    with torch.inference_mode(False):
        pos = torch.arange(window_size * window_size, device=device)
        row, col = pos // window_size, pos % window_size
        rel_row = row[None, :] - row[:, None] + window_size - 1
        rel_col = col[None, :] - col[:, None] + window_size - 1
        return rel_row * (2 * window_size - 1) + rel_col


def relative_position_bias(table: torch.Tensor, window_size: int) -> torch.Tensor:
    """Expand a ``(heads, (2w-1)^2)`` table to the ``(heads, N, N)`` bias matrix."""
    return table[:, relative_position_index(window_size, table.device)]


def _naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    scale = q.shape[-1] ** -0.5
    n_win, heads, n = q.shape[:3]
    # one chunk while training (autograd keeps every score anyway) or exporting (no Python loop in the graph)
    whole = torch.is_grad_enabled() or is_exporting()
    chunk = n_win if whole else max(1, NAIVE_CHUNK_ELEMS // (heads * n * n))
    outs = []
    for s in range(0, n_win, chunk):
        score = (q[s:s + chunk] * scale) @ k[s:s + chunk].transpose(-2, -1) + bias
        outs.append(score.softmax(dim=-1) @ v[s:s + chunk])
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    if bias.requires_grad and torch.is_grad_enabled() and cpu_bias_attention.available(q) and not is_exporting():
        # training on a CPU: PyTorch's fused kernel refuses a mask that needs a gradient and the
        # math path keeps every probability matrix; fused forward + recomputing backward instead
        return cpu_bias_attention.biased_attention(q, k, v, bias)
    # A 4-D (1, heads, N, N) mask keeps PyTorch on its fused kernels (on the CPU a 3-D mask falls
    # back to the math path, which materialises every score matrix: 2.2 GB vs 22 MB at 176x320).
    mask = bias.to(q.dtype).unsqueeze(0)
    if torch.compiler.is_compiling():  # a graph broadcasting 1 to the windows would not serve 1 window
        mask = mask.expand(q.shape[0], -1, -1, -1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


# What dynamo's shape environment is told while our compiled entries trace (PyTorch's private
# torch.fx.experimental._config), and why; a name this PyTorch lacks is skipped.
ONE_GRAPH_SHAPE_CONFIG = {
    # sizes 0 and 1 are specialised even with dynamic=True: an image of one window, or a batch of one,
    # would compile a graph of its own
    'backed_size_oblivious': True,
    # duck sizing gives sizes that are equal in the first call one symbol, and the graph then guards on
    # their equality: a square first image, a window count equal to the heads (4) or the head dim (16),
    # a batch equal to the 3 colour channels; each later size breaking the tie compiled again
    # ("tensor 'k' size mismatch at index 0. expected 4, actual 1"; "x.size()[3] == x.size()[2]  # duck
    # sizing added this equality")
    'use_duck_shape': False,
}


def one_graph_shapes() -> contextlib.AbstractContextManager:
    """The shape settings (:data:`ONE_GRAPH_SHAPE_CONFIG`) under which one compiled graph serves every image
    size, whatever the first. Scoped to our own compiled calls (:class:`CompiledFlex`, the tools'
    ``--compile``): the user's other ``torch.compile`` calls keep PyTorch's defaults. Dynamo reads them
    when it traces a new graph, which happens inside these calls."""
    try:
        import torch.fx.experimental._config as fx_config
    except ImportError:  # pragma: no cover - other PyTorch versions: the extra compiles are the only cost
        return contextlib.nullcontext()
    known = {k: v for k, v in ONE_GRAPH_SHAPE_CONFIG.items() if hasattr(fx_config, k)}
    return fx_config.patch(**known) if known else contextlib.nullcontext()


class FlexVariant(NamedTuple):
    """What makes dynamo compile FlexAttention anew: one compiled entry each (:class:`CompiledFlex`).

    Everything else (batch, number of windows, which layer's bias table) is a dynamic input of the
    same graph.
    """

    device: str  # 'cuda:0'
    dtype: torch.dtype  # of q, k, v and the bias table
    grad_mode: bool  # torch.is_grad_enabled()
    requires_grad: bool  # whether q or the bias table needs a gradient
    autocast: torch.dtype | None  # autocast's dtype on that device, None when off
    heads: int
    head_dim: int
    window: int
    score_mod: str = 'relative_position_bias'
    kernel_options: tuple[tuple[str, Any], ...] = ()  # FlexAttention's kernel_options, sorted pairs

    def describe(self) -> str:
        """The layer and mode in words, for messages."""
        dtype = str(self.dtype).replace('torch.', '')
        mode = 'with gradients (training)' if self.grad_mode and self.requires_grad else 'without gradients'
        return (f'window attention ({self.score_mod.replace("_", " ")}), {self.window}x{self.window} windows, '
                f'{self.heads} heads of dim {self.head_dim}, {dtype} {mode} on {self.device}')

    def code_name(self) -> str:
        """A Python identifier naming the variant (its compiled code's name in dynamo's logs)."""
        dtype = str(self.dtype).replace('torch.', '')
        options = ''.join(f'_{k}{v}' for k, v in self.kernel_options)
        name = (f'flex_attention__{self.score_mod}_w{self.window}_h{self.heads}_d{self.head_dim}_{dtype}_'
                f'{"grad" if self.requires_grad else "nograd"}{"" if self.grad_mode else "_nogradmode"}_'
                f'{self.device}{options}')
        return re.sub(r'\W', '_', name)


def _flex_entry(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, score_mod: Callable) -> torch.Tensor:
    """The code each :class:`FlexVariant` compiles a copy of (``flex_attention`` and the variant's
    ``kernel_options`` from its globals)."""
    return flex_attention(q, k, v, score_mod=score_mod, kernel_options=kernel_options)  # noqa: F821 - copy's globals


class CompiledFlex:
    """``torch.compile(flex_attention, dynamic=True)``, one compiled entry per :class:`FlexVariant`.

    Dynamo keeps its compiled graphs per *code object* and, after ``torch._dynamo.config.recompile_limit``
    (8) versions of one code, runs the plain function instead: for FlexAttention its unfused eager
    path, which materialises every score matrix (~10x slower, several times the memory). Every
    compiled wrapper of ``flex_attention`` shares its one code, and each dtype, grad mode, window or
    head layout is a new version, so a process running a few models in a few precisions would reach
    it without a word. Here each variant calls ``flex_attention`` from a code object of its own (a
    copy of :func:`_flex_entry` named after the variant): each has its own cache, holding one graph
    with dynamic shapes for every window count and batch whatever the first (:func:`one_graph_shapes`,
    set during these calls only), and no global compiler setting changes.

    Should dynamo still stop compiling a variant (a recompile cause not in the variant, the limit
    lowered by the user, ``suppress_errors``), that variant is logged once, in words, and
    :meth:`usable` turns false: callers then run it as ``sdpa`` (a fused kernel, the same attention).

    Args:
        compile_kwargs: passed to :func:`torch.compile` besides ``dynamic=True`` (tests: ``backend``).
    """

    def __init__(self, **compile_kwargs) -> None:
        self.compile_kwargs = dict(dynamic=True, **compile_kwargs)
        self._compiled: dict[FlexVariant, tuple[Callable, types.CodeType]] = {}
        self._given_up: set[FlexVariant] = set()

    def usable(self, variant: FlexVariant) -> bool:
        """False once dynamo stopped compiling ``variant`` (run it as ``sdpa``)."""
        return variant not in self._given_up

    def codes(self) -> dict[FlexVariant, types.CodeType]:
        """The code object compiled for each variant met so far (its dynamo cache holds its graphs)."""
        return {variant: code for variant, (_, code) in self._compiled.items()}

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, score_mod: Callable,
                 variant: FlexVariant) -> torch.Tensor:
        """``flex_attention(q, k, v, score_mod=score_mod)``, compiled for ``variant``."""
        from torch.nn.attention.flex_attention import flex_attention

        options = dict(variant.kernel_options) or None
        if torch.compiler.is_compiling():  # inside a compiled model: its graph takes flex_attention in
            return flex_attention(q, k, v, score_mod=score_mod, kernel_options=options)
        if variant not in self._compiled:
            name = variant.code_name()
            code = _flex_entry.__code__.replace(co_name=name)
            if hasattr(code, 'co_qualname'):
                code = code.replace(co_qualname=name)
            entry = types.FunctionType(code, {'flex_attention': flex_attention, 'kernel_options': options,
                                              '__builtins__': builtins, '__name__': __name__}, name)
            self._compiled[variant] = (torch.compile(entry, **self.compile_kwargs), code)
        compiled, code = self._compiled[variant]
        attempts, compiled_ok = _frame_counts()
        with one_graph_shapes():
            out = compiled(q, k, v, score_mod)
        attempts_after, compiled_ok_after = _frame_counts()
        if attempts_after - attempts > compiled_ok_after - compiled_ok:  # dynamo ran this call uncompiled
            self._give_up(variant, code)
            flex_counts['eager'] += 1
        else:
            flex_counts['compiled'] += 1
        return out

    def _give_up(self, variant: FlexVariant, code: types.CodeType) -> None:
        import torch._dynamo

        self._given_up.add(variant)
        versions = _cache_entries(code)
        limit = torch._dynamo.config.recompile_limit
        if versions is not None and versions >= limit:
            why = (f'it reached torch._dynamo.config.recompile_limit ({limit}) with {versions} compiled versions of '
                   'this one variant (the torch._dynamo warning above names the guard that kept failing)')
        else:
            why = 'dynamo could not compile it and ran it uncompiled (torch._dynamo.config.suppress_errors?)'
        logger.warning(f'esc_basicsr: torch.compile stopped compiling FlexAttention for {variant.describe()}: '
                       f'{why}. PyTorch then runs FlexAttention\'s unfused path (every score matrix in memory), '
                       'so this attention runs as "sdpa" from now on (the same attention, a fused kernel).')


def _frame_counts() -> tuple[int, int]:
    """Frames dynamo tried to compile and frames it compiled, so far in this process."""
    from torch._dynamo.utils import counters

    frames = counters['frames']
    return frames['total'], frames['ok']


def _cache_entries(code: types.CodeType) -> int | None:
    """Compiled versions dynamo holds for ``code`` (``None`` where this PyTorch does not say)."""
    try:
        from torch._dynamo.eval_frame import _debug_get_cache_entry_list
        return len(_debug_get_cache_entry_list(code))
    except (ImportError, AttributeError, TypeError, RuntimeError):  # pragma: no cover - private API
        return None


def compile_flex(**compile_kwargs) -> CompiledFlex:
    """A :class:`CompiledFlex` (``compile_kwargs`` for :func:`torch.compile`, e.g. a test's ``backend``)."""
    return CompiledFlex(**compile_kwargs)


_compiled_flex: CompiledFlex | None = None


def _flex_function(device: torch.device) -> CompiledFlex | None:
    """The compiled FlexAttention for ``device``; ``None``: run the eager one (not CUDA)."""
    global _compiled_flex
    if device.type not in FLEX_COMPILED_DEVICES:
        return None
    if _compiled_flex is None:
        _compiled_flex = compile_flex()
    return _compiled_flex


def _flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor, window_size: int) -> torch.Tensor:
    w = window_size
    table = table.to(q.dtype)

    def score_mod(score, b, h, q_idx, kv_idx):
        rel_row = kv_idx // w - q_idx // w + w - 1
        rel_col = kv_idx % w - q_idx % w + w - 1
        return score + table[h, rel_row * (2 * w - 1) + rel_col]

    options = flex_kernel_options()
    compiled = _flex_function(q.device)
    if compiled is None and torch.compiler.is_compiling():
        # a network compiled as a whole on a device without compiled flex (the CPU) runs sdpa, the same
        # attention: PyTorch's CPU inductor fails to lower flex_attention there (LoweringException in its
        # CPU flex template, PyTorch 2.14). Not logged here (a logging call would break the graph). The tools
        # refuse --compile on a CPU; this serves a user's own torch.compile of the network there.
        return _sdpa(q, k, v, relative_position_bias(table, w))
    if compiled is None:  # FlexAttention's eager path: the options change no value
        from torch.nn.attention.flex_attention import flex_attention
        flex_counts['eager'] += 1
        return flex_attention(q, k, v, score_mod=score_mod, kernel_options=dict(options) or None)
    variant = FlexVariant(
        device=str(q.device), dtype=q.dtype, grad_mode=torch.is_grad_enabled(),
        requires_grad=q.requires_grad or table.requires_grad,
        autocast=_autocast_dtype(q.device.type),
        heads=q.shape[1], head_dim=q.shape[-1], window=w, kernel_options=options)
    if not compiled.usable(variant):
        if not torch.compiler.is_compiling():
            flex_counts['sdpa_fallback'] += 1
        return _sdpa(q, k, v, relative_position_bias(table, w))
    return compiled(q, k, v, score_mod, variant)


def windowed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor,
                       window_size: int, backend: str, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head attention inside windows with a relative position bias.

    Args:
        q, k, v: ``(num_windows * B, heads, N, head_dim)`` with ``N = window_size ** 2``.
        table: ``(heads, (2 * window_size - 1) ** 2)`` relative position bias table.
        window_size: window side length w.
        backend: a resolved backend name (``naive``, ``sdpa`` or ``flex``).
        bias: ``relative_position_bias(table, window_size)`` if the caller already expanded it
            (several calls with the same table, e.g. strips of one image); ignored by ``flex``.

    Returns:
        ``(num_windows * B, heads, N, head_dim)``.
    """
    if backend == 'flex':
        return _flex(q, k, v, table, window_size)
    if bias is None:
        bias = relative_position_bias(table, window_size)
    if backend == 'sdpa':
        return _sdpa(q, k, v, bias)
    if backend == 'naive':
        return _naive(q, k, v, bias.to(q.dtype))
    raise ValueError(f'unknown attention backend {backend!r}')
