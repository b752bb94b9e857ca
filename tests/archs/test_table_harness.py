"""Generic checks over the architecture table: every architecture, preset, scale and variant.

The cases come from :data:`esc_basicsr.archs.ARCHITECTURES` (see :mod:`tests.helpers.arch_cases`): a new row
of the table is tested here without editing this file. Each case runs on a small configuration of its
preset; the full-size presets get a cheap check (construction, parameters, detection, one tiny forward).

Tolerances are in units of the network's input range (1 for [0, 1] images, 255 for ELAN's authors'
form) and of float32 (unit roundoff 6e-8); measured values on 2 CPU threads are noted beside them.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from esc_basicsr.archs import ArchSpec, build, network_g
from esc_basicsr.archs.deploy import deploy, is_deployed
from esc_basicsr.archs.detection import build_from_state_dict, detect, from_state_dict
from esc_basicsr.layers.attention_backends import ATTN_TYPES, flex_available
from esc_basicsr.tools.onnx_export import EXPORTABLE_BACKENDS, export_onnx, image_to_image, verify_onnx

from tests.conftest import requires_cuda
from tests.helpers.arch_cases import Case, all_cases, constructor_arguments, full_presets, layout, max_abs_diff, \
    one_scale_each
from tests.helpers.cuda import tf32

CASES = all_cases()
# A batch and its images one by one run the same arithmetic; only the kernels' blocking of the batch
# (oneDNN convolutions, BLAS) may reorder float32 sums: measured <= 1.0e-6 (ESC-FP x4); 4e-6 is the 1e-3
# at ELAN's 255 of the test this replaces.
BATCH_ATOL = 4e-6
# naive, sdpa and flex compute the same softmax(qk^T + bias)v in another order: measured <= 1.0e-6.
BACKEND_ATOL = 1e-5
# folding re-associates a few float32 products (kernel ensemble, BatchNorm into a conv): measured
# <= 2.4e-7 of the range; a folded checkpoint reloaded (ensembled again): <= 6.6e-7.
DEPLOY_ATOL = 2e-6
# onnxruntime's kernels against PyTorch's: measured <= 1e-5 of the range (ELAN at 255: 2.7e-3), bound 1e-4.
EXPORT_ATOL = 1e-4
# CUDA against the CPU in float32 without TF32: measured within 5e-6 for every preset on an H200
# (shared/reference/GPU.md); 1e-4 leaves room for other kernels and the small configurations.
CUDA_ATOL = 1e-4


def ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


def cases_where(predicate) -> list[Case]:
    return [case for case in CASES if predicate(case)]


def check_close(out: torch.Tensor, ref: torch.Tensor, atol: float, what: str) -> None:
    diff = max_abs_diff(out, ref)
    assert diff <= atol, f'{what}: max abs difference {diff:.3g} > {atol:.3g}'


# ----------------------------------------------------------------------------------- shapes, batches

@pytest.mark.parametrize('case', CASES, ids=ids(CASES))
def test_any_size_gives_the_scaled_shape_and_finite_values(case: Case) -> None:
    model = case.build()
    for h, w in case.sizes():
        with torch.no_grad():
            out = case.run(model, case.input(1, h, w))
        assert out.shape == (1, 3, *case.out_size(h, w)), (h, w)
        assert torch.isfinite(out).all(), (h, w)


@pytest.mark.parametrize('case', CASES, ids=ids(CASES))
def test_eval_batch_equals_images_one_by_one(case: Case) -> None:
    model = case.build()
    x = case.input(2, 11, 13)
    with torch.no_grad():
        batched = case.run(model, x)
        single = torch.cat([case.run(model, x[i:i + 1]) for i in range(2)])
    assert max_abs_diff(batched[0], batched[1]) > 1e-3 * case.value_range  # two different images
    check_close(batched, single, BATCH_ATOL * case.value_range, 'batch of 2 vs one by one')


@pytest.mark.parametrize('case', CASES, ids=ids(CASES))
def test_train_mode_gradients_reach_every_parameter(case: Case) -> None:
    model = case.build().train()
    out = case.run(model, case.input(2, 12, 10))
    (out / case.value_range).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    broken = [name for name, p in model.named_parameters()
              if p.grad is not None and not (torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0)]
    assert not missing, f'no gradient reaches {missing}'
    assert not broken, f'zero or non-finite gradient for {broken}'


# ------------------------------------------------------------------------------ state_dict, detection

@pytest.mark.parametrize('case', CASES, ids=ids(CASES))
def test_state_dict_round_trip(case: Case) -> None:
    model = case.build()
    state = model.state_dict()
    fresh = case.build(seed=1, realistic=False)  # other initial weights
    fresh.load_state_dict(state, strict=True)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key
    x = case.input(1, 9, 7)
    with torch.no_grad():
        assert torch.equal(case.run(fresh, x), case.run(model, x))


DETECT_CASES = cases_where(lambda c: c.spec.detect is not None)


def same_weights(model: nn.Module, other: nn.Module) -> bool:
    """Whether no state_dict can tell ``model`` from the freshly built ``other``: the same keys and shapes,
    and the same buffers (constants of the configuration, such as ESCRealM's ``MetaUpsample``)."""
    state, theirs = model.state_dict(), other.state_dict()
    buffers = {name for name, _ in model.named_buffers()} & set(state)
    return layout(model) == layout(other) and all(torch.equal(state[b], theirs[b]) for b in buffers)


@pytest.mark.parametrize('case', DETECT_CASES, ids=ids(DETECT_CASES))
def test_detection_and_rebuild_from_weights(case: Case) -> None:
    """Detection answers the case's constructor arguments (but ``option_extras``; ``not_in_weights`` as the
    case has them), with two exceptions the weights force, each checked:

    - an argument that changes nothing in this configuration (ESCRIB's RIB sizes in a FlashBias network)
      is answered with the constructor's default: the network it builds is the case's;
    - weights that cannot tell two scales apart (the same layout and buffers: ESCRIB's ``nn+conv``
      upsampler at x2 and x3) are given one of them; given the scale, the network is rebuilt exactly."""
    spec = case.spec
    model = case.build()
    state = model.state_dict()
    name, found = detect(state)
    assert name == spec.name
    # what the weights leave open (ESCRIB's RIB window), as the case has it
    given = {k: v for k, v in case.kwargs().items() if k in spec.not_in_weights}
    found = {**found, **given}
    expected, detected = constructor_arguments(spec, case.kwargs()), constructor_arguments(spec, found)
    differ = {k: (expected.get(k), detected.get(k)) for k in expected.keys() | detected.keys()
              if expected.get(k) != detected.get(k)}
    x = case.input(1, 9, 7)
    with torch.no_grad():
        ref = case.run(model, x)
        if differ:
            twin = spec.cls(**found)
            same_network = same_weights(model, twin) and not twin.load_state_dict(state, strict=True).missing_keys \
                and torch.equal(case.run(twin.eval(), x), ref)
            if same_network:
                defaults = spec.arguments({})  # the constructor's defaults (sizes have none)
                assert all(k in defaults and detected[k] == defaults[k] for k in differ), \
                    f'an argument that changes nothing is not answered with its default (ours, detected): {differ}'
            else:
                assert set(differ) == {spec.scale_arg} and same_weights(model, spec.cls(**found)), \
                    f'detected arguments differ (ours, detected): {differ}'
                given[spec.scale_arg] = case.kwargs()[spec.scale_arg]
        rebuilt = from_state_dict(state, **given)
        assert type(rebuilt) is spec.cls and not rebuilt.training
        assert torch.equal(case.run(rebuilt, x), ref)


# ---------------------------------------------------------------------------------- attention backends

CPU_BACKENDS = [b for b in ATTN_TYPES if b != 'auto' and (b != 'flex' or flex_available())]
ATTENTION_CASES = cases_where(lambda c: c.spec.backend_arg is not None)


@pytest.mark.parametrize('case', ATTENTION_CASES, ids=ids(ATTENTION_CASES))
def test_attention_backends_agree(case: Case) -> None:
    reference = case.build()
    x = case.input(1, *case.sizes()[-1])  # several windows, padded
    outs = {}
    for backend in CPU_BACKENDS:
        model = case.build(seed=1, realistic=False, **{case.spec.backend_arg: backend})
        model.load_state_dict(reference.state_dict(), strict=True)
        with torch.no_grad():
            outs[backend] = case.run(model, x)
    for backend in CPU_BACKENDS[1:]:
        check_close(outs[backend], outs[CPU_BACKENDS[0]], BACKEND_ATOL * case.value_range,
                    f'{backend} vs {CPU_BACKENDS[0]}')


# ---------------------------------------------------------------------------------- reduced precision

# float16 and bfloat16 round to 11 and 8 bits (unit roundoff 4.9e-4, 3.9e-3); measured mean relative error
# against float32 on 2 CPU threads, autocast and weight casts, every group of cases: float16 <= 1.5e-3, bfloat16
# <= 1.1e-2 (both ESC-LTE with cast weights; the others <= 8.5e-4 and 7.6e-3). Bound: 8 unit roundoffs (3.9e-3,
# 3.1e-2); an overflow gives inf/NaN, a part computed in the wrong precision or range tens of percent.
PRECISION_BOUND = {dtype: 8 * torch.finfo(dtype).eps / 2 for dtype in (torch.float16, torch.bfloat16)}
PRECISION_CASES = [pytest.param(case, dtype, id=f'{case.id}-{str(dtype)[6:]}') for case in one_scale_each(CASES)
                   for dtype, claimed in ((torch.float16, case.spec.supports_half),
                                          (torch.bfloat16, case.spec.supports_bfloat16)) if claimed]


def mean_relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).abs().mean() / ref.double().abs().mean()).item()


@pytest.mark.parametrize('case,dtype', PRECISION_CASES)
def test_reduced_precision_matches_float32(case: Case, dtype: torch.dtype) -> None:
    """A row's ``supports_half`` / ``supports_bfloat16`` (spandrel's flags, ``infer --precision``) hold: on
    realistic weights (default initialisation, calibrated BatchNorm), CPU autocast and the weights and image
    cast to ``dtype`` (as spandrel runs a model) stay within PRECISION_BOUND of float32."""
    model = case.build()
    x = case.input(1, *case.sizes()[-1], seed=3)  # several windows, padded
    with torch.no_grad():
        ref = case.run(model, x)
        with torch.autocast('cpu', dtype=dtype):
            autocast = case.run(model, x)
        cast = case.run(copy.deepcopy(model).to(dtype), x.to(dtype))
    for how, out in (('autocast', autocast), ('cast weights', cast)):
        assert torch.isfinite(out).all(), how
        error = mean_relative_error(out, ref)
        assert error <= PRECISION_BOUND[dtype], f'{how}: mean relative error {error:.2e} > {PRECISION_BOUND[dtype]:.2e}'


# ------------------------------------------------------------------------------------------ deployment

DEPLOY_CASES = cases_where(lambda c: c.spec.deploy is not None)


@pytest.mark.parametrize('case', DEPLOY_CASES, ids=ids(DEPLOY_CASES))
def test_deployment_folding(case: Case) -> None:
    model = case.build()
    atol = DEPLOY_ATOL * case.value_range
    x = case.input(2, 11, 13)
    assert not is_deployed(model)
    folded = deploy(copy.deepcopy(model))  # the dispatcher, driven by the table
    assert is_deployed(folded) and not folded.training
    with torch.no_grad():
        ref, out = case.run(model, x), case.run(folded, x)
    check_close(out, ref, atol, 'deployed vs training form')
    before = folded.state_dict()
    assert deploy(folded) is folded and all(torch.equal(v, before[k]) for k, v in folded.state_dict().items())
    state = folded.state_dict()
    reloaded = build_from_state_dict(case.spec.name, case.kwargs(), state)  # strict
    with torch.no_grad():
        check_close(case.run(reloaded, x), out, atol, 'folded checkpoint reloaded')
    if case.spec.detect is not None:  # deployed weights are recognised as the same network
        assert detect(state) == detect(model.state_dict())


# ---------------------------------------------------------------------------------------------- export

EXPORT_CASES = one_scale_each(CASES)


@pytest.mark.parametrize('case', EXPORT_CASES, ids=ids(EXPORT_CASES))
def test_onnx_export_parity(case: Case, tmp_path) -> None:
    """The project's exporter (dynamic batch, height, width; deployed weights; an arbitrary-scale network at
    the case's scale) against PyTorch with onnxruntime at sizes and batches other than the traced one, down
    to 1x1."""
    backend_arg = case.spec.backend_arg
    overrides = {backend_arg: EXPORTABLE_BACKENDS[-1]} if backend_arg is not None else {}
    model = image_to_image(deploy(case.build(**overrides)), {'type': case.spec.name, **case.kwargs()}, case.scale)
    h, w = case.sizes()[-1]
    path = str(tmp_path / f'{case.id}.onnx')
    export_onnx(model, path, (2, 3, h + 2, w - 2))  # a batch, not a multiple of the window grid
    sizes = [(1, 3, 1, 1), (2, 3, h, w)]
    results = verify_onnx(model, path, sizes)
    assert [r['output'] for r in results] == [(b, c, *case.out_size(y, x)) for b, c, y, x in sizes]
    worst = max(r['max_abs_diff'] for r in results)
    assert worst <= EXPORT_ATOL * case.value_range, results


# ---------------------------------------------------------------------------------------- full presets

FULL = full_presets()
FIRST_SCALE = {(c.spec.name, c.preset): c for c in reversed(FULL)}  # a preset's first scale


@pytest.mark.parametrize('case', FULL, ids=ids(FULL))
def test_full_size_preset(case: Case) -> None:
    """The real sizes, cheaply: built from the preset by name, trainable parameters, detected back from its
    weights, one tiny forward (at the preset's first scale)."""
    assert network_g(case.preset, case.scale) == {'type': case.spec.name, **case.kwargs(small=False)}
    model = build(case.preset, case.scale).eval()
    assert type(model) is case.spec.cls
    params = list(model.parameters())
    assert params and all(p.requires_grad and p.is_floating_point() for p in params)
    if case.spec.detect is not None:
        name, found = detect(model.state_dict())
        assert name == case.spec.name
        assert constructor_arguments(case.spec, found) == constructor_arguments(case.spec, case.kwargs(small=False))
    if FIRST_SCALE[case.spec.name, case.preset] is case:
        with torch.no_grad():
            out = case.run(model, case.input(1, 5, 6))
        assert out.shape == (1, 3, *case.out_size(5, 6)) and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------------------ CUDA

@requires_cuda
@pytest.mark.parametrize('case', CASES, ids=ids(CASES))
def test_cuda_matches_cpu_in_float32(case: Case) -> None:
    """The default backend on CUDA (``auto``: compiled FlexAttention) against the CPU, TF32 off."""
    model = case.build()
    x = case.input(2, *case.sizes()[-1])
    with torch.no_grad():
        ref = case.run(model, x)
        with tf32(False):
            out = case.run(copy.deepcopy(model).cuda(), x.cuda()).cpu()
    check_close(out, ref, CUDA_ATOL * case.value_range, 'CUDA vs CPU')


# ----------------------------------------------------------------------------------- the harness itself

class Toy(nn.Module):
    """A stand-in for a new table row: a sub-pixel network with a layout switch, ``extra`` adding a
    parameter that no output depends on; ``gain`` scales the features inside (past float16's range at 1e5)."""

    def __init__(self, scale: int, width: int = 8, extra: bool = False, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = gain
        self.body = nn.Conv2d(3, width, 3, 1, 1)
        self.tail = nn.Sequential(nn.Conv2d(width, 3 * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))
        self.unused = nn.Parameter(torch.zeros(1)) if extra else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(x) * self.gain) / self.gain


def test_every_variant_value_is_tested() -> None:
    """Each value of each row's ``variants`` is its first preset's or a case at some scale at least."""
    for spec in {case.spec.name: case.spec for case in CASES}.values():
        preset = next(iter(spec.presets))
        chosen = spec.arguments(Case(spec, preset, 1).kwargs(small=False))
        tested = {pair for case in CASES if case.spec is spec for pair in case.variant}
        untested = [(k, v) for k, values in spec.variants.items() for v in values
                    if v != chosen[k] and (k, v) not in tested]
        assert not untested, f'{spec.name}: {untested}'


def test_a_new_row_is_covered_and_the_checks_can_fail() -> None:
    spec = ArchSpec(Toy, 'scale', presets={'toy': {'width': 8}}, scales=(2, 3), preset_names={'toy': 'Toy'},
                    variants={'extra': (False, True)})
    cases = all_cases({'Toy': spec})
    assert ids(cases) == ['Toy-toy-x2', 'Toy-toy-x2-extra=True', 'Toy-toy-x3', 'Toy-toy-x3-extra=True']
    test_any_size_gives_the_scaled_shape_and_finite_values(cases[2])
    test_state_dict_round_trip(cases[2])
    test_train_mode_gradients_reach_every_parameter(cases[0])
    with pytest.raises(AssertionError, match=r"no gradient reaches \['unused'\]"):
        test_train_mode_gradients_reach_every_parameter(cases[1])
    test_reduced_precision_matches_float32(cases[0], torch.float16)
    # a row that claims float16 and overflows it fails; one that does not claim it is not checked
    loud = ArchSpec(Toy, 'scale', presets={'loud': {'gain': 1e5}}, scales=(2,), preset_names={'loud': 'Loud'})
    with pytest.raises(AssertionError, match='autocast'):
        test_reduced_precision_matches_float32(Case(loud, 'loud', 2), torch.float16)
    assert not [p for p in PRECISION_CASES if not p.values[0].spec.supports_half and p.values[1] == torch.float16]
