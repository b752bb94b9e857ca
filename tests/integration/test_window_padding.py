"""Test-time padding multiple: the table's input grid for esc_basicsr networks, network_g's windows otherwise."""
from __future__ import annotations

import pytest

from esc_basicsr.archs import network_g
from esc_basicsr.integration.models.window_padding import padding_multiple


@pytest.mark.parametrize('scale,overrides,expected', [
    (1, {}, 128), (2, {}, 64), (4, {}, 32), (2, {'unshuffle_mod': False}, 32)])
def test_escrealm_pads_to_window_times_unshuffle(scale: int, overrides: dict, expected: int) -> None:
    assert padding_multiple(network_g('esc_realm', scale, **overrides)) == expected


def test_other_networks_unchanged() -> None:
    assert padding_multiple(network_g('esc', 2)) == 32
    assert padding_multiple(network_g('esc_xl', 4)) == 48
    assert padding_multiple(network_g('elan_light', 2)) == 16
    assert padding_multiple({'type': 'SwinIR', 'window_size': 8, 'upscale': 2}) == 8  # BasicSR's: network_g
    assert padding_multiple({'type': 'Other', 'window_sizes': [4, 6]}) == 12
    assert padding_multiple({'type': 'EDSR', 'upscale': 2}) == 1
