"""ESC's relative position bias as low-rank factors, so that its window attention runs on plain fused kernels.

A deployment conversion (the authors' FlashBias direction, applied to a trained ESC instead of training
factors). The bias of a :class:`~.window_attention.WindowAttention`, ``B_h = table_h[index]`` ``(heads, N, N)``
with ``N = w*w``, needs a masked or ``score_mod`` kernel. Its truncated SVD per head,
``B_h ~ U_h[:, :R] diag(S_h[:R]) V_h[:, :R]^T``, is written as the factors of
:class:`~.rib_attention.FlashBiasAttention`: ``pos_q = U sqrt(S) R^(1/4)``, ``pos_k = V sqrt(S) R^(1/4)``, so
that its bias ``pos_q pos_k^T / sqrt(R)`` is the truncated SVD. The attention is then
``softmax([q/sqrt(D), pos_q/sqrt(R)] . [k, pos_k]^T) v``, plain attention of width ``D + R`` that SDPA's
flash / cuDNN / memory-efficient kernels run (:func:`~.low_rank_backends.low_rank_attention`).

Rank: the smallest ``R`` (one per layer, for all its heads) whose float32 factors reproduce every bias entry
within ``tolerance`` (largest absolute error), or a given ``rank``.

Error bound: scores off by at most ``eps`` per entry change each row of the softmax probabilities by at most
``exp(2 eps) - 1`` in L1 norm (each probability by a factor within ``exp(+-2 eps)``), so each channel of the
attention output moves by at most ``(exp(2 eps) - 1) * max|v|`` of that channel (:func:`attention_error_bound`),
plus float32 rounding. The whole network's change is not bounded by this module: it depends on the layers after
each attention (reported by the tools beside the rank).

Whether it pays depends on ``R``: smooth (trained-like) tables need a few dozen, a random table nearly ``N``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from .attention_backends import relative_position_bias
from .rib_attention import FlashBiasAttention
from .window_attention import WindowAttention


@dataclass(frozen=True)
class BiasFactors:
    """Low-rank factors of one layer's bias (:func:`factorize_bias`).

    Attributes:
        pos_q, pos_k: ``(heads, N, R)`` float32 on the bias's device, ``pos_q @ pos_k^T / sqrt(R)`` ~ the bias.
        rank: R.
        max_error: largest absolute difference between that product (from the float32 factors, computed in
            float64) and the bias, over every head and entry.
    """

    pos_q: torch.Tensor
    pos_k: torch.Tensor
    rank: int
    max_error: float


def attention_error_bound(tolerance: float, v_max: float | torch.Tensor) -> float | torch.Tensor:
    """Largest change of an attention output channel when every score moves by at most ``tolerance``:
    ``(exp(2 * tolerance) - 1) * v_max`` (``v_max``: the largest ``|v|`` of that channel)."""
    return math.expm1(2 * tolerance) * v_max


def _product_error(pos_q: torch.Tensor, pos_k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per head, ``max |pos_q pos_k^T / sqrt(R) - bias|`` computed in float64 ``(heads,)``."""
    r = pos_q.shape[-1]
    product = pos_q.double() @ pos_k.double().transpose(-2, -1) / math.sqrt(r)
    return (product - bias.double()).abs().amax(dim=(-2, -1))


def _factors(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 FlashBias factors of the rank-``rank`` truncation of ``u diag(s) vh`` (per head)."""
    root = s[..., :rank].sqrt() * rank ** 0.25
    pos_q = u[..., :rank] * root.unsqueeze(-2)
    pos_k = vh[..., :rank, :].transpose(-2, -1) * root.unsqueeze(-2)
    return pos_q.float().contiguous(), pos_k.float().contiguous()


def _smallest_rank(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, tolerance: float) -> int:
    """Smallest r with ``max |U_r S_r V_r^T - B| <= tolerance`` for one head (float64 truncation error).

    Bisection between two bounds of the singular values: the largest entry of the error is at least its
    Frobenius norm / N and at most its spectral norm ``s[r]``.
    """
    n = s.shape[0]
    tail = torch.cat([s.flip(0).square().cumsum(0).flip(0), s.new_zeros(1)])  # tail[r] = sum_{i >= r} s_i^2
    lo = int((tail.sqrt() / n > tolerance).sum())  # below lo: the Frobenius bound rules it out
    hi = max(int((s > tolerance).sum()), lo)  # from hi on, the spectral bound guarantees it

    def error(r: int) -> float:  # the truncation error from the discarded part (cheaper for large r)
        if r >= n:
            return 0.0
        return (u[:, r:] * s[r:]).matmul(vh[r:]).abs().max().item()

    while lo < hi:
        mid = (lo + hi) // 2
        if error(mid) <= tolerance:
            hi = mid
        else:
            lo = mid + 1
    return lo


def factorize_bias(bias: torch.Tensor, tolerance: float | None = None, rank: int | None = None) -> BiasFactors:
    """FlashBias factors of a ``(heads, N, N)`` bias, by truncated SVD per head.

    Args:
        bias: ``(heads, N, N)`` (any float dtype; factorised in float64).
        tolerance: largest absolute error allowed for any bias entry; the rank is the smallest that meets it
            with the float32 factors.
        rank: the rank to use instead (capped at N). Exactly one of ``tolerance`` and ``rank``.

    Returns:
        :class:`BiasFactors` (rank at least 1).

    Raises:
        ValueError: neither or both given, a negative tolerance or a rank < 1, or a tolerance that float32
            factors cannot meet even at full rank (the error is then float32 rounding).
    """
    if (tolerance is None) == (rank is None):
        raise ValueError('give exactly one of tolerance and rank')
    if tolerance is not None and not tolerance >= 0:
        raise ValueError(f'tolerance must be >= 0, got {tolerance!r}')
    if rank is not None and (int(rank) != rank or rank < 1):
        raise ValueError(f'rank must be an integer >= 1, got {rank!r}')
    b = bias.detach().to(torch.float64)  # on the bias's device (a GPU factorises a 1024x1024 bias faster)
    n = b.shape[-1]
    u, s, vh = torch.linalg.svd(b)
    if rank is not None:
        r = min(int(rank), n)
    else:
        r = max(1, max(_smallest_rank(u[h], s[h], vh[h], tolerance) for h in range(b.shape[0])))
    while True:  # float32 factors: verify, one more dimension where rounding tips a head over
        pos_q, pos_k = _factors(u, s, vh, r)
        err = _product_error(pos_q, pos_k, b).max().item()
        if rank is not None or err <= tolerance:
            return BiasFactors(pos_q, pos_k, r, err)
        if r >= n:
            raise ValueError(f'tolerance {tolerance:g} is below what float32 factors reproduce even at full rank '
                             f'{n} (largest error {err:.2g})')
        r += 1


def low_rank_window_attention(attn: WindowAttention, tolerance: float | None = None,
                              rank: int | None = None) -> tuple[FlashBiasAttention, BiasFactors]:
    """A :class:`~.rib_attention.FlashBiasAttention` computing ``attn`` with its bias as low-rank factors.

    It shares ``attn``'s ``to_qkv`` and ``to_out`` (and keeps its window, heads and backend choice); its
    ``flashbias_q``/``flashbias_k`` hold the factors (:func:`factorize_bias` of the layer's bias, with
    ``tolerance`` or ``rank``).
    """
    bias = relative_position_bias(attn.relative_position_bias.detach(), attn.window_size)
    factors = factorize_bias(bias, tolerance=tolerance, rank=rank)
    new = FlashBiasAttention(attn.dim, attn.window_size, attn.num_heads, rank=factors.rank, gate_type=None,
                             attn_type=attn.attn_type)
    new.to_qkv, new.to_out = attn.to_qkv, attn.to_out
    param = attn.relative_position_bias
    with torch.no_grad():
        new.flashbias_q = nn.Parameter(factors.pos_q.to(param.device, param.dtype), requires_grad=False)
        new.flashbias_k = nn.Parameter(factors.pos_k.to(param.device, param.dtype), requires_grad=False)
    new.train(attn.training)
    return new, factors


@dataclass(frozen=True)
class ConvertedLayer:
    """What :func:`convert_low_rank_bias` did to one layer: its name, rank and largest bias error."""

    name: str
    rank: int
    max_error: float
    tokens: int  # N = w*w (the rank of an exact factorisation)


def convert_low_rank_bias(model: nn.Module, tolerance: float | None = None,
                          rank: int | None = None) -> list[ConvertedLayer]:
    """Replace, in place, every :class:`~.window_attention.WindowAttention` of ``model`` by its low-rank form
    (:func:`low_rank_window_attention`, with ``tolerance`` or ``rank``).

    For inference and export of a trained model (the factors are fixed, not trained). The converted model's
    state_dict has ``flashbias_q``/``flashbias_k`` instead of ``relative_position_bias``.

    Returns:
        One :class:`ConvertedLayer` per converted layer (empty: nothing to convert).
    """
    found = [(name, module) for name, module in model.named_modules() if isinstance(module, WindowAttention)]
    report = []
    for name, module in found:
        new, factors = low_rank_window_attention(module, tolerance=tolerance, rank=rank)
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        if parent is model and not child:  # the model itself is a WindowAttention
            raise ValueError('convert_low_rank_bias needs a network containing WindowAttention layers, '
                             'not a WindowAttention itself: use low_rank_window_attention')
        setattr(parent, child, new)
        report.append(ConvertedLayer(name, factors.rank, factors.max_error, module.window_size ** 2))
    return report


def parse_low_rank_spec(text: str) -> dict[str, float | int]:
    """``'1e-3'`` or ``'tol:1e-3'`` -> ``{'tolerance': 0.001}``; ``'rank:32'`` -> ``{'rank': 32}``
    (the tools' ``--low-rank-bias``). Raises ``ValueError`` with the accepted forms."""
    kind, sep, value = text.strip().partition(':')
    if not sep:
        kind, value = 'tol', kind
    try:
        if kind.lower() in ('tol', 'tolerance'):
            tol = float(value)
            if not (math.isfinite(tol) and tol >= 0):
                raise ValueError
            return {'tolerance': tol}
        if kind.lower() == 'rank':
            r = int(value)
            if r < 1:
                raise ValueError
            return {'rank': r}
    except ValueError:
        pass
    raise ValueError(f'low-rank bias {text!r}: expected a tolerance (e.g. 1e-3 or tol:1e-3, >= 0) or a rank '
                     '(rank:32, >= 1)')


def trained_like_table(num_heads: int, window_size: int, seed: int = 0) -> torch.Tensor:
    """A smooth stand-in for a trained relative position bias table, ``(heads, (2w-1)^2)`` float32.

    No trained ESC checkpoint is at hand here, so ranks are estimated on tables shaped like trained ones:
    per head, a sum of three Gaussians of the offset ``(dr, dc)`` with widths of 2, 6 and 16 pixels and
    amplitudes ``2 a, a', a''/2`` (``a``'s drawn N(0, 1) from ``seed``). The rank a real checkpoint needs is
    unknown until one is converted.
    """
    g = torch.Generator().manual_seed(seed)
    d = torch.arange(1 - window_size, window_size, dtype=torch.float64)
    dist2 = (d[:, None] ** 2 + d[None, :] ** 2).reshape(-1)
    widths = torch.tensor([2.0, 6.0, 16.0], dtype=torch.float64)
    amplitudes = torch.randn(num_heads, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0, 0.5],
                                                                                           dtype=torch.float64)
    gaussians = torch.exp(-dist2[None, :] / (2 * widths[:, None] ** 2))  # (3, (2w-1)^2)
    return (amplitudes @ gaussians).float()
