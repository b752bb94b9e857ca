"""Small configurations of every row of the architecture table, and the cases of the table harness
(:mod:`tests.archs.test_table_harness`). Every test that loops over the table builds its networks here.

Every :class:`~esc_basicsr.archs.ArchSpec` of :data:`~esc_basicsr.archs.ARCHITECTURES` gives cases: each
preset at each of its scales (an arbitrary-scale network: :data:`ARBITRARY_SCALE`, a non-integer one) and,
on the architecture's first preset, each other value of the row's ``variants`` (the constructor choices
that change the layout: ESCReal's ``use_dysample``, ESCRealM's ``upsampler``, ESCRIB's ``attn_type``...).
A combination the constructor refuses (ESCRealM's ``conv`` upsampler at x2) is not a case, nor one that
builds the same network as the preset (ESCRealM's ``unshuffle_mod`` at x3: same weights, same output).
A new table row is tested without editing anything here.

A case runs on a small configuration of its preset (:func:`small_config`: each size argument shrunk by its
name, one block, head dim 16 so that FlexAttention also runs on CUDA, a window of its own per row) with
weights that make every component matter (:meth:`Case.build`).
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from esc_basicsr.archs import ARCHITECTURES, ArchSpec
from esc_basicsr.layers.lte import FixedScale, scaled_size

# the output scale of arbitrary-scale networks in the harness: not an integer, so that no integer path hides
ARBITRARY_SCALE = 2.5
# FlexAttention on CUDA needs a head dimension >= 16 (shared/reference/GPU.md)
MIN_HEAD_DIM = 16

Options = tuple[tuple[str, Any], ...]


def small_window(spec: ArchSpec) -> int:
    """The attention window of ``spec``'s small configurations: 4 + its position in the table (mod 8), so
    that a loop over the table meets several window layouts (each a variant of the compiled FlexAttention);
    8 for a row outside the table."""
    names = list(ARCHITECTURES)
    return 4 + names.index(spec.name) % 8 if ARCHITECTURES.get(spec.name) is spec else 8


def small_config(spec: ArchSpec, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A small configuration of the preset ``kwargs`` (completed with the constructor's defaults): each
    size argument of the constructor shrunk by its name.

    Head dimension stays >= 16, ``pdim <= dim / 4``, widths divisible by their groups; arguments the
    weights do not fix (ELAN's ``window_sizes``) are kept."""
    k = spec.arguments(kwargs)
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
        k['window_size'] = small_window(spec)
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
    """One architecture, preset, scale and variant (``options``: ``option_extras`` such as the backend)."""

    spec: ArchSpec
    preset: str
    scale: float
    variant: Options = ()
    options: Options = ()

    @property
    def id(self) -> str:
        extra = ''.join(f'-{k}={v}' for k, v in self.variant + self.options)
        return f'{self.spec.name}-{self.preset}-x{self.scale:g}{extra}'

    @property
    def arbitrary(self) -> bool:
        return self.spec.arbitrary_scale

    def kwargs(self, small: bool = True) -> dict[str, Any]:
        """Constructor arguments (scale included)."""
        preset = copy.deepcopy(dict(self.spec.presets[self.preset]))
        kwargs = small_config(self.spec, preset) if small else preset
        kwargs.update(self.variant + self.options)
        if self.spec.scale_arg is not None:
            kwargs[self.spec.scale_arg] = int(self.scale)
        return kwargs

    @property
    def value_range(self) -> float:
        """Upper end of the images the network takes and returns (the row's ``value_range``: 1 for [0, 1],
        ELAN's authors' form 255)."""
        spec = self.spec
        return 1.0 if spec.value_range is None else float(spec.value_range(spec.arguments(self.kwargs())))

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
                calibrate_batchnorm(model, lambda m: self.run(m, self.input(2, 16, 16, seed=seed + 1)))
        return model.eval()

    def input(self, b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
        """``(b, 3, h, w)`` uniform in the network's image range."""
        g = torch.Generator().manual_seed(seed)
        return torch.rand(b, 3, h, w, generator=g) * self.value_range

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        return scaled_size(h, w, self.scale)

    def run(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The super-resolved image: ``model(x)``, or ``model.upscale`` at the case's scale."""
        if self.arbitrary:
            return model.upscale(x, self.out_size(*x.shape[-2:]))
        return model(x)

    def sizes(self) -> list[tuple[int, int]]:
        """1x1, 7x9, whole cells of the window grid (no padding) and the last size, odd and just over one
        cell (padded, several windows)."""
        spec = self.spec
        m = 1 if spec.input_multiple is None else int(spec.input_multiple(spec.arguments(self.kwargs())))
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


def _constructs(case: Case) -> bool:
    try:
        case.spec.cls(**case.kwargs())
    except ValueError:  # a combination the constructor refuses (e.g. a conv upsampler at x2)
        return False
    return True


def layout(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The state_dict's keys and shapes."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _same_network(case: Case, base: Case) -> bool:
    """Whether ``case`` builds ``base``'s network: the same layout, and the same output on its weights."""
    ours, theirs = case.build(), base.build()
    if layout(ours) != layout(theirs):
        return False
    ours.load_state_dict(theirs.state_dict())
    x = base.input(1, 9, 7)
    with torch.no_grad():
        return torch.equal(case.run(ours, x), base.run(theirs, x))


def preset_scales(spec: ArchSpec) -> tuple[float, ...]:
    return (ARBITRARY_SCALE,) if spec.arbitrary_scale else tuple(spec.scales)


def all_cases(architectures: Mapping[str, ArchSpec] = ARCHITECTURES) -> list[Case]:
    """Every preset at every scale, and every other value of each variant on the first preset."""
    cases = []
    for spec in architectures.values():
        for i, preset in enumerate(spec.presets):
            for scale in preset_scales(spec):
                base = Case(spec, preset, scale)
                if not _constructs(base):
                    continue
                cases.append(base)
                chosen = spec.arguments(base.kwargs())
                for name, values in spec.variants.items() if i == 0 else ():
                    for value in values:
                        case = Case(spec, preset, scale, ((name, value),))
                        if value != chosen[name] and _constructs(case) and not _same_network(case, base):
                            cases.append(case)
    return cases


def one_scale_each(cases: Sequence[Case]) -> list[Case]:
    """One case per (architecture, preset, variant), the scales taken in turn across an architecture's
    groups, for the slow checks (export, reduced precision): every group once, most scales at least once."""
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


# ---------------------------------------------------------------------- one small network per row

def small_case(name: str, attn_type: str | None = None) -> Case:
    """The first preset of the architecture ``name`` at its first scale, small, taking and returning [0, 1]
    images (the row's ``unit_range_args``); ``attn_type``: the attention backend, given to the row's
    ``backend_arg`` where it has one."""
    spec = ARCHITECTURES[name]
    options = dict(spec.unit_range_args)
    if attn_type is not None and spec.backend_arg is not None:
        options[spec.backend_arg] = attn_type
    return Case(spec, next(iter(spec.presets)), preset_scales(spec)[0], options=tuple(options.items()))


def small_model(name: str, attn_type: str | None = None) -> nn.Module:
    """:func:`small_case` built (:meth:`Case.build`), called as ``model(x)``: ``(B, 3, h, w)`` ->
    ``(B, 3, s*h, s*w)`` in [0, 1] (an arbitrary-scale network renders at :data:`ARBITRARY_SCALE`)."""
    model = small_case(name, attn_type).build()
    return FixedScale(model, ARBITRARY_SCALE) if ARCHITECTURES[name].arbitrary_scale else model


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
