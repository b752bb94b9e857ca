"""Full architectures (BasicSR ``*_arch.py`` style), the table describing them, presets, checkpoint
compatibility and deployment folding. Torch only: importable without BasicSR.

Floors, bottom up: :mod:`.state_dict_layout`, :mod:`.checkpoint`, :mod:`.esc_trunk` (shared pieces);
the ``*_arch.py`` networks with their detection and folding; :mod:`.table` (one row per network);
:mod:`.presets`, :mod:`.detection`, :mod:`.deploy` (readers of the table).
"""
from .checkpoint import (CheckpointError, convert_subpixel_checkpoint, convert_subpixel_scale, extract_state_dict,
                         validate_state_dict)
from .detection import UnknownArchitectureError, build_from_state_dict, detect, from_state_dict, weights_scale
from .elan_arch import ELAN, convert_authors_checkpoint, fold_batchnorm
from .esc_arch import ESC
from .esc_fp_arch import ESCFP
from .esc_lte_arch import ESCLTE
from .esc_real_arch import ESCReal
from .esc_realm_arch import ESCRealM
from .esc_rib_arch import ESCRIB, convert_upsampler_scale
from .esc_trunk import SharedKernelTrunk, fold_geometric_ensemble
from .presets import PRESETS, build, network_g
from .state_dict_layout import LayoutError
from .table import (ARCHITECTURES, ArchSpec, arch_spec, network_input_multiple, network_value_range,
                    with_unit_range)

__all__ = ['ARCHITECTURES', 'ArchSpec', 'CheckpointError', 'ELAN', 'ESC', 'ESCFP', 'ESCLTE', 'ESCRIB', 'ESCReal',
           'ESCRealM', 'LayoutError', 'PRESETS', 'SharedKernelTrunk', 'UnknownArchitectureError', 'arch_spec', 'build',
           'build_from_state_dict', 'convert_authors_checkpoint', 'convert_subpixel_checkpoint',
           'convert_subpixel_scale', 'convert_upsampler_scale', 'detect', 'extract_state_dict', 'fold_batchnorm',
           'fold_geometric_ensemble', 'from_state_dict', 'network_g', 'network_input_multiple', 'network_value_range',
           'validate_state_dict', 'weights_scale', 'with_unit_range']
