"""Reusable building blocks of ESC and ELAN (no BasicSR dependency)."""
from .attention_backends import ATTN_TYPES, normalize_attn_type, resolve_backend, windowed_attention
from .conv_attn import (ConvAttn, DecomposedConvAttn, DecomposedPartialLargeKernelConv, DynamicKernelPredictor,
                        PartialLargeKernelConv, dynamic_depthwise_conv, geometric_ensemble)
from .conv_ffn import ConvFFN
from .dysample import DySample
from .esc_block import ESCBlock
from .norm import LayerNorm2d
from .padding import pad_bottom_right, pad_to_multiple
from .upsamplers import UPSAMPLERS, UniUpsample
from .window_attention import WindowAttention

__all__ = [
    'ATTN_TYPES', 'ConvAttn', 'ConvFFN', 'DecomposedConvAttn', 'DecomposedPartialLargeKernelConv',
    'DySample', 'DynamicKernelPredictor', 'ESCBlock', 'LayerNorm2d', 'PartialLargeKernelConv', 'UPSAMPLERS',
    'UniUpsample', 'WindowAttention',
    'dynamic_depthwise_conv', 'geometric_ensemble', 'normalize_attn_type', 'pad_bottom_right', 'pad_to_multiple',
    'resolve_backend', 'windowed_attention'
]
