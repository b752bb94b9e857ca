"""The ESC trunk, shared by ESC, ESC-Real, ESCRealM and the ESC-LTE encoder: built, run, folded, read.

``features = last(blocks(proj(x), K)) + proj(x)`` where ``K = plk_func(plk_filter)`` is one
large kernel (orthogonally initialised, re-parameterised by a geometric ensemble while training)
computed once per forward and shared by every ConvAttn of every block. :class:`SharedKernelTrunk`
builds it with the networks' own parameter names (``plk_filter``, ``proj``, ``blocks``, ``last``:
top-level keys of their checkpoints) and runs it; the block (its attention) and ``last`` are
arguments, so a network with another block uses the same builder. Beside it: deployment folding
of the ensemble and the reading of a trunk's configuration off a state_dict.

ESC-FP is not built here: its kernel is decomposed into two shared parameters (``lk_channel``,
``lk_spatial``), both passed to every block, with a LayerNorm (``ln_last``) before ``last``.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from ..layers import geometric_ensemble
from .state_dict_layout import LayoutError, StateDict, count, expansion_ratio, has, window_of


class GeometricEnsemble(nn.Module):
    """Training-time re-parameterisation of the shared large kernel (see
    :func:`esc_basicsr.layers.geometric_ensemble`). Replaced by ``nn.Identity`` when folded."""

    def forward(self, kernel: torch.Tensor) -> torch.Tensor:
        return geometric_ensemble(kernel)


class SharedKernelTrunk(nn.Module):
    """Base of the networks on ESC's trunk: :meth:`build_trunk` in ``__init__``, :meth:`trunk` in ``forward``."""

    plk_func: nn.Module
    plk_filter: nn.Parameter

    def build_trunk(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, block: Callable[[], nn.Module], *,
                    proj: Callable[[], nn.Module] | None = None, last: Callable[[], nn.Module] | None = None,
                    before_blocks: Mapping[str, Callable[[], nn.Module]] | None = None) -> None:
        """Create the trunk's modules on ``self``, in this order (which fixes both the state_dict order
        and, through the random number generator, the seeded initialisation):

        ``plk_func`` (:class:`GeometricEnsemble`), ``plk_filter`` ``(pdim, pdim, k, k)`` (orthogonal
        initialisation, which the authors found important early in training), ``proj``, the modules of
        ``before_blocks``, ``blocks`` (``n_blocks`` x ``block()``), ``last``.

        Args:
            dim: feature channels.
            pdim: channels handled by the shared large kernel.
            kernel_size: side k of the shared large kernel.
            n_blocks: number of blocks.
            block: makes one block, called as ``block(features, kernel)`` -> features ``(B, dim, h, w)``.
            proj: makes the image-to-features layer. Default: conv3x3 ``3 -> dim``.
            last: makes the layer after the blocks. Default: conv3x3 ``dim -> dim``.
            before_blocks: name -> maker of further modules created between ``proj`` and the blocks
                (ESCRealM's ``skip``, where its checkpoints and initialisation have it).
        """
        self.plk_func = GeometricEnsemble()
        self.plk_filter = nn.Parameter(torch.empty(pdim, pdim, kernel_size, kernel_size))
        nn.init.orthogonal_(self.plk_filter)
        self.proj = proj() if proj is not None else nn.Conv2d(3, dim, 3, 1, 1)
        for name, make in (before_blocks or {}).items():
            self.add_module(name, make())
        self.blocks = nn.ModuleList([block() for _ in range(n_blocks)])
        self.last = last() if last is not None else nn.Conv2d(dim, dim, 3, 1, 1)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, dim, h, w) (``h, w = H, W`` unless ``proj`` resamples)."""
        feat = self.proj(x)
        plk_filter = self.plk_func(self.plk_filter)  # once per forward, shared by every ConvAttn
        out = feat
        for block in self.blocks:
            out = block(out, plk_filter)
        return self.last(out) + feat


# ------------------------------------------------------------------------------------ deployment

@torch.no_grad()
def fold_geometric_ensemble(model: nn.Module) -> nn.Module:
    """Store the ensembled large kernel in ``model.plk_filter`` and drop the per-forward ensemble.

    The ensemble is idempotent, so a folded checkpoint also loads into a training-form model with
    the same output.
    """
    if isinstance(model.plk_func, nn.Identity):
        return model
    model.plk_filter.copy_(geometric_ensemble(model.plk_filter))
    model.plk_func = nn.Identity()
    return model


def geometric_ensemble_folded(model: nn.Module) -> bool:
    """Whether :func:`fold_geometric_ensemble` was applied."""
    return isinstance(getattr(model, 'plk_func', None), nn.Identity)


# ------------------------------------------------------------------------------------ configuration

def is_esc_trunk(sd: StateDict, prefix: str = '') -> bool:
    """Whether ``sd`` has the keys of ESC blocks (window attention, ConvAttn, ConvFFN) and ``last`` under ``prefix``."""
    return has(sd, f'{prefix}last.weight', f'{prefix}blocks.0.attn.relative_position_bias',
               f'{prefix}blocks.0.pconvs.0.aggr.weight', f'{prefix}blocks.0.convffns.0.proj.weight')


def trunk_arguments(sd: StateDict, prefix: str = '') -> dict[str, Any]:
    """Constructor arguments of an ESC trunk (``proj``/``blocks``/``last``, the shared ``plk_filter``, or
    ESC-FP's ``lk_spatial``) under ``prefix``: ``dim, pdim, kernel_size, n_blocks, conv_blocks,
    window_size, num_heads, exp_ratio``."""
    p = re.escape(prefix)
    dim = sd[f'{prefix}last.weight'].shape[0]
    kernel = sd.get(f'{prefix}plk_filter', sd.get(f'{prefix}lk_spatial'))
    if kernel is None:
        raise LayoutError('no shared large kernel (plk_filter / lk_spatial)')
    n_blocks = count(sd, rf'{p}blocks\.(\d+)\.conv_out\.weight', 'blocks')
    conv_blocks = count(sd, rf'{p}blocks\.0\.pconvs\.(\d+)\.aggr\.weight', 'ConvAttn modules')
    heads, window = window_of(sd[f'{prefix}blocks.0.attn.relative_position_bias'])
    hidden = sd[f'{prefix}blocks.0.convffns.0.proj.weight'].shape[0]
    return dict(dim=dim, pdim=kernel.shape[0], kernel_size=kernel.shape[-1], n_blocks=n_blocks,
                conv_blocks=conv_blocks, window_size=window, num_heads=heads,
                exp_ratio=expansion_ratio(hidden, dim))


def window_multiple(kwargs: Mapping[str, Any]) -> int:
    """Input multiple of a network whose trunk runs at the input's resolution: its attention window."""
    return int(kwargs['window_size'])


def trunk_tags(kwargs: Mapping[str, Any]) -> list[str]:
    """Short description of a trunk's size: ``['64dim', '5blocks', 'window 32']``."""
    return [f'{kwargs["dim"]}dim', f'{kwargs["n_blocks"]}blocks', f'window {kwargs["window_size"]}']
