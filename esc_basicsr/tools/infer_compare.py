"""``python -m esc_basicsr.infer --compare GT_DIR``: PSNR and a comparison figure for inputs with a ground truth.

After inference, each written output whose input has a same-stem image in ``GT_DIR`` (in the same
sub-folder as the input relative to the input root, else at the top of ``GT_DIR``) is compared with
it and with bicubic upscaling of the input: per-image PSNRs (Y channel, ``ceil(scale)`` border, as
the demo and BasicSR's tests measure) in the summary, and the first :data:`MAX_ROWS` images in
``comparison.png`` next to the outputs. The output is read back from its file, so the numbers are
those of what was written (a lossy ``--ext jpg`` counts).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Sequence

from ..utils.image_io import IMAGE_EXTENSIONS, ImageReadError, read_image
from .comparison import ComparisonRow, align_gt, bicubic_upscale, summary_table, write_comparison

MAX_ROWS = 8  # a taller figure is no longer looked at; the summary lists every image


def check_gt_dir(gt_dir: str | Path) -> None:
    """Raise ValueError (a usage error, before any work) unless ``gt_dir`` is a folder."""
    if not Path(gt_dir).is_dir():
        raise ValueError(f'--compare {gt_dir}: no such folder (expected ground-truth images named like the inputs)')


def check_gt_untouched(plan: Sequence[tuple[Path, Path]], gt_dir: str | Path, output_dir: str | Path) -> None:
    """Raise ValueError (before any work) if ``-o`` is the ground-truth folder or an output would replace
    a file in it: the ground truths would be lost and the outputs compared with themselves."""
    from ..utils.output_paths import same_file

    if same_file(output_dir, gt_dir):
        raise ValueError(f'-o {output_dir} is the --compare folder {gt_dir}: the outputs would overwrite the ground '
                         'truth images (and be compared with themselves); choose another -o')
    gt_resolved = Path(gt_dir).resolve()
    for _, out in plan:
        if out.exists() and gt_resolved in out.resolve().parents:
            raise ValueError(f'output {out} would overwrite a ground truth image of --compare {gt_dir}; '
                             'choose another -o')


def find_gt(gt_dir: Path, relative: Path) -> Path | None:
    """The ground truth of the input at ``relative`` (to the input root): same stem, any image
    extension, in the same sub-folder of ``gt_dir`` or at its top; None if there is none."""
    for folder in dict.fromkeys((gt_dir / relative.parent, gt_dir)):
        for ext in IMAGE_EXTENSIONS:
            for candidate in (folder / f'{relative.stem}{ext}', folder / f'{relative.stem}{ext.upper()}'):
                if candidate.is_file():
                    return candidate
    return None


def figure_path(output_dir: Path, outputs: Sequence[Path]) -> Path:
    """``output_dir/comparison.png``, or ``comparison-N.png`` if an output of this run has that name."""
    taken = {str(p.resolve()).casefold() for p in outputs}
    path, n = output_dir / 'comparison.png', 1
    while str(path.resolve()).casefold() in taken:
        path, n = output_dir / f'comparison-{n}.png', n + 1
    return path


def compare_outputs(done: Sequence[tuple[Path, Path]], gt_dir: str | Path, scale: float, output_dir: str | Path,
                    model_label: str = 'model') -> tuple[list[ComparisonRow], Path | None]:
    """Compare the written outputs with their ground truths; print the summary and the figure's path.

    Args:
        done: ``(input, output)`` of every image written.
        gt_dir: the folder of ground truths.
        scale: the upscaling factor of the run.
        output_dir: the ``-o`` folder (the figure goes there; sub-folders are mirrored from it).
        model_label: the model's column title.

    Returns:
        The compared rows and the figure's path (None if no input had a usable ground truth).
    """
    gt_dir, output_dir = Path(gt_dir), Path(output_dir)
    rows, notes = [], []
    for src, out in done:
        gt_path = find_gt(gt_dir, out.relative_to(output_dir).parent / src.name)
        if gt_path is None:
            notes.append(f'{src}: no ground truth named {src.stem}.* in {gt_dir}')
            continue
        try:
            lq, sr, gt = (read_image(p).rgb for p in (src, out, gt_path))
        except ImageReadError as exc:
            notes.append(f'{src}: {exc}')
            continue
        gt, why = align_gt(gt, lq.shape, scale)
        if gt is None:
            notes.append(f'{src}: {gt_path.name}: {why}')
            continue
        rows.append(ComparisonRow.create(src.stem, lq, bicubic_upscale(lq, gt.shape[:2]), sr, gt, scale))
    for note in notes:
        print(f'note: --compare: {note}', file=sys.stderr)
    if not rows:
        print(f'--compare: no output could be compared (no matching ground truth in {gt_dir})', file=sys.stderr)
        return rows, None
    path = write_comparison(figure_path(output_dir, [out for _, out in done]), rows[:MAX_ROWS],
                            model_label=model_label)
    shown = f' (the first {MAX_ROWS} of {len(rows)})' if len(rows) > MAX_ROWS else ''
    print(f'PSNR (dB, Y channel, {math.ceil(scale)}-pixel border) against {gt_dir}, x{scale:g}:\n'
          f'{summary_table(rows, model_label)}\ncomparison figure{shown}: {path}', file=sys.stderr)
    return rows, path
