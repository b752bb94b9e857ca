"""Will an image fit in memory? Estimated from its header before anything is decoded (``infer``)."""
from __future__ import annotations

from pathlib import Path


def available_memory() -> int | None:
    """Bytes of memory this process can still allocate: ``MemAvailable`` of ``/proc/meminfo``, lowered
    to the cgroup limit (containers) if there is one; None where neither is known."""
    found = []
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open('/sys/fs/cgroup/memory.max') as f:
            limit = f.read().strip()
        with open('/sys/fs/cgroup/memory.current') as f:
            current = int(f.read().strip())
        if limit.isdigit():
            found.append(max(int(limit) - current, 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


# bytes per input pixel besides the arrays (network activations of an untiled pass: ~64 float32 channels,
# a few alive at once); a tile bounds them
ACTIVATION_BYTES_PER_PIXEL = 1024


def memory_estimate(width: int, height: int, scale: float, tile: int = 0, tile_pad: int = 32,
                    activations: bool = True) -> int:
    """Bytes of host memory needed to upscale one ``width x height`` image: the decoded file (up to 16-bit
    RGBA) and its float32 copies, the float32 output and its stored form, and (``activations``: the network
    runs on the CPU) its activations, of one tile with ``tile``."""
    pixels = width * height
    out_pixels = int(pixels * scale * scale)
    arrays = pixels * (8 + 16 + 16 + 12) + out_pixels * (12 + 12 + 8)
    side = tile + 2 * tile_pad
    active = min(pixels, side * side) if tile > 0 else pixels
    return arrays + (active * ACTIVATION_BYTES_PER_PIXEL if activations else 0)


def memory_problem(path: Path, scale: float, tile: int, tile_pad: int, on_cpu: bool = True) -> str | None:
    """Why ``path`` would not fit in the available memory (read from its header, nothing decoded), or None."""
    from ..utils.image_io import image_size

    size = image_size(path)
    available = available_memory()
    if size is None or available is None:
        return None
    need = memory_estimate(*size, scale, tile, tile_pad, activations=on_cpu)
    if need <= available:
        return None
    hint = 'a smaller --tile, ' if tile > 0 else '--tile 512 (bounds the network\'s memory), '
    return (f'{size[0]}x{size[1]} at x{scale:g} needs about {need / 2 ** 30:.1f} GB of memory and '
            f'{available / 2 ** 30:.1f} GB are available; not decoded. Use {hint}a smaller image or more memory')
