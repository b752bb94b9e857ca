"""Checks of what a user hands the tools, before anything is built: option files, ``network_g``,
scale agreement, weights files. Each failure is a ``ValueError`` naming the file, the key and the
allowed values, which the tools print as ``error: ...`` with exit code 2 (no traceback).

Used by ``infer``/``export`` (``--opt``); :func:`check_scale_agreement` is meant for training
option files too (BasicSR's ``parse_options``), where a ``network_g`` scale that disagrees with
the top-level ``scale`` would otherwise surface only at the first loss computation.
"""
from __future__ import annotations

import difflib
import inspect
import pickle
import typing
from pathlib import Path
from typing import Any, Mapping

from .loading import CHANNEL_KEYS, SCALE_KEYS

# arguments the tools fill in when left out (scale from --scale/the option file, RGB channels)
FILLED_IN = SCALE_KEYS + CHANNEL_KEYS


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


def _registry() -> Mapping[str, type]:
    from .loading import architecture

    architecture('ESC')  # fills BasicSR's registry (BasicSR's archs and ours)
    from basicsr.utils.registry import ARCH_REGISTRY

    return dict(ARCH_REGISTRY._obj_map)


def _accepts(value: Any, expected: Any) -> bool | None:
    """Whether ``value`` fits the annotation ``expected`` (None: cannot tell, accept)."""
    origin = typing.get_origin(expected)
    if origin is typing.Union or type(expected).__name__ == 'UnionType':
        results = [_accepts(value, a) for a in typing.get_args(expected)]
        return None if any(r is None for r in results) else any(results)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or expected in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    return None


def _expected_types(cls: type) -> dict[str, Any]:
    """Annotation (else the default's type) of every constructor argument that has one."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to defaults
        hints = {}
    out = {}
    for name, p in inspect.signature(cls).parameters.items():
        if name in hints:
            out[name] = hints[name]
        elif p.default is not inspect.Parameter.empty and type(p.default) in (bool, int, float, str):
            out[name] = type(p.default)
    return out


def check_network_g(network_g: Any, source: str = 'network_g') -> None:
    """Check ``network_g`` against its architecture's constructor before building it.

    Checks: a known ``type`` (with the closest names), no unknown keys, no missing required
    argument (other than those the tools fill in: scale, RGB channel counts), and values of the
    annotated types (``dim: "32"`` is refused; an int is accepted for a float).

    Raises:
        ValueError: naming ``source``, the key and the allowed values.
    """
    if not isinstance(network_g, Mapping) or not isinstance(network_g.get('type'), str):
        raise ValueError(f'{source}: needs a "type" naming an architecture, got {network_g!r}')
    registry = _registry()
    name = network_g['type']
    if name not in registry and f'{name}_basicsr' in registry:  # registered with BasicSR's suffix
        name = f'{name}_basicsr'
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=3)
        hint = f'; did you mean {" or ".join(map(repr, close))}?' if close else f'; known: {sorted(registry)}'
        raise ValueError(f'{source}: unknown architecture type {name!r}{hint}')
    cls = registry[name]
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # takes anything: the constructor decides
    allowed = [p for p in params if p != 'self']
    for key in network_g:
        if key != 'type' and key not in params:
            close = difflib.get_close_matches(key, allowed, n=2)
            hint = f'did you mean {" or ".join(map(repr, close))}? ' if close else ''
            raise ValueError(f'{source}: {name} has no argument {key!r}; {hint}arguments: {", ".join(allowed)}')
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in network_g
               and k not in FILLED_IN and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if missing:
        raise ValueError(f'{source}: {name} needs {", ".join(missing)}')
    for key, expected in _expected_types(cls).items():
        if key in network_g and _accepts(network_g[key], expected) is False:
            shown = getattr(expected, '__name__', None) or str(expected).replace('typing.', '')
            raise ValueError(f'{source}: {name} argument {key!r} must be {shown}, got {network_g[key]!r} '
                             f'({type(network_g[key]).__name__})')


def network_scale(network_g: Mapping[str, Any]) -> tuple[str, Any] | None:
    """``(key, value)`` of the scale argument stated in ``network_g``, if any."""
    return next(((k, network_g[k]) for k in SCALE_KEYS if k in network_g), None)


def check_scale_agreement(opt: Mapping[str, Any], source: str = 'option file') -> None:
    """Refuse an option file whose ``network_g`` scale argument differs from its top-level ``scale``
    (the network would produce images of another size than the data pipeline's ground truth).

    Raises:
        ValueError: naming both values.
    """
    net = opt.get('network_g')
    if not isinstance(net, Mapping) or 'scale' not in opt:
        return
    stated = network_scale(net)
    if stated is not None and stated[1] != opt['scale']:
        raise ValueError(f'{source}: network_g {stated[0]}: {stated[1]!r} disagrees with scale: {opt["scale"]!r}; '
                         'set both to the same factor')


def check_weights_file(path: str | Path) -> None:
    """Refuse what cannot be a PyTorch checkpoint before ``torch.load`` sees it.

    Raises:
        ValueError: missing, a folder, empty, or neither a zip (``torch.save``) nor a pickle file.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f'--weights {path}: no such file')
    if path.is_dir():
        raise ValueError(f'--weights {path}: is a folder, expected a checkpoint file (.pth)')
    try:
        with open(path, 'rb') as f:
            head = f.read(4)
    except OSError as exc:
        raise ValueError(f'--weights {path}: cannot read it ({exc.strerror or exc})') from None
    if not head:
        raise ValueError(f'--weights {path}: empty file')
    if head != b'PK\x03\x04' and head[:1] != b'\x80':  # torch.save zip archive, or a legacy pickle
        raise ValueError(f'--weights {path}: not a PyTorch checkpoint (a .pth/.pt file written by torch.save)')


def load_error_message(path: str | Path, exc: BaseException) -> str | None:
    """A one-line explanation of a ``torch.load`` failure (None if ``exc`` is not one).

    ``weights_only=True`` refuses pickled objects other than tensors and plain containers; torch's
    own message then suggests ``weights_only=False``, which would run code from the file.
    """
    if isinstance(exc, pickle.UnpicklingError):
        return (f'--weights {path}: refused: the file holds pickled objects other than tensors and plain '
                'containers (it was loaded with weights_only=True, so nothing in it was run). Only a '
                'checkpoint saved from a trusted source should be converted, e.g. by re-saving its state_dict.')
    if isinstance(exc, (EOFError, RuntimeError)) and ('zip' in str(exc).lower() or isinstance(exc, EOFError)):
        return f'--weights {path}: truncated or corrupt checkpoint ({type(exc).__name__}: {str(exc)[:120]})'
    return None
