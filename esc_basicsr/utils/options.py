"""BasicSR option files: the one reader, and the scale a ``network_g`` states.

Read by the tools (``--opt`` of ``infer``/``export``, :mod:`esc_basicsr.tools.loading`) and checked
for training by the BasicSR integration (:mod:`esc_basicsr.integration.fixes.option_checks`, in
BasicSR's ``parse_options``), where a ``network_g`` scale that disagrees with the top-level
``scale`` would otherwise surface only at the first loss computation. Each failure is a
``ValueError`` naming the file and the key, which the tools print as ``error: ...`` (exit code 2).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..archs.table import ARCHITECTURES

# constructor arguments holding the upscaling factor: ours (from the architecture table), then
# BasicSR's conventions (SwinIR ``upscale``; EDSR, RRDBNet ``scale``)
SCALE_KEYS = tuple(dict.fromkeys([*(s.scale_arg for s in ARCHITECTURES.values() if s.scale_arg), 'upscale', 'scale']))
# required constructor arguments filled with 3 (RGB) when a user leaves them out (BasicSR archs)
CHANNEL_KEYS = ('num_in_ch', 'num_out_ch', 'in_chans', 'colors')


def read_option_file(path: str | Path) -> dict[str, Any]:
    """Read a BasicSR option file (YAML, parsed safely) with a ``network_g: {type: ...}`` section.

    Raises:
        ValueError: missing/unreadable file, invalid YAML (with its line), or no ``network_g``.
    """
    import yaml

    try:
        with open(path, encoding='utf-8') as f:
            opt = yaml.safe_load(f)
    except OSError as exc:
        raise ValueError(f'--opt {path}: cannot read it ({exc.strerror or exc})') from None
    except UnicodeDecodeError:
        raise ValueError(f'--opt {path}: not a text (UTF-8) file') from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark is not None else ''
        problem = getattr(exc, 'problem', None) or str(exc).splitlines()[0]
        raise ValueError(f'--opt {path}: not valid YAML{where}: {problem}') from None
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict) or 'type' not in opt['network_g']:
        raise ValueError(f'--opt {path}: not a BasicSR option file with a "network_g: {{type: ...}}" section')
    return opt


def scale_argument(network_g: Mapping[str, Any]) -> tuple[str, Any] | None:
    """``(key, value)`` of the scale argument stated in ``network_g`` (the first of :data:`SCALE_KEYS`
    it has), if any."""
    return next(((k, network_g[k]) for k in SCALE_KEYS if k in network_g), None)


def network_scale(network_g: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> int | None:
    """The upscaling factor stated by ``network_g`` (its scale argument, when an int), else by the
    option file's top-level ``scale`` (when an int); None if neither states one."""
    stated = scale_argument(network_g)
    if stated is not None and isinstance(stated[1], int):
        return stated[1]
    if options is not None and isinstance(options.get('scale'), int):
        return options['scale']
    return None


def check_scale_agreement(opt: Mapping[str, Any], source: str = 'option file') -> None:
    """Refuse an option file whose ``network_g`` scale argument differs from its top-level ``scale``
    (the network would produce images of another size than the data pipeline's ground truth).

    Raises:
        ValueError: naming both values.
    """
    net = opt.get('network_g')
    if not isinstance(net, Mapping) or 'scale' not in opt:
        return
    stated = scale_argument(net)
    if stated is not None and stated[1] != opt['scale']:
        raise ValueError(f'{source}: network_g {stated[0]}: {stated[1]!r} disagrees with scale: {opt["scale"]!r}; '
                         'set both to the same factor')
