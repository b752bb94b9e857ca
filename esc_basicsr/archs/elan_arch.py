"""ELAN: Efficient Long-Range Attention Network for Image Super-Resolution.

Zhang, Zeng, Guo and Zhang, ECCV 2022 (arXiv 2203.06697). Design: a plain stack of ELAB blocks,
each a shift-convolution LFE plus group-wise multi-scale window self-attention (windows 4/8/16
per channel group, symmetric query = key, BatchNorm instead of LayerNorm, attention maps shared
across ``n_share`` following blocks, shifted windows in every other block), between a 3x3 head
and a pixel-shuffle tail, on mean-shifted images in [0, ``rgb_range``].

Constructor arguments are the keys of the authors' configuration files and module names match
their checkpoints, so their ``model_state_dict`` loads with ``strict=True``. ELAN-light and ELAN
are presets (``esc_basicsr.archs.presets``).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.elab import ELAB
from ..layers.gmsa import GMSA
from ..layers.padding import pad_to_multiple
from .checkpoint import extract_state_dict, subpixel_scale
from .state_dict_layout import LayoutError, StateDict, count, has

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
ELAN_WINDOW_SIZES = (4, 8, 16)  # the authors' attention windows (no weight depends on them)
UNIT_RANGE = {'input_range': 1.0}  # the constructor arguments that make ELAN take [0, 1] images (BasicSR's)


def image_range(rgb_range: float, input_range: float | None) -> float:
    """Range of the images an ELAN takes and returns: ``input_range``, ``None`` meaning ``rgb_range``."""
    return rgb_range if input_range is None else input_range


def pad_multiple(window_sizes: Sequence[int]) -> int:
    """ELAN reflect-pads its input to the least common multiple of its window sizes."""
    return math.lcm(*window_sizes)


class MeanShift(nn.Module):
    """Add ``sign * rgb_range * mean`` per RGB channel, as a frozen 1x1 conv (authors' layout).

    ``weight`` ``(3, 3, 1, 1)`` (identity / std) and ``bias`` ``(3,)`` are buffers: stored in
    checkpoints under the authors' keys, never trained.
    """

    def __init__(self, rgb_range: float, rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
                 rgb_std: Sequence[float] = (1.0, 1.0, 1.0), sign: int = -1) -> None:
        super().__init__()
        std = torch.tensor(rgb_std, dtype=torch.float32)
        self.register_buffer('weight', torch.eye(3).reshape(3, 3, 1, 1) / std.reshape(3, 1, 1, 1))
        self.register_buffer('bias', sign * rgb_range * torch.tensor(rgb_mean, dtype=torch.float32) / std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)


class ELAN(nn.Module):
    """ELAN and ELAN-light (configurations of the same network).

    Args:
        scale: upscaling factor r.
        rgb_range: image range the network was trained on (authors: 255). Sets the mean shift.
        colors: image channels; only 3 (the mean shift is defined for RGB).
        m_elan: number of LFE/GMSA pairs; the body has ``m_elan // (1 + n_share)`` ELAB blocks
            (light 24, ELAN 36).
        c_elan: feature channels (light 60, ELAN 180); divisible by ``len(window_sizes)``.
        n_share: GMSAs per block that reuse the first one's attention maps (light 1, ELAN 0).
        r_expand: LFE expansion ratio (2).
        act_type: must be ``'relu'``. The authors' configs carry this key, but their code always
            uses ReLU, so any other value would not describe their model.
        window_sizes: attention window per channel group ((4, 8, 16)).
        input_range: range of the images passed in and returned, an esc_basicsr addition.
            ``None`` (default) means ``rgb_range``: the model is exactly the authors' (input
            and output in [0, ``rgb_range``]). BasicSR feeds images in [0, 1]: set
            ``input_range=1.0`` with ``rgb_range=255`` to run or fine-tune an author-trained
            model in BasicSR; images are scaled to [0, 255] on entry and back on exit.

    Input ``(B, colors, H, W)`` in [0, input_range], any H, W >= 1 (reflect-padded to a multiple
    of every window size, cropped back); output ``(B, colors, r*H, r*W)`` in the same range.
    """

    def __init__(self, scale: int, rgb_range: float = 255, colors: int = 3, m_elan: int = 24, c_elan: int = 60,
                 n_share: int = 1, r_expand: int = 2, act_type: str = 'relu',
                 window_sizes: Sequence[int] = (4, 8, 16), input_range: float | None = None) -> None:
        super().__init__()
        if act_type != 'relu':
            raise ValueError(f'act_type={act_type!r}: the authors\' ELAN always uses ReLU (their LFE ignores '
                             'act_type), so only "relu" describes a model trained with their code')
        if colors != 3:
            raise ValueError(f'colors={colors}: ELAN\'s mean shift is defined for RGB images only')
        self.scale = scale
        self.rgb_range = rgb_range
        self.input_range = image_range(rgb_range, input_range)
        self.window_sizes = tuple(window_sizes)
        self.pad_multiple = pad_multiple(self.window_sizes)

        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(nn.Conv2d(colors, c_elan, 3, 1, 1))
        # windows alternate: even blocks regular, odd blocks shifted
        self.body = nn.Sequential(*[
            ELAB(c_elan, r_expand, shifts=i % 2, window_sizes=self.window_sizes, shared_depth=n_share)
            for i in range(m_elan // (1 + n_share))
        ])
        self.tail = nn.Sequential(nn.Conv2d(c_elan, colors * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, input_range] -> (B, 3, r*H, r*W) in [0, input_range]."""
        h, w = x.shape[-2:]
        gain = self.rgb_range / self.input_range
        if gain != 1:
            x = x * gain
        x = pad_to_multiple(x, self.pad_multiple)
        x = self.head(self.sub_mean(x))
        x = self.body(x) + x
        x = self.add_mean(self.tail(x))
        x = x[:, :, :h * self.scale, :w * self.scale]
        return x / gain if gain != 1 else x

    def extra_repr(self) -> str:
        return f'scale={self.scale}, rgb_range={self.rgb_range}, input_range={self.input_range}'


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every GMSA BatchNorm into the 1x1 conv before it, in place; returns ``model`` in eval mode.

    The output is unchanged in eval mode (up to float rounding). The folded model's state_dict
    lacks the ``project_inp.1.*`` keys: to reload it, build an ELAN, fold it, then load.
    """
    model.eval()
    for module in model.modules():
        if isinstance(module, GMSA):
            module.fold_batchnorm()
    return model


def batchnorm_folded(model: nn.Module) -> bool:
    """Whether :func:`fold_batchnorm` was applied (no BatchNorm left)."""
    return not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def convert_authors_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """BasicSR form ``{'params': state_dict}`` of a checkpoint saved by the authors' ``train.py``.

    Theirs is ``{'epoch', 'model_state_dict', 'optimizer_state_dict', ...}`` with the weights of an
    ``nn.DataParallel`` model (``module.`` prefix), which BasicSR's loader cannot read directly.
    A bare state_dict is accepted too. The keys then match :class:`ELAN` exactly.
    """
    key = 'model_state_dict' if 'model_state_dict' in checkpoint else None
    return {'params': extract_state_dict(checkpoint, key)}


# ------------------------------------------------------------------------------- table entries

def value_range(kwargs: Mapping[str, Any]) -> float:
    """Range of the images a configuration takes and returns (:func:`image_range`)."""
    return float(image_range(kwargs['rgb_range'], kwargs['input_range']))


def input_multiple(kwargs: Mapping[str, Any]) -> int:
    """The input size ELAN pads to (:func:`pad_multiple`)."""
    return pad_multiple([int(w) for w in kwargs['window_sizes']])


def tags(kwargs: Mapping[str, Any]) -> list[str]:
    """``['180nf', '36m', 'range 255']``: channels, LFE/GMSA pairs, trained image range."""
    return [f'{kwargs["c_elan"]}nf', f'{kwargs["m_elan"]}m', f'range {kwargs["rgb_range"]:g}']


def _rgb_range(bias: torch.Tensor) -> float:
    """``rgb_range`` from ELAN's ``sub_mean.bias`` = ``-rgb_range * DIV2K mean``."""
    values = (-bias.double() / torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)).tolist()
    rng = float(sum(values) / len(values))
    nice = round(rng, 4)
    return float(int(nice)) if nice == int(nice) else nice


def detect_elan(sd: StateDict, window_sizes: tuple[int, ...] = ELAN_WINDOW_SIZES) -> dict[str, Any] | None:
    """ELAN / ELAN-light (deployed, BatchNorm-folded checkpoints too). Every argument but the attention
    window sizes (no weights depend on them: the authors' ``(4, 8, 16)`` unless given); ``rgb_range``
    from the mean-shift bias ``-rgb_range * mean``."""
    if not has(sd, 'sub_mean.bias', 'add_mean.bias', 'head.0.weight', 'tail.0.weight',
               'body.0.modules_gmsa.gmsa_0.project_inp.0.weight'):
        return None
    colors, c_elan = sd['head.0.weight'].shape[1], sd['head.0.weight'].shape[0]
    n_blocks = count(sd, r'body\.(\d+)\.modules_lfe\.lfe_0\.conv0\.shift_conv\.weight', 'ELAB blocks')
    depth = count(sd, r'body\.0\.modules_gmsa\.gmsa_(\d+)\.project_out\.weight', 'GMSA modules of block 0')
    # only gmsa_0 computes attention (2C query/key + value channels); the shared ones project C values
    for j in range(depth):
        inner = sd[f'body.0.modules_gmsa.gmsa_{j}.project_inp.0.weight'].shape[0]
        if inner != (2 * c_elan if j == 0 else c_elan):
            raise LayoutError(f'ELAN gmsa_{j} projects to {inner} channels, expected '
                              f'{2 * c_elan if j == 0 else c_elan}')
    r_expand = sd['body.0.modules_lfe.lfe_0.conv0.shift_conv.conv1x1.weight'].shape[0] // c_elan
    return dict(scale=subpixel_scale(sd['tail.0.weight'].shape[0], colors), rgb_range=_rgb_range(sd['sub_mean.bias']),
                colors=colors, m_elan=n_blocks * depth, c_elan=c_elan, n_share=depth - 1, r_expand=r_expand,
                act_type='relu', window_sizes=list(window_sizes))
