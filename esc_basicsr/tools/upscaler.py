"""A loaded network run on images (device, precision, tiling, padding, value range) and the batch writer of
``python -m esc_basicsr.infer``."""
from __future__ import annotations

import numpy as np


class Upscaler:
    """A loaded network plus how to run it (device, dtype, tiling).

    Call with ``(B, 3, H, W)`` float32 RGB in [0, 1] (CPU) -> ``(B, 3, rH, rW)`` float32 in [0, 1] (CPU).
    """

    def __init__(self, network, device, dtype, tile: int = 0, tile_pad: int = 32, settings=None) -> None:
        from ..archs.table import ARCHITECTURES, network_arbitrary_scale
        from .tiling import tile_alignment

        self.model = network.model.to(device=device, dtype=dtype)
        # what runs the network: the model, or its compiled form (--compile, --cuda-graphs)
        self.run = settings.wrap(self.model) if settings is not None else self.model
        self.scale = network.scale
        self.value_range = network.value_range
        self.device, self.dtype = device, dtype
        self.tile, self.tile_pad = tile, tile_pad
        self.align = tile_alignment(self.model, network.network_g)
        self.arbitrary_scale = network_arbitrary_scale(network.network_g)  # ESCLTE: any output size
        # esc_basicsr's networks pad to their window themselves; others (BasicSR's SwinIR) are padded here
        self.pad_multiple = 1 if network.network_g.get('type') in ARCHITECTURES else self.align

    def forward(self, x):
        """The network on ``x`` ``(B, 3, h, w)``, reflect-padded to a multiple of its window if it does
        not pad itself (as BasicSR's SwinIR test does), output cropped back to ``scale * (h, w)``."""
        from ..layers.padding import pad_to_multiple

        h, w = x.shape[-2:]
        if self.pad_multiple <= 1 or (h % self.pad_multiple == 0 and w % self.pad_multiple == 0):
            return self.run(x)
        return self.run(pad_to_multiple(x, self.pad_multiple))[..., :h * self.scale, :w * self.scale]

    def __call__(self, x):
        import torch

        from .tiling import tiled_forward

        x = x.to(device=self.device, dtype=self.dtype)
        if self.value_range != 1:
            x = x * self.value_range
        with torch.inference_mode():
            if self.arbitrary_scale:  # its own tiling (self.run: the model, or its compiled parts with --compile)
                from ..layers.lte import scaled_size

                size = scaled_size(x.shape[-2], x.shape[-1], self.scale)
                y = self.run.upscale(x, size, tile=self.tile, tile_pad=self.tile_pad).to('cpu')
            else:
                y = tiled_forward(self.forward, x, self.scale, self.tile, self.tile_pad, self.align, out_device='cpu')
            y = y.float()
            if self.value_range != 1:
                y = y / self.value_range
            # NaN stays NaN through clamp; inf would become 0 or 1: make it NaN, so the caller can refuse it
            return y.nan_to_num_(nan=float('nan'), posinf=float('nan'), neginf=float('nan')).clamp_(0, 1)


def process_batch(upscaler: Upscaler, items: list, alpha_mode: str) -> list[Exception | None]:
    """Upscale ``items`` (``(image, out_path, plan)`` of the same size) together and write them
    (each atomically: a temporary file renamed into place). Returns each item's write error or None."""
    import cv2
    import torch

    from ..utils.image_io import compose, upscale_alpha, write_image

    rgb = torch.from_numpy(np.stack([img.rgb for img, _, _ in items])).permute(0, 3, 1, 2)
    out = upscaler(rgb).permute(0, 2, 3, 1).numpy()
    errors: list[Exception | None] = []
    for (img, path, plan), sr in zip(items, out):
        bad = int(np.isnan(sr).any(axis=2).sum())
        if bad:  # never written as a black or white image
            errors.append(ValueError(f'the network produced NaN/inf values at {bad} of {sr.shape[0] * sr.shape[1]} '
                                     'output pixels (an overflow: try --precision fp32, or check the weights)'))
            continue
        alpha = None
        if img.alpha is not None and plan.layout in ('rgba', 'graya'):
            if alpha_mode == 'model':
                a = torch.from_numpy(img.alpha)[None, None].expand(1, 3, *img.alpha.shape)
                alpha = upscaler(a)[0].mean(0).numpy()
            else:
                alpha = upscale_alpha(img.alpha, upscaler.scale) if isinstance(upscaler.scale, int) else \
                    np.clip(cv2.resize(img.alpha, sr.shape[1::-1], interpolation=cv2.INTER_CUBIC), 0, 1)
        try:
            write_image(path, compose(sr, alpha, plan))
            errors.append(None)
        except (OSError, ValueError) as exc:  # e.g. a read-only folder: the other images still go
            errors.append(exc)
    return errors
