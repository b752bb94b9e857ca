"""From a description of a network (BasicSR option file, preset, deployed checkpoint) to a model.

A network is described by a BasicSR ``network_g`` dict (``{'type': 'ESC', ...}``), taken from, in
order of precedence: an option file (``--opt``), a preset of :mod:`esc_basicsr.archs.presets`
(``--model esc_light --scale 2``), the ``network_g`` stored in a checkpoint written by
``python -m esc_basicsr.export``, or the weights themselves (:func:`esc_basicsr.archs.detect`: every
esc_basicsr architecture is recognised from its state_dict, so ``--weights`` alone is enough).
Weights are read with ``torch.load(weights_only=True)``: no code from the file is executed. The file is
checked first (:func:`esc_basicsr.archs.checkpoint_file.check_checkpoint_file`: complete, declaring no
more memory than its size + 64 MiB, every zip member matching its CRC-32). The weights are
checked before anything is built (:func:`esc_basicsr.archs.checkpoint.validate_state_dict`: a mapping of
names to tensors stored in the file, of real dtypes and finite values), and against the network before
they are loaded (:func:`esc_basicsr.archs.checkpoint.fit_problems`): weights of another family than the
one asked for are named as such, a tensor of another dtype (int64, bool) is refused by name, and a
misfit is summed up in one line instead of PyTorch's list of every key. A description (``--opt``, a
deployed checkpoint's ``network_g``) is checked against its constructor's types and ranges and built on
the ``meta`` device first (:func:`check_fits_on_meta`): a huge ``dim`` is refused without allocating.

A scale requested with ``--scale`` or an option file that disagrees with the weights' is an error
(:class:`ScaleMismatchError`): loading would resize the sub-pixel output layer, which is how
fine-tuning at another scale starts, not a trained model of that scale.

Deployed checkpoint format (written by :func:`save_deployed`, read by :func:`load_network`)::

    {'params': state_dict,            # of the folded model (esc_basicsr.archs.deploy.deploy)
     'network_g': {'type': ..., ...}, # constructor arguments, BasicSR style
     'scale': int, 'deployed': True, 'esc_basicsr_version': str}

BasicSR itself reads ``params`` of such a file; a folded ESC also loads into a training-form ESC
(the geometric ensemble is idempotent), a folded ELAN only into a folded ELAN.
"""
from __future__ import annotations

import copy
import inspect
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping

import torch
import torch.nn as nn

from ..archs.checkpoint import CheckpointError, describe_fit, extract_state_dict, fit_problems, validate_state_dict
from ..archs.checkpoint_file import check_checkpoint_file
from ..archs.deploy import deploy as deploy_model
from ..archs.table import backend_argument, network_arbitrary_scale, network_value_range, with_unit_range
from ..utils.options import CHANNEL_KEYS, SCALE_KEYS, check_network_g, network_scale, read_option_file, shown


class ScaleMismatchError(ValueError):
    """The requested scale (``--scale``, an option file) is not the scale the weights were trained for."""


@dataclass
class LoadedNetwork:
    """A model ready for inference plus its description.

    Attributes:
        model: the network in eval mode (folded with :func:`esc_basicsr.archs.deploy.deploy`).
        network_g: the BasicSR ``network_g`` dict it was built from (with ``type``).
        scale: upscaling factor r (output is ``r*H x r*W``).
        value_range: range of the images the model takes and returns (1.0 for [0, 1]).
        meta: entries of the checkpoint other than the weights.
    """

    model: nn.Module
    network_g: dict[str, Any]
    scale: int
    value_range: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)


def network_from_preset(name: str, scale: int) -> dict[str, Any]:
    """``network_g`` of a preset at ``scale``, taking images in [0, 1].

    The architecture's ``unit_range_args`` are added (:func:`esc_basicsr.archs.table.with_unit_range`):
    ELAN presets are the authors' models (images in [0, ``rgb_range`` = 255]); ``input_range: 1.0``
    makes them, like every BasicSR network, take and return [0, 1] images.
    """
    from ..archs.presets import network_g

    return with_unit_range(network_g(name, scale))


def architecture(type_name: str) -> type:
    """Class registered as ``type_name`` in BasicSR's ``ARCH_REGISTRY`` (BasicSR's and ours)."""
    from ..integration import register

    register()  # first: imports BasicSR (or waits for another thread importing it)
    import basicsr.archs  # noqa: F401  (imports BasicSR's arch modules, filling the registry)
    from basicsr.utils.registry import ARCH_REGISTRY

    if type_name not in ARCH_REGISTRY:
        raise KeyError(f'unknown architecture {type_name!r}; registered: {sorted(ARCH_REGISTRY._obj_map)}')
    return ARCH_REGISTRY.get(type_name)


def arch_registry() -> dict[str, type]:
    """BasicSR's ``ARCH_REGISTRY`` (its architectures and ours) as a dict of names to classes."""
    architecture('ESC')  # fills the registry (BasicSR's archs and ours)
    from basicsr.utils.registry import ARCH_REGISTRY

    return dict(ARCH_REGISTRY._obj_map)


def complete_network_g(network_g: Mapping[str, Any], scale: int | None = None) -> dict[str, Any]:
    """Copy of ``network_g`` with a missing scale argument and missing RGB channel counts filled in
    (for BasicSR archs named on the command line, e.g. ``EDSR`` needs ``num_in_ch``)."""
    opt = copy.deepcopy(dict(network_g))
    cls = architecture(opt['type'])
    params = inspect.signature(cls).parameters
    if scale is not None and network_scale(opt) is None:
        key = next((k for k in SCALE_KEYS if k in params), None)
        if key is not None:
            opt[key] = scale
    for key in CHANNEL_KEYS:
        if key in params and key not in opt and params[key].default is inspect.Parameter.empty:
            opt[key] = 3
    return opt


def build_network(network_g: Mapping[str, Any], attn_type: str | None = None) -> nn.Module:
    """Construct ``network_g`` (a BasicSR ``network_g`` dict with ``type``).

    Args:
        network_g: ``{'type': name, **constructor_arguments}``.
        attn_type: attention backend (``naive|sdpa|flex|auto``), given to the architecture's backend
            argument (the table's ``backend_arg``: the ESC family's ``attn_type``, ESCRIB's
            ``attn_backend``); ignored by architectures without one. ``None`` keeps ``network_g``'s.
    """
    opt = copy.deepcopy(dict(network_g))
    name = opt.pop('type')
    cls = architecture(name)
    arg = backend_argument(name)
    if attn_type is not None and arg is not None:
        opt[arg] = attn_type
    return cls(**opt)


def read_checkpoint(path: str | Path, param_key: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and other entries of a checkpoint, loaded with ``weights_only=True``.

    The weights are ``param_key``, else ``params_ema``, else ``params``, else the file itself (a bare
    state_dict), as :func:`esc_basicsr.archs.checkpoint.extract_state_dict` picks them, checked by
    :func:`esc_basicsr.archs.checkpoint.validate_state_dict` (entries that are not tensors left out).

    The file is checked first (:func:`esc_basicsr.archs.checkpoint_file.check_checkpoint_file`): a zip
    archive cut short, declaring more memory than its size allows, or with a member failing its CRC-32 is
    refused before ``torch.load`` allocates anything.

    Raises:
        CheckpointError: not a complete, intact checkpoint; not a dict of weights, or a tensor that cannot
            be a weight (named).
    """
    check_checkpoint_file(path)  # before torch.load: cut short, declaring gigabytes, or damaged (CRC-32)
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except (EOFError, pickle.UnpicklingError) as exc:  # a legacy (non-zip) checkpoint cut short?
        if isinstance(exc, pickle.UnpicklingError) and 'truncated' not in str(exc):
            raise  # weights_only refused an object: options_check.load_error_message explains it
        raise CheckpointError(f'{path}: not a complete checkpoint (truncated? the data end early); copy or '
                              'download it again') from None
    except (RuntimeError, OSError) as exc:  # e.g. a storage of another size than the data.pkl declares
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        if 'unexpected EOF' in str(exc):  # a legacy checkpoint whose storages are cut short
            raise CheckpointError(f'{path}: not a complete checkpoint (truncated? {_first_line(exc)}); copy or '
                                  'download it again') from None
        raise CheckpointError(f'{path}: not a readable PyTorch checkpoint ({_first_line(exc)})') from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{path}: expected a dict checkpoint, got {type(checkpoint).__name__}')
    try:
        state_dict = validate_state_dict(extract_state_dict(checkpoint, param_key), str(path))
    except CheckpointError as exc:
        raise CheckpointError(str(exc) if str(path) in str(exc) else f'{path}: {exc}') from None
    if not state_dict:
        raise CheckpointError(f'{path}: the checkpoint holds no weights')
    has_weights = any(k in checkpoint for k in ('params', 'params_ema')) or param_key is not None
    meta = {k: v for k, v in checkpoint.items() if k not in ('params', 'params_ema', param_key)} if has_weights else {}
    return state_dict, meta


@dataclass
class DetectedWeights:
    """What the weights themselves say (:func:`esc_basicsr.archs.detect`).

    Attributes:
        network_g: ``{'type': name, **constructor_arguments}`` (the architecture's ``unit_range_args``
            added, ELAN's ``input_range: 1.0``, so that it takes [0, 1] images like every BasicSR
            network); ``None`` if not recognised.
        scale: the upscaling factor the weights were trained for (``None``: unknown or arbitrary).
        error: why they were not recognised (the message of the detection error).
    """

    network_g: dict[str, Any] | None
    scale: int | None
    error: str = ''


def detect_weights(state_dict: Mapping[str, torch.Tensor] | None, source: str | Path | None = None) -> DetectedWeights:
    """Recognise ``state_dict`` as one of esc_basicsr's architectures.

    Raises:
        CheckpointError: the layout of one of them with a tensor it cannot hold (e.g. int64); weights that
            are not recognised are not an error (``network_g`` None).
    """
    from ..archs.detection import UnknownArchitectureError, detect, weights_scale

    if state_dict is None:
        return DetectedWeights(None, None, 'no weights')
    try:
        name, kwargs = detect(state_dict)
    except UnknownArchitectureError as exc:
        return DetectedWeights(None, None, str(exc))
    except CheckpointError as exc:
        raise CheckpointError(f'{source}: {exc}' if source is not None else str(exc)) from None
    return DetectedWeights(with_unit_range({'type': name, **kwargs}), weights_scale(name, kwargs))


def resolve_network_g(opt: str | Path | None = None, preset: str | None = None, scale: int | None = None,
                      meta: Mapping[str, Any] | None = None,
                      detected: DetectedWeights | None = None) -> tuple[dict[str, Any], int | None]:
    """``(network_g, scale)`` from an option file, else a preset (at ``scale``, else the weights'
    scale), else a checkpoint's meta, else the weights themselves (``detected``)."""
    if opt is not None:
        options = read_option_file(opt)
        return dict(options['network_g']), network_scale(options['network_g'], options)
    if preset is not None:
        scale = scale if scale is not None else (detected.scale if detected else None)
        if scale is None:
            raise ValueError(f'--model {preset} needs --scale (the weights do not tell it)')
        return network_from_preset(preset, scale), scale
    if meta and isinstance(meta.get('network_g'), Mapping):
        network_g = dict(meta['network_g'])
        return network_g, network_scale(network_g) or meta.get('scale')
    if detected is not None and detected.network_g is not None:  # scale None: an arbitrary-scale network
        return dict(detected.network_g), detected.scale
    why = f' ({detected.error})' if detected is not None and detected.error else ''
    raise ValueError(f'no network description: the weights were not recognised{why}; give --opt (a BasicSR '
                     'option file) or --model NAME --scale N')


def check_scale(detected: DetectedWeights, requested: Mapping[str, int | None], weights: str | Path | None) -> None:
    """Raise :class:`ScaleMismatchError` if a requested scale (``{'--scale': 4, '--opt FILE': 4}``)
    disagrees with the scale the weights were trained for."""
    if detected.network_g is None or detected.scale is None:
        return
    for source, value in requested.items():
        if value is not None and value != detected.scale:
            raise ScaleMismatchError(
                f'{source} asks for x{value}, but the weights{f" {weights}" if weights else ""} are '
                f'{detected.network_g["type"]} x{detected.scale}: loading them at x{value} would only resize the '
                f'output layer (a fine-tuning initialisation, not a trained x{value} model). Drop {source.split()[0]} '
                f'or use x{value} weights')


def check_described_scale(detected: DetectedWeights, meta: Mapping[str, Any], weights: str | Path | None) -> None:
    """Raise :class:`ScaleMismatchError` if a checkpoint's own description (the ``network_g`` and ``scale``
    a deployed checkpoint stores) states another scale than its weights have.

    Built as described, the network would resize the weights' sub-pixel output layer and write images
    of the described scale from weights trained for another: a wrong or tampered description, refused
    rather than warned about. Giving ``--opt``/``--model`` at the weights' scale uses them as they are.
    """
    if detected.network_g is None or detected.scale is None or not isinstance(meta.get('network_g'), Mapping):
        return
    stated = {'network_g': network_scale(meta['network_g']),
              'scale': meta['scale'] if isinstance(meta.get('scale'), int) else None}
    for key, value in stated.items():
        if value is not None and value != detected.scale:
            kind = detected.network_g['type']
            raise ScaleMismatchError(
                f'{weights}: the checkpoint describes x{value} (its {key!r}), but its weights are {kind} '
                f'x{detected.scale}: built as described, the output layer would be resized (not a trained x{value} '
                f'model). Refused; to use the weights at x{detected.scale}, give --opt (a network_g at '
                f'x{detected.scale}) or --model NAME --scale {detected.scale}')


def describe_weights(weights: str | Path, scale: int | None = None,
                     param_key: str | None = None) -> tuple[dict[str, Any], int]:
    """``(network_g, scale)`` of a checkpoint from its own contents (deployed meta or detection),
    checked against a requested ``scale``. Raises ``ValueError`` (:class:`ScaleMismatchError`)."""
    state_dict, meta = read_checkpoint(weights, param_key)
    detected = detect_weights(state_dict, weights)
    check_scale(detected, {'--scale': scale}, weights)
    check_described_scale(detected, meta, weights)
    if isinstance(meta.get('network_g'), Mapping):
        check_network_g(meta['network_g'], arch_registry(), f"{weights}: the checkpoint's network_g")
    network_g, net_scale = resolve_network_g(meta=meta, detected=detected)
    if net_scale is None:
        raise ValueError(f'--weights {weights}: the scale of the network is unknown')
    return network_g, int(net_scale)


@torch.no_grad()
def probe_scale(model: nn.Module, size: int = 16) -> int:
    """Upscaling factor found by running a ``(1, 3, size, size)`` input through ``model`` on the CPU."""
    device = next(model.parameters()).device
    out = model(torch.zeros(1, 3, size, size, device=device))
    return out.shape[-1] // size


def load_network(weights: str | Path | None, opt: str | Path | None = None, preset: str | None = None,
                 scale: int | None = None, attn_type: str | None = None, param_key: str | None = None,
                 strict: bool = True, fold: bool = True) -> LoadedNetwork:
    """Build the described network and load ``weights`` into it.

    Args:
        weights: checkpoint path (BasicSR ``params_ema``/``params``, a bare state_dict, or a
            deployed checkpoint); ``None`` keeps the random initialisation (tests, benchmarks).
        opt: BasicSR option file whose ``network_g`` describes the network.
        preset: preset name (``esc``, ``esc_light``, ``esc_fp``, ``elan_light``, ...), at ``scale`` or
            the weights' scale.
        scale: upscaling factor; must agree with the weights' (with ``opt`` it overrides nothing).
        Without ``opt``/``preset`` (and no deployed meta) the network is read off the weights.
        attn_type: attention backend (``auto|naive|sdpa|flex``) where the architecture has one
            (:func:`build_network`).
        param_key: checkpoint entry holding the weights (default: ``params_ema``, then ``params``).
        strict: ``load_state_dict(strict=...)``.
        fold: apply :func:`esc_basicsr.archs.deploy.deploy` (inference form, eval mode).

    Raises:
        ScaleMismatchError: ``scale`` or the option file's scale disagrees with the weights'.
        ValueError / KeyError: no or an unknown network description, or an unreadable checkpoint.
        RuntimeError: weights that do not fit the network (from ``load_state_dict``).
    """
    state_dict, meta = read_checkpoint(weights, param_key) if weights is not None else (None, {})
    detected = detect_weights(state_dict, weights)
    requested = {'--scale': scale}
    if opt is not None:
        options = read_option_file(opt)
        check_network_g(options['network_g'], arch_registry(), f'--opt {opt}: network_g')
        requested[f'--opt {opt}'] = network_scale(options['network_g'], options)
    elif preset is None and isinstance(meta.get('network_g'), Mapping):  # a description from the file itself
        check_network_g(meta['network_g'], arch_registry(), f"{weights}: the checkpoint's network_g")
    check_scale(detected, requested, weights)
    if opt is None and preset is None:
        check_described_scale(detected, meta, weights)
    network_g, net_scale = resolve_network_g(opt, preset, scale, meta, detected)
    network_g = complete_network_g(network_g, net_scale or scale)
    source = f'--opt {opt}' if opt is not None else f'--model {preset}' if preset is not None else \
        f"{weights}: the checkpoint's network_g" if isinstance(meta.get('network_g'), Mapping) else \
        f'{weights}: read off the weights'
    if state_dict is not None:  # the shapes first, on the meta device: a huge network_g allocates nothing
        check_fits_on_meta(network_g, state_dict, bool(meta.get('deployed')), strict, f'{weights}', source,
                           detected, family_mismatch(network_g, detected, opt, preset, weights))
    try:
        model = build_network(network_g, attn_type)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, AssertionError, RuntimeError) as exc:
        raise ValueError(f'{source}: {_described(network_g)} cannot be built: {_first_line(exc)}') from None
    if meta.get('deployed'):  # folded weights need a folded model (ELAN has no BatchNorm keys any more)
        deploy_model(model)
    if state_dict is not None:
        load_checked(model, state_dict, strict, f'{weights}', detected,
                     family_mismatch(network_g, detected, opt, preset, weights))
    if fold:
        deploy_model(model)
    model.eval()
    if network_arbitrary_scale(network_g):  # ESCLTE: the scale is the caller's choice, not the network's
        if scale is None:
            raise ValueError(f'{type(model).__name__} renders any scale: give one (--scale, e.g. 2.5)')
        return LoadedNetwork(model, network_g, scale, 1.0, meta)
    net_scale = network_scale(network_g) or net_scale or probe_scale(model)
    value_range = network_value_range(network_g)  # ours: the table's; others: BasicSR's [0, 1]
    if value_range is None:
        value_range = float(getattr(model, 'input_range', 1.0) or 1.0)
    return LoadedNetwork(model, network_g, int(net_scale), value_range, meta)


def _zero_arguments(network_g: Mapping[str, Any]) -> str:
    """``' (0 where a size belongs? num_heads=0)'`` for a network that could not be built, else ``''``."""
    zeros = [f'{k}={v}' for k, v in network_g.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
             and v <= 0]
    return f' (0 where a size belongs? {", ".join(zeros)})' if zeros else ''


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (torch's C++ errors append a stack of dozens of lines), bounded."""
    first = (str(exc).strip().splitlines() or [''])[0]
    return f'{type(exc).__name__}: {first[:200]}'


def check_fits_on_meta(network_g: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], deployed: bool,
                       strict: bool, weights: str, source: str, detected: DetectedWeights | None = None,
                       mismatch: str | None = None) -> None:
    """Build ``network_g`` on the ``meta`` device (shapes only, no memory) and refuse weights whose shapes
    differ, before the network is built for real: a description asking for ``dim: 200000`` would
    otherwise allocate hundreds of GB before the 58 KB weights are compared with it.

    The weights are loaded into the meta network by its own ``load_state_dict`` (:func:`_loads_on_meta`:
    its conversions and its own errors as the real load has them). An architecture of BasicSR's that
    cannot be built on the meta device is not checked.

    Raises:
        ValueError: the description cannot be built (``num_heads: 0``, a value too large for torch), or
            the weights do not fit it (:class:`CheckpointError`, with ``mismatch`` if given).
    """
    from ..archs.table import ARCHITECTURES

    spec = ARCHITECTURES.get(network_g.get('type'))
    try:
        with torch.device('meta'):
            model = build_network(network_g)
            if deployed:
                deploy_model(model)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, AssertionError, RuntimeError,
            NotImplementedError) as exc:
        if spec is None:  # e.g. a BasicSR arch that computes values in __init__: built for real as before
            return
        raise ValueError(f'{source}: {_described(network_g)} cannot be built: {_first_line(exc)}'
                         f'{_zero_arguments(network_g)}') from None
    loads = _loads_on_meta(model, state_dict, strict)
    if loads:
        return
    problems = fit_problems(state_dict, model.state_dict(), {n for n, _ in model.named_buffers()})
    if not strict:
        problems['missing'], problems['unexpected'] = [], []
    if loads is None and not (problems['shape'] or problems['missing'] or problems['unexpected']):
        return  # the meta network could not load them: names and shapes judged here, the real load decides
    if mismatch is not None:
        raise CheckpointError(mismatch)
    found = f'; they are {_described(detected.network_g)}' if detected and detected.network_g else ''
    summary = describe_fit(dict(problems, dtype=[])) or 'the network does not load them'
    raise CheckpointError(f'{weights}: the weights do not fit {_described(network_g)} ({source}): {summary}{found}')


def _loads_on_meta(model: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool) -> bool | None:
    """Whether ``model`` (on the meta device) loads meta copies of ``state_dict`` with its own
    ``load_state_dict``: its conversions (ESC's output layer resized to its scale) applied, its own clear
    errors raised (ESCLTE's for a fixed-scale checkpoint, a ``ValueError``), nothing allocated. ``None``:
    cannot tell (a loading hook that reads values, which meta tensors lack, e.g. ESCRealM's upsampler)."""
    log = logging.getLogger('basicsr')  # a conversion's warning belongs to the real load, not to this check
    disabled, log.disabled = log.disabled, True
    try:
        model.load_state_dict({k: v.to('meta') for k, v in state_dict.items()}, strict=strict)
    except ValueError:
        raise
    except NotImplementedError:  # 'Cannot copy out of meta tensor' (a RuntimeError too)
        return None
    except RuntimeError:  # names or shapes that differ: summed up by the caller
        return False
    except Exception:  # noqa: BLE001 - another operation the meta device lacks
        return None
    finally:
        log.disabled = disabled
    return True


def _described(network_g: Mapping[str, Any]) -> str:
    """``ESC x2 (dim=16, n_blocks=1, ...)``: a network_g in a few words."""
    sizes = [f'{k}={shown(v, 24)}' for k, v in network_g.items() if k != 'type' and isinstance(v, int)
             and not isinstance(v, bool) and k not in SCALE_KEYS][:4]
    scale = network_scale(network_g)
    return f'{network_g["type"]}{f" x{scale}" if scale else ""}' + (f' ({", ".join(sizes)}, ...)' if sizes else '')


def family_mismatch(network_g: Mapping[str, Any], detected: DetectedWeights, opt: str | Path | None,
                    preset: str | None, weights: str | Path | None) -> str | None:
    """The message for weights recognised as another architecture than ``--model``/``--opt`` asks for
    (e.g. ELAN weights with ``--model esc``), or None."""
    if detected.network_g is None or network_g.get('type') == detected.network_g['type']:
        return None
    source = f'--model {preset}' if preset is not None else f'--opt {opt}' if opt is not None else 'the checkpoint'
    return (f'{source} describes {network_g.get("type")}, but these are {detected.network_g["type"]} weights '
            f'({_described(detected.network_g)}, read off {weights}): leave out {source.split()[0]} to use them as '
            f'they are, or give {network_g.get("type")} weights')


def load_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True, source: str = 'weights',
                 detected: DetectedWeights | None = None, mismatch: str | None = None) -> None:
    """``model.load_state_dict(state_dict)`` that refuses tensors of another dtype kind by name (PyTorch
    would cast an int64 or bool tensor into a float parameter silently) and sums a misfit up in one line
    (``mismatch``, e.g. from :func:`family_mismatch`, if given; the network's own clear errors, such as
    ESCLTE's for a fixed-scale checkpoint, pass unchanged).

    Raises:
        CheckpointError: naming the tensors that differ (and the architecture the weights were recognised as).
    """
    reference = model.state_dict()
    problems = fit_problems(state_dict, reference, {n for n, _ in model.named_buffers()})
    if not strict:
        problems['missing'], problems['unexpected'] = [], []
    if problems['dtype']:
        raise CheckpointError(f'{source}: {describe_fit(dict(problems, missing=[], unexpected=[], shape=[]))}')
    try:
        model.load_state_dict(state_dict, strict=strict)
    except RuntimeError as exc:
        if mismatch is not None:
            raise CheckpointError(mismatch) from None
        summary = describe_fit(problems) or str(exc).strip().splitlines()[-1][:300]
        found = f'; they are {_described(detected.network_g)}' if detected and detected.network_g else ''
        raise CheckpointError(f'{source}: the weights do not fit {type(model).__name__}: {summary}{found}') from None


def save_deployed(path: str | Path | IO[bytes], model: nn.Module, network_g: Mapping[str, Any], scale: int) -> None:
    """Save a folded ``model`` in the deployed checkpoint format (see the module docstring) to a path
    (its folder created) or a binary file object."""
    from ..version import __version__

    if not all(isinstance(v, (str, int, float, bool, list, tuple, dict, type(None))) for v in network_g.values()):
        raise ValueError('network_g must hold plain values only (it is stored for weights_only loading)')
    checkpoint = {
        'params': {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        'network_g': copy.deepcopy(dict(network_g)),
        'scale': int(scale),
        'deployed': True,
        'esc_basicsr_version': __version__,
    }
    if isinstance(path, (str, Path)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
