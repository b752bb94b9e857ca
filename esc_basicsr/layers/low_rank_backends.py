"""Attention with a bias given by low-rank positional factors concatenated to q and k (RIB / FlashBias
attention, the authors' SST code), through the one backend resolver.

softmax(q k^T / sqrt(D) + pos_q pos_k^T / sqrt(R)) v == softmax(q' k'^T) v with
q' = [q / sqrt(D), pos_q / sqrt(R)] and k' = [k, pos_k]: the bias is part of the scores, so the attention
is plain (unmasked) attention of width D + R that every fused kernel runs. The backends:

* ``naive``: plain matmuls on q'/k' (exact float32 reference), chunked over windows and heads in
  inference; the one used while tracing or exporting (ONNX), whatever was asked.
* ``sdpa``: ``scaled_dot_product_attention(q', k', v', scale=1)`` without a mask: flash / cuDNN /
  memory-efficient kernels on CUDA in fp16/bf16, the CPU's fused (flash) kernel, forward and backward.
  v is zero-padded to the width of q'/k' (v' = [v, 0], output cropped back to D) because the flash
  kernels need equal head dims (without it the CPU falls back to its math path, which materialises
  every score matrix); on CUDA all three are further zero-padded to a multiple of 8, as the flash
  kernels want. Zero columns change neither the scores nor the first D output channels.
* ``flex`` runs as ``sdpa``: with the bias inside q'k'^T there is no ``score_mod`` left for
  FlexAttention to fuse, and the SDPA kernels do the same work without compilation or its cache.
* ``auto``: :func:`~.attention_backends.resolve_backend`'s choice (``ESC_BASICSR_ATTN`` included),
  ``flex`` read as ``sdpa``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import attention_backends
from .export_state import is_exporting

LOW_RANK_BACKENDS = ('naive', 'sdpa')


def _exporting_graph() -> bool:
    """Tracing (TorchScript), ONNX export or torch.export; not plain ``torch.compile``, which keeps SDPA."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, 'compiler', None)
    return bool(compiler is not None and getattr(compiler, 'is_exporting', lambda: False)())


def resolve_low_rank_backend(attn_type: str, device: torch.device) -> str:
    """The backend of :func:`low_rank_attention` for a normalised ``attn_type`` on ``device``.

    :func:`~.attention_backends.resolve_backend` decides (``auto``, ``ESC_BASICSR_ATTN``, availability); its
    ``flex`` is run as ``sdpa`` (see above), and a graph being exported gets ``naive``.

    Returns:
        ``naive`` or ``sdpa``.
    """
    if _exporting_graph():
        return 'naive'
    if attn_type == 'flex':
        return 'sdpa'
    # requires_grad=False: the flex-without-backward fallback (and its log line) does not concern us
    backend = attention_backends.resolve_backend(attn_type, device, requires_grad=False)
    return 'sdpa' if backend == 'flex' else backend


def _naive_low_rank(q_cat: torch.Tensor, k_cat: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() or is_exporting():  # one chunk (autograd keeps every score anyway)
        return (q_cat @ k_cat.transpose(-2, -1)).softmax(dim=-1) @ v
    b, heads, n, e = q_cat.shape
    d = v.shape[-1]
    qf, kf, vf = q_cat.reshape(b * heads, n, e), k_cat.reshape(b * heads, n, e), v.reshape(b * heads, n, d)
    out = v.new_empty(b * heads, n, d)
    chunk = max(1, attention_backends.NAIVE_CHUNK_ELEMS // (n * n))
    for s in range(0, b * heads, chunk):
        score = torch.bmm(qf[s:s + chunk], kf[s:s + chunk].transpose(-2, -1))
        torch.bmm(score.softmax(dim=-1), vf[s:s + chunk], out=out[s:s + chunk])
    return out.view(b, heads, n, d)


def _sdpa_low_rank(q_cat: torch.Tensor, k_cat: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    e, d = q_cat.shape[-1], v.shape[-1]
    width = e + (-e) % 8 if q_cat.device.type == 'cuda' else e
    if width > e:
        q_cat, k_cat = F.pad(q_cat, (0, width - e)), F.pad(k_cat, (0, width - e))
    out = F.scaled_dot_product_attention(q_cat, k_cat, F.pad(v, (0, width - d)), scale=1.0)
    return out[..., :d]


def low_rank_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos_q: torch.Tensor, pos_k: torch.Tensor,
                       backend: str) -> torch.Tensor:
    """``softmax([q/sqrt(D), pos_q/sqrt(R)] . [k, pos_k]^T) v``: attention with the positional bias
    ``pos_q pos_k^T / sqrt(R)`` given by rank-R factors shared by every window.

    Args:
        q, k, v: ``(B, heads, N, D)`` (B = windows x images, N tokens per window).
        pos_q, pos_k: ``(heads, N, R)`` positional factors (cast to q's dtype).
        backend: ``naive`` or ``sdpa`` (:func:`resolve_low_rank_backend`).

    Returns:
        ``(B, heads, N, D)``.
    """
    b, d, r = q.shape[0], q.shape[-1], pos_q.shape[-1]
    pos_q = (pos_q * r ** -0.5).to(q.dtype).unsqueeze(0).expand(b, -1, -1, -1)
    pos_k = pos_k.to(k.dtype).unsqueeze(0).expand(b, -1, -1, -1)
    q_cat = torch.cat([q * d ** -0.5, pos_q], dim=-1)
    k_cat = torch.cat([k, pos_k], dim=-1)
    if backend == 'sdpa':
        return _sdpa_low_rank(q_cat, k_cat, v)
    if backend == 'naive':
        return _naive_low_rank(q_cat, k_cat, v)
    raise ValueError(f'unknown low-rank attention backend {backend!r}; expected one of {LOW_RANK_BACKENDS}')
