"""The inference speed settings of ``infer`` and ``benchmark``: each one flag, none measured on a GPU yet.

* ``--compile``: the whole network through ``torch.compile(dynamic=True)`` (LayerNorm, GELU, additions and
  the convolutions' neighbours fused by inductor), under :func:`~esc_basicsr.layers.attention_backends.
  one_graph_shapes` (duck sizing off, size-oblivious shapes), so that no image size compiles again, whatever
  the first. Inside it, FlexAttention is part of the network's graph (the per-variant compiled entries of
  :mod:`esc_basicsr.layers.attention_backends` step aside while dynamo traces). ESC-LTE: the encoder and the
  decoder's MLP, which its renderer's loops call (:class:`CompiledNetwork`). Refused on a CPU
  (:data:`CPU_COMPILE_REFUSAL`: inductor's C++ compile takes many minutes there, with no measured gain).
* ``--cuda-graphs``: the same with ``mode='reduce-overhead'`` (CUDA graphs: one launch per forward instead of
  800+). CUDA only, not for ESC-LTE. Each new image size records a graph of its own (memory for each); the
  output is copied out of the graph's pool before it is returned.
* ``--channels-last``: the ESC family's features and the weights in channels-last (NHWC) memory on any
  device (the default on CPUs; the ``ESC_BASICSR_CHANNELS_LAST=1`` override, set for this process).
* ``--low-rank-bias TOL|rank:R``: every window attention's relative position bias replaced by low-rank
  factors (:mod:`esc_basicsr.layers.low_rank_bias`), so that attention runs on SDPA's flash / cuDNN
  kernels; ``TOL`` is the largest error allowed per bias entry.
* ``--flex-kernel-options JSON``: FlexAttention's ``kernel_options`` (``ESC_BASICSR_FLEX_KERNEL_OPTIONS``,
  set for this process), e.g. ``'{"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}'``.

The tools run one network per process, so the two environment settings are set process-wide.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

# dynamo warns once per function when it traces through functools.lru_cache (our environment reads and index
# tables: pure functions of their arguments, so tracing their body gives the same values)
_LRU_WARNING = r'Dynamo detected a call to a `functools.lru_cache`-wrapped function'


# what --compile on a CPU is refused with (measured: docs/inference.md, "Compiling the network")
CPU_COMPILE_REFUSAL = ('--compile is for CUDA devices: on a CPU, PyTorch\'s compiler (inductor) builds C++ code for '
                       'the whole network first, which did not finish in 20 minutes for a 16-channel ESC and a 12x12 '
                       'image on 2 cores, and no CPU speed-up was measured; run without --compile on {device}, or '
                       'use --device cuda')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The speed settings' flags, in a group of their own."""
    group = parser.add_argument_group('speed settings (not measured on a GPU yet: benchmarks/README.md)')
    group.add_argument('--compile', action='store_true',
                       help='compile the whole network (torch.compile, dynamic shapes: a new image size does not '
                            'compile again); the first call takes longer; CUDA (refused on a CPU)')
    group.add_argument('--cuda-graphs', action='store_true',
                       help='--compile with CUDA graphs (mode reduce-overhead; CUDA only; one graph recorded per '
                            'image size)')
    group.add_argument('--channels-last', action='store_true',
                       help='channels-last (NHWC) features and weights on any device (default: on CPUs only)')
    group.add_argument('--low-rank-bias', default=None, metavar='TOL|rank:R',
                       help='replace each window attention\'s relative position bias by low-rank factors (largest '
                            'error per bias entry TOL, e.g. 1e-3, or rank R), so that attention runs on standard '
                            'fused kernels')
    group.add_argument('--flex-kernel-options', default=None, metavar='JSON',
                       help='FlexAttention kernel_options for the compiled CUDA kernel (advanced), e.g. '
                            '\'{"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}\'')


@dataclass(frozen=True)
class SpeedSettings:
    """The settings of one run (see the module docs); the default changes nothing.

    Attributes:
        compile: compile the whole network.
        cuda_graphs: compile with CUDA graphs (implies ``compile``).
        channels_last: channels-last features and weights.
        low_rank_bias: ``{'tolerance': float}`` or ``{'rank': int}`` (:func:`~esc_basicsr.layers.low_rank_bias.
            parse_low_rank_spec`), or ``None``.
        flex_kernel_options: JSON text of FlexAttention's ``kernel_options``, or ``None``.
        compile_backend: ``torch.compile`` backend (``None``: inductor; tests and dry runs on a CPU: e.g.
            ``aot_eager``).
    """

    compile: bool = False
    cuda_graphs: bool = False
    channels_last: bool = False
    low_rank_bias: dict[str, Any] | None = None
    flex_kernel_options: str | None = None
    compile_backend: str | None = None

    def __post_init__(self) -> None:
        if self.cuda_graphs and not self.compile:  # CUDA graphs are a mode of the compiled network
            object.__setattr__(self, 'compile', True)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SpeedSettings:
        """From the flags of :func:`add_arguments` (validated: ``ValueError`` for a malformed value)."""
        from ..layers.config import parse_flex_kernel_options
        from ..layers.low_rank_bias import parse_low_rank_spec

        low_rank = parse_low_rank_spec(args.low_rank_bias) if args.low_rank_bias is not None else None
        if args.flex_kernel_options is not None:
            parse_flex_kernel_options(args.flex_kernel_options, '--flex-kernel-options')
        return cls(compile=args.compile, cuda_graphs=args.cuda_graphs,
                   channels_last=args.channels_last, low_rank_bias=low_rank,
                   flex_kernel_options=args.flex_kernel_options,
                   compile_backend=getattr(args, 'compile_backend', None))  # a hidden flag (tests on a CPU)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SpeedSettings:
        """From a benchmark row's spec (keys as the attributes; absent: default)."""
        keys = ('compile', 'cuda_graphs', 'channels_last', 'low_rank_bias', 'flex_kernel_options', 'compile_backend')
        return cls(**{k: spec[k] for k in keys if spec.get(k) is not None})

    def to_spec(self) -> dict[str, Any]:
        """The attributes as a benchmark row's spec keys (JSON-serialisable)."""
        return {'compile': self.compile, 'cuda_graphs': self.cuda_graphs, 'channels_last': self.channels_last,
                'low_rank_bias': self.low_rank_bias, 'flex_kernel_options': self.flex_kernel_options,
                'compile_backend': self.compile_backend}

    def describe(self) -> str:
        """``compile+cuda-graphs, low-rank bias rank 16`` or ``default``."""
        parts = []
        if self.cuda_graphs:
            parts.append('compile+cuda-graphs')
        elif self.compile:
            parts.append('compile')
        if self.channels_last:
            parts.append('channels-last')
        if self.low_rank_bias:
            (kind, value), = self.low_rank_bias.items()
            parts.append(f'low-rank bias {"tol" if kind == "tolerance" else kind} {value:g}')
        if self.flex_kernel_options:
            parts.append(f'flex {self.flex_kernel_options}')
        return ', '.join(parts) or 'default'

    def check(self, device: torch.device, training: bool = False) -> None:
        """Refuse what cannot run on ``device`` (``ValueError``, in words)."""
        if self.cuda_graphs and device.type != 'cuda':
            raise ValueError(f'--cuda-graphs needs a CUDA device (CUDA graphs replay GPU work); this run is on '
                             f'{device.type.upper()}: use --device cuda')
        if self.compile and device.type == 'cpu' and self.compile_backend is None:
            raise ValueError(CPU_COMPILE_REFUSAL.format(device=device.type.upper()))
        if training and (self.cuda_graphs or self.low_rank_bias):
            raise ValueError('--cuda-graphs and --low-rank-bias are inference settings (the low-rank factors are '
                             'computed from trained weights): not for --train')

    def apply_environment(self) -> None:
        """Set this process's environment overrides (channels-last, FlexAttention kernel options)."""
        from ..layers import config

        if self.channels_last:
            os.environ[config.CHANNELS_LAST_ENV] = '1'
            config.channels_last_override.cache_clear()
        if self.flex_kernel_options is not None:
            os.environ[config.FLEX_KERNEL_OPTIONS_ENV] = self.flex_kernel_options
            config.flex_kernel_options.cache_clear()
            config.flex_kernel_options()  # validated here, not at the first forward

    def prepare(self, model: nn.Module) -> list[str]:
        """Convert ``model`` in place (low-rank bias, channels-last weights); returns notes for the user."""
        notes = []
        if self.low_rank_bias:
            from ..layers.low_rank_bias import convert_low_rank_bias

            layers = convert_low_rank_bias(model, **self.low_rank_bias)
            if not layers:
                notes.append('--low-rank-bias: this network has no window attention with a relative position '
                             'bias; nothing converted')
            else:
                ranks = ', '.join(str(layer.rank) for layer in layers)
                worst = max(layer.max_error for layer in layers)
                notes.append(f'low-rank bias: ranks {ranks} of {layers[0].tokens} (largest bias error {worst:.2g})')
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return notes

    def wrap(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """``model`` itself, or its compiled form (:class:`CompiledNetwork`) with ``compile``/``cuda_graphs``."""
        if not self.compile:
            return model
        return CompiledNetwork(model, cuda_graphs=self.cuda_graphs, backend=self.compile_backend)


class CompiledNetwork:
    """``torch.compile(model, dynamic=True)`` called under :func:`~esc_basicsr.layers.attention_backends.
    one_graph_shapes` (one graph for every image size whatever the first: square, one window, a window
    count equal to the heads...), optionally with CUDA graphs (``mode='reduce-overhead'``).

    An arbitrary-scale network (ESC-LTE: :class:`~esc_basicsr.layers.lte.LTE`, or a
    :class:`~esc_basicsr.layers.lte.FixedScale` view of one) renders an image through Python loops over
    tiles and chunks of output pixels, which a whole-network graph would fix to one size: there the parts
    those loops call are compiled instead, the encoder (the ESC trunk) and the decoder's MLP, in a shallow
    copy sharing the weights (the model itself stays uncompiled). Call :meth:`upscale` as the model's.

    Args:
        model: the network (kept as :attr:`model`; its attributes stay readable there).
        cuda_graphs: CUDA graphs; the output is cloned out of the graph's memory pool, so that the next call
            does not overwrite it. Not for arbitrary-scale networks (``ValueError``: their loops call the
            compiled parts many times per image).
        backend: ``torch.compile`` backend (``None``: inductor).

    Attributes:
        compiled_parts: the compiled modules (the whole model, or the LTE's encoder and MLP).
    """

    def __init__(self, model: nn.Module, cuda_graphs: bool = False, backend: str | None = None) -> None:
        kwargs: dict[str, Any] = {'dynamic': True}
        if backend is not None:
            kwargs['backend'] = backend
        if cuda_graphs:
            kwargs['mode'] = 'reduce-overhead'
        self.model = model
        self.cuda_graphs = cuda_graphs
        if arbitrary_scale_network(model) is not None:
            if cuda_graphs:
                raise ValueError('--cuda-graphs does not apply to an arbitrary-scale network (ESC-LTE): it renders '
                                 'an image by calling its encoder and decoder once per tile and chunk of pixels; '
                                 'use --compile')
            self.compiled = _with_compiled_lte_parts(model, kwargs)
            lte = arbitrary_scale_network(self.compiled)
            self.compiled_parts: list[nn.Module] = [lte.encoder, lte.imnet]
        else:
            self.compiled = torch.compile(model, **kwargs)
            self.compiled_parts = [self.compiled]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with compiled_calls():
            out = self.compiled(x)
        return out.clone() if self.cuda_graphs else out

    def upscale(self, lq: torch.Tensor, size: Any, **kwargs: Any) -> torch.Tensor:
        """An arbitrary-scale network's ``upscale(lq, size, **kwargs)`` through its compiled parts."""
        lte = arbitrary_scale_network(self.compiled)
        if lte is None:
            raise TypeError(f'{type(self.model).__name__} is not an arbitrary-scale network (no upscale)')
        with compiled_calls():
            return lte.upscale(lq, size, **kwargs)


def arbitrary_scale_network(model: nn.Module) -> nn.Module | None:
    """The :class:`~esc_basicsr.layers.lte.LTE` that ``model`` is or views (:class:`FixedScale`), else ``None``."""
    from ..layers.lte import LTE, FixedScale

    if isinstance(model, FixedScale):
        model = model.net
    return model if isinstance(model, LTE) else None


def _with_compiled_lte_parts(model: nn.Module, compile_kwargs: dict[str, Any]) -> nn.Module:
    """A shallow copy of ``model`` (an LTE or a FixedScale of one) sharing every weight, whose LTE's
    ``encoder`` and ``imnet`` are ``torch.compile``'d; ``model`` itself is left as it was."""
    def shallow(module: nn.Module) -> nn.Module:
        twin = copy.copy(module)
        twin._modules = dict(module._modules)  # its own registry of children: replacing one leaves module's
        return twin

    twin = shallow(model)
    lte = twin
    if arbitrary_scale_network(model) is not model:  # a FixedScale view
        twin.net = lte = shallow(model.net)
    lte.encoder = torch.compile(lte.encoder, **compile_kwargs)
    lte.imnet = torch.compile(lte.imnet, **compile_kwargs)
    return twin


@contextlib.contextmanager
def compiled_calls():
    """What each call of the compiled network runs under: one graph for every size (see
    :func:`~esc_basicsr.layers.attention_backends.one_graph_shapes`), dynamo's lru_cache warning silenced."""
    from ..layers.attention_backends import one_graph_shapes

    with one_graph_shapes(), quiet_lru_warnings():
        yield


@contextlib.contextmanager
def quiet_lru_warnings():
    """Dynamo's warning about tracing through ``functools.lru_cache`` silenced (see :data:`_LRU_WARNING`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=_LRU_WARNING)
        yield
