"""Benchmark sets (Set5, Set14, B100, Urban100, Manga109) in BasicSR's layout.

From HR images only::

    <out>/GTmod12/<stem>.png     HR cropped to a multiple of 12 (valid for x2, x3, x4)
    <out>/LRbicx{s}/<stem>.png   MATLAB-bicubic downscale of GTmod12 by s
                                 (other scales, e.g. 2.5 or 8: see :func:`downscale`)

Same file names in every folder, as ``PairedImageDataset`` (``filename_tmpl: '{}'``) expects.
``<out>/.sources/<stem>.sha256`` records the source each image was made from: a replaced source
is redone.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils.atomic import remove_stale_temporaries, write_bytes
from ..utils.image_io import DEFAULT_MAX_PIXELS, write_png
from ..utils.image_markers import png_complete
from ..utils.matlab_resize import bicubic_resize, bicubic_resize_to
from .crop import mod_crop
from .div2k import assign_stems, check_not_inputs, same_source, source_record
from .report import ImageJob, Outcome, Report, run_parallel
from .sources import ImageError, check_kinds, check_writable, list_images, read_bgr, source_digest


def lr_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """LR size for an ``h x w`` HR image at ``scale`` (LIIF's benchmark convention: floor)."""
    return int(np.floor(h / scale + 1e-9)), int(np.floor(w / scale + 1e-9))


def scale_name(scale: float) -> str:
    """Folder suffix of a scale: ``2`` -> ``'2'``, ``2.5`` -> ``'2.5'`` (``LRbicx{name}``)."""
    return f'{scale:g}'


def downscale(img: np.ndarray, scale: float, mod: int) -> np.ndarray:
    """LR image of a uint8 ``GTmod{mod}`` image at ``scale``.

    An integer scale dividing ``mod``: MATLAB ``imresize(img, 1/scale)`` (exact pairs). Any other
    scale (LIIF's benchmark convention): the LR size is ``floor(H/s) x floor(W/s)``, made from the
    top-left ``round(s*h) x round(s*w)`` of the GT, which is what a test crops the GT to.
    """
    if float(scale).is_integer() and mod % int(scale) == 0:
        return bicubic_resize(img, 1 / int(scale))
    h, w = lr_size(img.shape[0], img.shape[1], scale)
    if h < 1 or w < 1:
        raise ValueError(f'{img.shape[0]}x{img.shape[1]} is too small for scale {scale:g}')
    return bicubic_resize_to(img[:round(scale * h), :round(scale * w)], (h, w))


def _process(job: ImageJob) -> Outcome:
    try:
        targets = [job.gt_dir / f'{job.stem}.png'] + [d / f'{job.stem}.png' for _, d in job.lq_dirs]
        digest = source_digest(job.source)
        img = read_bgr(job.source, job.max_pixels)  # also for complete outputs: an unreadable source is always reported
        known = same_source(job, digest)
        if known and all(png_complete(t) for t in targets):
            return Outcome(str(job.source), 'skipped', [job.stem], digest=digest)
        if not known:
            source_record(job).unlink(missing_ok=True)
        h0, w0 = img.shape[:2]
        img = mod_crop(img, job.mod)
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise ImageError(f'too small ({h0}x{w0}; needs at least {job.mod}x{job.mod})')
        if not known or not png_complete(targets[0]):
            write_png(targets[0], img)
        for (s, _), target in zip(job.lq_dirs, targets[1:], strict=True):
            if not known or not png_complete(target):
                write_png(target, downscale(img, s, job.mod))
        write_bytes(source_record(job), (digest + '\n').encode(), make_parents=False)
        return Outcome(str(job.source), 'written', [job.stem], digest=digest)
    except ImageError as exc:
        return Outcome(str(job.source), 'failed', reason=str(exc).removeprefix(f'{job.source}: '))
    except Exception as exc:  # noqa: BLE001 - one bad image must not stop the others
        return Outcome(str(job.source), 'failed', reason=f'{type(exc).__name__}: {exc}')


def check_not_foreign(outputs: list[Path], record_dir: Path) -> None:
    """Refuse output folders holding images that esc_basicsr prepare did not make (no ``.sources`` record):
    another benchmark's ``GTmod12``/``LRbicx*`` would be overwritten image by image."""
    made = [d for d in outputs if d.is_dir() and any(d.iterdir())]
    if made and not record_dir.is_dir():
        raise ValueError(f'--out {record_dir.parent}: {made[0]} exists and was not made by esc_basicsr prepare '
                         f'(there is no {record_dir.name} record): it would be overwritten; choose another --out or '
                         'move it away')


def prepare_benchmark(hr_dirs: list[str | Path], out: str | Path, scales: list[float], workers: int = 1,
                      mod: int = 12, max_pixels: int = DEFAULT_MAX_PIXELS) -> Report:
    """HR folder(s) -> ``GTmod{mod}`` and ``LRbicx{s}`` folders under ``out``."""
    out = Path(out)
    scales = sorted(set(scales))
    for s in scales:
        if s < 1:
            raise ValueError(f'scale {s} must be >= 1')
    report = Report()
    files = assign_stems(list_images(hr_dirs), report)  # a mistyped --hr fails here, before anything is written
    gt_dir = out / f'GTmod{mod}'
    lq_dirs = tuple((s, out / f'LRbicx{scale_name(s)}') for s in scales)
    record_dir = out / '.sources'
    check_not_inputs([gt_dir] + [d for _, d in lq_dirs], hr_dirs)
    check_kinds([gt_dir, record_dir] + [d for _, d in lq_dirs])  # a file of that name: refused, not a traceback
    check_not_foreign([gt_dir] + [d for _, d in lq_dirs], record_dir)
    check_writable(out)
    for d in [gt_dir, record_dir] + [d for _, d in lq_dirs]:
        d.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(d)
    jobs = [ImageJob(f, stem, gt_dir, lq_dirs, mod, record_dir, max_pixels) for f, stem in files]
    report.outcomes += run_parallel(_process, jobs, workers, desc=f'{out.name}')
    report.notes.append(f'{out}: {gt_dir.name}, ' + ', '.join(d.name for _, d in lq_dirs))
    return report
