"""Issue 22, weights: what a checkpoint holds is checked before anything is built from it.

Absurd shapes (stride-0 views in a tiny file), garbage containers, NaN/inf values and non-float tensors are
refused with one clear error by detection (``detect``/``from_state_dict``, spandrel's loader) and by the
tools (``infer``/``export --weights``: exit code 2, one line); weights of another family than the preset
say which family they are."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import cv2
import pytest
import torch
import yaml

from esc_basicsr.archs import ESC, UnknownArchitectureError, detect, from_state_dict
from esc_basicsr.archs.checkpoint import CheckpointError, validate_state_dict
from esc_basicsr.export import main as export
from esc_basicsr.infer import main as infer

TINY = dict(dim=16, pdim=8, kernel_size=13, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2, upscaling_factor=2)
TINY_ELAN = dict(scale=2, rgb_range=255, m_elan=2, c_elan=12, n_share=1, window_sizes=[4, 8, 16])


def _tiny() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return ESC(**TINY).state_dict()


_TINY_SD = _tiny()  # built before any test patches ESC


def tiny_state_dict() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _TINY_SD.items()}


@pytest.fixture()
def no_real_build(monkeypatch):
    """Fail (instead of allocating) if an ESC is constructed on a real device; records the meta builds."""
    calls = []
    original = ESC.__init__

    def init(self, *args, **kwargs):
        device = torch.get_default_device()
        calls.append(device.type)
        if device.type != 'meta':
            raise AssertionError(f'ESC built on {device} from weights that should have been refused: {kwargs}')
        original(self, *args, **kwargs)

    monkeypatch.setattr(ESC, '__init__', init)
    return calls


def photo(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / 'p.png'), np.full((12, 16, 3), 128, np.uint8))
    return folder


def run_infer(tmp_path: Path, weights: Path, *extra: str) -> int:
    return infer(['-i', str(photo(tmp_path / 'in')), '-o', str(tmp_path / 'out'), '--weights', str(weights),
                  '--device', 'cpu', '--quiet', *extra])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert 'Traceback' not in err and len(lines) == 1 and lines[0].startswith('error: '), err
    return lines[0]


# ---- absurd shapes in a tiny file -------------------------------------------------------------------------------

def absurd_checkpoints() -> dict[str, dict]:
    sd = tiny_state_dict()
    huge_plk = dict(sd, plk_filter=torch.zeros(1).expand(100000, 1, 13, 13))  # 16.9 M elements, 4 bytes stored
    wide = dict(sd)
    wide['last.weight'] = torch.zeros(1).expand(20000, 20000, 1, 1)
    overlapping = dict(sd)
    overlapping['proj.weight'] = torch.zeros(4000).as_strided((16, 3000, 3, 3), (1, 1, 1, 1))
    return {'huge plk_filter': huge_plk, 'stride-0 last': wide, 'overlapping strides': overlapping}


@pytest.mark.parametrize('case', ['huge plk_filter', 'stride-0 last', 'overlapping strides'])
def test_absurd_shapes_are_refused_before_anything_is_built(case, tmp_path, no_real_build, capsys):
    sd = absurd_checkpoints()[case]
    torch.save({'params': sd}, tmp_path / 'w.pth')
    assert (tmp_path / 'w.pth').stat().st_size < 120_000  # a small file declaring gigabytes
    with pytest.raises(CheckpointError, match='elements'):
        from_state_dict(torch.load(tmp_path / 'w.pth', weights_only=True))
    assert run_infer(tmp_path, tmp_path / 'w.pth') == 2
    assert 'elements' in one_line_error(capsys)
    assert no_real_build == []  # refused before even the meta build


def test_sizes_that_disagree_with_the_other_tensors_are_refused_on_the_meta_device(tmp_path, no_real_build, capsys):
    """A real (stored) 20000-channel tensor would make detection build a 20000-wide ESC: the network is
    first built on the meta device, compared with the weights and refused."""
    sd = tiny_state_dict()
    sd['last.weight'] = torch.zeros(20000, 16, 1, 1)
    with pytest.raises(ValueError, match=r'does not fit'):
        from_state_dict(sd)
    assert no_real_build and set(no_real_build) == {'meta'}
    torch.save(sd, tmp_path / 'w.pth')
    assert run_infer(tmp_path, tmp_path / 'w.pth') == 2
    assert 'does not fit' in one_line_error(capsys)


def test_spandrel_loader_refuses_absurd_shapes(no_real_build):
    spandrel = pytest.importorskip('spandrel')
    import esc_basicsr.spandrel as ours

    registry = spandrel.ArchRegistry()
    ours.install(registry)
    with pytest.raises(ValueError, match='elements'):
        spandrel.ModelLoader(registry=registry).load_from_state_dict(absurd_checkpoints()['huge plk_filter'])
    assert 'cpu' not in no_real_build


# ---- garbage containers ----------------------------------------------------------------------------------------

def garbage() -> dict[str, object]:
    sd = tiny_state_dict()
    return {
        'int keys': {i: v for i, v in enumerate(sd.values())},
        'params a tensor': {'params': torch.zeros(3)},
        'params a list': {'params': list(sd.values())},
        'params None': {'params': None},
        'a list': list(sd.items()),
        'a tensor': torch.zeros(3),
        '0-dim tensors': {k: v.flatten()[0].clone() for k, v in sd.items()},
        'zero-sized layer': dict(sd, **{'last.weight': torch.zeros(0, 16, 1, 1)}),
        'no tensors': {'params': {'a': 1, 'b': 'x'}},
    }


@pytest.mark.parametrize('case', ['int keys', 'params a tensor', 'params a list', 'params None', 'a list', 'a tensor',
                                  '0-dim tensors', 'zero-sized layer', 'no tensors'])
def test_garbage_containers_give_one_clear_error(case, tmp_path, capsys):
    obj = garbage()[case]
    for func in (detect, from_state_dict):
        with pytest.raises((CheckpointError, UnknownArchitectureError)) as info:
            func(obj)
        assert str(info.value) and len(str(info.value)) < 600
    torch.save(obj, tmp_path / 'w.pth')
    assert run_infer(tmp_path, tmp_path / 'w.pth') == 2
    assert len(one_line_error(capsys)) < 600


# ---- values and dtypes -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_nan_or_inf_weights_are_refused(value, tmp_path, capsys):
    sd = tiny_state_dict()
    sd['blocks.0.conv_out.weight'][0, 0] = value
    with pytest.raises(CheckpointError, match=r"blocks\.0\.conv_out\.weight.*(NaN|inf)"):
        from_state_dict(sd)
    torch.save({'params': sd}, tmp_path / 'w.pth')
    assert run_infer(tmp_path, tmp_path / 'w.pth') == 2
    assert 'blocks.0.conv_out.weight' in one_line_error(capsys)
    assert not (tmp_path / 'out').exists()  # no all-black images
    assert export(['--weights', str(tmp_path / 'w.pth'), '-o', str(tmp_path / 'd.pth')]) == 2
    assert 'blocks.0.conv_out.weight' in one_line_error(capsys)
    assert not (tmp_path / 'd.pth').exists()


@pytest.mark.parametrize('dtype', [torch.int64, torch.bool, torch.complex64])
def test_non_float_tensors_are_refused_by_name(dtype, tmp_path, capsys):
    sd = tiny_state_dict()
    sd['proj.weight'] = (sd['proj.weight'] * 10).to(dtype)
    with pytest.raises(CheckpointError, match=rf"proj\.weight.*{str(dtype).split('.')[-1]}"):
        from_state_dict(sd)
    torch.save({'params': sd}, tmp_path / 'w.pth')
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': dict(TINY, type='ESC')}))
    for extra in [(), ('--opt', str(tmp_path / 'opt.yml')), ('--model', 'esc_light', '--scale', '2')]:
        assert run_infer(tmp_path, tmp_path / 'w.pth', *extra) == 2
        line = one_line_error(capsys)
        assert 'proj.weight' in line and str(dtype).split('.')[-1] in line, (extra, line)


def test_integer_buffers_of_the_network_stay_accepted():
    sd = {'a': torch.zeros(2, 3), 'bn.num_batches_tracked': torch.tensor(5)}
    validate_state_dict(sd)  # integers are judged against the network, not refused on sight


# ---- another family than the preset ----------------------------------------------------------------------------

def test_weights_of_another_family_name_it(tmp_path, capsys):
    from esc_basicsr.archs import ELAN

    torch.manual_seed(0)
    torch.save({'params': ELAN(**TINY_ELAN).state_dict()}, tmp_path / 'elan.pth')
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': dict(TINY, type='ESC')}))
    for extra in [('--model', 'esc', '--scale', '2'), ('--opt', str(tmp_path / 'opt.yml'))]:
        assert run_infer(tmp_path, tmp_path / 'elan.pth', *extra) == 2
        line = one_line_error(capsys)
        assert 'ELAN' in line and 'ESC' in line and len(line) < 400, line
    sd = tiny_state_dict()  # the right family, another size: a short summary, not every key
    torch.save({'params': sd}, tmp_path / 'esc.pth')
    assert run_infer(tmp_path, tmp_path / 'esc.pth', '--model', 'esc', '--scale', '2') == 2
    line = one_line_error(capsys)
    assert len(line) < 600 and 'missing' in line, line
