"""The ESC block: one window self-attention followed by ``conv_blocks`` ConvAttn + ConvFFN pairs."""
from __future__ import annotations

import torch
import torch.nn as nn

from .conv_attn import ConvAttn, DecomposedConvAttn
from .conv_ffn import ConvFFN
from .norm import LayerNorm2d
from .window_attention import WindowAttention


class ESCBlock(nn.Module):
    """``x + conv_out(ln(body(x)))`` where body = ConvFFN -> (+WindowAttention) -> conv_blocks x
    (+ConvAttn(ConvFFN(ln(.)))).

    Args:
        dim: channels C.
        pdim: channels handled by the large kernel inside each ConvAttn.
        conv_blocks: number of ConvAttn/ConvFFN pairs after the attention.
        kernel_size: large-kernel size.
        window_size: attention window side.
        num_heads: attention heads.
        exp_ratio: ConvFFN expansion of the ConvAttn pairs.
        attn_type: attention backend (see :mod:`esc_basicsr.layers.attention_backends`).
        use_ln: LayerNorm before each ConvFFN of the pairs (ESC-XL, ESC-Real, ESC-FP).
        proj_ratio: expansion of the first ConvFFN (2 in ESC, 1.5 in ESC-FP).
        decomposed: use ESC-FP's decomposed ConvAttn (takes two kernels instead of one).
        attention: the block's self-attention module, ``(B, C, H, W) -> (B, C, H, W)`` (ESC-RIB's
            :class:`~.rib_attention.RIBAttention`). Default: ``WindowAttention(dim, window_size,
            num_heads, attn_type)``; when given, those three arguments are not used.
    """

    def __init__(self, dim: int, pdim: int, conv_blocks: int, kernel_size: int, window_size: int,
                 num_heads: int, exp_ratio: float, attn_type: str = 'auto', use_ln: bool = False,
                 proj_ratio: float = 2.0, decomposed: bool = False, attention: nn.Module | None = None) -> None:
        super().__init__()
        self.ln_proj = LayerNorm2d(dim)
        self.proj = ConvFFN(dim, 3, proj_ratio)
        self.ln_attn = LayerNorm2d(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, attn_type) if attention is None else attention
        conv_attn = DecomposedConvAttn if decomposed else ConvAttn
        self.lns = nn.ModuleList([LayerNorm2d(dim) if use_ln else nn.Identity() for _ in range(conv_blocks)])
        self.pconvs = nn.ModuleList([conv_attn(dim, pdim, kernel_size) for _ in range(conv_blocks)])
        self.convffns = nn.ModuleList([ConvFFN(dim, 3, exp_ratio) for _ in range(conv_blocks)])
        self.ln_out = LayerNorm2d(dim)
        self.conv_out = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, *large_kernels: torch.Tensor) -> torch.Tensor:
        """x: ``(B, C, H, W)``; large_kernels: the network's shared kernel(s) -> ``(B, C, H, W)``."""
        skip = x
        x = self.proj(self.ln_proj(x))
        if torch.is_grad_enabled():
            x = x + self.attn(self.ln_attn(x))
            for ln, pconv, convffn in zip(self.lns, self.pconvs, self.convffns):
                x = x + pconv(convffn(ln(x)), *large_kernels)
            return self.conv_out(self.ln_out(x)) + skip
        # inference: the same computation on buffers this block owns, updated in place (fewer
        # large allocations, each of which costs thousands of page faults on a CPU)
        x.add_(self.attn(self.ln_attn(x)))
        for ln, pconv, convffn in zip(self.lns, self.pconvs, self.convffns):
            x.add_(pconv(convffn(ln(x)), *large_kernels, inplace=True))
        return self.conv_out(self.ln_out(x)).add_(skip)
