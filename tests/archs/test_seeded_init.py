"""Seeded initialisation and state_dict layout unchanged by refactoring, on any CPU (see :mod:`.seeded_init`)."""
from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

from esc_basicsr.archs import build

from .seeded_init import (ORTHOGONAL, configurations, differences, load_stats, orthonormal_error,
                          seeded_state_dict)

RECORDED_WITH, RECORDED = load_stats()
CONFIGS = configurations()
State = dict[str, torch.Tensor]
# torch's own version (not the build: the CPU and CUDA wheels draw alike); another torch may draw otherwise
OTHER_TORCH = torch.__version__.split('+')[0] != RECORDED_WITH['torch']


def test_every_configuration_is_recorded() -> None:
    assert set(CONFIGS) == set(RECORDED)


@pytest.mark.skipif(OTHER_TORCH, reason=f'recorded with torch {RECORDED_WITH["torch"]}, whose random number '
                    'generation may differ from this torch\'s: re-record on unchanged code')
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_seeded_state_dict_unchanged(name: str) -> None:
    state, want = seeded_state_dict(*CONFIGS[name]), RECORDED[name]
    if isinstance(want, str) or isinstance(state, str):
        assert state == want  # refused then, refused now (same message)
        return
    changed = differences(state, want)
    assert not changed, 'seeded initialisation changed:\n' + '\n'.join(changed[:20])


# every preset of the ESC family at its first scale (the kernel is the trunk's: the same at every scale)
ORTHOGONAL_CONFIGS = sorted({preset: name for name, (preset, _, overrides) in reversed(CONFIGS.items())
                             if not overrides and not preset.startswith('elan')}.values())


@pytest.mark.parametrize('name', ORTHOGONAL_CONFIGS)
def test_shared_large_kernel_is_orthogonal(name: str) -> None:
    """The ESC family's large kernel starts orthogonal (the authors found it important early in training)."""
    state = seeded_state_dict(*CONFIGS[name])
    if isinstance(state, str):
        pytest.skip(state)
    kernels = {k: v for k, v in state.items() if k.split('.')[-1] in ORTHOGONAL}
    assert kernels, 'no orthogonally initialised kernel'
    errors = {k: orthonormal_error(v) for k, v in kernels.items()}
    assert max(errors.values()) < 1e-5, errors


# ---------------------------------------------------------------- the comparison: tolerant, yet sensitive

SMALL = 'esc_fp_x2'  # small and quick, with an orthogonal kernel, constant fills and normal draws


@pytest.fixture(scope='module')
def small() -> tuple[State, list]:
    state = seeded_state_dict(*CONFIGS[SMALL])
    assert isinstance(state, dict)
    return state, RECORDED[SMALL]


def _varying(state: State) -> list[str]:
    """The keys of floating-point tensors that hold more than one value (those pinned by statistics)."""
    return [k for k, v in state.items() if v.is_floating_point() and bool((v != v.reshape(-1)[0]).any())]


def test_comparison_accepts_other_cpus_rounding(small) -> None:
    """Noise of 2e-5 standard deviations on every drawn value is not a change: it moves a projection by ~1e-5,
    10x the most that other CPU code paths and thread counts moved it (seeded_init)."""
    state, recorded = small
    gen = torch.Generator().manual_seed(1)
    drawn = _varying(state)
    noisy = {k: v + 2e-5 * v.std() * torch.randn(v.shape, generator=gen) if k in drawn else v
             for k, v in state.items()}
    assert differences(noisy, recorded) == []


def _other_seed(state: State) -> State:
    """The same network drawn with seed 1: every drawn value changes (as when RNG consumption changes)."""
    torch.manual_seed(1)
    return build(*CONFIGS[SMALL][:2], **CONFIGS[SMALL][2]).state_dict()


def _swap_same_shape(state: State) -> State:
    """Two tensors of one shape exchange their draws (as when two modules are created in the other order)."""
    keys = _varying(state)
    a, b = next((a, b) for i, a in enumerate(keys) for b in keys[i + 1:] if state[a].shape == state[b].shape)
    return {**state, a: state[b], b: state[a]}


def _reinit(key: str, init: Callable[[torch.Tensor], object]) -> Callable[[State], State]:
    """``key`` initialised otherwise (``init`` in place on a copy)."""
    def change(state: State) -> State:
        tensor = state[key].clone()
        torch.manual_seed(5)
        init(tensor)
        return {**state, key: tensor}
    return change


def _zeros_made_ones(state: State) -> State:
    key = next(k for k, v in state.items() if v.is_floating_point() and not v.any())
    return {**state, key: torch.ones_like(state[key])}


CHANGES: dict[str, Callable[[State], State]] = {
    'drawn with another seed': _other_seed,
    'two draws swapped': _swap_same_shape,
    'orthogonal kernel scaled by 1.001': lambda s: {**s, 'lk_spatial': s['lk_spatial'] * 1.001},
    'orthogonal kernel drawn normal with its std': _reinit('lk_spatial',
                                                           lambda t: nn.init.normal_(t, std=t.std().item())),
    'default conv init drawn again': _reinit('proj.weight', lambda t: nn.init.kaiming_uniform_(t, a=5 ** 0.5)),
    'conv init with another gain': lambda s: {**s, 'proj.weight': s['proj.weight'] * 1.001},
    'zeros made ones': _zeros_made_ones,
    'a key renamed': lambda s: {(k + '_' if k == 'proj.bias' else k): v for k, v in s.items()},
    'a key dropped': lambda s: {k: v for k, v in s.items() if k != 'last.bias'},
    'a dtype changed': lambda s: {**s, 'last.bias': s['last.bias'].double()},
}


@pytest.mark.parametrize('change', CHANGES)
def test_comparison_rejects_changed_initialisation(small, change: str) -> None:
    state, recorded = small
    assert differences(CHANGES[change](state), recorded), f'{change}: not seen'


def test_every_drawn_tensor_is_pinned(small) -> None:
    """Drawn with another seed, every tensor that was drawn (not filled) is reported."""
    state, recorded = small
    reported = {line.split(':')[0] for line in differences(_other_seed(state), recorded)}
    assert reported == set(_varying(state))
