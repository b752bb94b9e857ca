"""Imports inside ``esc_basicsr.archs`` flow one way, function-level imports included: the shared
pieces and the networks (with their detection and folding) below :mod:`~esc_basicsr.archs.table`,
the modules that read the table above it; ``layers`` below ``archs``."""
from __future__ import annotations

import ast
from pathlib import Path

import esc_basicsr.archs
import esc_basicsr.layers

ARCHS = Path(esc_basicsr.archs.__file__).parent
LAYERS = Path(esc_basicsr.layers.__file__).parent
READERS = {'presets', 'detection', 'deploy'}  # above the table


def sibling_imports(path: Path) -> list[tuple[str, bool]]:
    """``(sibling module, at function level)`` for each ``from .x import`` / ``from . import x`` of ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module.split('.')[0]] if node.module else [a.name for a in node.names]
            found += [(name, id(node) not in top) for name in names]
    return found


GRAPH = {p.stem: sibling_imports(p) for p in ARCHS.glob('*.py')}


def test_no_function_level_imports_between_archs_modules() -> None:
    assert {m: [n for n, inner in deps if inner] for m, deps in GRAPH.items() if any(i for _, i in deps)} == {}


def test_archs_imports_are_acyclic() -> None:
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f'import cycle: {" -> ".join(path + (module,))}'
        if module in done:
            return
        for dep, _ in GRAPH.get(module, []):
            visit(dep, path + (module,))
        done.add(module)

    for module in GRAPH:
        visit(module, ())


def test_nothing_below_the_table_imports_it_or_its_readers() -> None:
    below = set(GRAPH) - READERS - {'table', '__init__'}
    upward = {m: sorted({d for d, _ in GRAPH[m]} & (READERS | {'table', '__init__'})) for m in below}
    assert {m: deps for m, deps in upward.items() if deps} == {}
    assert not {d for d, _ in GRAPH['table']} & READERS


def test_layers_do_not_import_archs() -> None:
    for path in LAYERS.glob('*.py'):
        tree = ast.parse(path.read_text())
        modules = [('..' if n.level == 2 else '') + (n.module or '')
                   for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in modules if m.startswith(('..archs', 'esc_basicsr.archs'))], path.name
