"""The one place that decides which files a tool reads and writes, and refuses unsafe plans.

* :func:`list_inputs` expands a file, a folder (recursive) or a glob, leaving out anything inside
  the output folder (so a result folder nested in the input folder is not upscaled again) and
  temporaries of interrupted runs. Enumeration is bounded: only regular files are listed (a FIFO
  would block the reader forever), each real folder is visited once (symlink loops end), one file
  reached under several names (symlinks, hard links) is listed once, and more than
  :data:`MAX_ENTRIES` paths is an error.
* :func:`plan_outputs` maps each input to its output file and raises :class:`OutputPathError`,
  before any work, when an output would overwrite an input (the same file under any spelling:
  relative/absolute, ``./x/``, symlinks, hard links, case on case-insensitive file systems, all
  compared by device and inode), when the output folder is the input folder, or when two inputs
  would be written to the same output (``p.png`` and ``p.jpg`` with ``--ext png``; names that differ
  only in case or Unicode normalisation count as the same, as they do on Windows and macOS).
* :func:`check_distinct_files` does the same for tools writing named files (export, benchmark).
"""
from __future__ import annotations

import fnmatch
import glob
import os
import stat
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence

from .atomic import TMP_MARK
from .image_io import IMAGE_EXTENSIONS


class OutputPathError(ValueError):
    """An output plan that would overwrite an input or lose a result."""


# most directory entries an input specification may visit (a glob through a huge tree is refused, not walked for hours)
MAX_ENTRIES = 1_000_000

_KINDS = ((stat.S_ISFIFO, 'a FIFO'), (stat.S_ISSOCK, 'a socket'), (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISDIR, 'a folder'))


def non_regular_kind(path: str | Path) -> str | None:
    """What ``path`` is if it exists and is not a regular file (``'a FIFO'``, ...), following symlinks;
    ``'a broken or looping symlink'`` for a link that leads nowhere; None for a regular or missing file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return 'a broken or looping symlink' if os.path.islink(path) else None
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), 'not a regular file')


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


class _Budget:
    """Counts directory entries visited; raises :class:`OutputPathError` past :data:`MAX_ENTRIES`."""

    def __init__(self, spec: str) -> None:
        self.spec, self.seen = spec, 0

    def spend(self, n: int) -> None:
        self.seen += n
        if self.seen > MAX_ENTRIES:
            raise OutputPathError(f'input {self.spec!r}: more than {MAX_ENTRIES} paths to look through; '
                                  'name a smaller folder or a narrower pattern')


def _walk(folder: Path, excluded: set[tuple[int, int]], budget: _Budget, follow_links: bool = False,
          max_depth: int | None = None) -> list[Path]:
    """Every non-temporary name under ``folder`` (not inside ``excluded`` folders), each real folder
    visited once (symlinked folders only if ``follow_links``), at most ``max_depth`` folders deep."""
    files: list[Path] = []
    visited = {_file_id(folder)}
    for root, dirs, names in os.walk(folder, followlinks=follow_links):
        budget.spend(len(dirs) + len(names))
        depth = len(Path(root).relative_to(folder).parts)
        keep = []
        # real folders first: a folder reached both ways is listed under its own name where possible
        for d in sorted(dirs, key=lambda d: (os.path.islink(os.path.join(root, d)), d)):
            link = os.path.islink(os.path.join(root, d))
            fid = _file_id(os.path.join(root, d))
            if (link and not follow_links) or fid is None or fid in excluded or fid in visited \
                    or (max_depth is not None and depth >= max_depth):
                continue
            visited.add(fid)
            keep.append(d)
        dirs[:] = keep
        files += [Path(root) / n for n in names if not _is_temporary(n)]
    return files


def _component_matches(pattern: str, name: str) -> bool:
    """``fnmatch`` of one path component, with glob's rule that ``*`` does not match a leading dot."""
    if name.startswith('.') and not pattern.startswith('.'):
        return False
    return fnmatch.fnmatchcase(os.path.normcase(name), os.path.normcase(pattern))


def _parts_match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Whether the path ``parts`` match the glob ``pattern`` components (``**``: any number of folders)."""
    if not pattern:
        return not parts
    if pattern[0] == '**':
        return any(_parts_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1)
                   if not any(p.startswith('.') for p in parts[:i]))
    return bool(parts) and _component_matches(pattern[0], parts[0]) and _parts_match(pattern[1:], parts[1:])


def _glob(spec: str, excluded: set[tuple[int, int]], budget: _Budget) -> list[Path]:
    """``glob.glob(spec, recursive=True)`` without its unbounded cases: every real folder is visited once
    (a symlink loop ends instead of enumerating 2**40 paths), within the pattern's depth unless it has ``**``."""
    base = glob_base(spec)
    pattern = Path(spec).parts[len(base.parts):]
    if not base.is_dir():
        return []
    depth = None if '**' in pattern else len(pattern) - 1
    found = _walk(base, excluded, budget, follow_links=True, max_depth=depth)
    return [p for p in found if _parts_match(pattern, p.relative_to(base).parts)]


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


def list_inputs(spec: str, extensions: tuple[str, ...] = IMAGE_EXTENSIONS, exclude: Iterable[str | Path] = (),
                skipped: list[tuple[Path, str]] | None = None) -> list[tuple[Path, Path]]:
    """Expand ``spec`` (a file, a folder searched recursively, or a glob) into ``(path, relative)``.

    ``relative`` is the name to use under the output folder: the file name for a file, the path
    relative to the folder (or the glob's fixed prefix), so sub-folders are mirrored. Files named
    explicitly or matched by a glob are kept whatever their extension (so that an unreadable one
    is reported); folders are searched for ``extensions`` only. Anything inside an ``exclude``
    folder (the output folder) and hidden temporaries are left out. Sorted by relative name.

    Only regular files are listed; what is left out of a folder or glob for being something else (a
    FIFO, a socket, a broken link) or the same file as an earlier name is appended to ``skipped`` as
    ``(path, why)``. Folders are walked without following symlinked folders, globs following each
    real folder once; more than :data:`MAX_ENTRIES` paths raises :class:`OutputPathError`.

    Raises:
        FileNotFoundError: ``spec`` matches nothing.
        OutputPathError: ``spec`` names something other than a regular file or folder, or too many paths.
    """
    excluded = {i for i in map(_file_id, exclude) if i is not None}
    budget = _Budget(spec)
    path = Path(spec)
    kind = non_regular_kind(path) if path.exists() or path.is_symlink() else None
    if kind is not None and kind != 'a folder':
        raise OutputPathError(f'input {spec!r} is {kind}, not a regular file')
    if path.is_file():
        return [(path, Path(path.name))]
    if path.is_dir():
        base = path
        files = [p for p in _walk(path, excluded, budget) if p.suffix.lower() in extensions]
    elif glob.has_magic(spec):
        base = glob_base(spec)
        files = [p for p in _glob(spec, excluded, budget) if not (excluded and _inside(p, excluded))]
    else:
        raise FileNotFoundError(f'input {spec!r} is neither a file, a folder nor a glob that matches files')
    listed, seen = [], {}
    # one file under several names: the name without symlinks wins, then the first by name
    for p in sorted(files, key=lambda p: (os.path.realpath(p) != os.path.abspath(p), str(p.relative_to(base)))):
        why = non_regular_kind(p)
        fid = _file_id(p) if why is None else None
        if why is None and fid in seen:
            why = f'the same file as {seen[fid]}'
        if why is not None:
            if skipped is not None and p.suffix.lower() in extensions:
                skipped.append((p, why if why.startswith('the same') else f'{why}, not a regular file'))
            continue
        seen[fid] = p
        listed.append((p, p.relative_to(base)))
    return sorted(listed, key=lambda t: str(t[1]))


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


def check_distinct_files(outputs: dict[str, str | Path | None],
                         inputs: dict[str, str | Path | Sequence[str | Path] | None]) -> None:
    """Refuse outputs (``{option: path}``) that overwrite an input file (``{option: path or paths}``, e.g.
    the several files of ``--weights``) or each other.

    Raises:
        OutputPathError: naming the options involved.
    """
    outs = {k: Path(v) for k, v in outputs.items() if v}
    ins = [(k, Path(p)) for k, v in inputs.items() if v
           for p in ([v] if isinstance(v, (str, Path)) else v) if p]
    for name, out in outs.items():
        if out.is_dir():
            raise OutputPathError(f'{name} {str(out)!r} is a folder; give a file name')
        for in_name, src in ins:
            if same_file(out, src):
                raise OutputPathError(f'{name} {str(out)!r} is the {in_name} file; it would be overwritten')
    keys: dict[str, str] = {}
    for name, out in outs.items():
        key = _name_key(out)
        if key in keys:
            raise OutputPathError(f'{keys[key]} and {name} name the same file {str(out)!r}')
        keys[key] = name
