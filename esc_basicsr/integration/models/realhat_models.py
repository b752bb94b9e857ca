"""``RealHATMSEModel`` / ``RealHATGANModel``: the authors' real-world model types (ESC-Real stages 1 and 2).

As in HAT, they are BasicSR's Real-ESRGAN models (:class:`~basicsr.models.realesrnet_model.RealESRNetModel`,
:class:`~basicsr.models.realesrgan_model.RealESRGANModel`: second-order degradations synthesised on
the fly, the training-pair pool, USM-sharpened GT) with test-time reflect padding of the input to a
multiple of the window (:mod:`.window_padding`). One change: BasicSR 1.4.2 puts the JPEG simulator,
the USM sharpener and the pair pool on CUDA unconditionally; here they live on the model's device
(and the JPEG output is made contiguous), so the models also build and train on a CPU (``num_gpu: 0``).
"""
from __future__ import annotations

import torch
from basicsr.models.realesrgan_model import RealESRGANModel
from basicsr.models.realesrnet_model import RealESRNetModel
from basicsr.models.sr_model import SRModel
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import DiffJPEG, USMSharp

from .authors_options import check_device, reject_unsupported
from .window_padding import WindowPaddedTestMixin


class _ContiguousDiffJPEG(DiffJPEG):
    """DiffJPEG whose output is contiguous: on the CPU it comes back with channels-last strides, which
    BasicSR's ``filter2D`` (the second blur) cannot ``.view``."""

    def forward(self, x: torch.Tensor, quality) -> torch.Tensor:
        return super().forward(x, quality).contiguous()


class _DegradationsOnModelDevice:
    """The Real-ESRGAN models' degradation tools and training-pair pool on ``self.device``."""

    def _init_degradations(self, opt: dict) -> None:
        # what RealESRNetModel/RealESRGANModel.__init__ add to their parent, with .to(device) for .cuda()
        self.jpeger = _ContiguousDiffJPEG(differentiable=False).to(self.device)
        self.usm_sharpener = USMSharp().to(self.device)
        self.queue_size = opt.get('queue_size', 180)

    @torch.no_grad()
    def _dequeue_and_enqueue(self) -> None:
        if not hasattr(self, 'queue_lr'):  # BasicSR allocates the pool with .cuda(); allocate it here instead
            b, c, h, w = self.lq.size()
            if self.queue_size % b:
                raise ValueError(f'queue_size {self.queue_size} must be a multiple of the batch size {b} '
                                 '(datasets.train.batch_size_per_gpu)')
            self.queue_lr = torch.zeros(self.queue_size, c, h, w, device=self.device)
            _, c, h, w = self.gt.size()
            self.queue_gt = torch.zeros(self.queue_size, c, h, w, device=self.device)
            self.queue_ptr = 0
        super()._dequeue_and_enqueue()


class RealHATMSEModel(WindowPaddedTestMixin, _DegradationsOnModelDevice, RealESRNetModel):
    """BasicSR's ``RealESRNetModel`` (L1/MSE stage) with test-time padding to the window."""

    def __init__(self, opt: dict) -> None:
        reject_unsupported(opt, 'RealHATMSEModel')
        check_device(opt)
        SRModel.__init__(self, opt)  # RealESRNetModel.__init__ = this + its tools on CUDA (see _init_degradations)
        self._init_degradations(opt)


class RealHATGANModel(WindowPaddedTestMixin, _DegradationsOnModelDevice, RealESRGANModel):
    """BasicSR's ``RealESRGANModel`` (GAN stage) with test-time padding to the window."""

    def __init__(self, opt: dict) -> None:
        reject_unsupported(opt, 'RealHATGANModel')
        check_device(opt)
        SRGANModel.__init__(self, opt)  # RealESRGANModel.__init__ = this + its tools on CUDA
        self._init_degradations(opt)
