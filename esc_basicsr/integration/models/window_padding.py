"""Test-time padding of the input to a multiple of the attention window (the authors' models do it).

The input is reflect-padded at the bottom/right to a multiple of the network's input grid and the
output cropped back to ``scale`` times the input size. The grid of esc_basicsr's networks is the
architecture table's (``ArchSpec.input_multiple``: ESCRealM's includes its input unshuffling); for
others it is ``network_g.window_size``, or the least common multiple of ``network_g.window_sizes``.
Inputs smaller than the padding (where a single reflect pad is impossible, a known failure of the
reference code) are reflected repeatedly, and padded by replication once a side is one pixel
(:func:`esc_basicsr.layers.padding.pad_to_multiple`).
"""
from __future__ import annotations

import math

from ...archs.table import network_input_multiple
from ...layers.padding import pad_to_multiple


def padding_multiple(network_opt: dict) -> int:
    """The padding multiple of a ``network_g`` option dict (1: no padding)."""
    ours = network_input_multiple(network_opt)
    if ours is not None:
        return ours
    window = network_opt.get('window_size')
    if window:
        return int(window)
    windows = network_opt.get('window_sizes')
    if windows:
        return math.lcm(*(int(w) for w in windows))
    return 1


class WindowPaddedTestMixin:
    """Mixin before a BasicSR model class: ``test()`` runs on the padded input, then crops.

    Uses the model's ``opt['network_g']`` and ``opt['scale']`` (BasicSR's keys).
    """

    def test(self) -> None:
        window = padding_multiple(self.opt['network_g'])
        lq = self.lq
        h, w = lq.shape[-2:]
        if window <= 1 or (h % window == 0 and w % window == 0):
            return super().test()
        self.lq = pad_to_multiple(lq, window)
        try:
            super().test()
        finally:
            self.lq = lq
        scale = int(self.opt.get('scale', 1))
        self.output = self.output[..., :h * scale, :w * scale]
