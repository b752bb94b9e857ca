"""LMDB building with BasicSR's tools, atomically swapped into place, and completeness checks."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..utils.atomic import TMP_MARK


def meta_info_keys(lmdb_path: Path) -> list[str] | None:
    """Keys listed in ``meta_info.txt`` (BasicSR: the name up to the first '.'), or None if absent."""
    meta = lmdb_path / 'meta_info.txt'
    if not meta.is_file():
        return None
    with open(meta, encoding='utf-8') as f:
        return [line.split('.')[0] for line in f if line.strip()]


FINGERPRINT_FILE = 'esc_basicsr_sources.sha256'


def lmdb_complete(lmdb_path: Path, keys: list[str], fingerprint: str | None = None) -> bool:
    """Whether ``lmdb_path`` holds exactly ``keys`` (meta_info.txt and the database agree) and, if
    ``fingerprint`` is given, was made from the sources it names (see ``div2k.sources_fingerprint``)."""
    import lmdb

    if not (lmdb_path / 'data.mdb').is_file():
        return False
    if fingerprint is not None:
        try:
            if (lmdb_path / FINGERPRINT_FILE).read_text().strip() != fingerprint:
                return False
        except OSError:
            return False
    listed = meta_info_keys(lmdb_path)
    if listed is None or len(listed) != len(keys) or set(listed) != set(keys):
        return False
    try:
        env = lmdb.open(str(lmdb_path), readonly=True, lock=False, readahead=False)
    except lmdb.Error:
        return False
    try:
        return env.stat()['entries'] == len(keys)
    finally:
        env.close()


def lmdb_is_ours(lmdb_path: Path) -> bool:
    """Whether ``lmdb_path`` is an LMDB folder that ``prepare`` made: it marks each one with
    :data:`FINGERPRINT_FILE` (a symbolic link is never ours: it is the user's, whatever it points to)."""
    return not lmdb_path.is_symlink() and lmdb_path.is_dir() and (lmdb_path / FINGERPRINT_FILE).is_file()


def check_lmdb_targets(lmdb_paths: list[Path]) -> None:
    """Refuse (``ValueError``, one line) an LMDB name that is taken by anything ``prepare`` did not make (a
    file, a link, a folder without :data:`FINGERPRINT_FILE`): :func:`build_lmdb` would replace it."""
    for path in lmdb_paths:
        if (path.exists() or path.is_symlink()) and not lmdb_is_ours(path):
            what = ('a file' if path.is_file() and not path.is_symlink() else 'a symbolic link' if path.is_symlink()
                    else f'a folder without {FINGERPRINT_FILE}')
            raise ValueError(f'{path} exists and was not made by esc_basicsr prepare ({what}): it would be replaced; '
                             'choose another --out or --name, or move it away')


def remove_stale_lmdbs(folder: Path) -> None:
    """Delete temporary LMDB folders left by an interrupted run."""
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_dir() and p.name.startswith('.') and TMP_MARK in p.name:
                shutil.rmtree(p, ignore_errors=True)


def build_lmdb(src_dir: Path, lmdb_path: Path, keys: list[str], compress_level: int = 1,
               fingerprint: str | None = None) -> str:
    """Make ``lmdb_path`` from ``src_dir/<key>.png`` with ``basicsr.utils.lmdb_util.make_lmdb_from_imgs``
    (which also writes ``meta_info.txt``). Returns ``'kept'`` if it was already complete, else
    ``'built'``. The LMDB is written to a temporary folder and swapped in, so an interrupted run
    never leaves a half-written LMDB under the final name. ``fingerprint`` (of the sources) is stored
    in it, and an LMDB with another one is rebuilt; only an LMDB of ours is ever replaced
    (:func:`check_lmdb_targets`, ``ValueError`` otherwise)."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    if not keys:
        raise ValueError(f'no images for {lmdb_path}')
    check_lmdb_targets([lmdb_path])
    if lmdb_complete(lmdb_path, keys, fingerprint):
        return 'kept'
    pid = os.getpid()
    tmp = lmdb_path.with_name(f'.{lmdb_path.stem}{TMP_MARK}{pid}.lmdb')  # BasicSR wants '.lmdb'
    old = lmdb_path.with_name(f'.{lmdb_path.stem}{TMP_MARK}{pid}-old.lmdb')
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        # BasicSR sizes the map from the first image alone (x10 the count), too small when it compresses
        # better than the others (tiny or flat crops: MDB_MAP_FULL); the map is only reserved address space
        total = sum((src_dir / f'{k}.png').stat().st_size for k in keys)
        make_lmdb_from_imgs(str(src_dir), str(tmp), [f'{k}.png' for k in keys], list(keys),
                            compress_level=compress_level, map_size=4 * total + (64 << 20))
        if fingerprint is not None:
            (tmp / FINGERPRINT_FILE).write_text(fingerprint + '\n')
        if not lmdb_complete(tmp, keys, fingerprint):
            raise RuntimeError(f'{tmp}: the new LMDB is incomplete')
        if lmdb_path.exists():
            os.rename(lmdb_path, old)
        os.rename(tmp, lmdb_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return 'built'
