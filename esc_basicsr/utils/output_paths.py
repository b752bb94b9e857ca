"""The one place that decides which files a tool reads and writes, and refuses unsafe plans.

* :func:`list_inputs` expands a file, a folder (recursive) or a glob, leaving out anything inside
  the output folder (so a result folder nested in the input folder is not upscaled again) and
  temporaries of interrupted runs.
* :func:`plan_outputs` maps each input to its output file and raises :class:`OutputPathError`,
  before any work, when an output would overwrite an input (the same file under any spelling:
  relative/absolute, ``./x/``, symlinks, hard links, case on case-insensitive file systems, all
  compared by device and inode), when the output folder is the input folder, or when two inputs
  would be written to the same output (``p.png`` and ``p.jpg`` with ``--ext png``; names that differ
  only in case or Unicode normalisation count as the same, as they do on Windows and macOS).
* :func:`check_distinct_files` does the same for tools writing named files (export, benchmark).
"""
from __future__ import annotations

import glob
import os
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence

from .atomic import TMP_MARK
from .image_io import IMAGE_EXTENSIONS


class OutputPathError(ValueError):
    """An output plan that would overwrite an input or lose a result."""


def _file_id(path: str | Path) -> tuple[int, int] | None:
    """``(device, inode)`` of an existing path (following symlinks), else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two spellings name the same existing file or folder."""
    ida = _file_id(a)
    return ida is not None and ida == _file_id(b)


def _name_key(path: Path) -> str:
    """Comparison key of an output path: absolute, case-folded, NFC (portable collisions)."""
    return unicodedata.normalize('NFC', os.path.normcase(os.path.abspath(path))).casefold()


def _is_temporary(name: str) -> bool:
    return name.startswith('.') and TMP_MARK in name


def _walk(folder: Path, excluded: set[tuple[int, int]], extensions: Sequence[str]) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if _file_id(os.path.join(root, d)) not in excluded)
        files += [Path(root) / n for n in names
                  if Path(n).suffix.lower() in extensions and not _is_temporary(n)]
    return files


def _inside(path: Path, excluded: set[tuple[int, int]]) -> bool:
    return any(_file_id(parent) in excluded for parent in path.resolve().parents)


def glob_base(pattern: str) -> Path:
    """Folder part of a glob before its first wildcard (the root that output folders mirror)."""
    base = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path('.')


def input_root(spec: str) -> Path | None:
    """The folder whose tree the outputs mirror: the folder itself, or a glob's fixed prefix
    (None for a single file)."""
    path = Path(spec)
    if path.is_file():
        return None
    return path if path.is_dir() else glob_base(spec)


def list_inputs(spec: str, extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
                exclude: Iterable[str | Path] = ()) -> list[tuple[Path, Path]]:
    """Expand ``spec`` (a file, a folder searched recursively, or a glob) into ``(path, relative)``.

    ``relative`` is the name to use under the output folder: the file name for a file, the path
    relative to the folder (or the glob's fixed prefix), so sub-folders are mirrored. Files named
    explicitly or matched by a glob are kept whatever their extension (so that an unreadable one
    is reported); folders are searched for ``extensions`` only. Anything inside an ``exclude``
    folder (the output folder) and hidden temporaries are left out. Sorted by relative name.
    """
    excluded = {i for i in map(_file_id, exclude) if i is not None}
    path = Path(spec)
    if path.is_file():
        return [(path, Path(path.name))]
    if path.is_dir():
        files = _walk(path, excluded, extensions)
        return sorted(((p, p.relative_to(path)) for p in files), key=lambda t: str(t[1]))
    if glob.has_magic(spec):
        base = glob_base(spec)
        files = [Path(p) for p in glob.glob(spec, recursive=True)
                 if os.path.isfile(p) and not _is_temporary(os.path.basename(p))]
        files = [p for p in files if not (excluded and _inside(p, excluded))]
        return sorted(((p, p.relative_to(base)) for p in files), key=lambda t: str(t[1]))
    raise FileNotFoundError(f'input {spec!r} is neither a file, a folder nor a glob that matches files')


def output_path(output_dir: str | Path, relative: Path, suffix: str = '', ext: str | None = None) -> Path:
    """``output_dir / relative`` with ``suffix`` added to the stem (``img.png`` -> ``img_x2.png`` for
    ``suffix='_x2'``) and the extension replaced by ``ext`` if given."""
    ext = relative.suffix if ext is None else ('.' + ext.lstrip('.'))
    return Path(output_dir) / relative.parent / f'{relative.stem}{suffix}{ext}'


def plan_outputs(inputs: Sequence[tuple[Path, Path]], output_dir: str | Path, suffix: str = '',
                 ext: str | None = None, input_spec: str | None = None) -> list[tuple[Path, Path]]:
    """``[(input, output)]`` for ``inputs`` from :func:`list_inputs`; raises :class:`OutputPathError`
    (before anything is written) for an unsafe plan (see the module docstring)."""
    output_dir = Path(output_dir)
    if any(sep and sep in suffix for sep in (os.sep, os.altsep, '/')) or suffix in ('.', '..'):
        raise OutputPathError(f'--suffix {suffix!r}: must not contain a path separator (outputs stay in -o)')
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputPathError(f'output {str(output_dir)!r} exists and is not a folder')
    root = input_root(input_spec) if input_spec is not None else None
    if root is not None and same_file(root, output_dir):
        raise OutputPathError(f'output folder {str(output_dir)!r} is the input folder {str(root)!r}: the '
                              'originals would be overwritten or, with --suffix, upscaled again by the next '
                              'run; choose another -o')
    input_ids = {}
    for src, _ in inputs:
        fid = _file_id(src)
        if fid is not None:
            input_ids.setdefault(fid, src)
    plan, seen, clashes = [], {}, []
    for src, rel in inputs:
        out = output_path(output_dir, rel, suffix, ext)
        fid = _file_id(out)
        if fid is not None and fid in input_ids:
            raise OutputPathError(f'output {str(out)!r} is the input file {str(input_ids[fid])!r}; it would be '
                                  'overwritten: choose another -o (or a --suffix)')
        key = _name_key(out)
        if key in seen:
            clashes.append(f'{seen[key][0]} and {src} -> {seen[key][1]}')
        else:
            seen[key] = (src, out)
        plan.append((src, out))
    if clashes:
        shown = '\n  '.join(clashes[:10]) + (f'\n  ... and {len(clashes) - 10} more' if len(clashes) > 10 else '')
        raise OutputPathError(f'{len(clashes)} output name(s) would be written twice (one result lost):\n  {shown}\n'
                              'Rename the inputs, or keep each input\'s format (leave out --ext).')
    return plan


def check_distinct_files(outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None]) -> None:
    """Refuse outputs (``{option: path}``) that overwrite an input file or each other.

    Raises:
        OutputPathError: naming the options involved.
    """
    outs = {k: Path(v) for k, v in outputs.items() if v}
    ins = {k: Path(v) for k, v in inputs.items() if v}
    for name, out in outs.items():
        if out.is_dir():
            raise OutputPathError(f'{name} {str(out)!r} is a folder; give a file name')
        for in_name, src in ins.items():
            if same_file(out, src):
                raise OutputPathError(f'{name} {str(out)!r} is the {in_name} file; it would be overwritten')
    keys: dict[str, str] = {}
    for name, out in outs.items():
        key = _name_key(out)
        if key in keys:
            raise OutputPathError(f'{keys[key]} and {name} name the same file {str(out)!r}')
        keys[key] = name
