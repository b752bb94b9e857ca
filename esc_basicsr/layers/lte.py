"""LTE: Local Texture Estimator, an implicit decoder for arbitrary-scale super-resolution.

Lee and Jin, "Local Texture Estimator for Implicit Representation Function", CVPR 2022. Design:
any encoder gives a feature map (B, C, h, w); two 3x3 convolutions turn it into Fourier
*amplitudes* (``coef``) and *frequencies* (``freq``); a query at continuous coordinate c reads them
at the four nearest feature pixels, forms ``cos/sin(pi (freq . rel + phase(cell)))`` from its
offset ``rel`` to each, and an MLP (``imnet``) decodes ``coef * basis`` to RGB. The four predictions
are blended bilinearly (area of the opposite neighbour) and added to a bilinear upsampling of the
image. Coordinates follow LIIF: pixel centres of the output grid in [-1, 1], (row, column).

:class:`LTE` wraps any encoder ``(B, 3, h, w) -> (B, C, h, w)``; parameter names (``encoder.*``,
``coef.*``, ``freq.*``, ``phase.weight``, ``imnet.layers.*``) match the authors' checkpoints.
Images are in [0, 1] in and out; the authors' (x - 0.5) / 0.5 normalisation happens inside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .export_state import is_exporting

_SHIFT_EPS = 1e-6  # LIIF's nudge off the boundary between two feature pixels
_AREA_EPS = 1e-9


def make_coord(size: Sequence[int], device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates of an ``(H, W)`` grid in [-1, 1]: ``(H*W, 2)``, (row, col), row-major."""
    axes = [(torch.arange(n, device=device, dtype=torch.float64) * 2 + 1) / n - 1 for n in size]
    grid = torch.stack(torch.meshgrid(*axes, indexing='ij'), dim=-1)
    return grid.reshape(-1, len(size)).to(dtype)


def make_cell(size: Sequence[int], num: int, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Cell (pixel extent in [-1, 1] units) of an ``(H, W)`` output grid, ``(num, 2)`` = (2/H, 2/W)."""
    cell = torch.tensor([2.0 / size[0], 2.0 / size[1]], device=device, dtype=dtype)
    return cell.expand(num, 2).clone()


def check_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``size`` as ``(H, W)`` of positive ints, or a ValueError naming it."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int) and v >= 1 for v in hw):
        raise ValueError(f'size must be an int or (H, W) of ints >= 1, got {size!r}')
    return hw  # type: ignore[return-value]


def scaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """Output size ``(round(scale*h), round(scale*w))`` for ``scale > 0``; ValueError otherwise."""
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f'scale must be a finite number > 0, got {scale!r}')
    return max(1, round(scale * h)), max(1, round(scale * w))


class MLP(nn.Module):
    """Linear/ReLU stack ``in_dim -> hidden... -> out_dim`` (``layers.0/2/4/...`` hold the weights)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden:
            layers += [nn.Linear(last, width), nn.ReLU(inplace=True)]
            last = width
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        return self.layers(x)


@dataclass
class LTEState:
    """What one encoder pass leaves for the queries.

    Attributes:
        table: ``(B, 2*hidden + 2, h, w)``: coef, freq and each feature pixel's centre coordinate,
            read together by one nearest ``grid_sample`` per neighbour.
        image: ``(B, 3, h, w)`` normalised input, for the bilinear skip.
    """

    table: torch.Tensor
    image: torch.Tensor


class LTE(nn.Module):
    """An encoder followed by the LTE decoder.

    Args:
        encoder: module ``(B, 3, h, w)`` (normalised image) -> ``(B, encoder_dim, h, w)``.
        encoder_dim: channels of the encoder's features.
        hidden_dim: channels of ``coef``/``freq`` and the MLP input (256 in the paper); even.
        imnet_hidden: hidden widths of the MLP (``(256, 256, 256)``).

    ``forward(lq, coord, cell)`` is :meth:`query`, so BasicSR-style code and export can call it.
    """

    def __init__(self, encoder: nn.Module, encoder_dim: int, hidden_dim: int = 256,
                 imnet_hidden: Sequence[int] = (256, 256, 256)) -> None:
        super().__init__()
        if hidden_dim < 2 or hidden_dim % 2:
            raise ValueError(f'hidden_dim must be an even number >= 2, got {hidden_dim}')
        self.encoder = encoder
        self.coef = nn.Conv2d(encoder_dim, hidden_dim, 3, 1, 1)
        self.freq = nn.Conv2d(encoder_dim, hidden_dim, 3, 1, 1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = MLP(hidden_dim, 3, list(imnet_hidden))
        self.hidden_dim = hidden_dim

    # ----------------------------------------------------------------------------- encoding
    def encode(self, lq: torch.Tensor) -> LTEState:
        """Run the encoder once: ``lq`` (B, 3, h, w) in [0, 1] -> :class:`LTEState`."""
        if lq.dim() != 4 or lq.shape[1] != 3:
            raise ValueError(f'lq must be (B, 3, h, w), got shape {tuple(lq.shape)}')
        image = (lq - 0.5) / 0.5
        feat = self.encoder(image)
        b, _, h, w = feat.shape
        grid = make_coord((h, w), feat.device, feat.dtype).t().reshape(1, 2, h, w).expand(b, 2, h, w)
        table = torch.cat([self.coef(feat), self.freq(feat), grid], dim=1)
        return LTEState(table, image)

    # ----------------------------------------------------------------------------- decoding
    def decode(self, state: LTEState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Colours at ``coord`` (B, Q, 2) with cells ``cell`` (B, Q, 2) -> (B, Q, 3) in [0, 1] (unclamped)."""
        table, image = state.table, state.image
        b, q = coord.shape[:2]
        h, w = table.shape[-2:]
        k = self.hidden_dim
        one = coord.new_ones(())
        size = torch.stack([one * h, one * w])  # a product with the size: dynamic for every tracer
        # the four nearest feature pixels: shift by half a feature pixel in each direction
        shifts = coord.new_tensor([[-1, -1], [-1, 1], [1, -1], [1, 1]]) / size + _SHIFT_EPS  # (4, 2)
        coords = (coord.unsqueeze(1) + shifts[None, :, None]).clamp_(-1 + _SHIFT_EPS, 1 - _SHIFT_EPS)
        grid = coords.reshape(b, 1, 4 * q, 2).flip(-1)  # grid_sample wants (x, y)
        sampled = F.grid_sample(table, grid, mode='nearest', align_corners=False)[:, :, 0]  # (B, 2k+2, 4Q)
        sampled = sampled.permute(0, 2, 1).reshape(b, 4, q, 2 * k + 2)
        q_coef, q_freq, q_centre = sampled[..., :k], sampled[..., k:2 * k], sampled[..., 2 * k:]
        rel = (coord.unsqueeze(1) - q_centre) * size  # offset in feature pixels, (B, 4, Q, 2)
        rel_cell = cell * size  # (B, Q, 2)
        # freq channels (2j, 2j+1) are the (row, col) frequency of component j
        f = (q_freq.reshape(b, 4, q, k // 2, 2) * rel.unsqueeze(-2)).sum(-1)
        f = f + self.phase(rel_cell).unsqueeze(1)
        basis = torch.cat([torch.cos(math.pi * f), torch.sin(math.pi * f)], dim=-1)
        preds = self.imnet(q_coef * basis)  # (B, 4, Q, 3)
        # bilinear blending: each prediction weighted by the area of the diagonally opposite one
        areas = (rel[..., 0] * rel[..., 1]).abs() + _AREA_EPS  # (B, 4, Q)
        weights = areas.flip(1) / areas.sum(1, keepdim=True)
        out = (preds * weights.unsqueeze(-1)).sum(1)
        skip = F.grid_sample(image, coord.flip(-1).unsqueeze(1), mode='bilinear', padding_mode='border',
                             align_corners=False)[:, :, 0].permute(0, 2, 1)
        return (out + skip) * 0.5 + 0.5

    # ----------------------------------------------------------------------------- public API
    def query(self, lq: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Colours of ``lq`` at arbitrary points.

        Args:
            lq: ``(B, 3, h, w)`` in [0, 1].
            coord: ``(B, Q, 2)`` (row, col) in [-1, 1] (LIIF pixel-centre convention).
            cell: ``(B, Q, 2)`` extent of an output pixel in the same units, ``(2/H, 2/W)``.

        Returns:
            ``(B, Q, 3)`` RGB, [0, 1] up to the model's overshoot (not clamped).
        """
        if coord.dim() != 3 or coord.shape[-1] != 2 or cell.shape != coord.shape or coord.shape[0] != lq.shape[0]:
            raise ValueError(f'coord and cell must both be (B, Q, 2) with B = {lq.shape[0]} (lq), got coord '
                             f'{tuple(coord.shape)}, cell {tuple(cell.shape)}')
        return self.decode(self.encode(lq), coord, cell)

    def forward(self, lq: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`query` (training on sampled pixels, export)."""
        return self.query(lq, coord, cell)

    def upscale(self, lq: torch.Tensor, size: int | Sequence[int], chunk: int = 16384, tile: int = 0,
                tile_pad: int = 16, cell_scale_max: float | None = None) -> torch.Tensor:
        """Render ``lq`` at ``size``, querying every output pixel in chunks (bounded memory).

        Args:
            lq: ``(B, 3, h, w)`` in [0, 1].
            size: output ``(H, W)`` (or one int for a square), any size >= 1.
            chunk: queries decoded at once (memory grows linearly with it).
            tile: > 0: run the encoder on ``tile x tile`` input tiles (plus ``tile_pad`` of context)
                and decode each tile's output pixels from its tile, so the encoder's memory is
                bounded too; 0: one encoder pass over the whole image (exact).
            tile_pad: context around each input tile, in input pixels.
            cell_scale_max: LTE's evaluation beyond the training scales: when the scale exceeds
                this, the cell of this scale is used instead ("cell clip"). None: true cells.

        Returns:
            ``(B, 3, H, W)`` in [0, 1] (clamped).
        """
        out_h, out_w = check_size(size)
        b, _, h, w = lq.shape
        if chunk < 1 or tile < 0 or tile_pad < 0:
            raise ValueError(f'chunk must be >= 1 and tile, tile_pad >= 0; got {chunk}, {tile}, {tile_pad}')
        cell_factor = 1.0
        if cell_scale_max is not None:
            cell_factor = max(out_h / h / cell_scale_max, out_w / w / cell_scale_max, 1.0)
        out = lq.new_empty(b, 3, out_h, out_w)
        tile = tile if 0 < tile < max(h, w) else max(h, w)
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                self._render_tile(lq, out, (y0, min(y0 + tile, h)), (x0, min(x0 + tile, w)), tile_pad, chunk,
                                  cell_factor)
        return out.clamp_(0, 1)

    def _render_tile(self, lq: torch.Tensor, out: torch.Tensor, ys: tuple[int, int], xs: tuple[int, int],
                     pad: int, chunk: int, cell_factor: float) -> None:
        """Decode the output pixels whose centres fall in input rows ``ys`` x columns ``xs``, from an
        encoder pass over that region plus ``pad`` (coordinates re-expressed in the crop's frame)."""
        b, _, h, w = lq.shape
        out_h, out_w = out.shape[-2:]
        # output pixel i has its centre at input position (i + 0.5) * h / H
        oy = [math.ceil(v * out_h / h - 0.5) for v in ys]
        ox = [math.ceil(v * out_w / w - 0.5) for v in xs]
        if oy[0] >= oy[1] or ox[0] >= ox[1]:
            return
        ya, yb, xa, xb = max(ys[0] - pad, 0), min(ys[1] + pad, h), max(xs[0] - pad, 0), min(xs[1] + pad, w)
        state = self.encode(lq[:, :, ya:yb, xa:xb])
        dev, dt = lq.device, lq.dtype
        # input-pixel positions of the output centres, mapped to [-1, 1] of the crop
        ry = ((torch.arange(oy[0], oy[1], device=dev, dtype=torch.float64) + 0.5) * h / out_h - ya) / (yb - ya)
        rx = ((torch.arange(ox[0], ox[1], device=dev, dtype=torch.float64) + 0.5) * w / out_w - xa) / (xb - xa)
        coord = torch.stack(torch.meshgrid(ry * 2 - 1, rx * 2 - 1, indexing='ij'), -1).reshape(-1, 2).to(dt)
        cell = coord.new_tensor([2.0 * h / out_h / (yb - ya), 2.0 * w / out_w / (xb - xa)]) * cell_factor
        n = coord.shape[0]
        rows = []
        for i in range(0, n, chunk):
            c = coord[i:i + chunk].expand(b, -1, 2)
            rows.append(self.decode(state, c, cell.expand_as(c)))
        pred = torch.cat(rows, dim=1).reshape(b, oy[1] - oy[0], ox[1] - ox[0], 3).permute(0, 3, 1, 2)
        out[:, :, oy[0]:oy[1], ox[0]:ox[1]] = pred

    def render(self, lq: torch.Tensor, scale: float, cell_scale_max: float | None = None) -> torch.Tensor:
        """``lq`` rendered at ``scale`` in one encoder pass and one decoder pass over every output pixel, the
        output size computed with tensor operations: one graph for any batch and input size, the form an
        ONNX export traces (:class:`FixedScale` while exporting). Equal to :meth:`upscale` at
        ``scaled_size(h, w, scale)`` without tiles, up to float32 rounding; its memory grows with the
        output's pixels (no chunks).

        Args:
            lq: ``(B, 3, h, w)`` in [0, 1].
            scale: the factor s > 0.
            cell_scale_max: as in :meth:`upscale`.

        Returns:
            ``(B, 3, round(s*h), round(s*w))`` in [0, 1] (clamped).
        """
        scaled_size(1, 1, scale)  # ValueError for scale <= 0
        state = self.encode(lq)
        b, _, h, w = lq.shape
        dev, dt = lq.device, lq.dtype
        if torch.jit.is_tracing():  # TorchScript records Python arithmetic on sizes as constants: tensors
            size = torch.stack([torch.as_tensor(h), torch.as_tensor(w)]).to(torch.float64)
            out = (size * scale).round().clamp_min(1)  # round half to even, as scaled_size's round()
            out_h, out_w = out.long().unbind()
            factor = 1.0 if cell_scale_max is None else (out / size / cell_scale_max).max().clamp_min(1.0)
        else:  # ints, or symbolic ints under torch.export
            out_h, out_w = (torch.sym_max(1, round(scale * n)) for n in (h, w))
            factor = 1.0 if cell_scale_max is None else \
                torch.sym_max(torch.sym_max(out_h / h, out_w / w) / cell_scale_max, 1.0)
        # pixel centres of the output grid in [-1, 1], as make_coord
        ys, xs = ((torch.arange(n, device=dev, dtype=torch.float64) * 2 + 1) / n - 1 for n in (out_h, out_w))
        coord = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), dim=-1).reshape(1, -1, 2).to(dt).expand(b, -1, 2)
        two = torch.full((), 2.0, device=dev, dtype=torch.float64)
        cell = (torch.stack([two / out_h, two / out_w]) * factor).to(dt)
        pred = self.decode(state, coord, cell.expand_as(coord))
        out_h, out_w = ys.shape[0], xs.shape[0]  # sizes of tensors: dynamic for every tracer
        return pred.reshape(b, out_h, out_w, 3).permute(0, 3, 1, 2).clamp(0, 1)

    # ----------------------------------------------------------------------------- checkpoints
    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` with a clear error for a fixed-scale checkpoint (``to_img.*``)."""
        if strict and not any(k.startswith('coef.') for k in state_dict) and any(
                k.startswith('to_img.') for k in state_dict):
            raise ValueError(f'{type(self).__name__} got a fixed-scale checkpoint (it has "to_img.*" and no '
                             '"encoder.*"/"coef.*" keys): load it into its own class (e.g. ESC), or an '
                             'arbitrary-scale (ESC+LTE) checkpoint here')
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def is_lte_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` holds an LTE network (``coef.*``, ``freq.*``, ``imnet.*``)."""
    return any(k.startswith('coef.') for k in state_dict) and any(k.startswith('imnet.') for k in state_dict)


class FixedScale(nn.Module):
    """A fixed-scale view of an arbitrary-scale network, for tools that call ``model(x)`` (benchmark,
    tiled inference, ONNX export): ``forward(x)`` = ``net.upscale(x, (round(s*h), round(s*w)))``, shared
    weights; while exporting (:func:`.export_state.is_exporting`) ``net.render(x, s)``, the same image
    without the Python loops over chunks and tiles, which a trace would fix to the traced size.

    Args:
        net: a module with ``upscale(lq, size, ...)`` and ``render(lq, scale, cell_scale_max)`` (e.g.
            :class:`LTE`, ``ESCLTE``).
        scale: the factor s > 0.
        **upscale_kwargs: passed on to ``upscale`` (``chunk``, ``tile``, ``tile_pad``, ``cell_scale_max``).
    """

    def __init__(self, net: nn.Module, scale: float, **upscale_kwargs) -> None:
        super().__init__()
        scaled_size(1, 1, scale)  # ValueError for scale <= 0
        self.net = net
        self.scale = scale
        self.upscale_kwargs = upscale_kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] -> (B, 3, round(s*h), round(s*w)) in [0, 1]."""
        if is_exporting():
            return self.net.render(x, self.scale, self.upscale_kwargs.get('cell_scale_max'))
        return self.net.upscale(x, scaled_size(x.shape[-2], x.shape[-1], self.scale), **self.upscale_kwargs)
