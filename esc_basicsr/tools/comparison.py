"""Side-by-side comparison figures: input (nearest-neighbour enlarged), bicubic, model, ground truth.

Super-resolution is judged by eye first, so the demo and ``python -m esc_basicsr.infer --compare``
write one PNG with a row per image: the same crop of each candidate, the whole-image PSNR under
it (BasicSR's :func:`basicsr.metrics.psnr_ssim.calculate_psnr` on the Y channel, border
``ceil(scale)`` cropped, as the demo and BasicSR's tests measure).

The figure is composed pixel for pixel with numpy and drawn on with OpenCV (a dependency already):
no resampling blurs the crops (matplotlib's ``imshow`` resamples to the figure's dpi), and no
optional package or font is needed, so it works wherever the package does.

Images are RGB ``(H, W, 3)`` (grey ``(H, W)`` is replicated), uint8, uint16, or float in [0, 1];
they are compared as 8-bit values, as they are saved.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..layers.lte import scaled_size

COLUMNS = ('input (nearest)', 'bicubic', '{model}', 'ground truth')
BACKGROUND, INK = 255, (0, 0, 0)
FONT_SCALE, LINE = 0.45, 18  # OpenCV Hershey font: about 10 px capitals; one text line is LINE px high
MARGIN = 6


def to_uint8(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from uint8, uint16 or float [0, 1] RGB/grey (an alpha channel is dropped)."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f'expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {img.shape}')
    img = img[:, :, :3] if img.shape[2] != 1 else np.repeat(img, 3, axis=2)
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if img.dtype == np.uint16:
        return np.rint(img.astype(np.float32) * (255 / 65535)).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        return np.rint(np.clip(np.nan_to_num(img), 0, 1) * 255).astype(np.uint8)
    raise ValueError(f'unsupported image dtype {img.dtype} (uint8, uint16 or float in [0, 1])')


def psnr_y(img: np.ndarray, gt: np.ndarray, scale: float) -> float:
    """PSNR (dB) of ``img`` against ``gt`` on the Y channel, ``ceil(scale)`` border pixels cropped
    (BasicSR's ``calculate_psnr``, which expects BGR); ``inf`` for identical images."""
    from basicsr.metrics.psnr_ssim import calculate_psnr

    a, b = to_uint8(img), to_uint8(gt)
    if a.shape != b.shape:
        raise ValueError(f'PSNR of images of different sizes: {a.shape} vs {b.shape}')
    return float(calculate_psnr(a[:, :, ::-1], b[:, :, ::-1], crop_border=math.ceil(scale), test_y_channel=True))


def nearest_upscale(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour enlargement to ``size = (H, W)``, pixel-centre aligned (shows the input's pixels)."""
    h, w = img.shape[:2]
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(int), w - 1)
    return img[rows][:, cols]


def bicubic_upscale(lq: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MATLAB-compatible bicubic upscaling of an 8-bit image to ``size = (H, W)`` (the benchmarks' bicubic)."""
    from ..utils.matlab_resize import bicubic_resize_to

    return bicubic_resize_to(to_uint8(lq), size)


def align_gt(gt: np.ndarray, lq_shape: tuple[int, ...], scale: float) -> tuple[np.ndarray | None, str]:
    """The part of ``gt`` that an ``lq_shape`` input upscaled by ``scale`` should reproduce.

    Exact ``round(scale*h) x round(scale*w)``, or up to ``ceil(scale)`` pixels larger, cropped to its
    top-left (a non-integer benchmark LR of ``prepare`` is ``floor(H/s)`` pixels, made from that
    top-left part, as ``ArbitraryScalePairedDataset`` and ``LTEModel`` also accept). Returns
    ``(gt, '')``, or ``(None, why)`` for a GT that does not belong to this input and scale.
    """
    size = scaled_size(lq_shape[0], lq_shape[1], scale)
    extra = [g - s for g, s in zip(gt.shape[:2], size)]
    if not all(0 <= e <= math.ceil(scale) for e in extra):
        return None, (f'GT {gt.shape[0]}x{gt.shape[1]} does not match input {lq_shape[0]}x{lq_shape[1]} '
                      f'at x{scale:g} (expected {size[0]}x{size[1]})')
    return gt[:size[0], :size[1]], ''


@dataclass
class ComparisonRow:
    """One image of a comparison: the four candidates as 8-bit RGB and their PSNRs against ``gt``.

    Build with :meth:`create`. ``panels`` are ``(input nearest-enlarged, bicubic, model, gt)``, all
    ``(H, W, 3)`` uint8; ``psnr`` has ``'nearest'``, ``'bicubic'`` and ``'model'`` (dB).
    """

    name: str
    scale: float
    panels: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    psnr: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls, name: str, lq: np.ndarray, bicubic: np.ndarray, model: np.ndarray, gt: np.ndarray,
               scale: float) -> 'ComparisonRow':
        """Check sizes (``bicubic``, ``model`` and ``gt`` equal, ``round(scale * lq size)``), convert to
        8-bit RGB and measure the PSNRs."""
        lq, bicubic, model, gt = (to_uint8(x) for x in (lq, bicubic, model, gt))
        size = gt.shape[:2]
        for label, img in (('bicubic', bicubic), ('model', model)):
            if img.shape[:2] != size:
                raise ValueError(f'{name}: {label} is {img.shape[0]}x{img.shape[1]}, ground truth {size[0]}x{size[1]}')
        if scaled_size(lq.shape[0], lq.shape[1], scale) != size:
            raise ValueError(f'{name}: ground truth {size[0]}x{size[1]} is not input {lq.shape[0]}x{lq.shape[1]} '
                             f'x{scale:g} (use align_gt)')
        nearest = nearest_upscale(lq, size)
        psnr = {k: psnr_y(v, gt, scale) for k, v in (('nearest', nearest), ('bicubic', bicubic), ('model', model))}
        return cls(name, float(scale), (nearest, bicubic, model, gt), psnr)


def pick_crop(reference: np.ndarray, gt: np.ndarray, size: int, border: int = 0) -> tuple[int, int, int]:
    """Top-left ``(y, x)`` and side of the ``size x size`` window where ``reference`` (bicubic) is
    furthest from ``gt`` (mean absolute error): the detail that upscaling has to recover. Deterministic
    (the first of equal windows); the window avoids ``border`` pixels where the image allows it."""
    diff = np.abs(reference.astype(np.float32) - gt.astype(np.float32)).mean(axis=2)
    h, w = diff.shape
    size = min(size, h, w)
    b = border if min(h, w) - 2 * border >= size else 0
    integral = np.pad(diff[b:h - b, b:w - b].cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 8)  # a coarse grid: windows a few pixels apart show the same detail
    ys, xs = np.arange(0, integral.shape[0] - size, step), np.arange(0, integral.shape[1] - size, step)
    y0, x0 = ys[:, None], xs[None, :]
    sums = integral[y0 + size, x0 + size] - integral[y0, x0 + size] - integral[y0 + size, x0] + integral[y0, x0]
    iy, ix = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(ys[iy]) + b, int(xs[ix]) + b, size


def _text(canvas: np.ndarray, text: str, centre_x: int, baseline: int, width: int) -> None:
    """Draw ``text`` centred at ``centre_x``, shrunk to fit ``width`` pixels."""
    import cv2

    scale = FONT_SCALE
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if tw > width:
        scale *= width / tw
        tw = width
    cv2.putText(canvas, text, (int(centre_x - tw / 2), baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, INK, 1,
                cv2.LINE_AA)


def _captions(row: ComparisonRow) -> list[str]:
    p = row.psnr
    delta = p['model'] - p['bicubic']
    return [f'{p["nearest"]:.2f} dB', f'{p["bicubic"]:.2f} dB', f'{p["model"]:.2f} dB ({delta:+.2f})',
            f'{row.name} x{row.scale:g}']


def render_comparison(rows: Sequence[ComparisonRow], crop: int = 96, zoom: int | None = None,
                      model_label: str = 'model') -> np.ndarray:
    """The figure as an ``(H, W, 3)`` uint8 RGB array.

    Args:
        rows: one :class:`ComparisonRow` per image (top to bottom).
        crop: side of the crop in output pixels (smaller images are shown whole).
        zoom: integer nearest-neighbour magnification of the crops (default: to about 192 pixels).
        model_label: title of the model's column.
    """
    if not rows:
        raise ValueError('a comparison needs at least one image')
    zoom = zoom or max(1, round(192 / crop))
    panel = crop * zoom
    width = 4 * panel + 5 * MARGIN
    height = 2 * LINE + len(rows) * (panel + LINE + MARGIN) + LINE
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    titles = [c.format(model=model_label) for c in COLUMNS]
    for j, title in enumerate(titles):
        _text(canvas, title, MARGIN + j * (panel + MARGIN) + panel // 2, LINE + 4, panel)
    top = 2 * LINE
    for row in rows:
        y, x, side = pick_crop(row.panels[1], row.panels[3], crop, border=math.ceil(row.scale))
        for j, (img, caption) in enumerate(zip(row.panels, _captions(row))):
            tile = np.repeat(np.repeat(img[y:y + side, x:x + side], zoom, 0), zoom, 1)
            left = MARGIN + j * (panel + MARGIN)
            canvas[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
            _text(canvas, caption, left + panel // 2, top + panel + LINE - 5, panel)
        top += panel + LINE + MARGIN
    border = ', '.join(sorted({str(math.ceil(r.scale)) for r in rows}))
    _text(canvas, f'PSNR of the whole image: Y channel, {border}-pixel border cropped; (+/-): model - bicubic',
          width // 2, height - 6, width - 2 * MARGIN)
    return canvas


def write_comparison(path: str | Path, rows: Sequence[ComparisonRow], crop: int = 96, zoom: int | None = None,
                     model_label: str = 'model') -> Path:
    """Render (:func:`render_comparison`) and write the figure as PNG, atomically; returns ``path``."""
    import cv2

    from ..utils.atomic import write_bytes

    path = Path(path)
    if path.suffix.lower() != '.png':
        raise ValueError(f'{path}: the comparison figure is written as PNG (.png)')
    ok, data = cv2.imencode('.png', render_comparison(rows, crop, zoom, model_label)[:, :, ::-1],
                            [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f'{path}: PNG encoding failed')
    write_bytes(path, data.tobytes())
    return path


def summary_table(rows: Sequence[ComparisonRow], model_label: str = 'model') -> str:
    """Per-image PSNRs (bicubic, model) and their means, as printed by the demo and ``infer --compare``."""
    width = max(12, *(len(r.name) + 2 for r in rows))
    lines = [f'  {"image":<{width}}{"bicubic":>10}{model_label:>12}']
    lines += [f'  {r.name:<{width}}{r.psnr["bicubic"]:>10.2f}{r.psnr["model"]:>12.2f}' for r in rows]
    mb = float(np.mean([r.psnr['bicubic'] for r in rows]))
    mm = float(np.mean([r.psnr['model'] for r in rows]))
    lines.append(f'  {"mean":<{width}}{mb:>10.2f}{mm:>12.2f}   ({mm - mb:+.2f} dB vs bicubic)')
    return '\n'.join(lines)
