"""Targeted fixes of BasicSR 1.4.2, one module each (see docs/training.md, "Resume and faults").

Each fix replaces exactly one function, says which bug it fixes, leaves a BasicSR whose structure
differs alone, and is installed once when esc_basicsr registers into BasicSR:

* :mod:`.torchvision_functional_tensor`: ``import basicsr`` with torchvision >= 0.17 (installed at start-up).
* :mod:`.resume`: ``--auto_resume`` location, device mapping and ``weights_only`` loading of states.
* :mod:`.option_checks`: missing dataset/pretrain paths reported before an experiment folder exists.
* :mod:`.lmdb_values`: missing/corrupt LMDB entries named instead of failing on ``None``.
* :mod:`.adamw`: ``optim_g: {type: AdamW}`` in BasicSR 1.4.2.
* :mod:`.distributed`: ``--launcher pytorch`` without CUDA (gloo), ``dist_params.backend`` checked.
"""
from __future__ import annotations


def install() -> None:
    """Install every fix (idempotent; silent); a fix whose BasicSR target is missing is skipped.
    (The torchvision alias is installed at start-up, by :mod:`esc_basicsr.integration.startup`.)"""
    from . import adamw, distributed, lmdb_values, option_checks, resume

    for module in (resume, option_checks, lmdb_values, adamw, distributed):
        try:
            module.install()
        except (ImportError, AttributeError):  # pragma: no cover - a BasicSR of another structure
            continue
