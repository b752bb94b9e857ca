"""DIV2K-style paired LMDBs: HR sub-images and MATLAB-bicubic LR sub-images.

Recipe (BasicSR's ``scripts/data_preparation/extract_subimages.py`` + ``create_lmdb.py``):

1. each HR image is mod-cropped to a multiple of ``mod`` (12, so that x2/x3/x4 share one GT set);
2. HR sub-images: ``crop_size`` 480, ``step`` 240, ``thresh_size`` 0, named ``<stem>_s001.png``...;
3. LR: the **whole** mod-cropped image is downscaled (MATLAB bicubic), like the official
   ``DIV2K_train_LR_bicubic/X{s}`` images, and cropped at the same places with size and step
   divided by ``s``. (BasicSR crops the official LR images this way; cropping first and
   downscaling each crop would give different pixels near the crop borders.)
4. GT and LQ LMDBs with identical keys via ``make_lmdb_from_imgs`` (+ ``meta_info.txt``).

Layout under ``out`` for ``name='DIV2K_train'``::

    DIV2K_train_HR_sub/               DIV2K_train_HR_sub.lmdb
    DIV2K_train_LR_bicubic_X2_sub/    DIV2K_train_LR_bicubic_X2_sub.lmdb   (X3, X4 likewise)
    DIV2K_train_prepare.json          (crop parameters; a re-run with other ones is refused)
    .DIV2K_train_sources/<stem>.sha256  (digest of the source each image's sub-images come from)

A source replaced by another file of the same name has its sub-images redone (and the ones it no
longer has removed); each LMDB records a digest of all its sources and is rebuilt when it changes.
"""
from __future__ import annotations

import glob
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..utils.atomic import remove_stale_temporaries, write_bytes
from ..utils.image_io import DEFAULT_MAX_PIXELS, write_png
from ..utils.image_markers import png_complete
from ..utils.matlab_resize import bicubic_resize
from ..utils.output_paths import same_file
from .crop import fitting_crop, mod_crop, subimage_boxes
from .lmdb_tools import build_lmdb, check_lmdb_targets, remove_stale_lmdbs
from .report import ImageJob, Outcome, Report, run_parallel
from .sources import ImageError, check_kinds, check_writable, list_images, read_bgr, safe_stem, source_digest


def gt_folder(out: Path, name: str) -> Path:
    return out / f'{name}_HR_sub'


def lq_folder(out: Path, name: str, scale: int) -> Path:
    return out / f'{name}_LR_bicubic_X{scale}_sub'


@dataclass(frozen=True)
class _Job(ImageJob):
    crop_size: int
    step: int
    thresh_size: int
    compress_level: int


def source_record(job: ImageJob) -> Path:
    return job.record_dir / f'{job.stem}.sha256'


def same_source(job: ImageJob, digest: str) -> bool:
    """Whether the outputs of ``job`` were made from a source with this ``digest`` (recorded after they
    were all written; no record, e.g. a run killed half-way, means they must be redone)."""
    try:
        return source_record(job).read_text().strip() == digest
    except OSError:
        return False


def remove_extra_subimages(folder: Path, stem: str, count: int) -> None:
    """Delete ``<stem>_sNNN.png`` with NNN > ``count`` (left by an earlier, larger source of this name)."""
    pattern = re.compile(re.escape(stem) + r'_s(\d{3,})\.png')
    for p in folder.glob(f'{glob.escape(stem)}_s*.png'):
        m = pattern.fullmatch(p.name)
        if m and int(m.group(1)) > count:
            p.unlink(missing_ok=True)


def _process(job: _Job) -> Outcome:
    try:
        digest = source_digest(job.source)
        img = read_bgr(job.source, job.max_pixels)
        h0, w0 = img.shape[:2]
        img = mod_crop(img, job.mod)
        h, w = img.shape[:2]
        if h < job.crop_size or w < job.crop_size:
            fit = fitting_crop(min(h, w), math.lcm(*(s for s, _ in job.lq_dirs)))
            use = f'; --crop-size {fit[0]} --step {fit[1]} would use it' if fit else ''
            return Outcome(str(job.source), 'failed', short_side=min(h, w),
                           reason=f'too small ({h0}x{w0}, {h}x{w} after cropping to a multiple of {job.mod}) for '
                                  f'--crop-size {job.crop_size}{use}')
        boxes = subimage_boxes(h, w, job.crop_size, job.step, job.thresh_size)
        keys = [f'{job.stem}_s{i + 1:03d}' for i in range(len(boxes))]
        known = same_source(job, digest)
        todo_gt = [i for i, k in enumerate(keys) if not known or not png_complete(job.gt_dir / f'{k}.png')]
        todo_lq = {s: [i for i, k in enumerate(keys) if not known or not png_complete(d / f'{k}.png')]
                   for s, d in job.lq_dirs}
        if not todo_gt and not any(todo_lq.values()):
            return Outcome(str(job.source), 'skipped', keys, digest=digest)
        if not known:
            source_record(job).unlink(missing_ok=True)
            for d in [job.gt_dir] + [d for _, d in job.lq_dirs]:
                remove_extra_subimages(d, job.stem, len(keys))
        c = job.crop_size
        for i in todo_gt:
            y, x = boxes[i]
            write_png(job.gt_dir / f'{keys[i]}.png', img[y:y + c, x:x + c], job.compress_level)
        for s, d in job.lq_dirs:
            if todo_lq[s]:
                lr, cs = bicubic_resize(img, 1 / s), c // s
                for i in todo_lq[s]:
                    y, x = boxes[i][0] // s, boxes[i][1] // s
                    write_png(d / f'{keys[i]}.png', lr[y:y + cs, x:x + cs], job.compress_level)
        write_bytes(source_record(job), (digest + '\n').encode(), make_parents=False)
        return Outcome(str(job.source), 'written', keys, digest=digest)
    except ImageError as exc:
        return Outcome(str(job.source), 'failed', reason=str(exc).removeprefix(f'{job.source}: '))
    except Exception as exc:  # noqa: BLE001 - one bad image must not stop the others
        return Outcome(str(job.source), 'failed', reason=f'{type(exc).__name__}: {exc}')


def check_parameters(scales: list[int], crop_size: int, step: int, mod: int) -> None:
    """Raise ``ValueError`` unless LR crops line up with HR crops for every scale."""
    for s in scales:
        if s < 1 or mod % s or crop_size % s or step % s:
            raise ValueError(f'scale {s}: mod ({mod}), crop size ({crop_size}) and step ({step}) must be multiples '
                             'of every scale')
    if step < 1 or crop_size < 1:
        raise ValueError('crop size and step must be positive')


def _check_params_file(path: Path, params: dict, outputs: list[Path]) -> None:
    """Record ``params``; refuse other ones than those recorded while outputs made with them exist, and
    outputs that exist without the record (another dataset's sub-images or LMDB, made by other tools or
    another ``--name``: they would be overwritten and deleted)."""
    made = [d for d in outputs if d.is_dir() and any(d.iterdir())]
    if made and not path.is_file():
        raise ValueError(f'--out {path.parent}: {made[0]} exists and was not made by esc_basicsr prepare (there is no '
                         f'{path.name}): it would be overwritten; choose another --out or --name, or move it away')
    if path.is_file() and made:
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != params:
            raise ValueError(f'{path} records other crop parameters ({previous}) than this run ({params}); '
                             'use another --out/--name or delete the old outputs.')
    else:
        write_bytes(path, (json.dumps(params, indent=1) + '\n').encode(), make_parents=False)


def sources_fingerprint(outcomes: list[Outcome], params: dict) -> str:
    """Digest of every source (by its keys) and the crop parameters: an LMDB made from other
    sources or parameters is rebuilt even when its keys are the same."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for o in sorted(outcomes, key=lambda o: o.keys[0] if o.keys else ''):
        h.update(f'{",".join(o.keys)}\t{o.digest}\n'.encode())
    return h.hexdigest()


def check_not_inputs(outputs: list[Path], hr_dirs: list[str | Path]) -> None:
    """Refuse an output folder that is one of the ``--hr`` folders (its images would be overwritten)."""
    for d in outputs:
        for hr in hr_dirs:
            if same_file(d, hr):
                raise ValueError(f'output folder {d} is the --hr folder {hr}: its images would be overwritten; '
                                 'choose another --out')


def assign_stems(files: list[Path], report: Report) -> list[tuple[Path, str]]:
    """Unique LMDB-safe stems; a file whose stem collides with an earlier one is reported as failed."""
    seen: dict[str, Path] = {}
    out = []
    for f in files:
        try:
            stem = safe_stem(f)
        except ImageError as exc:
            report.outcomes.append(Outcome(str(f), 'failed', reason=str(exc).removeprefix(f'{f}: ')))
            continue
        if stem in seen:
            report.outcomes.append(Outcome(str(f), 'failed', reason=f'same name as {seen[stem]}'))
            continue
        seen[stem] = f
        out.append((f, stem))
    return out


def prepare_paired_lmdb(hr_dirs: list[str | Path], out: str | Path, name: str, scales: list[int],
                        workers: int = 1, crop_size: int = 480, step: int = 240, thresh_size: int = 0,
                        mod: int = 12, compress_level: int = 3, lmdb_compress_level: int = 1,
                        max_pixels: int = DEFAULT_MAX_PIXELS) -> Report:
    """HR folder(s) -> GT/LQ sub-image folders and LMDBs under ``out`` (see the module docstring).

    Unusable images are skipped and listed in the returned :class:`Report` (``exit_code`` 1).
    """
    out = Path(out)
    scales = sorted(set(int(s) for s in scales))
    check_parameters(scales, crop_size, step, mod)
    if not name or Path(name).name != name or name.startswith('.'):
        raise ValueError(f'--name {name!r}: must be a plain file name prefix, e.g. DIV2K_train')
    params = dict(crop_size=crop_size, step=step, thresh_size=thresh_size, mod=mod)
    report = Report()
    files = assign_stems(list_images(hr_dirs), report)  # a mistyped --hr fails here, before anything is written
    dirs = [gt_folder(out, name)] + [lq_folder(out, name, s) for s in scales]
    check_not_inputs(dirs, hr_dirs)
    record_dir = out / f'.{name}_sources'
    lmdbs = [d.with_name(d.name + '.lmdb') for d in dirs]
    check_kinds(dirs + [record_dir], [out / f'{name}_prepare.json'])  # before anything is made
    check_lmdb_targets(lmdbs)  # a name taken by the user's own file or LMDB is refused, never replaced
    check_writable(out)
    _check_params_file(out / f'{name}_prepare.json', params, dirs + lmdbs)
    for d in dirs + [record_dir]:
        d.mkdir(exist_ok=True)
        remove_stale_temporaries(d)
    remove_stale_lmdbs(out)
    lq_dirs = tuple((s, lq_folder(out, name, s)) for s in scales)
    jobs = [_Job(f, stem, dirs[0], lq_dirs, mod, record_dir, max_pixels, crop_size=crop_size, step=step,
                 thresh_size=thresh_size, compress_level=compress_level) for f, stem in files]
    report.outcomes += run_parallel(_process, jobs, workers, desc=f'{name} sub-images')
    small = [o.short_side for o in report.outcomes if o.short_side]
    fit = fitting_crop(min(small), math.lcm(*scales)) if small else None
    if fit:
        made = any(o.status != 'failed' for o in report.outcomes)
        report.hints.append(f'{len(small)} image(s) smaller than --crop-size {crop_size}: --crop-size {fit[0]} '
                            f'--step {fit[1]} would use all of them (multiples of {math.lcm(*scales)}, which every '
                            'scale divides' + (f'; with a new --out or --name, since {name}_prepare.json records the '
                                               'crop parameters' if made else '')
                            + '; training needs gt_size <= crop size)')
    used = [o for o in report.outcomes if o.status != 'failed']
    keys = sorted(k for o in used for k in o.keys)
    if not keys:
        report.notes.append('no usable images: no LMDB written')
        return report
    fingerprint = sources_fingerprint(used, params)
    for d in dirs:
        lmdb_path = d.with_name(d.name + '.lmdb')
        state = build_lmdb(d, lmdb_path, keys, lmdb_compress_level, fingerprint)
        done = 'already complete' if state == 'kept' else 'written'
        report.notes.append(f'{lmdb_path}: {len(keys)} entries ({done})')
    return report
