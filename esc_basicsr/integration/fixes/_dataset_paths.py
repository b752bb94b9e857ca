"""Dataset paths of an option file, all checked at once (part of :mod:`.option_checks`).

BasicSR 1.4.2 finds a missing dataset folder only when it builds that dataset, after the experiment
folder exists, and stops at the first. :func:`check_dataset_paths` lists every ``dataroot_gt``/
``dataroot_lq``/``meta_info_file`` of a ``disk``/``lmdb`` dataset that cannot be read (LMDBs also need
``data.mdb`` and ``meta_info.txt``; paired folders need LR files named as ``filename_tmpl`` says), or,
with ``ESC_BASICSR_SKIP_MISSING_SETS=1``, leaves those validation/test sets out.
"""
from __future__ import annotations

import os
from os import path as osp

# ``ESC_BASICSR_SKIP_MISSING_SETS=1``: validation/test sets whose folders are missing are left out
SKIP_MISSING_ENV = 'ESC_BASICSR_SKIP_MISSING_SETS'
# dataset types that pair GT and LR files by name in two folders (BasicSR's paired_paths_from_folder)
PAIRED_FOLDER_TYPES = ('PairedImageDataset', 'ArbitraryScalePairedDataset')


class DatasetPathError(FileNotFoundError):
    """Dataset paths of an option file that BasicSR could not read (all of them, one per line)."""


def _lq_names_problem(dataset: dict) -> str | None:
    """Why BasicSR would not find the LR file of every GT file of a paired folder dataset (``None``:
    it would), with the ``filename_tmpl`` that fits when the LR names are the GT names plus a suffix."""
    gt_dir, lq_dir = dataset.get('dataroot_gt'), dataset.get('dataroot_lq')
    if (dataset.get('type') not in PAIRED_FOLDER_TYPES or dataset.get('meta_info_file')
            or not isinstance(gt_dir, str) or not isinstance(lq_dir, str)
            or not osp.isdir(gt_dir) or not osp.isdir(lq_dir)):
        return None
    gt_files, lq_files = (sorted(e.name for e in os.scandir(d) if e.is_file() and not e.name.startswith('.'))
                          for d in (gt_dir, lq_dir))  # what BasicSR's scandir lists
    lq_names = set(lq_files)
    tmpl = dataset.get('filename_tmpl', '{}')
    try:
        missing = [n for n in gt_files if tmpl.format(osp.splitext(n)[0]) + osp.splitext(n)[1] not in lq_names]
    except (IndexError, KeyError, ValueError, AttributeError):  # not a one-field template: BasicSR will say so
        return None
    if not missing:
        if len(lq_files) != len(gt_files):  # BasicSR asserts equal counts
            return f'{lq_dir!r} holds {len(lq_files)} files, {gt_dir!r} {len(gt_files)}: keep only the pairs'
        return None
    stem, ext = osp.splitext(missing[0])
    expected = tmpl.format(stem) + ext
    found = sorted(n for n in lq_files if n.startswith(stem) and n.endswith(ext) and n != expected)
    hint = ''
    if found:
        suffix = found[0][len(stem):len(found[0]) - len(ext)]
        hint = f' ({lq_dir!r} has {found[0]!r}: set filename_tmpl: \'{{}}{suffix}\' for this dataset)'
    return (f'{len(missing)} of {len(gt_files)} GT files have no LR file named as filename_tmpl '
            f'{tmpl!r} says, e.g. {missing[0]!r} -> {expected!r}{hint}')


def dataset_problems(opt: dict) -> dict[str, list[str]]:
    """Phase (``train``, ``val``, ``test_1`` ...) -> what is wrong with the paths of that dataset
    (missing paths, incomplete LMDBs, LR files not named as ``filename_tmpl`` says); only
    datasets with problems are listed. ``disk``/``lmdb`` datasets only."""
    problems: dict[str, list[str]] = {}
    for phase, dataset in (opt.get('datasets') or {}).items():
        backend = (dataset.get('io_backend') or {}).get('type', 'disk')
        if backend not in ('disk', 'lmdb'):
            continue
        found = []
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file', 'meta_info'):
            path = dataset.get(key)
            if not isinstance(path, str) or not path:
                continue
            where = f'datasets.{phase}.{key} ({dataset.get("name", phase)})'
            if not osp.exists(path):
                found.append(f'{where}: {path!r} does not exist')
            elif backend == 'lmdb' and key.startswith('dataroot'):
                for needed in ('data.mdb', 'meta_info.txt'):
                    if not osp.isfile(osp.join(path, needed)):
                        found.append(f'{where}: {path!r} is not a complete LMDB ({needed} is missing); rebuild it '
                                     'with "python -m esc_basicsr.prepare"')
        names = _lq_names_problem(dataset) if not found and backend == 'disk' else None
        if names:
            found.append(f'datasets.{phase} ({dataset.get("name", phase)}): {names}')
        if found:
            problems[phase] = found
    return problems


def skippable(phase: str) -> bool:
    """Whether a dataset phase is a validation/test set (which a run can do without)."""
    return phase.split('_')[0] in ('val', 'test')


def check_dataset_paths(opt: dict, opt_file: str = '?') -> list[str]:
    """Raise ``DatasetPathError`` listing every dataset path problem of ``opt`` (:func:`dataset_problems`).

    With ``ESC_BASICSR_SKIP_MISSING_SETS=1`` validation/test datasets with problems are removed from
    ``opt`` instead (as long as something is left to test) and their names returned.
    """
    problems = dataset_problems(opt)
    if not problems:
        return []
    datasets = opt['datasets']
    name = {phase: datasets[phase].get('name', phase) for phase in datasets}
    present = [name[p] for p in datasets if p not in problems and skippable(p)]
    can_skip = all(skippable(p) for p in problems) and (present or opt.get('is_train'))
    if can_skip and os.environ.get(SKIP_MISSING_ENV, '').strip().lower() not in ('', '0', 'false', 'no', 'off'):
        for phase in problems:
            del datasets[phase]
        return [name[p] for p in problems]
    lines = [f'{opt_file}: {len(problems)} of {len(datasets)} datasets cannot be read, '
             f'{", ".join(name[p] for p in problems)} (relative paths are resolved from {os.getcwd()}; the layout, '
             'how to prepare it and where the sets come from: docs/data.md):']
    lines += [f'  {line}' for phase in problems for line in problems[phase]]
    if can_skip:
        what = f'only {", ".join(present)}' if present else 'without validation'
        lines.append(f'To run {what}: set {SKIP_MISSING_ENV}=1 (e.g. "{SKIP_MISSING_ENV}=1 python -m esc_basicsr.'
                     f'{"train" if opt.get("is_train") else "test"} -opt {opt_file}"), or delete the other entries '
                     'under datasets: in a copy of the option file.')
    raise DatasetPathError('\n'.join(lines))
