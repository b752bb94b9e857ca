"""Automatic registration into BasicSR, checked in fresh interpreters (the start-up hook only
acts at interpreter start)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith('ESC_BASICSR')}
    environ.update(env)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=300)


def test_startup_hook_is_installed_and_does_not_import_torch(tmp_path: Path) -> None:
    res = run_python("""
        import sys
        from esc_basicsr.integration.startup import BasicsrImportHook
        print('hook' if any(isinstance(f, BasicsrImportHook) for f in sys.meta_path) else 'no-hook')
        print('torch' if 'torch' in sys.modules else 'no-torch')
        print('basicsr' if 'basicsr' in sys.modules else 'no-basicsr')
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['hook', 'no-torch', 'no-basicsr']
    assert res.stderr == ''


def test_importing_the_package_imports_neither_torch_nor_basicsr(tmp_path: Path) -> None:
    res = run_python("""
        import sys
        import esc_basicsr, esc_basicsr.integration
        print(sorted(m for m in ('torch', 'basicsr') if m in sys.modules))
        import esc_basicsr.archs, esc_basicsr.layers  # torch only
        print('torch' in sys.modules, 'basicsr' in sys.modules)
    """, tmp_path, ESC_BASICSR_AUTOLOAD='0')
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['[]', 'True', 'False']


@pytest.mark.parametrize('order', ['esc_first', 'basicsr_first'])
def test_import_esc_basicsr_registers_before_or_after_basicsr(order: str, tmp_path: Path) -> None:
    first, second = ('esc_basicsr', 'basicsr') if order == 'esc_first' else ('basicsr', 'esc_basicsr')
    res = run_python(f"""
        import {first}
        import {second}
        from basicsr.utils.registry import ARCH_REGISTRY
        print('ESC' in ARCH_REGISTRY)
    """, tmp_path, ESC_BASICSR_AUTOLOAD='0')  # no start-up hook: the explicit import does it
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['True']


def test_find_spec_before_import_does_not_use_up_the_hook(tmp_path: Path) -> None:
    res = run_python("""
        import importlib.util
        assert importlib.util.find_spec('basicsr') is not None  # the usual optional-dependency check
        assert importlib.util.find_spec('basicsr') is not None
        import basicsr
        from basicsr.utils.registry import ARCH_REGISTRY
        print('ESC' in ARCH_REGISTRY)
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['True']


def test_basicsr_finds_archs_without_any_import(tmp_path: Path) -> None:
    res = run_python("""
        from basicsr.archs import build_network
        net = build_network({'type': 'ESC', 'dim': 16, 'pdim': 4, 'kernel_size': 7, 'n_blocks': 1,
                             'conv_blocks': 1, 'window_size': 8, 'num_heads': 2, 'upscaling_factor': 2})
        print(type(net).__module__)
        from basicsr.utils.registry import ARCH_REGISTRY
        print(sorted(k for k in ('ESC', 'ESCFP', 'ESCReal', 'ELAN') if k in ARCH_REGISTRY))
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == 'esc_basicsr.archs.esc_arch'
    assert lines[1] == "['ELAN', 'ESC', 'ESCFP', 'ESCReal']"


def test_env_switch_disables_registration_but_basicsr_still_imports(tmp_path: Path) -> None:
    res = run_python("""
        import basicsr  # needs the torchvision alias on current torchvision
        from basicsr.utils.registry import ARCH_REGISTRY
        print('ESC' in ARCH_REGISTRY)
    """, tmp_path, ESC_BASICSR_AUTOLOAD='0')
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['False']


WARNING_COUNT = """
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        import basicsr  # noqa: F401
    msgs = [str(w.message) for w in caught if 'esc_basicsr' in str(w.message)]
    print(len(msgs), 'boom' in msgs[0])
"""


def test_registration_failure_becomes_one_warning(tmp_path: Path) -> None:
    # a BasicSR that registration cannot work with must still import
    fake = tmp_path / 'basicsr'
    fake.mkdir()
    (fake / '__init__.py').write_text('')
    (fake / 'utils.py').write_text('raise RuntimeError("boom")\n')
    res = run_python(WARNING_COUNT, tmp_path, PYTHONPATH=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['1', 'True']


def test_broken_esc_basicsr_does_not_break_start_up(tmp_path: Path) -> None:
    fake = tmp_path / 'esc_basicsr'
    fake.mkdir()
    (fake / '__init__.py').write_text('raise RuntimeError("boom")\n')
    (tmp_path / 'basicsr').mkdir()  # a stand-in BasicSR (the real one needs the broken package's alias)
    (tmp_path / 'basicsr' / '__init__.py').write_text('')
    res = run_python(WARNING_COUNT, tmp_path, PYTHONPATH=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['1', 'True']


FORK_PACKAGE = """
import torch.nn as nn
from basicsr.utils.registry import ARCH_REGISTRY

@ARCH_REGISTRY.register()
class ESC(nn.Module):
    def __init__(self, fork_arg=1):
        super().__init__()
"""


def test_fork_registering_esc_after_us_gets_its_class(tmp_path: Path) -> None:
    (tmp_path / 'myfork_archs.py').write_text(FORK_PACKAGE)
    res = run_python("""
        import basicsr  # esc_basicsr registers its ESC here
        import myfork_archs  # the fork registers its own ESC afterwards: no AssertionError
        from basicsr.utils.registry import ARCH_REGISTRY
        print(ARCH_REGISTRY.get('ESC') is myfork_archs.ESC, 'ESCFP' in ARCH_REGISTRY)
    """, tmp_path, PYTHONPATH=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['True', 'True']


def test_fork_registering_esc_before_us_keeps_its_class(tmp_path: Path) -> None:
    (tmp_path / 'myfork_archs.py').write_text(FORK_PACKAGE)
    res = run_python("""
        import basicsr
        import myfork_archs
        import esc_basicsr
        from basicsr.utils.registry import ARCH_REGISTRY
        print(ARCH_REGISTRY.get('ESC') is myfork_archs.ESC, ARCH_REGISTRY.get('ESCFP') is esc_basicsr.ESCFP)
    """, tmp_path, PYTHONPATH=str(tmp_path), ESC_BASICSR_AUTOLOAD='0')
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['True', 'True']


def test_unrelated_duplicate_registration_still_raises(tmp_path: Path) -> None:
    res = run_python("""
        from basicsr.utils.registry import ARCH_REGISTRY
        try:
            ARCH_REGISTRY.register(type('SwinIR', (), {}))
            print('no-error')
        except AssertionError:
            print('assertion')
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == 'assertion'


@pytest.mark.parametrize('module', ['basicsr.train', 'basicsr.test'])
def test_basicsr_entry_points_start(module: str, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, '-m', module, '--help'], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert '-opt' in res.stdout


@pytest.mark.parametrize('first', ['esc_basicsr.integration.models', 'esc_basicsr.integration.data'])
def test_importing_our_basicsr_classes_first_registers_everything(first: str, tmp_path: Path) -> None:
    # the package imports BasicSR, whose hook then finds it half-imported
    res = run_python(f"""
        import warnings
        warnings.simplefilter('error', RuntimeWarning)
        import {first}
        from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
        print('ESC' in ARCH_REGISTRY, 'ESRModel' in MODEL_REGISTRY, 'LIIFDataset' in DATASET_REGISTRY)
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['True', 'True', 'True']
