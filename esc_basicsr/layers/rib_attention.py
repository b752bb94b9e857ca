"""Window self-attention with a low-rank positional bias: RIB and FlashBias attention.

Lee, Yun, Im and Ro, "Rank-Factorized Implicit Neural Bias: Scaling Super-Resolution Transformer with
FlashAttention" (arXiv 2603.06738; the authors' SST code). Instead of a relative position bias table
(which needs a masked or ``score_mod`` kernel), the bias of every window is a product of rank-R factors
``pos_q pos_k^T / sqrt(R)`` concatenated to q and k, so the attention is plain
``softmax([q/sqrt(D), pos_q/sqrt(R)] . [k, pos_k]^T) v`` and runs on the standard fused kernels
(:func:`esc_basicsr.layers.low_rank_backends.low_rank_attention`). Where the factors come from:

* :class:`RIBAttention` (rank-factorized implicit neural bias): a small MLP over the window's pixel
  coordinates, ``relu(f @ to_hidden + hidden_b)`` then per-head ``to_q`` / ``to_k`` (ESC-RIB: rank 16).
* :class:`FlashBiasAttention`: learned per-position factors ``flashbias_q`` / ``flashbias_k``
  ``(heads, w*w, R)`` (default rank ``256 - head_dim``).

Both can gate their output (:class:`~esc_basicsr.layers.attention_gate.AttentionGate`). Parameter names
are the authors' (``to_qkv``, ``to_out``, ``gate.*``, ``to_hidden``, ...), so their checkpoints load with
``strict=True``; the RIB coordinate features are a non-persistent buffer (not in the state_dict).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .attention_backends import normalize_attn_type
from .low_rank_backends import low_rank_attention, resolve_low_rank_backend
from .attention_gate import attention_gate
from .windows import attend_in_windows

# the authors' rank when none is given: q' and k' are 256 wide (the largest head dim of the flash kernels)
_FLASH_WIDTH = 256


def default_rank(head_dim: int) -> int:
    """The authors' default rank ``256 - head_dim``; raises where that is not positive."""
    rank = _FLASH_WIDTH - head_dim
    if rank < 1:
        raise ValueError(f'head_dim {head_dim} leaves no default rank (256 - head_dim); pass rank explicitly')
    return rank


def rib_coordinate_features(window_size: int, n_freqs: int) -> torch.Tensor:
    """RIB's input features of the ``w*w`` window positions, ``(w*w, 2 + 4 * n_freqs)``.

    Pixel-centre coordinates ``x = 2 (col + 0.5) / w - 1`` and ``y = 2 (row + 0.5) / w - 1`` in (-1, 1),
    row-major, followed for ``i = 0 .. n_freqs - 1`` by ``sin(2^i x), sin(2^i y), cos(2^i x), cos(2^i y)``
    (no factor pi), as the authors' code builds them.
    """
    centres = 2 * (torch.arange(window_size, dtype=torch.float32) + 0.5) / window_size - 1
    y, x = torch.meshgrid(centres, centres, indexing='ij')
    base = torch.stack([x, y], dim=-1).reshape(-1, 2)
    feats = [base]
    for i in range(n_freqs):
        feats += [torch.sin(base * 2 ** i), torch.cos(base * 2 ** i)]
    return torch.cat(feats, dim=-1)


class LowRankWindowAttention(nn.Module):
    """Multi-head self-attention inside ``w x w`` windows with a low-rank positional bias, optionally gated.

    Subclasses own the positional parameters and return the factors from :meth:`positional_factors`.
    The input is reflect-padded on the bottom/right to a multiple of the window (any size down to 1x1),
    attended and cropped back (:func:`~.windows.attend_in_windows`, as :class:`~.window_attention.WindowAttention`);
    no shifted windows. With a gate:
    ``out = to_out(attention(x) * gate(x))``, else ``to_out(attention(x))``.

    Args:
        dim: channels C (split evenly over heads).
        window_size: window side w.
        num_heads: attention heads.
        gate_type: ``None`` (no gate), ``Linear`` or ``DWC`` (:class:`~.attention_gate.AttentionGate`).
        attn_type: backend ``auto`` | ``naive`` | ``sdpa`` | ``flex`` (case-insensitive; ``flex`` runs as
            ``sdpa``, see :func:`~esc_basicsr.layers.low_rank_backends.resolve_low_rank_backend`).
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, gate_type: str | None = None,
                 attn_type: str = 'auto') -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f'dim={dim} must be divisible by num_heads={num_heads}')
        if int(window_size) != window_size or window_size < 1:
            raise ValueError(f'window_size must be a positive integer, got {window_size!r}')
        self.dim = dim
        self.window_size = int(window_size)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_type = normalize_attn_type(attn_type)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.to_out = nn.Conv2d(dim, dim, 1)
        self.gate_type = gate_type
        self.gate = attention_gate(dim, gate_type)

    def positional_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pos_q, pos_k)``, each ``(heads, w*w, rank)``."""
        raise NotImplementedError

    @property
    def rank(self) -> int:
        return self.positional_factors()[0].shape[-1]

    def backend(self, device: torch.device, dtype: torch.dtype | None = None,
                requires_grad: bool | None = None) -> str:
        """The backend this layer's attention runs on ``device`` (``naive`` or ``sdpa``:
        :func:`~esc_basicsr.layers.low_rank_backends.resolve_low_rank_backend`; the same for every dtype
        and with or without gradients, arguments kept for the interface of the window attentions)."""
        return resolve_low_rank_backend(self.attn_type, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        gate = self.gate(x) if self.gate is not None else None
        backend = self.backend(x.device)
        pos_q, pos_k = self.positional_factors()  # once per forward, shared by every window
        out = attend_in_windows(x, self.window_size, self.num_heads, self.to_qkv,
                                lambda q, k, v: low_rank_attention(q, k, v, pos_q, pos_k, backend))
        if gate is not None:
            out = out * gate
        return self.to_out(out)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}, rank={self.rank}, ' \
               f'attn_type={self.attn_type}'


class RIBAttention(LowRankWindowAttention):
    """Window attention with a rank-factorized implicit neural bias (RIB).

    ``f`` = :func:`rib_coordinate_features` ``(w*w, 2 + 4 n_freqs)``, ``h = relu(f @ to_hidden + hidden_b)``,
    ``pos_q = h @ to_q[head]``, ``pos_k = h @ to_k[head]`` ``(heads, w*w, rank)``. The weights do not depend
    on the window size: a RIB checkpoint runs at any window.

    Args:
        dim, window_size, num_heads, gate_type, attn_type: as :class:`LowRankWindowAttention`.
        rank: rank R of the factors. Default (``None``): ``256 - head_dim``, the authors' default
            (ESC-RIB uses 16).
        hidden_dim: width of the coordinate MLP. Default (``None``): 32.
        n_freqs: sine/cosine frequencies of the coordinate features. Default (``None``): 10.

    Parameters: ``to_hidden (2 + 4 n_freqs, hidden_dim)``, ``hidden_b (1, hidden_dim)``,
    ``to_q``/``to_k (heads, hidden_dim, rank)``; buffer ``rib_coords`` (non-persistent).
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, rank: int | None = None,
                 hidden_dim: int | None = None, n_freqs: int | None = None, gate_type: str | None = None,
                 attn_type: str = 'auto') -> None:
        super().__init__(dim, window_size, num_heads, gate_type, attn_type)
        rank = default_rank(self.head_dim) if rank is None else rank
        hidden_dim = 32 if hidden_dim is None else hidden_dim
        n_freqs = 10 if n_freqs is None else n_freqs
        for name, value, least in (('rank', rank, 1), ('hidden_dim', hidden_dim, 1), ('n_freqs', n_freqs, 0)):
            if int(value) != value or value < least:
                raise ValueError(f'RIBAttention: {name} must be an integer >= {least}, got {value!r}')
        self.n_freqs = int(n_freqs)
        self.register_buffer('rib_coords', rib_coordinate_features(self.window_size, self.n_freqs), persistent=False)
        n_in = 2 + 4 * self.n_freqs
        self.to_hidden = nn.Parameter(torch.empty(n_in, hidden_dim))
        self.hidden_b = nn.Parameter(torch.zeros(1, hidden_dim))
        self.to_q = nn.Parameter(torch.empty(num_heads, hidden_dim, rank))
        self.to_k = nn.Parameter(torch.empty(num_heads, hidden_dim, rank))
        for p in (self.to_hidden, self.to_q, self.to_k):  # the authors' initialisation
            nn.init.normal_(p, std=0.05)

    def positional_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pos_q, pos_k)``, each ``(heads, w*w, rank)``, in the parameters' dtype."""
        hidden = torch.relu(self.rib_coords.to(self.to_hidden.dtype) @ self.to_hidden + self.hidden_b)
        return hidden @ self.to_q, hidden @ self.to_k  # (N, hidden) @ (heads, hidden, R)

    @property
    def rank(self) -> int:
        return self.to_q.shape[-1]


class FlashBiasAttention(LowRankWindowAttention):
    """Window attention with learned per-position low-rank bias factors (FlashBias).

    Args:
        dim, window_size, num_heads, gate_type, attn_type: as :class:`LowRankWindowAttention`.
        rank: rank R. Default (``None``): ``256 - head_dim`` (q' and k' 256 wide), the authors' default.

    Parameters: ``flashbias_q``/``flashbias_k (heads, w*w, rank)``. The authors initialise both with zeros,
    where neither gets a gradient (each one's gradient is proportional to the other); here they start from
    N(0, 0.02) so that training moves them.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, rank: int | None = None,
                 gate_type: str | None = None, attn_type: str = 'auto') -> None:
        super().__init__(dim, window_size, num_heads, gate_type, attn_type)
        rank = default_rank(self.head_dim) if rank is None else rank
        if int(rank) != rank or rank < 1:
            raise ValueError(f'FlashBiasAttention: rank must be an integer >= 1, got {rank!r}')
        n = self.window_size ** 2
        self.flashbias_q = nn.Parameter(torch.empty(num_heads, n, rank))
        self.flashbias_k = nn.Parameter(torch.empty(num_heads, n, rank))
        for p in (self.flashbias_q, self.flashbias_k):
            nn.init.normal_(p, std=0.02)

    def positional_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flashbias_q, flashbias_k)``, each ``(heads, w*w, rank)``."""
        return self.flashbias_q, self.flashbias_k

    @property
    def rank(self) -> int:
        return self.flashbias_q.shape[-1]
