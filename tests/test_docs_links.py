"""Every relative link of the README and the docs resolves: the file exists and a ``#anchor`` names a heading
of the target page (GitHub's slug of it). Also: the README stays a five-minute read, and its Python quick start
runs as printed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / 'README.md', REPO / 'benchmarks' / 'README.md', *(REPO / 'docs').glob('*.md')])

_FENCE = re.compile(r'^ {0,3}(`{3,}|~{3,})')
_HEADING = re.compile(r'^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
_INLINE_LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)')
_REFERENCE_DEF = re.compile(r'^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$')
_HTML_ANCHOR = re.compile(r'<a\s+(?:name|id)="([^"]+)"', re.IGNORECASE)
_CODE_SPAN = re.compile(r'(`+)(?:(?!\1).)+?\1')


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is None:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: the rendered text lower-cased, every character other than a letter,
    digit, ``_``, ``-`` or space removed, spaces turned into ``-``."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link's text only
    text = re.sub(r'<[^>]+>', '', text).strip().lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown page: its headings' slugs (repeats numbered ``-1``, ``-2`` as GitHub does) and
    explicit ``<a name=...>``/``<a id=...>``."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose_lines(path.read_text(encoding='utf-8')):
        found.update(_HTML_ANCHOR.findall(line))
        match = _HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f'{slug}-{count}')
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link and image of a page outside code blocks and code spans."""
    result = []
    for number, line in _prose_lines(path.read_text(encoding='utf-8')):
        prose = _CODE_SPAN.sub('', line)
        result.extend((number, target) for target in _INLINE_LINK.findall(prose))
        match = _REFERENCE_DEF.match(prose)
        if match:
            result.append((number, match.group(1)))
    return result


def broken_links(path: Path) -> list[str]:
    """``file:line: target (why)`` for every relative link of ``path`` that does not resolve."""
    problems = []
    for number, target in links(path):
        if not target or re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:', target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition('#')
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f'{path.name}:{number}: {target}'
        if not resolved.exists():
            problems.append(f'{where} (no such file: {resolved})')
        elif anchor and resolved.suffix == '.md' and anchor not in anchors(resolved):
            problems.append(f'{where} (no heading with the anchor #{anchor} in {resolved.name})')
    return problems


@pytest.mark.parametrize('page', DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path):
    assert broken_links(page) == []


def test_the_checker_reports_broken_files_and_anchors(tmp_path: Path):
    (tmp_path / 'other.md').write_text('# Other page\n\n## The `use_amp` option (fp16)\n\n## Twice\n\n## Twice\n')
    page = tmp_path / 'page.md'
    page.write_text(
        '# Title\n\n'
        '[ok](other.md) [ok anchor](other.md#the-use_amp-option-fp16) [second](other.md#twice-1) [here](#title)\n'
        '[missing](nowhere.md) ![missing image](img/none.png) [bad anchor](other.md#no-such-heading)\n'
        '[bad local](#untitled) [web](https://example.com/x.md#y) `[code](span.md)`\n\n'
        '```\n[in a block](block.md)\n```\n\n'
        '[ref]: gone.md\n')
    problems = broken_links(page)
    assert [p.split(': ', 1)[1].split(' (')[0] for p in problems] == [
        'nowhere.md', 'img/none.png', 'other.md#no-such-heading', '#untitled', 'gone.md']
    assert problems[0].startswith('page.md:4: ')


@pytest.mark.parametrize('heading, slug', [
    ("The authors' option files (`ESRModel`, `RealHATMSEModel`, `RealHATGANModel`)",
     'the-authors-option-files-esrmodel-realhatmsemodel-realhatganmodel'),
    ('The same as one command: `python -m esc_basicsr.demo --arbitrary-scale`',
     'the-same-as-one-command-python--m-esc_basicsrdemo---arbitrary-scale'),
    ('Ground truth: `--compare GT_DIR`', 'ground-truth---compare-gt_dir'),
])
def test_github_slug(heading: str, slug: str):
    assert github_slug(heading) == slug


def test_readme_is_a_five_minute_read():
    lines = (REPO / 'README.md').read_text(encoding='utf-8').splitlines()
    assert len(lines) <= 250
    top = '\n'.join(lines[:40])
    assert './scripts/test.sh' in top and './scripts/demo.sh' in top


def test_readme_python_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from tests.helpers.arch_cases import small_model

    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    section = readme.split('## Python quick start', 1)[1]
    code = section.split('```python\n', 1)[1].split('```', 1)[0]
    # the checkpoint it loads: a small ESC x2 (detection reads any size), saved as BasicSR does
    torch.save({'params_ema': small_model('ESC').state_dict()}, tmp_path / 'ESC_x2.pth')
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, 'README.md: Python quick start', 'exec'), scope)
    assert scope['sr'].shape == (1, 3, 128, 192)
    assert 0 <= float(scope['sr'].min()) and float(scope['sr'].max()) <= 1
    assert not scope['model'].training
