"""What the command-line tools' tests share: a tiny ESC (its ``network_g``) saved once per module."""
from __future__ import annotations

import pytest
import torch
import yaml

# a tiny ESC x2: every layer of the family, fast enough for the tools' end-to-end runs
TINY = dict(type='ESC', dim=16, pdim=8, kernel_size=13, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2,
            upscaling_factor=2)


@pytest.fixture(scope='module')
def net(tmp_path_factory) -> dict:
    """``TINY`` with seeded weights: ``weights`` (``{'params': ...}`` .pth), ``opt`` (a BasicSR option file
    with its ``network_g``), ``root`` (the folder holding both)."""
    from esc_basicsr.tools.loading import build_network

    root = tmp_path_factory.mktemp('net')
    torch.manual_seed(0)
    torch.save({'params': build_network(TINY).state_dict()}, root / 'net.pth')
    (root / 'opt.yml').write_text(yaml.safe_dump({'scale': 2, 'network_g': TINY}))
    return {'weights': str(root / 'net.pth'), 'opt': str(root / 'opt.yml'), 'root': root}
