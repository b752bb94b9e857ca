"""BasicSR option files: the one reader, and the scale a ``network_g`` states.

Read by the tools (``--opt`` of ``infer``/``export``, :mod:`esc_basicsr.tools.loading`) and checked
for training by the BasicSR integration (:mod:`esc_basicsr.integration.fixes.option_checks`, in
BasicSR's ``parse_options``), where a ``network_g`` scale that disagrees with the top-level
``scale`` would otherwise surface only at the first loss computation. Each failure is a
``ValueError`` naming the file and the key, which the tools print as ``error: ...`` (exit code 2).
"""
from __future__ import annotations

import difflib
import inspect
import reprlib
import typing
from pathlib import Path
from typing import Any, Mapping

from ..archs.table import ARCHITECTURES

# constructor arguments holding the upscaling factor: ours (from the architecture table), then
# BasicSR's conventions (SwinIR ``upscale``; EDSR, RRDBNet ``scale``)
SCALE_KEYS = tuple(dict.fromkeys([*(s.scale_arg for s in ARCHITECTURES.values() if s.scale_arg), 'upscale', 'scale']))
# required constructor arguments filled with 3 (RGB) when a user leaves them out (BasicSR archs)
CHANNEL_KEYS = ('num_in_ch', 'num_out_ch', 'in_chans', 'colors')


# longest a user's value is shown in a message (an option file of 900 bytes can hold a value whose
# full repr is hundreds of MB: YAML aliases share one list many times over)
SHOWN_CHARS = 200
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxtuple, _SHOWN.maxdict = 3, 6, 6, 6
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = SHOWN_CHARS, SHOWN_CHARS, 40
# an int argument this large is no network's size (torch would fail with a C++ stack trace)
MAX_INT_ARGUMENT = 2**31 - 1


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for a message, bounded: nested containers cut after a few items and levels
    (:mod:`reprlib`, so a huge value is never rendered in full), the result cut to ``limit`` characters."""
    text = _SHOWN.repr(value)
    return text if len(text) <= limit else f'{text[:limit - 3]}...'


class OptionFileError(ValueError):
    """An option file that cannot be read or used; the message names the file and the key."""


def load_option_yaml(path: str | Path, flag: str = '--opt', loader: Any = None) -> Any:
    """The YAML of an option file, parsed safely (or with ``loader``: BasicSR's own, to read a file as
    ``basicsr.train`` will).

    Raises:
        OptionFileError: missing/unreadable file, not UTF-8, invalid YAML (with its line), each one line
            starting with ``{flag} {path}``.
    """
    import yaml

    try:
        with open(path, encoding='utf-8') as f:
            return yaml.safe_load(f) if loader is None else yaml.load(f, Loader=loader)
    except OSError as exc:
        raise OptionFileError(f'{flag} {path}: cannot read it ({exc.strerror or exc})') from None
    except UnicodeDecodeError:
        raise OptionFileError(f'{flag} {path}: not a text (UTF-8) file') from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark is not None else ''
        problem = getattr(exc, 'problem', None) or str(exc).splitlines()[0]
        raise OptionFileError(f'{flag} {path}: not valid YAML{where}: {problem}') from None


def read_option_file(path: str | Path) -> dict[str, Any]:
    """Read a BasicSR option file (YAML, parsed safely) with a ``network_g: {type: ...}`` section.

    Raises:
        OptionFileError (a ``ValueError``): missing/unreadable file, invalid YAML (with its line), or no
            ``network_g``.
    """
    opt = load_option_yaml(path)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict) or 'type' not in opt['network_g']:
        raise OptionFileError(f'--opt {path}: not a BasicSR option file with a "network_g: {{type: ...}}" section')
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
        raise ValueError(f'{source}: network_g {stated[0]}: {shown(stated[1])} disagrees with scale: '
                         f'{shown(opt["scale"])}; set both to the same factor')


# arguments the tools fill in when left out (scale from --scale/the option file, RGB channels)
FILLED_IN = SCALE_KEYS + CHANNEL_KEYS


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


def check_network_g(network_g: Any, registry: Mapping[str, type], source: str = 'network_g') -> None:
    """Check ``network_g`` against its architecture's constructor before building it.

    ``registry`` maps architecture names to classes (BasicSR's ``ARCH_REGISTRY._obj_map``, ours registered).
    Checks: a known ``type`` (with the closest names), no unknown keys, no missing required
    argument (other than those the tools fill in: scale, RGB channel counts), and values of the
    annotated types (``dim: "32"`` is refused; an int is accepted for a float).

    Raises:
        ValueError: naming ``source``, the key and the allowed values.
    """
    if not isinstance(network_g, Mapping) or not isinstance(network_g.get('type'), str):
        raise ValueError(f'{source}: needs a "type" naming an architecture, got {shown(network_g)}')
    name = network_g['type']
    if name not in registry and f'{name}_basicsr' in registry:  # registered with BasicSR's suffix
        name = f'{name}_basicsr'
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=3)
        hint = f'; did you mean {" or ".join(map(repr, close))}?' if close else f'; known: {sorted(registry)}'
        raise ValueError(f'{source}: unknown architecture type {shown(name)}{hint}')
    cls = registry[name]
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # takes anything: the constructor decides
    allowed = [p for p in params if p != 'self']
    for key in network_g:
        if key != 'type' and key not in params:
            close = difflib.get_close_matches(key, allowed, n=2)
            hint = f'did you mean {" or ".join(map(repr, close))}? ' if close else ''
            raise ValueError(f'{source}: {name} has no argument {shown(key)}; {hint}arguments: {", ".join(allowed)}')
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in network_g
               and k not in FILLED_IN and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if missing:
        raise ValueError(f'{source}: {name} needs {", ".join(missing)}')
    for key, expected in _expected_types(cls).items():
        if key in network_g:
            problem = _value_problem(network_g[key], expected, positive=cls in _OURS)
            if problem is not None:
                raise ValueError(f'{source}: {name} argument {key!r} {problem}, got {shown(network_g[key])} '
                                 f'({type(network_g[key]).__name__})')


# our architectures: every int and float argument is a size, a count or a ratio (not negative)
_OURS = frozenset(spec.cls for spec in ARCHITECTURES.values())


def _value_problem(value: Any, expected: Any, positive: bool) -> str | None:
    """What is wrong with ``value`` for an argument annotated ``expected`` (None: nothing found).

    Besides the type (:func:`_accepts`): an int beyond :data:`MAX_INT_ARGUMENT` (no network's size), and
    with ``positive`` (our architectures: sizes, counts, ratios), a negative plain int or a plain float
    <= 0. Zero stays allowed for ints (ELAN's ``n_share: 0`` is the authors'); where zero cannot be built
    (``num_heads: 0``) the meta-device build says so, naming the zero arguments."""
    if _accepts(value, expected) is False:
        return f'must be {getattr(expected, "__name__", None) or str(expected).replace("typing.", "")}'
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and abs(value) > MAX_INT_ARGUMENT:
        return f'must be an int of at most {MAX_INT_ARGUMENT} (2**31 - 1)'
    if positive and expected is int and value < 0:
        return 'must be an int >= 0'
    if positive and expected is float and not value > 0:
        return 'must be a number > 0'
    return None
