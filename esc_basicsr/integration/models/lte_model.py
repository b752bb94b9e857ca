"""BasicSR model for arbitrary-scale networks (ESC-LTE): trains on sampled pixels, tests at any scale.

Training follows LIIF/LTE: the network is queried at the HR pixels a
:class:`~esc_basicsr.integration.data.liif_dataset.LIIFDataset` sampled, with the pixel loss
(``pixel_opt``) on those pixels, and EMA as in BasicSR (``ema_decay``). Validation and testing use
ordinary paired LR/GT folders at a fixed scale: each dataset's ``scale`` (BasicSR copies a
top-level ``scale`` into every dataset), integer or not. The whole image is rendered with
``upscale`` in chunks of queries, so memory stays bounded.

``val`` options beyond BasicSR's: ``query_chunk`` (queries per chunk, default 30000),
``cell_scale_max`` (LTE's cell clip beyond the training scales, default none), and
``crop_border: scale`` in a metric (= ceil of the dataset's scale).
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger

from ...layers.lte import scaled_size


class LTEModel(SRModel):
    """:class:`basicsr.models.sr_model.SRModel` for networks with ``forward(lq, coord, cell)`` and
    ``upscale(lq, size)`` (ESCLTE or any :class:`esc_basicsr.layers.lte.LTE`)."""

    def feed_data(self, data: dict) -> None:
        self.lq = data['lq'].to(self.device)
        if 'coord' in data:  # training batch of sampled pixels
            self.coord = data['coord'].to(self.device)
            self.cell = data['cell'].to(self.device)
        elif hasattr(self, 'coord'):
            del self.coord, self.cell
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)
        self.lq_path = data.get('lq_path', ['?'])[0]

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq, self.coord, self.cell)  # (B, Q, 3)
        loss_dict = OrderedDict()
        l_total = 0
        if self.cri_pix:
            l_pix = self.cri_pix(self.output, self.gt)
            l_total += l_pix
            loss_dict['l_pix'] = l_pix
        if self.cri_perceptual:
            raise ValueError('perceptual_opt needs whole images; LTEModel trains on sampled pixels')
        l_total.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    # --------------------------------------------------------------------------------- testing
    def _scale(self) -> float:
        scale = getattr(self, '_dataset_scale', None) or self.opt.get('scale')
        if scale is None:
            raise ValueError('LTEModel needs the test scale: set "scale" in the dataset options (or top level)')
        return float(scale)

    def _output_size(self) -> tuple[int, int]:
        """Output size for ``self.lq`` at the dataset's scale; checks (and aligns) ``self.gt``."""
        scale = self._scale()
        h, w = self.lq.shape[-2:]
        size = scaled_size(h, w, scale)
        gt = getattr(self, 'gt', None)
        if gt is not None and gt.dim() == 4 and tuple(gt.shape[-2:]) != size:
            extra = [g - s for g, s in zip(gt.shape[-2:], size)]
            if not all(0 <= e <= math.ceil(scale) for e in extra):
                raise ValueError(f'{self.lq_path}: GT {gt.shape[-2]}x{gt.shape[-1]} does not match LR {h}x{w} at '
                                 f'scale {scale:g} (expected {size[0]}x{size[1]}); check the dataset\'s scale')
            # prepare's non-integer LR folders come from the top-left round(s * h) x round(s * w) of GT
            self.gt = gt[..., :size[0], :size[1]]
        return size

    def test(self) -> None:
        size = self._output_size()
        val_opt = self.opt.get('val') or {}
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = net.upscale(self.lq, size, chunk=int(val_opt.get('query_chunk', 30000)),
                                      cell_scale_max=val_opt.get('cell_scale_max'))
        net.train(was_training)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self._dataset_scale = dataloader.dataset.opt.get('scale')
        metrics = (self.opt.get('val') or {}).get('metrics')
        if metrics:  # `crop_border: scale` -> ceil of this dataset's scale (BasicSR needs an int)
            resolved = copy.deepcopy(metrics)
            for metric in resolved.values():
                if metric.get('crop_border') == 'scale':
                    metric['crop_border'] = math.ceil(self._scale())
            self.opt['val']['metrics'] = resolved
        try:
            get_root_logger().info(f'{dataloader.dataset.opt["name"]}: x{self._scale():g}')
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            if metrics:
                self.opt['val']['metrics'] = metrics
            self._dataset_scale = None
