"""Per-image outcomes of a preparation run, a parallel runner with a progress bar, and the summary."""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm import tqdm


@dataclass(frozen=True)
class ImageJob:
    """One source image to turn into a GT image and its bicubic LR versions (picklable for the workers)."""
    source: Path
    stem: str  # output file name without extension
    gt_dir: Path
    lq_dirs: tuple[tuple[int, Path], ...]  # (scale, folder)
    mod: int  # GT sides are cropped to multiples of this
    record_dir: Path  # <stem>.sha256 here: digest of the source the outputs were made from
    max_pixels: int  # larger sources are refused before decoding


@dataclass
class Outcome:
    """What happened to one input image."""
    source: str
    status: str  # 'written' | 'skipped' | 'failed'
    keys: list[str] = field(default_factory=list)
    reason: str = ''
    digest: str = ''  # SHA-256 of the source file the outputs were made from
    short_side: int = 0  # failed as smaller than the crop: its shorter side after mod-cropping


@dataclass
class Report:
    """Outcomes of a run plus free-form notes (LMDBs built/kept); ``exit_code`` is 1 if anything failed."""
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)  # what to do about the failures, printed last

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 'failed']

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def summary(self) -> str:
        lines = [f'{len(self.outcomes)} images: {self.count("written")} processed, '
                 f'{self.count("skipped")} already complete, {len(self.failed)} failed.']
        lines += [f'  {n}' for n in self.notes]
        if self.failed:
            lines.append('Skipped because of errors (fix or remove them and run again):')
            lines += [f'  {o.source}: {o.reason}' for o in self.failed]
        lines += self.hints
        return '\n'.join(lines)


def _init_worker() -> None:
    import torch
    torch.set_num_threads(1)  # one process per core; torch's pool would oversubscribe


def run_parallel(func: Callable[[Any], Outcome], items: Iterable[Any], workers: int, desc: str) -> list[Outcome]:
    """``[func(i) for i in items]`` in ``workers`` processes (in-process for 1), with a tqdm bar."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [func(i) for i in tqdm(items, desc=desc, unit='img')]
    ctx = mp.get_context('fork') if 'fork' in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(min(workers, len(items)), initializer=_init_worker) as pool:
        return list(tqdm(pool.imap(func, items), total=len(items), desc=desc, unit='img'))
