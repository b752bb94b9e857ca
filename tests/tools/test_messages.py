"""What the command-line tools tell a new user: the network ``infer`` runs (one line, before the first
image) under the same display name as the demo's, and what to pass to ``prepare div2k`` for small photos."""
from __future__ import annotations

import cv2
import pytest
import torch
from skimage import data as skdata

from esc_basicsr import demo, demo_lte, infer, prepare
from esc_basicsr.archs import build, detect
from esc_basicsr.tools.demo import install_options, trained_network
from esc_basicsr.archs.presets import PRESETS, display_name, network_g, preset_of
from esc_basicsr.archs.table import ARCHITECTURES


def test_every_preset_and_architecture_has_a_display_name() -> None:
    for spec in ARCHITECTURES.values():  # ArchSpec refuses a row whose presets are not all named
        assert set(spec.preset_names) == set(spec.presets) and spec.label
    for preset, spec in ((p, ARCHITECTURES[PRESETS[p]['type']]) for p in PRESETS):
        extra = {spec.backend_arg: 'sdpa'} if spec.backend_arg else dict(spec.unit_range_args)
        for scale in spec.scales or (1,):
            assert preset_of(network_g(preset, scale)) == preset
            assert preset_of(network_g(preset, scale, **extra)) == preset  # the backend/range is no variant
    assert display_name(network_g('esc_light', 4)) == 'ESC-light'
    assert display_name(dict(network_g('esc', 2), dim=32)) == 'ESC'  # another configuration: its architecture
    assert display_name({'type': 'EDSR', 'num_feat': 64}) == 'EDSR'  # not ours: its BasicSR type


@pytest.mark.parametrize('preset, scale', [('esc_light', 2), ('elan_light', 2), ('esc_real', 4)])
def test_weights_are_named_as_their_preset(preset: str, scale: int) -> None:
    name, kwargs = detect(build(preset, scale).state_dict())
    assert display_name({'type': name, **kwargs}) == ARCHITECTURES[PRESETS[preset]['type']].preset_names[preset]


def test_demo_and_infer_compare_name_the_network_alike(tmp_path) -> None:
    install_options(tmp_path, (demo.TEST_OPT, demo_lte.TEST_OPT))
    assert trained_network(tmp_path, demo.CLASSIC) == ('ESC-light', False)
    assert trained_network(tmp_path, demo_lte.SPEC) == ('ESC-LTE', True)  # a smaller ESC-LTE than the preset


def test_infer_says_which_network_runs_before_the_first_image(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    torch.save({'params_ema': build('esc_light', 2).state_dict()}, tmp_path / 'w.pth')
    (tmp_path / 'lr').mkdir()
    (tmp_path / 'gt').mkdir()
    gt = cv2.cvtColor(skdata.chelsea()[:64, :64], cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / 'gt' / 'c.png'), gt)
    cv2.imwrite(str(tmp_path / 'lr' / 'c.png'), cv2.resize(gt, (32, 32), interpolation=cv2.INTER_AREA))
    assert infer.main(['-i', str(tmp_path / 'lr'), '-o', str(tmp_path / 'out'), '--weights', str(tmp_path / 'w.pth'),
                       '--compare', str(tmp_path / 'gt'), '--quiet']) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == 'network: ESC-light x2 (ESC, read off the weights), cpu, fp32'
    assert err[1] == f'1 image(s) written to {tmp_path / "out"}'
    assert err[3].split() == ['image', 'bicubic', 'ESC-light']  # the PSNR table of --compare

    assert infer.main(['-i', str(tmp_path / 'lr'), '-o', str(tmp_path / 'out2'), '--weights', str(tmp_path / 'w.pth'),
                       '--model', 'esc-light', '--scale', '2', '--quiet', '--attn', 'naive']) == 0
    assert capsys.readouterr().err.splitlines()[0] == 'network: ESC-light x2 (ESC, preset --model esc_light), cpu, fp32'


def test_prepare_names_the_crop_size_and_step_that_fit_small_photos(tmp_path, capsys) -> None:
    hr = tmp_path / 'hr'
    hr.mkdir()
    photo = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(hr / 'a.png'), photo[:321, :481])  # the size of BSD's photos: 481x321
    cv2.imwrite(str(hr / 'b.png'), photo[:300, :200])
    args = ['div2k', '--hr', str(hr), '--out', str(tmp_path / 'out'), '--name', 'T', '--scales', '2', '3', '4',
            '--workers', '1']
    assert prepare.main(args) == 1
    err = capsys.readouterr().err
    assert (f'{hr / "a.png"}: too small (321x481, 312x480 after cropping to a multiple of 12) for --crop-size 480; '
            '--crop-size 312 --step 156 would use it') in err
    assert f'{hr / "b.png"}: too small (300x200, 300x192 after cropping to a multiple of 12)' in err
    assert err.rstrip().endswith('2 image(s) smaller than --crop-size 480: --crop-size 192 --step 96 would use all '
                                 'of them (multiples of 12, which every scale divides; training needs gt_size <= '
                                 'crop size)')
    assert prepare.main(args + ['--crop-size', '192', '--step', '96']) == 0  # the suggestion works
