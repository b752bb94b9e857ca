"""Reusable building blocks of ESC and ELAN (no BasicSR dependency)."""
from .attention_backends import ATTN_TYPES, normalize_attn_type, resolve_backend, windowed_attention
from .attention_gate import GATE_TYPES, AttentionGate
from .conv_attn import (ConvAttn, DecomposedConvAttn, DecomposedPartialLargeKernelConv, DynamicKernelPredictor,
                        PartialLargeKernelConv, dynamic_depthwise_conv, geometric_ensemble)
from .conv_ffn import ConvFFN
from .dysample import DySample
from .esc_block import ESCBlock
from .low_rank_backends import low_rank_attention, resolve_low_rank_backend
from .low_rank_bias import convert_low_rank_bias
from .norm import LayerNorm2d
from .padding import pad_bottom_right, pad_to_multiple
from .rib_attention import FlashBiasAttention, LowRankWindowAttention, RIBAttention, rib_coordinate_features
from .skip_upsampler import UPSAMPLER_TYPES, SkipUpsampler
from .upsamplers import UPSAMPLERS, UniUpsample
from .window_attention import WindowAttention

__all__ = [
    'ATTN_TYPES', 'AttentionGate', 'ConvAttn', 'ConvFFN', 'DecomposedConvAttn', 'DecomposedPartialLargeKernelConv',
    'DySample', 'DynamicKernelPredictor', 'ESCBlock', 'FlashBiasAttention', 'GATE_TYPES', 'LayerNorm2d',
    'LowRankWindowAttention', 'PartialLargeKernelConv', 'RIBAttention', 'SkipUpsampler', 'UPSAMPLERS',
    'UPSAMPLER_TYPES', 'UniUpsample', 'WindowAttention',
    'convert_low_rank_bias', 'dynamic_depthwise_conv', 'geometric_ensemble', 'low_rank_attention',
    'normalize_attn_type', 'pad_bottom_right',
    'pad_to_multiple', 'resolve_backend', 'resolve_low_rank_backend', 'rib_coordinate_features', 'windowed_attention'
]
