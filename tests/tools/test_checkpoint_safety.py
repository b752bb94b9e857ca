"""Issue 27, loading: what a checkpoint or a description may make the tools do before they refuse it.

A deflated zip member declaring a GiB (a zip bomb) is refused before ``torch.load`` inflates it; a flipped
byte fails its CRC-32; a checkpoint cut short is named as such; a ``network_g`` asking for a huge network,
an impossible value or a value of another type is refused before the network is built for real (shapes
compared on the meta device); a deployed checkpoint describing another scale than its weights is refused;
messages show user values bounded (a YAML alias bomb). Through ``python -m esc_basicsr.infer``/``export``
(one line, exit code 2) and the functions beneath."""
from __future__ import annotations

import functools
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from esc_basicsr.archs import ESC
from esc_basicsr.archs.checkpoint import CheckpointError
from esc_basicsr.archs.checkpoint_file import INFLATE_ENV, check_checkpoint_file
from esc_basicsr.tools.loading import read_checkpoint, save_deployed
from esc_basicsr.utils.options import check_network_g, shown

TINY = dict(type='ESC', dim=16, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=4, num_heads=2,
            upscaling_factor=2, exp_ratio=1.5)


def tiny_model() -> ESC:
    torch.manual_seed(0)
    return ESC(**{k: v for k, v in TINY.items() if k != 'type'})


@pytest.fixture()
def weights(tmp_path: Path) -> Path:
    path = tmp_path / 'tiny.pth'
    torch.save({'params': tiny_model().state_dict()}, path)
    return path


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'p.png'), (np.random.default_rng(0).random((10, 12, 3)) * 255).astype(np.uint8))
    return folder


def command(tool: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m esc_basicsr.<tool> ...`` in a subprocess (PYTHONPATH inherited)."""
    return subprocess.run([sys.executable, '-m', f'esc_basicsr.{tool}', *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def infer(image: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return command('infer', '-i', str(image), '-o', str(out), '--device', 'cpu', '--quiet', *args)


def one_line(result: subprocess.CompletedProcess) -> str:
    """The single ``error: ...`` line of a refused run (exit code 2, no traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr[-2000:]
    return lines[0]


def member_data_offset(path: Path, name: str) -> int:
    """Offset in ``path`` of the first byte of the (stored) zip member ``name``'s data."""
    info = zipfile.ZipFile(path).getinfo(name)
    with open(path, 'rb') as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack('<HH', f.read(4))
    return info.header_offset + 30 + name_len + extra_len


def zip_bomb(src: Path, dst: Path, mib: int = 256) -> str:
    """``src`` with its first tensor's member replaced by ``mib`` MiB of zeros, deflated (~1000:1)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w') as zout:
        target = next(i.filename for i in zin.infolist() if '/data/' in i.filename)
        for info in zin.infolist():
            if info.filename != target:
                zout.writestr(info, zin.read(info.filename))
                continue
            bomb = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            bomb.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(bomb, 'w') as f:
                zeros = bytes(1 << 20)
                for _ in range(mib):
                    f.write(zeros)
    return target


# ---- 1. a zip bomb: refused from the zip directory, before anything is inflated ---------------------------------

RSS_SCRIPT = """
import resource, sys
from esc_basicsr.tools.loading import read_checkpoint
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_checkpoint(sys.argv[1])
    print('loaded')
except Exception as exc:
    print(f'{type(exc).__name__}: {exc}')
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_zip_bomb_is_refused_before_loading_with_little_memory(weights, image, tmp_path):
    bomb = tmp_path / 'bomb.pth'
    zip_bomb(weights, bomb, mib=256)
    assert bomb.stat().st_size < 2 << 20  # a small file declaring 256 MiB
    result = subprocess.run([sys.executable, '-c', RSS_SCRIPT, str(bomb)], capture_output=True, text=True,
                            timeout=300)
    message, grown_mib = result.stdout.strip().splitlines()
    assert message.startswith('CheckpointError') and 'refused before loading' in message, result.stdout
    assert int(grown_mib) < 64, f'loading took {grown_mib} MiB more (torch.load inflated the member)'
    line = one_line(infer(image, tmp_path / 'out', '--weights', str(bomb)))
    assert str(bomb) in line and '256.0 MiB' in line and INFLATE_ENV in line
    assert not (tmp_path / 'out').exists()


def test_the_inflation_allowance_is_the_file_size_plus_64_mib_and_can_be_raised(weights, tmp_path, monkeypatch):
    bomb = tmp_path / 'bomb.pth'
    zip_bomb(weights, bomb, mib=80)
    with pytest.raises(CheckpointError, match=r'at most its own size \+ 64.0 MiB'):
        check_checkpoint_file(bomb)
    monkeypatch.setenv(INFLATE_ENV, '100')
    check_checkpoint_file(bomb, verify_crc=False)  # allowed now; the data do not fit the pickle: torch says so
    with pytest.raises(CheckpointError, match='not a readable PyTorch checkpoint'):
        read_checkpoint(bomb)
    monkeypatch.setenv(INFLATE_ENV, 'lots')
    with pytest.raises(CheckpointError, match=INFLATE_ENV):
        check_checkpoint_file(bomb)


# ---- 2. a flipped byte: the members' CRC-32s are checked ---------------------------------------------------------

def test_a_flipped_byte_in_a_tensor_is_damage_not_an_image(weights, image, tmp_path):
    data = bytearray(weights.read_bytes())
    name = next(n for n in zipfile.ZipFile(weights).namelist() if n.endswith('/data/0'))
    data[member_data_offset(weights, name) + 100] ^= 0x40  # one bit of one float of the first tensor
    flipped = tmp_path / 'flipped.pth'
    flipped.write_bytes(bytes(data))
    assert torch.load(flipped, weights_only=True)  # torch itself loads it without a word
    line = one_line(infer(image, tmp_path / 'out', '--weights', str(flipped)))
    assert line == (f'error: {flipped}: damaged (CRC mismatch in member {name!r}): the file is not what was saved; '
                    'copy or download it again')
    assert not (tmp_path / 'out').exists()


def test_checking_the_crcs_of_a_5_mb_checkpoint_is_fast(tmp_path):
    path = tmp_path / 'five_mb.pth'
    torch.save({'params': {f'w{i}': torch.randn(256, 512) for i in range(10)}}, path)  # 10 x 512 KiB
    assert 5 << 20 <= path.stat().st_size < 6 << 20
    check_checkpoint_file(path)  # warm the page cache (torch.load reads the file after the check)
    start = time.perf_counter()
    check_checkpoint_file(path)
    assert time.perf_counter() - start < 1.0  # 2 ms measured on the 2-core test machine


# ---- 3. a checkpoint cut short -----------------------------------------------------------------------------------

def rib_checkpoint(tmp_path: Path) -> Path:
    from ..helpers.arch_cases import small_case

    path = tmp_path / 'rib.pth'
    torch.save({'params': small_case('ESCRIB').build().state_dict()}, path)
    return path


def test_a_checkpoint_cut_anywhere_is_named_incomplete(tmp_path):
    data = rib_checkpoint(tmp_path).read_bytes()
    cut = tmp_path / 'cut.pth'
    for i in range(1, 24):  # on main one of these cuts gave '[Errno 22] Invalid argument', the others miniz's words
        cut.write_bytes(data[:len(data) * i // 24])
        with pytest.raises(CheckpointError, match=rf'^{cut}: not a complete checkpoint \(truncated\?'):
            read_checkpoint(cut)


def test_a_legacy_checkpoint_cut_short_is_named_incomplete(tmp_path):
    path = tmp_path / 'legacy.pth'
    torch.save({'params': tiny_model().state_dict()}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    for part in (2, 3):
        path.write_bytes(data[:len(data) // part])
        with pytest.raises(CheckpointError, match=r'not a complete checkpoint \(truncated\?'):
            read_checkpoint(path)


def test_a_rib_checkpoint_cut_in_half_through_the_command(image, tmp_path):
    half = tmp_path / 'half.pth'
    data = rib_checkpoint(tmp_path).read_bytes()
    half.write_bytes(data[:len(data) // 2])
    line = one_line(infer(image, tmp_path / 'out', '--weights', str(half)))
    assert line.startswith(f'error: {half}: not a complete checkpoint (truncated?')


# ---- 4. a network_g checked against the weights (meta device) and its values before building ---------------------

def deployed(path: Path, **network_g) -> Path:
    """A deployed checkpoint of the tiny ESC x2 whose stored description is ``TINY`` updated with ``network_g``
    (its ``scale`` too where ``network_g`` states an int ``upscaling_factor``)."""
    from esc_basicsr.archs.deploy import deploy

    save_deployed(path, deploy(tiny_model()), TINY, 2)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint['network_g'] = {**TINY, **network_g}
    if isinstance(network_g.get('upscaling_factor'), int):
        checkpoint['scale'] = network_g['upscaling_factor']
    torch.save(checkpoint, path)
    return path


@pytest.fixture()
def real_builds(monkeypatch) -> list[dict]:
    """The arguments of every ESC built on a real device (the meta builds pass unrecorded)."""
    calls: list[dict] = []
    original = ESC.__init__

    @functools.wraps(original)  # the signature and annotations stay: the checks read them
    def init(self, *args, **kwargs):
        if torch.get_default_device().type != 'meta':
            calls.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ESC, '__init__', init)
    return calls


@pytest.mark.parametrize('where', ['--opt', 'deployed'])
def test_a_huge_network_g_is_compared_with_the_weights_on_the_meta_device(where, weights, image, tmp_path,
                                                                            real_builds, capsys):
    from esc_basicsr.infer import main

    if where == '--opt':
        opt = tmp_path / 'big.yml'
        opt.write_text(yaml.safe_dump({'scale': 2, 'network_g': {**TINY, 'dim': 200000}}))
        args = ['--weights', str(weights), '--opt', str(opt)]
    else:
        args = ['--weights', str(deployed(tmp_path / 'dep.pth', dim=200000))]
    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--quiet', *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'do not fit ESC x2 (' in err and 'dim=200000' in err
    assert "'proj.weight' [16, 3, 3, 3] vs [200000, 3, 3, 3]" in err
    assert all(call.get('dim') != 200000 for call in real_builds)  # main built it for real: 320 GB asked


CASES = {  # where a value of a network_g goes wrong -> what the one line says
    'dim 10**30': ({'dim': 10**30}, "argument 'dim' must be an int of at most 2147483647"),
    'num_heads -2': ({'num_heads': -2}, "argument 'num_heads' must be an int >= 0, got -2"),
    'dim a list': ({'dim': [16]}, "argument 'dim' must be int, got [16] (list)"),
    'dim a string': ({'dim': '16'}, "argument 'dim' must be int, got '16' (str)"),
    'exp_ratio -1': ({'exp_ratio': -1.0}, "argument 'exp_ratio' must be a number > 0"),
}


@pytest.mark.parametrize('case', list(CASES))
@pytest.mark.parametrize('where', ['--opt', 'deployed'])
def test_impossible_network_g_values_are_one_line(case, where, weights, image, tmp_path, real_builds, capsys):
    from esc_basicsr.infer import main

    values, expected = CASES[case]
    if where == '--opt':
        opt = tmp_path / 'o.yml'
        opt.write_text(yaml.safe_dump({'network_g': {**TINY, **values}}))
        args, source = ['--weights', str(weights), '--opt', str(opt)], f'--opt {opt}: network_g'
    else:
        path = deployed(tmp_path / 'dep.pth', **values)
        args, source = ['--weights', str(path)], f"{path}: the checkpoint's network_g"
        real_builds.clear()  # the tiny model saved above
    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--quiet', *args]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert err.startswith(f'error: {source}: ESC {expected}'), err
    assert real_builds == []


@pytest.mark.parametrize('where', ['--opt', 'deployed'])
def test_a_zero_that_cannot_be_built_is_one_line_naming_it(where, weights, image, tmp_path, real_builds, capsys):
    from esc_basicsr.infer import main

    if where == '--opt':
        opt = tmp_path / 'o.yml'
        opt.write_text(yaml.safe_dump({'network_g': {**TINY, 'num_heads': 0}}))
        args, source = ['--weights', str(weights), '--opt', str(opt)], f'--opt {opt}'
    else:
        path = deployed(tmp_path / 'dep.pth', num_heads=0)
        args, source = ['--weights', str(path)], f"{path}: the checkpoint's network_g"
        real_builds.clear()
    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--quiet', *args]) == 2
    err = capsys.readouterr().err  # main: 'error: ZeroDivisionError: integer modulo by zero'
    assert err.count('\n') == 1 and err.startswith(f'error: {source}: ESC x2 (')
    assert err.rstrip().endswith('cannot be built: ZeroDivisionError: integer modulo by zero (0 where a size '
                                 'belongs? num_heads=0)'), err
    assert real_builds == []


def test_every_shipped_option_file_and_preset_passes_the_value_checks():
    """Zero stays allowed for ints: ELAN's n_share: 0 is the authors' (options/*ELAN*.yml, the elan preset)."""
    from esc_basicsr.archs.presets import PRESETS
    from esc_basicsr.archs.table import ARCHITECTURES

    registry = {name: spec.cls for name, spec in ARCHITECTURES.items()}
    root = Path(__file__).resolve().parents[2]
    described = [yaml.safe_load(f.read_text()).get('network_g') for f in sorted(root.glob('options/**/*.yml'))]
    checked = [n for n in described + list(PRESETS.values()) if isinstance(n, dict) and n.get('type') in registry]
    assert len(checked) > 20
    for network_g in checked:
        check_network_g(network_g, registry)


def test_the_commands_refuse_a_tampered_description_in_one_line(tmp_path, image):
    path = deployed(tmp_path / 'dep.pth', dim=10**30)
    line = one_line(infer(image, tmp_path / 'out', '--weights', str(path)))  # main: a 12-line C++ stack
    assert "argument 'dim' must be an int of at most" in line
    line = one_line(command('export', '--weights', str(path), '-o', str(tmp_path / 'again.pth')))
    assert "argument 'dim' must be an int of at most" in line and not (tmp_path / 'again.pth').exists()


# ---- 5. a deployed checkpoint describing another scale than its weights -----------------------------------------

def rib_deployed(tmp_path: Path, described_scale: int) -> Path:
    from esc_basicsr.archs.deploy import deploy
    from ..helpers.arch_cases import small_case

    case = small_case('ESCRIB')
    path = tmp_path / 'rib_dep.pth'
    network_g = {'type': 'ESCRIB', **case.kwargs()}
    save_deployed(path, deploy(case.build()), network_g, network_g['upscaling_factor'])
    checkpoint = torch.load(path, weights_only=True)
    checkpoint['network_g']['upscaling_factor'] = checkpoint['scale'] = described_scale
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize('arch', ['ESC', 'ESCRIB'])
def test_a_description_of_another_scale_than_the_weights_is_refused(arch, image, tmp_path):
    path = deployed(tmp_path / 'dep.pth', upscaling_factor=4) if arch == 'ESC' else rib_deployed(tmp_path, 4)
    line = one_line(infer(image, tmp_path / 'out', '--weights', str(path)))  # main: x4 images, exit 0
    assert f'{path}: the checkpoint describes x4' in line and f'weights are {arch} x2' in line
    assert not (tmp_path / 'out').exists()
    line = one_line(command('export', '--weights', str(path), '-o', str(tmp_path / 'x4.pth')))
    assert 'describes x4' in line and not (tmp_path / 'x4.pth').exists()


def test_a_description_of_another_scale_is_refused_by_describe_weights(tmp_path):
    from esc_basicsr.tools.loading import ScaleMismatchError, describe_weights

    with pytest.raises(ScaleMismatchError, match='describes x4'):
        describe_weights(deployed(tmp_path / 'dep.pth', upscaling_factor=4))


def test_the_weights_scale_is_used_when_the_user_describes_the_network(tmp_path, image, capsys):
    from esc_basicsr.infer import main

    path = deployed(tmp_path / 'dep.pth', upscaling_factor=4)
    opt = tmp_path / 'x2.yml'
    opt.write_text(yaml.safe_dump({'scale': 2, 'network_g': TINY}))
    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--quiet', '--weights', str(path),
                 '--opt', str(opt)]) == 0
    assert cv2.imread(str(tmp_path / 'out' / 'p.png')).shape == (20, 24, 3)


# ---- 6. user values in messages are bounded ---------------------------------------------------------------------

def alias_bomb(path: Path, levels: int = 9) -> Path:
    """A network_g whose ``dim`` is 9**levels strings through YAML aliases (a few hundred bytes)."""
    lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]']
    lines += [f'a{i}: &a{i} [' + ', '.join([f'*a{i - 1}'] * 9) + ']' for i in range(1, levels)]
    network_g = ', '.join(f'{k}: {v}' for k, v in TINY.items() if k != 'dim')
    lines += [f'network_g: {{{network_g}, dim: *a{levels - 1}}}', 'scale: 2']
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_a_yaml_alias_bomb_gives_a_short_error(weights, image, tmp_path):
    opt = alias_bomb(tmp_path / 'bomb.yml')
    assert opt.stat().st_size < 1000
    line = one_line(infer(image, tmp_path / 'out', '--weights', str(weights), '--opt', str(opt)))
    assert "argument 'dim' must be int, got [[[" in line and len(line) < 400  # main: 387 MB


def test_shown_bounds_any_value():
    shared = ['x'] * 9
    for _ in range(8):
        shared = [shared] * 9  # 9**9 strings, shared: its repr is 387 MB
    start = time.perf_counter()
    assert len(shown(shared)) <= 200 and len(shown('y' * 10**6)) <= 200 and len(shown(10**4000)) <= 200
    assert time.perf_counter() - start < 0.5
    assert shown(16) == '16' and shown('ESC') == "'ESC'" and shown([1, 2]) == '[1, 2]'
    with pytest.raises(ValueError) as info:
        check_network_g({**TINY, 'dim': shared}, {'ESC': ESC})
    assert len(str(info.value)) < 300
    with pytest.raises(ValueError) as info:
        check_network_g({'dim': shared}, {'ESC': ESC})  # no type: the whole network_g is shown
    assert len(str(info.value)) < 300


def test_training_option_checks_show_values_bounded():
    """The training option checks (BasicSR's parse_options) show values through the same ``shown``."""
    from esc_basicsr.integration.fixes._option_structure import check_parsable
    from esc_basicsr.utils.options import OptionFileError

    shared = ['x'] * 9
    for _ in range(6):
        shared = [shared] * 9  # 9**7 strings: a 24 MB repr
    with pytest.raises(OptionFileError) as info:
        check_parsable({'name': shared, 'num_gpu': 0}, 'train.yml')
    assert str(info.value).startswith("train.yml: 'name' must be a text, got [[[") and len(str(info.value)) < 300


@pytest.mark.parametrize('name', ['ESC', 'ESCFP', 'ESCReal', 'ELAN', 'ESCRealM', 'ESCLTE', 'ESCRIB'])
def test_every_row_still_loads_after_the_meta_device_check(name, tmp_path):
    """The meta-device check passes what loads for real: every row of the table, read off its weights, from
    ``--opt`` and deployed (ESCRealM's upsampler reads values while loading, which meta tensors lack)."""
    from esc_basicsr.archs.deploy import deploy
    from esc_basicsr.archs.table import ARCHITECTURES
    from esc_basicsr.tools.loading import load_network

    from ..helpers.arch_cases import small_case

    spec, case = ARCHITECTURES[name], small_case(name)
    network_g = {'type': name, **case.kwargs()}
    scale = 2.5 if spec.arbitrary_scale else None
    torch.save({'params': case.build().state_dict()}, tmp_path / 'w.pth')
    (tmp_path / 'o.yml').write_text(yaml.safe_dump({'network_g': network_g}))
    save_deployed(tmp_path / 'd.pth', deploy(case.build()), network_g, network_g.get(spec.scale_arg) or 1)
    for weights, opt in [('w.pth', None), ('w.pth', tmp_path / 'o.yml'), ('d.pth', None)]:
        assert type(load_network(tmp_path / weights, opt=opt, scale=scale).model).__name__ == name
