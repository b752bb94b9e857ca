"""Arbitrary-scale data: training by the LIIF protocol (Chen et al., CVPR 2021; used by LTE and ESC-LTE).

Per sample: a scale ``s ~ U(scale_min, scale_max)``, a random HR crop of ``round(lq_size * s)``
pixels, a MATLAB-bicubic downscale of it to ``lq_size`` (rounded to 8 bits like the benchmark LR
images), flips/transposition, and ``sample_q`` random HR pixels with their coordinates and cells.
Validation/testing: LR/GT folders at a fixed, possibly non-integer, scale.
"""
from __future__ import annotations

import math
import os
import random
from typing import Any

import numpy as np
import torch
from torch.utils import data

from ...layers.lte import make_coord, scaled_size
from ...utils.matlab_resize import imresize_to

_IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


class LIIFDataset(data.Dataset):
    """HR images -> ``{'lq', 'gt', 'coord', 'cell', 'gt_path'}`` for arbitrary-scale training.

    Options (BasicSR ``datasets.train``):
        dataroot_gt (str): HR folder, or HR LMDB (``io_backend: {type: lmdb}``), e.g. the
            ``*_HR_sub.lmdb`` made by ``python -m esc_basicsr.prepare div2k``.
        io_backend (dict): ``{type: disk}`` or ``{type: lmdb}``.
        lq_size (int): LR patch side. Default: 64 (the ESC-LTE recipe; LIIF used 48).
        scale_min, scale_max (float): range of the random scale. Default: 1, 4.
        sample_q (int | None): HR pixels returned per sample; None: all. Default: 2304.
        use_hflip, use_rot (bool): random flips / transposition (LIIF's augmentation). Default: True.

    Returns per item: ``lq`` (3, lq_size, lq_size) RGB in [0, 1]; ``gt`` (Q, 3) RGB in [0, 1]; ``coord``
    (Q, 2) in [-1, 1] (row, col); ``cell`` (Q, 2) = (2/H, 2/W) of the HR crop; ``scale`` (float).
    A crop larger than the image limits that sample's scale to what the image allows.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.file_client = None
        self.lq_size = int(opt.get('lq_size', 64))
        self.scale_min = float(opt.get('scale_min', 1))
        self.scale_max = float(opt.get('scale_max', 4))
        self.sample_q = opt.get('sample_q', 2304)
        if self.lq_size < 1:
            raise ValueError(f'lq_size must be >= 1, got {self.lq_size}')
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(f'need 0 < scale_min <= scale_max, got scale_min={self.scale_min}, '
                             f'scale_max={self.scale_max}')
        if self.sample_q is not None and not 1 <= self.sample_q <= round(self.lq_size * self.scale_min) ** 2:
            raise ValueError(f'sample_q must be between 1 and the pixels of the smallest HR crop '
                             f'({round(self.lq_size * self.scale_min)}^2), got {self.sample_q}')
        root = opt['dataroot_gt']
        if self.io_backend_opt['type'] == 'lmdb':
            from basicsr.data.data_util import paths_from_lmdb

            self.io_backend_opt.update(db_paths=[root], client_keys=['gt'])
            self.paths = paths_from_lmdb(root)
        else:
            if not os.path.isdir(root):
                raise FileNotFoundError(f'dataroot_gt: no such folder {root!r}')
            self.paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                                if f.lower().endswith(_IMAGE_EXTS))
        if not self.paths:
            raise ValueError(f'dataroot_gt: no images in {root!r}')

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, path: str) -> np.ndarray:
        from basicsr.utils import FileClient, imfrombytes

        if self.file_client is None:
            opt = dict(self.io_backend_opt)
            self.file_client = FileClient(opt.pop('type'), **opt)
        return imfrombytes(self.file_client.get(path, 'gt'), float32=True)  # (H, W, 3) BGR in [0, 1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        from basicsr.data.transforms import augment
        from basicsr.utils import img2tensor

        path = self.paths[index]
        img = self._read(path)
        h, w = img.shape[:2]
        if min(h, w) < round(self.lq_size * self.scale_min):
            raise ValueError(f'{path}: {h}x{w} is smaller than the HR crop at scale_min '
                             f'({round(self.lq_size * self.scale_min)} pixels)')
        scale = random.uniform(self.scale_min, min(self.scale_max, min(h, w) / self.lq_size))
        hr_size = min(round(self.lq_size * scale), h, w)
        y, x = random.randint(0, h - hr_size), random.randint(0, w - hr_size)
        hr = np.ascontiguousarray(img[y:y + hr_size, x:x + hr_size])  # BasicSR's augment flips in place
        lq = np.clip(np.round(imresize_to(hr, (self.lq_size, self.lq_size)) * 255.), 0, 255) / 255.
        hr, lq = augment([hr, lq.astype(np.float32)], self.opt.get('use_hflip', True), self.opt.get('use_rot', True))
        hr_t, lq_t = img2tensor([hr, lq], bgr2rgb=True, float32=True)
        coord = make_coord(hr_t.shape[-2:])
        gt = hr_t.flatten(1).t()  # (H*W, 3), row-major like make_coord
        if self.sample_q is not None:
            idx = torch.from_numpy(np.random.choice(len(coord), self.sample_q, replace=False))
            coord, gt = coord[idx], gt[idx]
        cell = torch.tensor([2.0 / hr_t.shape[-2], 2.0 / hr_t.shape[-1]]).expand(len(coord), 2).clone()
        return {'lq': lq_t, 'gt': gt, 'coord': coord, 'cell': cell, 'scale': hr_size / self.lq_size,
                'gt_path': path}


class ArbitraryScalePairedDataset(data.Dataset):
    """BasicSR's ``PairedImageDataset`` for validation/testing at any scale, also non-integer.

    Options as ``PairedImageDataset`` (``dataroot_gt``, ``dataroot_lq``, ``io_backend``,
    ``filename_tmpl``) plus ``scale`` (float > 0; BasicSR copies a top-level ``scale`` here). The GT
    is cropped to its top-left ``round(s*h) x round(s*w)`` for an ``h x w`` LR image (what
    ``python -m esc_basicsr.prepare benchmark`` made the LR image from); a GT smaller than that,
    or more than ``ceil(s)`` pixels larger, does not belong to this scale: ValueError.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        from basicsr.data.paired_image_dataset import PairedImageDataset

        super().__init__()
        if opt.get('phase') == 'train':
            raise ValueError('ArbitraryScalePairedDataset is for validation/testing; train with LIIFDataset')
        self.opt = opt
        self.scale = float(opt.get('scale') or 0)
        scaled_size(1, 1, self.scale)  # ValueError for a missing, zero or negative scale
        self._paired = PairedImageDataset(dict(opt, phase='val', scale=1))  # paths and file client only

    def __len__(self) -> int:
        return len(self._paired)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from basicsr.utils import FileClient, imfrombytes, img2tensor

        paired = self._paired
        if paired.file_client is None:
            opt = dict(paired.io_backend_opt)
            paired.file_client = FileClient(opt.pop('type'), **opt)
        paths = paired.paths[index]
        gt = imfrombytes(paired.file_client.get(paths['gt_path'], 'gt'), float32=True)
        lq = imfrombytes(paired.file_client.get(paths['lq_path'], 'lq'), float32=True)
        h, w = scaled_size(lq.shape[0], lq.shape[1], self.scale)
        extra = (gt.shape[0] - h, gt.shape[1] - w)
        if not all(0 <= e <= math.ceil(self.scale) for e in extra):
            raise ValueError(f'{paths["gt_path"]}: GT {gt.shape[0]}x{gt.shape[1]} does not match LR '
                             f'{lq.shape[0]}x{lq.shape[1]} at scale {self.scale:g} (expected {h}x{w})')
        gt_t, lq_t = img2tensor([np.ascontiguousarray(gt[:h, :w]), lq], bgr2rgb=True, float32=True)
        return {'lq': lq_t, 'gt': gt_t, 'lq_path': paths['lq_path'], 'gt_path': paths['gt_path']}
