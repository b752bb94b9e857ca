"""Clear errors for missing and corrupt LMDB entries (BasicSR 1.4.2 ``LmdbBackend.get``).

BasicSR returns ``None`` for a key missing from the LMDB and decodes truncated values into
``None``, which fails later as an ``AttributeError`` deep in the dataset. The wrapper raises
``KeyError`` for a missing key and ``CorruptImageError`` for a truncated PNG/JPEG value (checked by
its end marker, without decoding), naming the LMDB and the key. Other formats pass unchanged.
"""
from __future__ import annotations

import functools
from typing import Callable

from ...utils.image_markers import image_bytes_problem
from ._patching import marked, replace


class CorruptImageError(ValueError):
    """An LMDB value is not a complete, decodable image."""


def _wrap_lmdb_get(original: Callable) -> Callable:
    @functools.wraps(original)
    def get(self, filepath, client_key):
        value = original(self, filepath, client_key)
        problem = 'missing' if value is None else image_bytes_problem(bytes(value))
        if problem is not None:
            db = dict(zip(self._client, self.db_paths)).get(client_key, client_key)
            if value is None:
                raise KeyError(f'LMDB {db}: no entry for key {str(filepath)!r} (listed in its meta_info.txt?)')
            raise CorruptImageError(f'LMDB {db}: the entry for key {str(filepath)!r} is corrupt ({problem}); '
                                    'rebuild the LMDB with "python -m esc_basicsr.prepare".')
        return value

    return marked(get, original)


def install() -> None:
    """Wrap ``basicsr.utils.file_client.LmdbBackend.get`` (idempotent)."""
    from basicsr.utils.file_client import LmdbBackend

    replace(LmdbBackend, 'get', _wrap_lmdb_get)
