"""Full architectures (BasicSR ``*_arch.py`` style), the table describing them, presets, checkpoint
compatibility and deployment folding. Torch only: importable without BasicSR."""
from .checkpoint import CheckpointError, convert_subpixel_scale, extract_state_dict, validate_state_dict
from .detection import UnknownArchitectureError, detect, from_state_dict
from .elan_arch import ELAN, convert_authors_checkpoint, fold_batchnorm
from .esc_arch import ESC
from .esc_fp_arch import ESCFP
from .esc_lte_arch import ESCLTE
from .esc_real_arch import ESCReal
from .esc_realm_arch import ESCRealM
from .presets import PRESETS, build, network_g
from .table import ARCHITECTURES, ArchSpec, arch_spec

__all__ = ['ARCHITECTURES', 'ArchSpec', 'CheckpointError', 'ELAN', 'ESC', 'ESCFP', 'ESCLTE', 'ESCReal', 'ESCRealM',
           'PRESETS', 'UnknownArchitectureError', 'arch_spec', 'build', 'convert_authors_checkpoint', 'convert_subpixel_scale',
           'detect', 'extract_state_dict', 'fold_batchnorm', 'from_state_dict', 'network_g', 'validate_state_dict']
