"""The README's table of architectures, generated from :data:`esc_basicsr.archs.table.ARCHITECTURES`.

``python -m esc_basicsr.tools.arch_docs`` prints it; ``--write README.md`` replaces the block between
the ``<!-- architectures:start -->`` / ``<!-- architectures:end -->`` markers. A test checks that the
README's block is up to date, so the docs cannot drift from the table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping

START, END = '<!-- architectures:start -->', '<!-- architectures:end -->'
# how constructor arguments read in the table (others: "name value")
_SHORT = {'kernel_size': 'kernel', 'n_blocks': 'blocks', 'conv_blocks': 'ConvAttn/block', 'window_size': 'window',
          'num_heads': 'heads', 'exp_ratio': 'exp', 'c_elan': 'c', 'm_elan': 'ELABs', 'window_sizes': 'windows'}
_HIDDEN = {'colors', 'r_expand', 'act_type'}


def _describe(kwargs: Mapping[str, Any]) -> str:
    parts = []
    for key, value in kwargs.items():
        if key in _HIDDEN:
            continue
        if isinstance(value, bool):
            parts.append(f'`{key}`' if value else f'no `{key}`')
        elif isinstance(value, (list, tuple)):
            parts.append(f'{_SHORT.get(key, key)} {"/".join(map(str, value))}')
        else:
            parts.append(f'{_SHORT.get(key, key)} {value}')
    return ', '.join(parts)


def _params(spec: Any, kwargs: Mapping[str, Any], scale: int | None) -> int:
    args = dict(kwargs)
    if spec.scale_arg is not None:
        args[spec.scale_arg] = scale
    model = spec.cls(**args)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def architecture_table() -> str:
    """Markdown: one row per preset with its class, trainable parameters per supported scale and
    its configuration (the preset's constructor arguments)."""
    from ..archs.table import ARCHITECTURES

    lines = ['| preset | class | trainable parameters | configuration |', '| --- | --- | --- | --- |']
    for spec in ARCHITECTURES.values():
        for preset, kwargs in spec.presets.items():
            if spec.scale_arg is None:
                counts = f'{_params(spec, kwargs, None):,} (any scale)'
            else:
                counts = ' / '.join(f'x{s} {_params(spec, kwargs, s):,}' for s in spec.scales)
            lines.append(f'| `{preset}` | `{spec.name}` | {counts} | {_describe(kwargs)} |')
    return '\n'.join(lines)


def replace_block(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    if START not in text or END not in text:
        raise ValueError(f'no {START} ... {END} block to replace')
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f'{head}{START}\n{table}\n{END}{tail}'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m esc_basicsr.tools.arch_docs', description=__doc__.split('\n')[0])
    parser.add_argument('--write', metavar='FILE', help='replace the marked block of FILE (e.g. README.md)')
    args = parser.parse_args(argv)
    table = architecture_table()
    if args.write:
        from ..utils.atomic import write_text

        path = Path(args.write)
        write_text(path, replace_block(path.read_text(encoding='utf-8'), table))
    else:
        print(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
