"""Cases of the table harness (:mod:`tests.archs.test_table_harness`), derived from the architecture table.

Every :class:`~esc_basicsr.archs.ArchSpec` of :data:`~esc_basicsr.archs.ARCHITECTURES` gives cases: each
preset at each of its scales (an arbitrary-scale network: :data:`ARBITRARY_SCALE`, a non-integer one) and,
on the architecture's first preset, each variant (a constructor switch that changes the layout, e.g.
ESCReal's ``use_dysample``, ESCRealM's ``upsampler``). A combination the constructor refuses (ESCRealM's
``conv`` upsampler at x2) is not a case. A new table row is tested without editing anything here.

A case runs on a small configuration of its preset (:func:`small_config`: one block, narrow, head dim 16
so that FlexAttention also runs on CUDA) with weights that make every component matter
(:meth:`Case.build`). Facts the table does not carry yet are read with a fallback (:func:`table_fact`):
when an ``ArchSpec`` field of that name exists, it wins.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from esc_basicsr.archs import ARCHITECTURES, ArchSpec
from esc_basicsr.layers.lte import scaled_size
from esc_basicsr.layers.upsamplers import UPSAMPLERS

# the output scale of arbitrary-scale networks in the harness: not an integer, so that no integer path hides
ARBITRARY_SCALE = 2.5
# FlexAttention on CUDA needs a head dimension >= 16 (shared/reference/GPU.md)
MIN_HEAD_DIM = 16

# ----------------------------------------------------------------------------- facts, with fallbacks

# Constructor choices that change the layout, per architecture, until the table carries them as a field
# (proposed: ``ArchSpec.variants``: argument -> values to test besides the first preset's). Boolean
# switches need no entry: they are read from the constructor signature (:func:`variants`).
_CHOICES_UNTIL_THE_TABLE_HAS_THEM: Mapping[str, Mapping[str, Sequence[Any]]] = {
    'ESCRealM': {'upsampler': UPSAMPLERS},
}


def table_fact(spec: ArchSpec, name: str, fallback: Any = None) -> Any:
    """``spec.<name>`` where the table has that field (and it is set), else ``fallback``."""
    value = getattr(spec, name, None)
    return fallback if value is None else value


def is_arbitrary_scale(spec: ArchSpec) -> bool:
    """Whether the output size is an argument of the call (``upscale``), not of the constructor.

    Fallback: no scale argument (``scale_arg is None``), as ESC-LTE today."""
    return bool(table_fact(spec, 'arbitrary_scale', spec.scale_arg is None))


def _model_fact(spec: ArchSpec, name: str, model: nn.Module) -> Any:
    value = table_fact(spec, name)
    return value(model) if callable(value) else value


def input_range(spec: ArchSpec, model: nn.Module) -> float:
    """Upper end of the images the model takes (1 for [0, 1], ELAN's authors' form: 255).

    Fallback: the model's ``input_range`` attribute, else 1."""
    value = _model_fact(spec, 'input_range', model)
    return float(value if value is not None else (getattr(model, 'input_range', None) or 1.0))


def input_multiple(spec: ArchSpec, model: nn.Module) -> int:
    """Input size in pixels of one cell of the window grid (windows, unshuffle factor included).

    Fallback: the tools' tile alignment (window sizes found on the modules) times ESCRealM-style
    ``unshuffle`` folding of the input."""
    value = _model_fact(spec, 'input_multiple', model)
    if value is not None:
        return int(value)
    from esc_basicsr.tools.tiling import tile_alignment

    return tile_alignment(model) * int(getattr(model, 'unshuffle', 1))


def variants(spec: ArchSpec) -> dict[str, tuple[Any, ...]]:
    """Constructor argument -> values to test on the first preset besides its own.

    Fallback: each boolean argument the first preset leaves at its default, flipped, plus
    :data:`_CHOICES_UNTIL_THE_TABLE_HAS_THEM`."""
    declared = table_fact(spec, 'variants')
    if declared is not None:
        return {k: tuple(v) for k, v in declared.items()}
    first = next(iter(spec.presets.values()), {})
    found = {name: (not p.default,) for name, p in _parameters(spec.cls).items()
             if isinstance(p.default, bool) and name not in first}
    found.update({k: tuple(v) for k, v in _CHOICES_UNTIL_THE_TABLE_HAS_THEM.get(spec.name, {}).items()})
    return found


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(cls).parameters.items() if name != 'self'}


def takes(spec: ArchSpec, argument: str) -> bool:
    """Whether the constructor of ``spec`` has the argument ``argument``."""
    return argument in _parameters(spec.cls)


def small_config(spec: ArchSpec, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A small configuration of the preset ``kwargs``: the table's ``test_config`` (overrides applied to
    every preset) where it has one, else each size argument of the constructor shrunk by its name.

    Head dimension stays >= 16, ``pdim <= dim / 4``, widths divisible by their groups; arguments the
    weights do not fix (ELAN's ``window_sizes``) are kept, so that detection can be compared."""
    declared = table_fact(spec, 'test_config')
    if declared is not None:
        return {**kwargs, **declared}
    k = {name: p.default for name, p in _parameters(spec.cls).items() if p.default is not inspect.Parameter.empty}
    k.update(kwargs)
    for count in ('n_blocks', 'conv_blocks'):
        if count in k:
            k[count] = 1
    if 'num_heads' in k and 'dim' in k:
        head_dim = max(MIN_HEAD_DIM, k['dim'] // k['num_heads'])
        k['num_heads'] = min(k['num_heads'], 2)
        k['dim'] = k['num_heads'] * head_dim
    if 'pdim' in k and 'dim' in k:
        k['pdim'] = min(k['pdim'], k['dim'] // 4)
    if 'window_size' in k:
        k['window_size'] = min(k['window_size'], 8)
    if 'hidden_dim' in k:
        k['hidden_dim'] = min(k['hidden_dim'], 32)
    if 'imnet_hidden' in k:
        k['imnet_hidden'] = [min(h, 32) for h in list(k['imnet_hidden'])[:2]]
    if 'mid_dim' in k:
        k['mid_dim'] = min(k['mid_dim'], 16)
    if 'c_elan' in k:  # split into one channel group per window size
        k['c_elan'] = 8 * len(k.get('window_sizes') or (1,))
    if 'm_elan' in k:  # two blocks (a regular and a shifted one) of 1 + n_share attention modules
        k['m_elan'] = 2 * (1 + k.get('n_share', 0))
    return k


# ---------------------------------------------------------------------------------------------- cases

@dataclass(frozen=True)
class Case:
    """One architecture, preset, scale and variant."""

    spec: ArchSpec
    preset: str
    scale: float
    variant: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        scale = f'x{self.scale:g}'
        extra = ''.join(f'-{k}={v}' for k, v in self.variant)
        return f'{self.spec.name}-{self.preset}-{scale}{extra}'

    @property
    def arbitrary(self) -> bool:
        return is_arbitrary_scale(self.spec)

    def kwargs(self, small: bool = True) -> dict[str, Any]:
        """Constructor arguments (scale included)."""
        preset = copy.deepcopy(dict(self.spec.presets[self.preset]))
        kwargs = small_config(self.spec, preset) if small else preset
        kwargs.update(self.variant)
        if self.spec.scale_arg is not None:
            kwargs[self.spec.scale_arg] = int(self.scale)
        return kwargs

    def build(self, seed: int = 0, small: bool = True, realistic: bool = True, **overrides: Any) -> nn.Module:
        """The network in eval mode, seeded. ``realistic``: zero-initialised parameters (dynamic-kernel
        heads, DySample's scope, norm biases) drawn small and random, so that every component changes
        the output and receives a gradient, and BatchNorm statistics taken from one batch (with the
        initial 0/1 statistics ELAN's attention logits on [0, 255] images are huge: chaotic in float32)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.spec.cls(**{**self.kwargs(small), **overrides})
            if realistic:
                with torch.no_grad():
                    for p in model.parameters():
                        if not p.any():
                            p.normal_(0, 0.02)
                calibrate_batchnorm(model, lambda m: self.run(m, self.input(m, 2, 16, 16, seed=seed + 1)))
        return model.eval()

    def input(self, model: nn.Module, b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
        """``(b, 3, h, w)`` uniform in the model's input range."""
        g = torch.Generator().manual_seed(seed)
        return torch.rand(b, 3, h, w, generator=g) * input_range(self.spec, model)

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        return scaled_size(h, w, self.scale)

    def run(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The super-resolved image: ``model(x)``, or ``model.upscale`` at the case's scale."""
        if self.arbitrary:
            return model.upscale(x, self.out_size(*x.shape[-2:]))
        return model(x)

    def sizes(self, model: nn.Module) -> list[tuple[int, int]]:
        """1x1, 7x9, whole cells of the window grid (no padding) and the last size, odd and just over one
        cell (padded, several windows)."""
        m = int(self.spec.input_multiple(self.spec.arguments(self.kwargs()))) if self.spec.input_multiple else 1
        return [(1, 1), (7, 9), (m, 2 * m), (m + 3, m + 5)]


def calibrate_batchnorm(model: nn.Module, forward: Callable[[nn.Module], Any]) -> None:
    """Running statistics of every BatchNorm from one train-mode ``forward(model)`` (no-op without)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass sets the batch statistics
    with torch.no_grad():
        forward(model.train())
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def _constructs(spec: ArchSpec, kwargs: Mapping[str, Any]) -> bool:
    try:
        spec.cls(**kwargs)
    except ValueError:  # a combination the constructor refuses (e.g. a conv upsampler at x2)
        return False
    return True


def preset_scales(spec: ArchSpec) -> tuple[float, ...]:
    return (ARBITRARY_SCALE,) if is_arbitrary_scale(spec) else tuple(spec.scales)


def all_cases(architectures: Mapping[str, ArchSpec] = ARCHITECTURES) -> list[Case]:
    """Every preset at every scale, and every variant of each architecture's first preset."""
    cases = []
    for spec in architectures.values():
        for i, (preset, kwargs) in enumerate(spec.presets.items()):
            options: list[tuple[tuple[str, Any], ...]] = [()]
            if i == 0:
                options += [((name, value),) for name, values in variants(spec).items() for value in values
                            if kwargs.get(name, _parameters(spec.cls)[name].default) != value]
            for scale in preset_scales(spec):
                for variant in options:
                    case = Case(spec, preset, scale, variant)
                    if _constructs(spec, case.kwargs()):
                        cases.append(case)
    return cases


def one_scale_each(cases: Sequence[Case]) -> list[Case]:
    """One case per (architecture, preset, variant), the scales taken in turn across an architecture's
    groups, for the slow checks (export): every group once, most scales at least once."""
    groups: dict[tuple[str, str, tuple], list[Case]] = {}
    for case in cases:
        groups.setdefault((case.spec.name, case.preset, case.variant), []).append(case)
    seen: dict[str, int] = {}
    chosen = []
    for (name, _, _), group in groups.items():
        i = seen.get(name, 0)
        seen[name] = i + 1
        chosen.append(group[i % len(group)])
    return chosen


def full_presets(architectures: Mapping[str, ArchSpec] = ARCHITECTURES) -> list[Case]:
    """Every preset at every scale, at its real size (no variant)."""
    return [Case(spec, preset, scale) for spec in architectures.values() for preset in spec.presets
            for scale in preset_scales(spec)]


# ----------------------------------------------------------------------------------------- compare

def constructor_arguments(spec: ArchSpec, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with the constructor's defaults, without the arguments the weights do not fix
    (``option_extras``: ``attn_type``, ELAN's ``input_range``), sequences as tuples."""
    bound = inspect.signature(spec.cls).bind(**kwargs)
    bound.apply_defaults()
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in bound.arguments.items()
            if k not in spec.option_extras}


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    return (a.double() - b.double()).abs().max().item()


@contextlib.contextmanager
def strict_fp32_cuda() -> Iterator[None]:
    """CUDA float32 without TF32 (cuDNN convolutions use TF32 by default), restored afterwards.

    Only the legacy switches are set: they keep the new per-backend ``fp32_precision`` flags
    consistent, whereas setting the new ones alone makes inductor (compiled FlexAttention), which
    still reads the legacy ones in PyTorch 2.9-2.11, fail with "mix of the legacy and new APIs"."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
