"""Start and end markers of PNG and JPEG files: cheap completeness checks without decoding."""
from __future__ import annotations

import os
from pathlib import Path

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PNG_END = b'IEND\xaeB`\x82'
JPEG_START = b'\xff\xd8'
JPEG_END = b'\xff\xd9'


def image_bytes_problem(buf: bytes) -> str | None:
    """Why ``buf`` is not a complete PNG/JPEG (``None`` if it looks complete, or is another format).

    Checked by the start and end markers only; values in other formats (a custom dataset may
    store anything) are passed through unchecked.
    """
    if buf[:8] == PNG_SIGNATURE:
        return None if buf[-8:] == PNG_END else 'truncated PNG (no IEND chunk)'
    if buf[:2] == JPEG_START:
        return None if JPEG_END in buf[-64:] else 'truncated JPEG (no end-of-image marker)'
    if buf[:4] == PNG_SIGNATURE[:4]:
        return 'damaged PNG signature'
    return None


def png_complete(path: str | Path) -> bool:
    """Cheap check that ``path`` is a whole PNG file (signature and final IEND chunk)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size < len(PNG_SIGNATURE) + 12:
            return False
        with open(path, 'rb') as f:
            head = f.read(8)
            f.seek(-8, os.SEEK_END)
            tail = f.read(8)
    except OSError:
        return False
    return head == PNG_SIGNATURE and tail == PNG_END
