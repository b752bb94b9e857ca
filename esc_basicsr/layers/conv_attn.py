"""ConvAttn: the convolutional stand-in for self-attention introduced by ESC (ICCV 2025).

ConvAttn processes only the first ``pdim`` channels of a feature map (the rest pass through
unchanged) with the sum of two depthwise-aligned convolutions, then mixes all channels with a
1x1 convolution:

* a **shared large kernel** (``pdim x pdim x 13 x 13``) that is owned by the network and passed
  to every ConvAttn, emulating the long-range mixing of self-attention at the cost of one
  convolution;
* a **dynamic 3x3 depthwise kernel** predicted from the input (global average pool -> 1x1 ->
  GELU -> 1x1), emulating the instance-dependent weighting of self-attention.

The module is independent of ESC: any architecture can hold one large-kernel parameter and call
``ConvAttn(dim, pdim)(x, large_kernel)`` in as many places as it likes. Use
:func:`geometric_ensemble` on the raw parameter (as ESC does during training) or feed it as is.

Parameter names follow the reference implementation (``plk.dwc_proj.{1,3}``, ``aggr``), so
released ESC checkpoints load without renaming.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .export_state import is_exporting


def geometric_ensemble(kernel: torch.Tensor) -> torch.Tensor:
    """Average a ``(..., k, k)`` kernel over the 8 flips/rotations of the square (group D4).

    This is ESC's feature-level geometric re-parameterisation of the large kernel. The result is
    invariant under the group, so applying it twice changes nothing (a folded, deployed kernel
    can be loaded into a training-form model and gives the same output).
    """
    rot = torch.rot90(kernel, -1, [-2, -1])
    total = kernel + kernel.flip(-1) + kernel.flip(-2) + kernel.flip([-2, -1])
    total = total + rot + rot.flip(-1) + rot.flip(-2) + rot.flip([-2, -1])
    return total / 8


def dynamic_depthwise_conv(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Depthwise 'same' convolution with a different small kernel for every image.

    One grouped convolution over the batch folded into channels (``groups = B * C``): on the CPU
    with channels-last features this costs less than 10% of the 13x13 convolution, where a
    shifted-sum formulation cost more than the large kernel itself.

    Args:
        x: ``(B, C, H, W)``.
        kernels: ``(B, C, k, k)`` with odd ``k``.

    Returns:
        ``(B, C, H, W)``.
    """
    if is_exporting():  # groups = B * C would fix the batch in an exported graph
        return dynamic_depthwise_conv_any_batch(x, kernels)
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    out = F.conv2d(x.reshape(1, b * c, h, w), kernels.reshape(b * c, 1, k, k), padding=k // 2, groups=b * c)
    return out.view(b, c, h, w)


def dynamic_depthwise_conv_any_batch(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """:func:`dynamic_depthwise_conv` as a sum of shifted products (a batch-agnostic graph).

    Args:
        x: ``(B, C, H, W)``.
        kernels: ``(B, C, k, k)``, odd ``k``.

    Returns:
        ``(B, C, H, W)``, equal to :func:`dynamic_depthwise_conv` up to float rounding.
    """
    k = kernels.shape[-1]
    h, w = x.shape[-2:]
    xp = F.pad(x, (k // 2,) * 4)
    out = None
    for i in range(k):
        for j in range(k):
            term = xp[:, :, i:i + h, j:j + w] * kernels[:, :, i, j, None, None]
            out = term if out is None else out + term
    return out


def add_depthwise_to_dense(dense: torch.Tensor, depthwise: torch.Tensor) -> torch.Tensor:
    """``dense + D`` where ``D`` is the dense ``(C, C, K, K)`` form of a depthwise ``(C, k, k)``
    kernel (zero off the channel diagonal, centred in K x K): conv(x, dense + D) equals
    conv(x, dense) + depthwise_conv(x, depthwise) with 'same' padding."""
    c, k = depthwise.shape[0], depthwise.shape[-1]
    pad = (dense.shape[-1] - k) // 2
    diagonal = torch.eye(c, dtype=dense.dtype, device=dense.device)[:, :, None, None] * depthwise[:, None]
    return dense + F.pad(diagonal, (pad, pad, pad, pad))


def _merge_slice(x: torch.Tensor, y1: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``x`` with its first ``y1.shape[1]`` channels replaced by ``y1`` (in place if asked)."""
    if inplace:
        x[:, :y1.shape[1]] = y1
        return x
    return torch.cat([y1, x[:, y1.shape[1]:]], dim=1)


class DynamicKernelPredictor(nn.Sequential):
    """Predicts one ``k x k`` depthwise kernel per channel from global context.

    ``(B, C, H, W) -> (B, C, k, k)`` through pool -> 1x1 (C -> C/reduction) -> GELU -> 1x1.
    Sequential indices (1 and 3 hold weights) match the reference checkpoints.
    """

    def __init__(self, channels: int, reduction: int = 2, kernel_size: int = 3, zero_init: bool = True) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1),
            nn.GELU(),
            nn.Conv2d(channels // reduction, channels * kernel_size * kernel_size, 1),
        )
        self.kernel_size = kernel_size
        if zero_init:  # start as a pure large-kernel conv, as the reference does
            nn.init.zeros_(self[-1].weight)
            nn.init.zeros_(self[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return super().forward(x).view(x.shape[0], x.shape[1], k, k)


class PartialLargeKernelConv(nn.Module):
    """Shared large kernel + dynamic depthwise kernel on the first ``pdim`` channels.

    Args:
        pdim: number of leading channels that are convolved; the rest pass through.
        kernel_size: size of the shared large kernel (for padding only; the kernel is an input).
    """

    def __init__(self, pdim: int, kernel_size: int = 13) -> None:
        super().__init__()
        self.pdim = pdim
        self.kernel_size = kernel_size
        self.dwc_proj = DynamicKernelPredictor(pdim, reduction=2, kernel_size=3)

    def forward(self, x: torch.Tensor, lk_filter: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """x: ``(B, C, H, W)``, lk_filter: ``(pdim, pdim, k, k)`` -> ``(B, C, H, W)``.

        ``inplace=True`` (inference only) writes the result into ``x`` instead of a new tensor.
        """
        x1 = x[:, :self.pdim]
        dynamic = self.dwc_proj(x1)
        if x.shape[0] == 1 and not is_exporting():
            # One image: the dynamic depthwise kernel is exactly a diagonal, centred addition to the
            # large kernel, so a single convolution does both (saves ~8% of ESC's CPU time).
            y1 = F.conv2d(x1, add_depthwise_to_dense(lk_filter, dynamic[0]), padding=lk_filter.shape[-1] // 2)
        else:
            y1 = F.conv2d(x1, lk_filter, padding=lk_filter.shape[-1] // 2) + dynamic_depthwise_conv(x1, dynamic)
        return _merge_slice(x, y1, inplace)

    def extra_repr(self) -> str:
        return f'pdim={self.pdim}, kernel_size={self.kernel_size}'


class ConvAttn(nn.Module):
    """ConvAttn block: :class:`PartialLargeKernelConv` followed by a 1x1 channel mix.

    Args:
        dim: channels C of the feature map.
        pdim: leading channels processed by the large and dynamic kernels (ESC: 16).
        kernel_size: size of the shared large kernel (ESC: 13).

    Example:
        >>> lk = nn.Parameter(torch.empty(16, 16, 13, 13)); nn.init.orthogonal_(lk)
        >>> attn = ConvAttn(64, 16)
        >>> y = attn(torch.randn(2, 64, 48, 48), geometric_ensemble(lk))  # (2, 64, 48, 48)
    """

    def __init__(self, dim: int, pdim: int = 16, kernel_size: int = 13) -> None:
        super().__init__()
        if not 0 < pdim <= dim:
            raise ValueError(f'pdim must be in (0, dim={dim}], got {pdim}')
        self.plk = PartialLargeKernelConv(pdim, kernel_size)
        self.aggr = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, lk_filter: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """x: ``(B, C, H, W)``, lk_filter: ``(pdim, pdim, k, k)`` -> ``(B, C, H, W)``.

        ``inplace=True`` (inference only) may overwrite ``x`` to save a copy.
        """
        return self.aggr(self.plk(x, lk_filter, inplace))


class DecomposedPartialLargeKernelConv(nn.Module):
    """ESC-FP's decomposed large kernel: 1x1 channel mix, then a per-channel 13x13 kernel.

    The dynamic 3x3 kernel is predicted from the input slice (before the channel mix) with a
    reduction of 4 and added to the centre of the shared spatial kernel.
    """

    def __init__(self, pdim: int, kernel_size: int = 13) -> None:
        super().__init__()
        self.pdim = pdim
        self.kernel_size = kernel_size
        self.proj = DynamicKernelPredictor(pdim, reduction=4, kernel_size=3, zero_init=False)

    def forward(self, x: torch.Tensor, lk_channel: torch.Tensor, lk_spatial: torch.Tensor,
                inplace: bool = False) -> torch.Tensor:
        """x: ``(B, C, H, W)``, lk_channel: ``(pdim, pdim, 1, 1)``, lk_spatial: ``(pdim, 1, k, k)``."""
        x1 = x[:, :self.pdim]
        dynamic = self.proj(x1)
        mixed = F.conv2d(x1, lk_channel)
        pad = lk_spatial.shape[-1] // 2
        if x.shape[0] == 1 and not is_exporting():  # fold the dynamic kernel into the spatial one
            extra = (lk_spatial.shape[-1] - dynamic.shape[-1]) // 2
            kernel = lk_spatial + F.pad(dynamic[0, :, None], (extra, extra, extra, extra))
            y1 = F.conv2d(mixed, kernel, padding=pad, groups=self.pdim)
        else:
            y1 = F.conv2d(mixed, lk_spatial, padding=pad, groups=self.pdim) + dynamic_depthwise_conv(mixed, dynamic)
        return _merge_slice(x, y1, inplace)

    def extra_repr(self) -> str:
        return f'pdim={self.pdim}, kernel_size={self.kernel_size}'


class DecomposedConvAttn(nn.Module):
    """ESC-FP's ConvAttn: :class:`DecomposedPartialLargeKernelConv` then a 1x1 channel mix."""

    def __init__(self, dim: int, pdim: int = 16, kernel_size: int = 13) -> None:
        super().__init__()
        if not 0 < pdim <= dim:
            raise ValueError(f'pdim must be in (0, dim={dim}], got {pdim}')
        self.plk = DecomposedPartialLargeKernelConv(pdim, kernel_size)
        self.aggr = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, lk_channel: torch.Tensor, lk_spatial: torch.Tensor,
                inplace: bool = False) -> torch.Tensor:
        """x: ``(B, C, H, W)`` -> ``(B, C, H, W)``; ``inplace=True`` (inference) may overwrite ``x``."""
        return self.aggr(self.plk(x, lk_channel, lk_spatial, inplace))
