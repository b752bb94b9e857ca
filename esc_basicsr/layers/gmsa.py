"""Group-wise multi-scale self-attention (GMSA) of ELAN, with shareable attention maps.

The channels are split into one group per window size; each group attends inside its own
non-overlapping windows with a symmetric embedding (query = key, no scaling, no position bias).
A GMSA that computes attention returns its maps so that the next ``n_share`` GMSAs of the same
ELAN block can reuse them and only project values (ELAN, Zhang et al., ECCV 2022).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B * H/ws * W/ws, ws * ws, C)``; H and W must be multiples of ``ws``."""
    b, c, h, w = x.shape
    ws = window_size
    x = x.reshape(b, c, h // ws, ws, w // ws, ws)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, ws * ws, c)


def window_merge(windows: torch.Tensor, window_size: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * H/ws * W/ws, ws * ws, C) -> (B, C, H, W)``."""
    ws = window_size
    c = windows.shape[-1]
    x = windows.reshape(b, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


class GMSA(nn.Module):
    """Group-wise multi-scale self-attention.

    ``project_inp`` (1x1 conv + BatchNorm) makes, per group, a query/key half and a value half
    (``calc_attn=True``) or only values (``calc_attn=False``, reusing ``prev_atns``); the groups
    attend in windows of ``window_sizes[i]``, are concatenated and mixed by ``project_out``.
    With ``shifts > 0`` each group is rolled cyclically by half its window first (shifted windows
    without masks) and rolled back afterwards.

    Args:
        channels: input/output channels C; must be divisible by ``len(window_sizes)``.
        window_sizes: one window size per channel group (ELAN: ``(4, 8, 16)``).
        shifts: 0 for regular windows, > 0 for shifted windows.
        calc_attn: compute attention maps (else reuse the maps passed to ``forward``).

    Input ``(B, C, H, W)`` with H, W multiples of every window size; output the same shape.
    """

    def __init__(self, channels: int, window_sizes: Sequence[int] = (4, 8, 16), shifts: int = 0,
                 calc_attn: bool = True) -> None:
        super().__init__()
        n = len(window_sizes)
        if channels % n:
            raise ValueError(f'channels ({channels}) must be divisible by the number of window sizes ({n})')
        self.channels = channels
        self.window_sizes = tuple(window_sizes)
        self.shifts = shifts
        self.calc_attn = calc_attn
        inner = 2 * channels if calc_attn else channels  # q(=k) and v per group, or v only
        self.split_chns = [inner // n] * n
        self.project_inp = nn.Sequential(nn.Conv2d(channels, inner, 1), nn.BatchNorm2d(inner))
        self.project_out = nn.Conv2d(channels, channels, 1)

    def _roll(self, x: torch.Tensor, ws: int, forward: bool) -> torch.Tensor:
        if self.shifts <= 0:
            return x
        # the authors roll by ``-ws // 2`` (floor) and back by ``ws // 2``: for odd windows this
        # leaves a net one-pixel shift; kept as is so that such checkpoints stay compatible
        shift = (-ws) // 2 if forward else ws // 2
        return torch.roll(x, shifts=(shift, shift), dims=(2, 3))

    def forward(self, x: torch.Tensor,
                prev_atns: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, C, H, W) -> ((B, C, H, W), atns)``; ``atns[i]``: ``(B * windows_i, ws_i^2, ws_i^2)``.

        ``prev_atns`` is required exactly when the module does not compute attention itself.
        """
        if self.calc_attn == (prev_atns is not None):
            raise ValueError('pass prev_atns exactly to the GMSA modules that share attention maps')
        b, _, h, w = x.shape
        groups = torch.split(self.project_inp(x), self.split_chns, dim=1)
        ys, atns = [], []
        for i, (group, ws) in enumerate(zip(groups, self.window_sizes)):
            tokens = window_partition(self._roll(group, ws, forward=True), ws)
            if self.calc_attn:
                q, v = tokens.chunk(2, dim=-1)
                atn = torch.softmax(q @ q.transpose(-2, -1), dim=-1)  # symmetric: key = query
            else:
                v, atn = tokens, prev_atns[i]
            y = window_merge(atn @ v, ws, b, h, w)
            ys.append(self._roll(y, ws, forward=False))
            atns.append(atn)
        return self.project_out(torch.cat(ys, dim=1)), atns

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold ``project_inp``'s BatchNorm (running statistics) into its 1x1 conv, in place.

        Inference only. The conv keeps its key ``project_inp.0``; the norm becomes ``nn.Identity``.
        """
        conv, norm = self.project_inp
        if isinstance(norm, nn.Identity):
            return
        self.project_inp = nn.Sequential(fuse_conv_bn_eval(conv.eval(), norm.eval()), nn.Identity())
