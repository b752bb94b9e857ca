"""Full architectures (BasicSR ``*_arch.py`` style) and their checkpoint/deployment helpers."""
from .checkpoint import convert_subpixel_scale, extract_state_dict, load_checkpoint
from .elan_arch import ELAN, convert_authors_checkpoint, fold_batchnorm
from .esc_arch import ESC
from .esc_fp_arch import ESCFP
from .esc_real_arch import ESCReal
from .presets import PRESETS, build, network_g

__all__ = ['ELAN', 'ESC', 'ESCFP', 'ESCReal', 'PRESETS', 'build', 'convert_authors_checkpoint',
           'convert_subpixel_scale', 'extract_state_dict', 'fold_batchnorm', 'load_checkpoint', 'network_g']
