"""``ESRModel``: the authors' model type (Lee et al., ESC, ICCV 2025) as BasicSR's ``SRModel`` plus their options.

What it adds to :class:`basicsr.models.sr_model.SRModel` (everything else, EMA and perceptual loss
included, is SRModel's):

* ``use_amp`` / ``amp_dtype``: mixed precision (:mod:`.amp`); the fp16 gradient scaler's state is
  saved in the training state and restored on resume.
* ``train.gradient_clip``: maximum gradient norm, halved after iteration 50,000 (the authors' schedule).
* ``train.reset_momentum_iter``: every N iterations the optimizer's per-parameter state (moments
  and step count) is cleared, as if the optimizer were new; the learning rate is unchanged.
* ``train.optim_g.type``: Adam, AdamW, Adamax, SGD, ASGD, RMSprop or Rprop.
* ``use_ema`` (top level): load ``params_ema`` of ``pretrain_network_g`` into net_g.
* test-time reflect padding of the input to a multiple of the window (:mod:`.window_padding`).

Keys of the authors' fork that are not implemented are refused (:mod:`.authors_options`).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from os import path as osp

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only

from .amp import resolve_amp
from .authors_options import check_device, reject_unsupported
from .window_padding import WindowPaddedTestMixin

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    'Adam': torch.optim.Adam, 'AdamW': torch.optim.AdamW, 'Adamax': torch.optim.Adamax, 'SGD': torch.optim.SGD,
    'ASGD': torch.optim.ASGD, 'RMSprop': torch.optim.RMSprop, 'Rprop': torch.optim.Rprop}
GRADIENT_CLIP_HALVING_ITER = 50_000  # the authors halve the clipping norm after this iteration
MIN_LOSS_SCALE = 1.0  # an fp16 loss scale below 1: the network overflows fp16 even without scaling


def _positive_option(train_opt: dict, key: str, kind: type) -> float | int | None:
    value = train_opt.get(key)
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
            or (kind is int and value != int(value)):
        raise ValueError(f'train.{key} must be a positive {kind.__name__} (or 0/absent: off), got {value!r}')
    return kind(value)


def reset_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Clear every parameter's state (moments, step count): the optimizer continues as if new."""
    for group in optimizer.param_groups:
        for param in group['params']:
            optimizer.state.pop(param, None)


class ESRModel(WindowPaddedTestMixin, SRModel):
    """BasicSR ``SRModel`` with the options of the authors' ``ESRModel`` (see the module docstring)."""

    def __init__(self, opt: dict) -> None:
        reject_unsupported(opt, 'ESRModel')
        check_device(opt)
        if opt.get('use_ema') and opt['path'].get('pretrain_network_g'):
            opt['path']['param_key_g'] = 'params_ema'  # the authors' switch for loading EMA weights into net_g
        self.scaler = None
        super().__init__(opt)

    # ------------------------------------------------------------------------------- set-up
    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        self.amp = resolve_amp(self.opt, self.device)
        self.scaler = self.amp.make_scaler()
        self._amp_checked = not self.amp.enabled
        self.gradient_clip = _positive_option(train_opt, 'gradient_clip', float)
        self.reset_momentum_iter = _positive_option(train_opt, 'reset_momentum_iter', int)
        logger = get_root_logger()
        if self.amp.enabled:
            logger.info(f'Use mixed precision training: {self.amp.describe()}.')
        if self.gradient_clip:
            logger.info(f'Gradient clipping: max norm {self.gradient_clip:g}, halved after iteration '
                        f'{GRADIENT_CLIP_HALVING_ITER}.')
        if self.reset_momentum_iter:
            logger.info(f'Optimizer state reset every {self.reset_momentum_iter} iterations.')
        super().init_training_settings()

    def get_optimizer(self, optim_type: str, params, lr: float, **kwargs) -> torch.optim.Optimizer:
        if optim_type not in OPTIMIZERS:
            raise ValueError(f'train.optim_g.type: {optim_type!r} is not supported by ESRModel; '
                             f'choose one of {", ".join(OPTIMIZERS)}')
        return OPTIMIZERS[optim_type](params, lr, **kwargs)

    def clip_norm(self, current_iter: int) -> float | None:
        """The gradient-norm limit in ``current_iter`` (``None``: no clipping)."""
        if not self.gradient_clip:
            return None
        return self.gradient_clip / 2 if current_iter > GRADIENT_CLIP_HALVING_ITER else self.gradient_clip

    # ------------------------------------------------------------------------------ training
    def _forward_and_losses(self) -> tuple[torch.Tensor, OrderedDict]:
        self.output = self.net_g(self.lq)
        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
            l_total = l_total + loss_dict['l_pix']
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            for name, loss in (('l_percep', l_percep), ('l_style', l_style)):
                if loss is not None:
                    loss_dict[name] = loss
                    l_total = l_total + loss
        return l_total, loss_dict

    def _amp_forward_and_losses(self) -> tuple[torch.Tensor, OrderedDict]:
        with self.amp.autocast():
            if self._amp_checked:
                return self._forward_and_losses()
            try:  # the first mixed-precision step tells whether the network can run it at all
                result = self._forward_and_losses()
            except (RuntimeError, NotImplementedError, TypeError) as exc:
                raise RuntimeError(f'use_amp: network_g {self.opt["network_g"].get("type")} cannot train under '
                                   f'{self.amp.describe()} ({type(exc).__name__}: {exc}); set use_amp: false or '
                                   'another amp_dtype') from exc
        self._amp_checked = True
        return result

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad(set_to_none=True)
        l_total, loss_dict = self._amp_forward_and_losses()
        if self.scaler is not None:
            self.scaler.scale(l_total).backward()
        else:
            l_total.backward()
        max_norm = self.clip_norm(current_iter)
        if max_norm:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer_g)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), max_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer_g)
            self.scaler.update()
            self._check_loss_scale()
        else:
            self.optimizer_g.step()
        if self.reset_momentum_iter and current_iter % self.reset_momentum_iter == 0:
            reset_optimizer_state(self.optimizer_g)

        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _check_loss_scale(self) -> None:
        scale = self.scaler.get_scale()
        if scale < MIN_LOSS_SCALE:
            raise FloatingPointError(
                f'use_amp: the fp16 loss scale fell to {scale:g}: network_g {self.opt["network_g"].get("type")} '
                'gives non-finite gradients in fp16 at every step; use amp_dtype: bf16 or use_amp: false')

    # ------------------------------------------------------------------------ training state
    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BasicSR's training state plus ``scaler`` (the fp16 gradient scaler), written atomically."""
        if self.scaler is None:
            return super().save_training_state(epoch, current_iter)
        if current_iter == -1:
            return None
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], 'scaler': self.scaler.state_dict()}
        path = osp.join(self.opt['path']['training_states'], f'{current_iter}.state')
        torch.save(state, path + '.tmp')
        os.replace(path + '.tmp', path)  # a killed process leaves no truncated .state behind
        return None

    def resume_training(self, resume_state: dict) -> None:
        super().resume_training(resume_state)
        saved = resume_state.get('scaler')
        logger = get_root_logger()
        if self.scaler is not None and saved is not None:
            self.scaler.load_state_dict(saved)
            logger.info(f'Resumed the gradient scaler (loss scale {self.scaler.get_scale():g}).')
        elif self.scaler is not None:
            logger.info('The training state has no gradient scaler state: the scaler starts afresh.')
        elif saved is not None:
            logger.warning('The training state has a gradient scaler state, but this run uses no fp16 '
                           'scaler; it is not used.')
