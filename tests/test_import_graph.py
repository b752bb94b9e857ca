"""Imports flow one way (docs/architecture.md): the floors of esc_basicsr, read from the source.

Every module of the package and the start-up hook ``esc_basicsr_autoload.py`` is parsed with ``ast``.
Its imports of esc_basicsr make the module graph: module-level and inside functions, relative and
absolute, and ``importlib.import_module`` calls with a literal name. A dynamic import (a computed
name, a file loaded by path) must be declared in :data:`DYNAMIC` with what it loads. The tests fail
on an import from a lower floor to a higher one (or between two parts of one floor), on a cycle of
modules, and on an import of a module or name that does not exist (function-level imports are not
run by importing the package, so a stale one would otherwise wait for its first caller).
"""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'esc_basicsr'
HOOK = 'esc_basicsr_autoload'  # the start-up hook (.pth), beside the package
COMMANDS = ('train', 'test', 'prepare', 'demo', 'demo_lte', 'infer', 'export', 'benchmark')

# the parts of the package: a module belongs to the part naming it or a package above it
PARTS: dict[str, tuple[str, ...]] = {
    'layers': ('esc_basicsr.layers',),
    'version': ('esc_basicsr.version',),
    'archs': ('esc_basicsr.archs',),
    'utils': ('esc_basicsr.utils',),
    'integration': ('esc_basicsr.integration',),
    'data_prep': ('esc_basicsr.data_prep',),
    'spandrel': ('esc_basicsr.spandrel',),
    'tools': ('esc_basicsr.tools',),
    'commands': tuple(f'esc_basicsr.{c}' for c in COMMANDS),
    'start-up': (PACKAGE, HOOK),  # esc_basicsr/__init__.py itself (not its submodules) and the hook
}
# floors from the bottom: a module imports its own part and the parts of lower floors, nothing else
# (parts of one floor are siblings: integration, data preparation and spandrel know nothing of each other)
FLOORS: tuple[tuple[str, ...], ...] = (
    ('layers', 'version'),
    ('archs',),
    ('utils',),
    ('integration', 'data_prep', 'spandrel'),
    ('tools',),
    ('commands',),
    ('start-up',),
)
# imports that ast cannot resolve, with the modules they load
DYNAMIC: dict[str, tuple[str, ...]] = {
    # PEP 562 __getattr__: esc_basicsr.ESC, esc_basicsr.ConvAttn... from archs and layers
    'esc_basicsr': ('esc_basicsr.archs', 'esc_basicsr.layers'),
    # ESC_BASICSR_AUTOLOAD=0: the torchvision alias, loaded by file path without executing the package
    'esc_basicsr_autoload': ('esc_basicsr.integration.fixes.torchvision_functional_tensor',),
    # register_all imports its models/data packages tolerating a deadlock with another importing thread
    'esc_basicsr.integration': ('esc_basicsr.integration.models', 'esc_basicsr.integration.data'),
    # torchvision's renamed module, none of ours
    'esc_basicsr.integration.fixes.torchvision_functional_tensor': (),
}
# cycles that another branch removes; each entry must still exist (delete it when it does not)
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


@dataclass(frozen=True)
class Import:
    """One import of a package module: who, what, where."""

    source: str  # importing module
    target: str  # imported module
    path: Path
    line: int
    text: str  # the statement, as written
    names: tuple[str, ...] = ()  # names taken from ``target`` (``from target import names``)


def find_modules(root: Path) -> dict[str, Path]:
    """``{module name: file}`` of the package under ``root`` and the start-up hook."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob('*.py')):
        parts = path.relative_to(root).with_suffix('').parts
        modules['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    if (root / f'{HOOK}.py').is_file():
        modules[HOOK] = root / f'{HOOK}.py'
    return modules


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + '.') or name == HOOK


def _dynamic_call(node: ast.AST) -> str | None:
    """The function name of an ``import_module``/``__import__``/``spec_from_file_location`` call."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name if name in ('import_module', '__import__', 'spec_from_file_location') else None


def read_imports(modules: dict[str, Path], declared: dict[str, tuple[str, ...]] = DYNAMIC
                 ) -> tuple[list[Import], list[str]]:
    """Every import of a package module by a package module (with the ``declared`` dynamic ones),
    and the problems found on the way (undeclared dynamic imports, imports of missing modules)."""
    imports: list[Import] = []
    problems: list[str] = []
    for module, path in modules.items():
        source = path.read_text(encoding='utf-8')
        tree = ast.parse(source, str(path))
        package = module if path.name == '__init__.py' else module.rpartition('.')[0]
        rel = path.relative_to(path.parents[module.count('.') + (path.name == '__init__.py')])  # as in the repo
        dynamic = False
        for node in ast.walk(tree):
            found: dict[str, tuple[str, ...]] = {}  # imported module: names taken from it
            if isinstance(node, ast.Import):
                found = {a.name: () for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name('.' * node.level + (node.module or ''), package) if node.level \
                    else node.module or ''
                for alias in node.names:
                    sub = f'{base}.{alias.name}'
                    if sub in modules:  # a submodule
                        found[sub] = ()
                    else:
                        found[base] = found.get(base, ()) + (alias.name,)
            elif _dynamic_call(node):
                arg = node.args[0] if node.args else None
                literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                if _dynamic_call(node) == 'import_module' and literal:
                    found = {importlib.util.resolve_name(arg.value, package) if arg.value.startswith('.')
                             else arg.value: ()}
                else:
                    dynamic = True
                    if module not in declared:
                        text = (ast.get_source_segment(source, node) or '').split('\n')[0]
                        problems.append(f'{rel}:{node.lineno}: {module} imports a computed name ({text}); '
                                        'declare what it loads in DYNAMIC')
            for target, names in found.items():
                if not _ours(target):
                    continue
                text = ' '.join((ast.get_source_segment(source, node) or '').split())
                if target not in modules:
                    problems.append(f'{rel}:{node.lineno}: {module} imports {target}, which does not exist ({text})')
                    continue
                if target != module:
                    imports.append(Import(module, target, rel, node.lineno, text, names))
        if module in declared:
            if not dynamic:
                problems.append(f'{rel}: DYNAMIC declares imports of {module}, which has no dynamic import any more')
            imports += [Import(module, t, rel, 0, '(declared in DYNAMIC)') for t in declared[module]]
    return imports, problems


def part_of(module: str) -> str | None:
    """The part of ``module`` (:data:`PARTS`), None if it is on no floor."""
    if module in (PACKAGE, HOOK):
        return 'start-up'
    return next((part for part, names in PARTS.items() if part != 'start-up'
                 and any(module == n or module.startswith(n + '.') for n in names)), None)


FLOOR_OF = {part: i for i, parts in enumerate(FLOORS) for part in parts}


def upward_imports(imports: list[Import]) -> list[str]:
    """Imports from a lower floor to a higher one, or between two parts of one floor."""
    bad = []
    for imp in imports:
        a, b = part_of(imp.source), part_of(imp.target)
        if a == b:
            continue
        if FLOOR_OF[b] >= FLOOR_OF[a]:
            how = 'a higher floor' if FLOOR_OF[b] > FLOOR_OF[a] else 'a sibling part of its floor'
            bad.append(f'{imp.path}:{imp.line}: {imp.source} ({a}, floor {FLOOR_OF[a] + 1}) imports {imp.target} '
                       f'({b}, floor {FLOOR_OF[b] + 1}: {how}): {imp.text}')
    return bad


def cycles(imports: list[Import]) -> list[set[str]]:
    """Strongly connected sets of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def describe_cycle(component: set[str], imports: list[Import]) -> str:
    inside = [i for i in imports if i.source in component and i.target in component]
    return 'cycle of ' + ', '.join(sorted(component)) + ':\n' + '\n'.join(
        f'    {i.path}:{i.line}: {i.source} -> {i.target}: {i.text}' for i in inside)


def top_level_names(path: Path) -> set[str] | None:
    """Names a module defines or imports at top level (also inside top-level if/try); None if it has a
    module ``__getattr__`` (any name may exist)."""
    names: set[str] = set()

    def collect(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split('.')[0] for a in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                collect(node.body)
                collect(getattr(node, 'orelse', []))
                collect(getattr(node, 'finalbody', []))
                for handler in getattr(node, 'handlers', []):
                    collect(handler.body)

    collect(ast.parse(path.read_text(encoding='utf-8')).body)
    return None if '__getattr__' in names else names


def missing_names(imports: list[Import], modules: dict[str, Path]) -> list[str]:
    """``from module import name`` where ``module`` defines no ``name``."""
    bad = []
    cache: dict[str, set[str] | None] = {}
    for imp in imports:
        for name in imp.names:
            if imp.target not in cache:
                cache[imp.target] = top_level_names(modules[imp.target])
            defined = cache[imp.target]
            if defined is not None and name not in defined:
                bad.append(f'{imp.path}:{imp.line}: {imp.target} has no {name!r}: {imp.text}')
    return bad


@pytest.fixture(scope='module')
def graph() -> tuple[dict[str, Path], list[Import], list[str]]:
    modules = find_modules(REPO)
    imports, problems = read_imports(modules)
    return modules, imports, problems


def test_every_module_is_on_a_floor(graph):
    modules, _, _ = graph
    assert set(FLOOR_OF) == set(PARTS)
    homeless = sorted(m for m in modules if part_of(m) is None)
    assert not homeless, f'modules on no floor (add them to PARTS in {Path(__file__).name}): {homeless}'


def test_imports_resolve(graph):
    _, _, problems = graph
    assert not problems, '\n'.join(problems)


def test_imported_names_exist(graph):
    modules, imports, _ = graph
    bad = missing_names(imports, modules)
    assert not bad, 'imports of names that do not exist:\n' + '\n'.join(bad)


def test_no_import_goes_up(graph):
    _, imports, _ = graph
    bad = upward_imports(imports)
    assert not bad, ('imports from a lower floor to a higher one (floors: docs/architecture.md):\n'
                     + '\n'.join(bad))


def test_no_import_cycles(graph):
    _, imports, _ = graph
    found = cycles(imports)
    unknown = [c for c in found if frozenset(c) not in KNOWN_CYCLES]
    assert not unknown, 'modules that import each other:\n' + '\n'.join(describe_cycle(c, imports) for c in unknown)
    gone = [sorted(c) for c in KNOWN_CYCLES if set(c) not in found]
    assert not gone, f'KNOWN_CYCLES lists cycles that no longer exist; delete them: {gone}'


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path):
    """The checks themselves, on a small tree: utils imports tools (upward, in a function), and two
    utils modules import each other (one through importlib with a literal name)."""
    (tmp_path / PACKAGE / 'utils').mkdir(parents=True)
    (tmp_path / PACKAGE / 'tools').mkdir()
    for folder in ('', 'utils', 'tools'):
        (tmp_path / PACKAGE / folder / '__init__.py').write_text('')
    (tmp_path / PACKAGE / 'tools' / 'loading.py').write_text('X = 1\n')
    (tmp_path / PACKAGE / 'utils' / 'a.py').write_text(
        'from . import b\n\n\ndef f():\n    from ..tools.loading import X, Y\n')
    (tmp_path / PACKAGE / 'utils' / 'b.py').write_text(
        'import importlib\n\n\ndef g():\n    return importlib.import_module("esc_basicsr.utils.a")\n')
    modules = find_modules(tmp_path)
    imports, problems = read_imports(modules, declared={})
    assert not problems
    (up,) = upward_imports(imports)
    assert up.startswith(f'{Path(PACKAGE, "utils", "a.py")}:5: esc_basicsr.utils.a (utils, floor 3) imports '
                         'esc_basicsr.tools.loading (tools, floor 5: a higher floor)')
    assert cycles(imports) == [{'esc_basicsr.utils.a', 'esc_basicsr.utils.b'}]
    (missing,) = missing_names(imports, modules)
    assert "esc_basicsr.tools.loading has no 'Y'" in missing
