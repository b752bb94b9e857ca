"""Data preparation for BasicSR training/testing (``python -m esc_basicsr.prepare``).

* :mod:`.div2k`: HR folder(s) -> 480px sub-images (BasicSR's ``extract_subimages.py`` recipe) and
  MATLAB-bicubic LR sub-images -> GT/LQ LMDBs (``basicsr.utils.lmdb_util.make_lmdb_from_imgs``).
* :mod:`.benchmark_sets`: HR images -> ``GTmod12`` + ``LRbicx{s}`` folders (Set5, Set14, ...).

Every file is written under a temporary name and renamed into place, LMDBs are built in a
temporary folder and swapped in, and re-running skips what is already complete.
"""
from .benchmark_sets import prepare_benchmark
from .div2k import prepare_paired_lmdb
from .report import Report

__all__ = ['Report', 'prepare_benchmark', 'prepare_paired_lmdb']
