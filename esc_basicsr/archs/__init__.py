"""Full architectures (BasicSR ``*_arch.py`` style) and their checkpoint/deployment helpers."""
from .checkpoint import convert_subpixel_scale, extract_state_dict, load_checkpoint
from .esc_arch import ESC
from .esc_fp_arch import ESCFP
from .esc_real_arch import ESCReal
from .presets import PRESETS, build, network_g

__all__ = ['ESC', 'ESCFP', 'ESCReal', 'PRESETS', 'build', 'convert_subpixel_scale', 'extract_state_dict',
           'load_checkpoint', 'network_g']
