"""Targeted fixes of BasicSR 1.4.2, one module each (see docs/training.md, "Resume and faults").

Each fix replaces exactly one function, says which bug it fixes, leaves a BasicSR whose structure
differs alone, and is installed once when esc_basicsr registers into BasicSR. Run as a command
(``python -m basicsr.train``), what they refuse is one line and an exit code (:mod:`._command`):

* :mod:`.torchvision_functional_tensor`: ``import basicsr`` with torchvision >= 0.17 (installed at start-up).
* :mod:`.resume`: ``--auto_resume`` location, device mapping, ``weights_only`` loading of states, and the
  newest complete state/model pair.
* :mod:`.option_checks`: malformed option files and missing dataset/pretrain paths reported (one line, exit
  code 2 as a command) before an experiment folder exists.
* :mod:`.experiment_folders`: a running experiment's folder is never renamed by a second run of its name.
* :mod:`.save_network`, :mod:`.save_training_state`: atomic checkpoint writes; a failed save is an error.
* :mod:`.lmdb_values`: missing/corrupt LMDB entries named instead of failing on ``None``.
* :mod:`.adamw`: ``optim_g: {type: AdamW}`` in BasicSR 1.4.2.
* :mod:`.distributed`: ``--launcher pytorch`` without CUDA (gloo), ``dist_params.backend`` checked.
* :mod:`.eta`: the ETA of BasicSR's training log (``estimating`` at first, never negative at the end).
* :mod:`.validation_message`: ``Validating on <name> (<n> images) ...`` before a validation during training.
* :mod:`.runpy_warning`: ``python -m basicsr.train`` / ``.test`` without runpy's RuntimeWarning (BasicSR's
  package imports both modules; why that is harmless here: the module).
"""
from __future__ import annotations



def install() -> None:
    """Install every fix (idempotent; silent); a fix whose BasicSR target is missing is skipped. The modules
    are imported first, the functions replaced under the registration lock (one thread at a time).
    (The torchvision alias is installed at start-up, by :mod:`esc_basicsr.integration.startup`.)"""
    from ..basicsr_import import REGISTRATION_LOCK
    from . import (adamw, distributed, eta, experiment_folders, lmdb_values, option_checks, resume, runpy_warning,
                   save_network, save_training_state, validation_message)

    modules = (resume, option_checks, experiment_folders, save_network, save_training_state, lmdb_values, adamw,
               distributed, eta, validation_message, runpy_warning)
    with REGISTRATION_LOCK:
        for module in modules:
            try:
                module.install()
            except (ImportError, AttributeError):  # pragma: no cover - a BasicSR of another structure
                continue
