"""The one image reader and writer of every tool (``infer``, ``prepare``).

Reading (:func:`read_image`, :func:`read_bgr8`):

1. only a regular file is read (a FIFO would block), at most :func:`max_file_bytes` of it; the
   header is read with Pillow, without decoding, and an image of more than ``max_pixels`` pixels,
   or an animated one (APNG, animated WebP, multi-page TIFF: only its first frame would be
   upscaled), is refused with :class:`ImageReadError` before anything large is allocated;
2. the pixels are decoded with OpenCV (``IMREAD_UNCHANGED``, so 16-bit and alpha survive; paths
   with non-ASCII characters work); any decoder error becomes :class:`ImageReadError`;
3. the EXIF orientation (phone photos) is applied explicitly, because ``IMREAD_UNCHANGED`` ignores
   it (OpenCV's ``IMREAD_COLOR`` honours it, so both tools now see the same upright image);
4. layouts: ``rgb``, ``gray``, ``rgba``, ``graya`` (grey + alpha, which OpenCV decodes as 4
   equal-colour channels: recognised from the header and kept as grey + alpha).

Writing (:func:`plan_output`, :func:`encode_image`, :func:`write_image`; :func:`write_png` for
8-bit training data): the output format decides what it can hold.
A depth it cannot store is mapped by scaling (16-bit -> 8-bit JPEG: ``round(v * 255 / 65535)``,
not clipping), with a note; an alpha channel it cannot store is an error unless the caller
asks to drop it; grey + alpha is written as a grey + alpha PNG (encoded here: OpenCV writes no
2-channel images) or as RGBA with equal colour channels in formats without a grey + alpha mode.
"""
from __future__ import annotations

import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .image_markers import PNG_SIGNATURE

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.exr')
# 2**28 = 268 M pixels (16384 x 16384): ~3 GB as float32 RGB, the largest image decoded by default
DEFAULT_MAX_PIXELS = 2 ** 28

_U8, _U16, _F32 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)


@dataclass(frozen=True)
class OutputFormat:
    """What an output format can store (as written by OpenCV, plus our grey + alpha PNG)."""
    name: str
    dtypes: tuple[np.dtype, ...]  # in order of preference for a float input
    alpha: bool
    colour: bool = True  # False: grey only (PGM)
    grey: bool = True  # False: colour only (PPM: grey is replicated)


FORMATS = {
    '.png': OutputFormat('PNG', (_U16, _U8), True),
    '.jpg': OutputFormat('JPEG', (_U8,), False),
    '.jpeg': OutputFormat('JPEG', (_U8,), False),
    '.bmp': OutputFormat('BMP', (_U8,), True),
    '.webp': OutputFormat('WebP', (_U8,), True),
    '.tif': OutputFormat('TIFF', (_F32, _U16, _U8), True),
    '.tiff': OutputFormat('TIFF', (_F32, _U16, _U8), True),
    '.ppm': OutputFormat('PPM', (_U16, _U8), False, grey=False),
    '.pgm': OutputFormat('PGM', (_U16, _U8), False, colour=False),
    '.exr': OutputFormat('OpenEXR', (_F32,), True),
}


@dataclass
class Image:
    """An image split into what the model sees and what it does not.

    Attributes:
        rgb: ``(H, W, 3)`` float32 in [0, 1], RGB order (grey replicated to 3 channels), upright.
        alpha: ``(H, W)`` float32 in [0, 1], or ``None``.
        layout: ``'rgb'``, ``'gray'``, ``'rgba'`` or ``'graya'``.
        dtype: numpy dtype of the file's pixels (``uint8``, ``uint16``, ``float32``).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    layout: str
    dtype: np.dtype


class ImageReadError(RuntimeError):
    """A file that is not a usable image (missing, corrupt, unsupported, too large)."""


class ImageWriteError(ValueError):
    """An image that the requested output format cannot store as asked."""


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    graya: bool
    orientation: int
    frames: int = 1


def _probe(path: str | Path, head: bytes) -> _Header | None:
    """Size, grey + alpha and EXIF orientation from the header (nothing decoded); None if Pillow
    does not know the format (OpenCV then decodes it under its own pixel limit)."""
    from PIL import Image as PILImage

    limit = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = None  # our own limit applies; Pillow's would raise before we see the size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            im = PILImage.open(path)  # reads the header only
        with im:
            width, height = im.size
            orientation = 1
            try:
                if im.format == 'PNG':  # PNG's getexif() would decode the image; eXIf before IDAT is in info
                    exif = PILImage.Exif()
                    if 'exif' in im.info:
                        exif.load(im.info['exif'])
                else:
                    exif = im.getexif()
                # OpenCV's TIFF decoder (libtiff) applies the orientation itself
                orientation = 1 if im.format == 'TIFF' else int(exif.get(0x0112, 1) or 1)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
                orientation = 1
            graya = im.mode in ('LA', 'La') or (im.format == 'PNG' and head[25:26] == b'\x04')
            try:
                frames = int(getattr(im, 'n_frames', 1) or 1)
            except Exception:  # noqa: BLE001 - a broken frame table: the decoder will say
                frames = 1
    except Exception:  # noqa: BLE001 - unknown to Pillow: OpenCV decides
        return None
    finally:
        PILImage.MAX_IMAGE_PIXELS = limit
    return _Header(width, height, graya, orientation if 1 <= orientation <= 8 else 1, frames)


def image_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` of an image file from its header (nothing decoded; EXIF rotation ignored),
    or None if it cannot be told (not a regular file, unknown to Pillow)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, 'rb') as f:
            head = f.read(32)
    except OSError:
        return None
    header = _probe(path, head)
    return None if header is None else (header.width, header.height)


def max_file_bytes(max_pixels: int | None) -> int | None:
    """Largest image file read for a pixel limit: 16 bytes a pixel (float32 RGBA, uncompressed) + 64 MB."""
    return None if max_pixels is None else max_pixels * 16 + (64 << 20)


def _read_bytes(path: str | Path, max_pixels: int | None) -> np.ndarray:
    """The bytes of a regular file (refusing FIFOs, devices, folders and files beyond :func:`max_file_bytes`)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_BINARY', 0))
    except OSError as exc:
        raise ImageReadError(f'cannot open: {exc.strerror or exc}') from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError('not a regular file (a FIFO, device or folder); not read')
        limit = max_file_bytes(max_pixels)
        if limit is not None and st.st_size > limit:
            raise ImageReadError(f'{st.st_size} bytes is more than an image of at most {max_pixels} pixels can '
                                 'take (--max-pixels); not read')
        with os.fdopen(fd, 'rb', closefd=False) as f:
            return np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f'cannot read: {exc.strerror or exc}') from exc
    finally:
        os.close(fd)


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn ``(H, W, ...)`` pixels stored with EXIF ``orientation`` (1-8) upright."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1]
    if orientation == 5:
        return img.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(img, -1)  # stored rotated 90 degrees counter-clockwise
    if orientation == 7:
        return img.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(img, 1)
    return img


def decode(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, bool]:
    """Pixels of ``path`` in OpenCV's layout (BGR[A] or grey ``(H, W)``), upright.

    Returns:
        ``(pixels, graya)``: ``graya`` is True for a grey + alpha file (pixels then BGRA with equal
        colour channels, as OpenCV decodes it).

    Raises:
        ImageReadError: unreadable, corrupt, unsupported, or more than ``max_pixels`` pixels.
    """
    data = _read_bytes(path, max_pixels)
    if not data.size:
        raise ImageReadError('empty file')
    header = _probe(path, data[:32].tobytes())  # Pillow reads only the header from the file
    if header is not None and max_pixels is not None and header.width * header.height > max_pixels:
        raise ImageReadError(f'{header.width}x{header.height} pixels is more than the limit of {max_pixels} '
                             '(--max-pixels); not decoded')
    if header is not None and header.frames > 1:
        raise ImageReadError(f'is animated ({header.frames} frames): only still images are upscaled (the first '
                             'frame alone would be written under the same name); extract the frames first, e.g. '
                             f'ffmpeg -i {Path(path).name} frame_%04d.png')
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. a header beyond OpenCV's own pixel limit
        reason = str(exc).strip().splitlines()[-1][:200]
        raise ImageReadError(f'OpenCV cannot decode it ({reason})') from None
    if img is None:
        raise ImageReadError('unreadable image (corrupt, truncated or unsupported format)')
    if max_pixels is not None and img.shape[0] * img.shape[1] > max_pixels:
        raise ImageReadError(f'{img.shape[1]}x{img.shape[0]} pixels is more than the limit of {max_pixels}')
    if img.dtype not in (_U8, _U16, _F32):
        raise ImageReadError(f'unsupported pixel type {img.dtype}')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        raise ImageReadError(f'unsupported channel count {img.shape[2]}')
    graya = bool(header and header.graya and img.ndim == 3 and img.shape[2] == 4)
    if header is not None and header.orientation != 1:
        img = np.ascontiguousarray(apply_orientation(img, header.orientation))
    return img, graya


def dtype_max(dtype: np.dtype) -> float:
    """Value of white: 255 for uint8, 65535 for uint16, 1.0 for float images."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def read_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """Read ``path`` into an :class:`Image` (see the module docstring); raises :class:`ImageReadError`."""
    img, graya = decode(path, max_pixels)
    dtype = img.dtype
    img = img.astype(np.float32) / dtype_max(dtype)
    alpha = None
    if img.ndim == 2:
        layout, rgb = 'gray', np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 3:
        layout, rgb = 'rgb', img[:, :, ::-1]
    elif graya:
        layout, rgb, alpha = 'graya', np.repeat(img[:, :, :1], 3, axis=2), img[:, :, 3]
    else:
        layout, rgb, alpha = 'rgba', img[:, :, 2::-1], img[:, :, 3]
    alpha = None if alpha is None else np.ascontiguousarray(alpha)
    return Image(np.ascontiguousarray(rgb), alpha, layout, dtype)


def read_bgr8(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read ``path`` as upright 8-bit BGR ``(H, W, 3)`` (for training data): grey is replicated,
    alpha dropped, 16-bit scaled by 255/65535 and rounded, float clipped to [0, 1] and scaled."""
    img, _ = decode(path, max_pixels)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    if img.dtype == _U16:
        img = np.rint(img.astype(np.float32) * (255 / 65535))
    elif img.dtype == _F32:
        img = np.rint(np.clip(np.nan_to_num(img), 0, 1) * 255)
    return np.ascontiguousarray(img.astype(np.uint8))


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling of an ``(H, W)`` alpha channel in [0, 1] to ``(scale*H, scale*W)``."""
    h, w = alpha.shape
    return np.clip(cv2.resize(alpha, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC), 0, 1)


def output_format(ext: str) -> OutputFormat:
    """The :class:`OutputFormat` of extension ``ext`` (``'png'`` or ``'.png'``), checking that this
    OpenCV build can write it; raises ``ValueError`` naming the writable ones otherwise."""
    ext = '.' + ext.lower().lstrip('.')
    writable = [e for e in FORMATS if cv2.haveImageWriter('x' + e)]
    if ext not in FORMATS or ext not in writable:
        raise ValueError(f'cannot write {ext!r} images; choose one of {", ".join(e[1:] for e in writable)}')
    return FORMATS[ext]


@dataclass(frozen=True)
class OutputPlan:
    """How one image is written: its layout and dtype in the output file, and a note if it loses depth."""
    layout: str
    dtype: np.dtype
    note: str = ''


def plan_output(layout: str, dtype: np.dtype, ext: str, drop_alpha: bool = False) -> OutputPlan:
    """Decide the stored layout and depth of an image of ``layout``/``dtype`` in format ``ext``.

    Raises:
        ImageWriteError: alpha that the format cannot hold (unless ``drop_alpha``), or colour in a
            grey-only format.
    """
    fmt = output_format(ext)
    has_alpha = layout in ('rgba', 'graya')
    if has_alpha and (drop_alpha or not fmt.alpha):
        if not drop_alpha:
            raise ImageWriteError(f'has an alpha channel that {fmt.name} cannot store; use --ext png (or tiff, '
                                  'webp), or --alpha drop to discard it')
        layout = layout[:-1]
    if layout in ('rgb', 'rgba') and not fmt.colour:
        raise ImageWriteError(f'is a colour image and {fmt.name} holds grey images only; use --ext png')
    dtype = np.dtype(dtype)
    note = ''
    if dtype not in fmt.dtypes:
        if dtype == _F32:
            out = fmt.dtypes[0]
        else:
            out = next((d for d in fmt.dtypes if d != _F32 and np.iinfo(d).max >= np.iinfo(dtype).max), fmt.dtypes[0])
        bits = {_U8: '8-bit', _U16: '16-bit', _F32: 'float'}
        if out == _U8 or (dtype == _F32 and out != _F32):
            note = f'{bits[dtype]} written as {bits[out]} {fmt.name} (scaled)'
        dtype = out
    return OutputPlan(layout, dtype, note)


def compose(rgb: np.ndarray, alpha: np.ndarray | None, plan: OutputPlan) -> np.ndarray:
    """Pixels to store for a model output ``rgb`` ``(H, W, 3)`` in [0, 1] and ``alpha`` ``(H, W)``:
    ``(H, W)`` grey, ``(H, W, 2)`` grey + alpha, or BGR[A] ``(H, W, 3|4)``, in ``plan.dtype``."""
    if plan.layout in ('gray', 'graya'):
        out = rgb.mean(axis=2)
        if plan.layout == 'graya':
            out = np.stack([out, alpha], axis=2)
    else:
        out = rgb[:, :, ::-1]
        if plan.layout == 'rgba':
            out = np.concatenate([out, alpha[:, :, None]], axis=2)
    out = np.clip(out, 0, 1)
    if np.issubdtype(plan.dtype, np.integer):
        return np.rint(out * dtype_max(plan.dtype)).astype(plan.dtype)
    return out.astype(np.float32)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack('>I', len(payload)) + kind + payload + struct.pack('>I', zlib.crc32(kind + payload))


def encode_png_gray_alpha(pixels: np.ndarray, level: int = 6) -> bytes:
    """PNG (colour type 4: grey + alpha) of ``(H, W, 2)`` uint8 or uint16 pixels."""
    h, w, _ = pixels.shape
    depth = 16 if pixels.dtype == _U16 else 8
    raw = pixels.astype('>u2' if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8)
    rows = np.concatenate([np.zeros((h, 1), np.uint8), raw], axis=1)  # filter type 0 on every row
    ihdr = struct.pack('>IIBBBBB', w, h, depth, 4, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b'IHDR', ihdr) + _png_chunk(b'IDAT', zlib.compress(rows.tobytes(), level))
            + _png_chunk(b'IEND', b''))


def encode_image(pixels: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    """Encode pixels from :func:`compose` in format ``ext`` (``'.png'``, ...)."""
    ext = '.' + ext.lower().lstrip('.')
    if pixels.ndim == 3 and pixels.shape[2] == 2:
        if ext == '.png':
            return encode_png_gray_alpha(pixels)
        pixels = np.concatenate([np.repeat(pixels[:, :, :1], 3, axis=2), pixels[:, :, 1:]], axis=2)
    if pixels.ndim == 2 and not FORMATS.get(ext, FORMATS['.png']).grey:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    try:
        ok, buf = cv2.imencode(ext, pixels, params or [])
    except cv2.error as exc:
        raise ImageWriteError(f'OpenCV could not encode {ext} ({str(exc).strip().splitlines()[-1][:200]})') from None
    if not ok:
        raise ImageWriteError(f'OpenCV could not encode {ext} with {pixels.dtype} pixels')
    return buf.tobytes()


def write_image(path: str | Path, pixels: np.ndarray) -> None:
    """Atomically write ``pixels`` (from :func:`compose`) to ``path``, creating its folder."""
    from .atomic import write_bytes

    path = Path(path)
    write_bytes(path, encode_image(pixels, path.suffix or '.png'))


def write_png(path: str | Path, pixels: np.ndarray, compress_level: int = 3) -> None:
    """Atomically write 8-bit BGR ``(H, W, 3)`` (or grey ``(H, W)``) ``pixels`` as a PNG with zlib
    ``compress_level`` (data preparation and the demo's photographs; the folder must exist)."""
    from .atomic import write_bytes

    write_bytes(path, encode_image(pixels, '.png', [cv2.IMWRITE_PNG_COMPRESSION, compress_level]), make_parents=False)
