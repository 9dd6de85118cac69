"""Every ```python block of README.md and docs/**/*.md runs, as a reader would run it.

The blocks of one page run in order in one fresh namespace, in a temporary working
directory, in float32 (the default a user gets; the rest of the suite runs in float64).
Shell blocks and diagrams are not run. Two markers, both used sparingly:

* a block opened with ```` ```python no-run ```` is shown but not run (for things that
  cannot run here, such as a multi-host recipe);
* a page containing the HTML comment ``<!-- docs-test: slow -->`` trains for long: it
  runs the same code under ``@pytest.mark.slow`` (``pytest -m slow``).
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]
SLOW_MARK = "<!-- docs-test: slow -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")


def code_blocks(text: str) -> list[tuple[int, str, str]]:
    """The fenced code blocks of a markdown text: ``(first line number, info, code)``.

    ``info`` is the fence's info string (``"python"``, ``"python no-run"``, ``"bash"``, ...);
    the code is dedented by the fence's own indentation (blocks inside list items).
    """
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        body, j = [], i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""
        ):
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        if j == len(lines):
            raise ValueError(f"unclosed code fence opened on line {i + 1}")
        blocks.append((i + 2, info, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def runnable(info: str) -> bool:
    words = info.split()
    return bool(words) and words[0] in ("python", "py") and "no-run" not in words[1:]


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _params():
    params = []
    for page in pages():
        text = page.read_text()
        if not any(runnable(info) for _, info, _ in code_blocks(text)):
            continue
        marks = [pytest.mark.slow] if SLOW_MARK in text else []
        params.append(pytest.param(page, id=str(page.relative_to(ROOT)), marks=marks))
    return params


def run_page(page: Path) -> dict:
    """Run the page's python blocks in order in one namespace; return the namespace."""
    namespace: dict = {"__name__": "__main__"}
    rel = page.relative_to(ROOT)
    for line, info, code in code_blocks(page.read_text()):
        if not runnable(info):
            continue
        compiled = compile(code, f"{rel}:{line}", "exec")  # tracebacks name page and line
        exec(compiled, namespace)
    return namespace


def check_readme(ns: dict) -> None:
    """The README's first online example visibly learns (what its printout shows)."""
    bits = ns["metrics"]["bits_per_step"]
    acc = ns["metrics"]["bit_accuracy"]
    assert bits[-1] < 0.6 * bits[0], bits
    assert acc[-1] > acc[0] + 0.1, acc


CHECKS = {"README.md": check_readme}


@pytest.fixture
def registry_restored():
    """Entries a page registers (the README shows ``rx.registry.register``) are removed
    afterwards, so they do not leak into other tests in the same process."""
    from rtrlax.experiments.registry import REGISTRY

    REGISTRY.kinds()  # load the built-in entries first
    saved = {kind: dict(table) for kind, table in REGISTRY._entries.items()}
    yield
    REGISTRY._entries.clear()
    REGISTRY._entries.update(saved)


@pytest.mark.parametrize("page", _params())
def test_page_examples_run(page, tmp_path, monkeypatch, registry_restored):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # float32, as a user gets it; a page may switch float64 on itself (jax.config.update),
    # so the default is set globally (not as a context, which would override the page)
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        ns = run_page(page)
    finally:
        jax.config.update("jax_enable_x64", x64)
    check = CHECKS.get(str(page.relative_to(ROOT)))
    if check is not None:
        check(ns)


def test_collector_reads_fences():
    text = (
        "intro\n```python\nx = 1\n```\n"
        "```bash\nls\n```\n"
        "- item\n\n    ```python no-run\n    y = 2\n    ```\n"
        "````python\nz = '```'\n````\n"
    )
    blocks = code_blocks(text)
    assert [(info, code) for _, info, code in blocks] == [
        ("python", "x = 1\n"),
        ("bash", "ls\n"),
        ("python no-run", "y = 2\n"),
        ("python", "z = '```'\n"),
    ]
    assert [runnable(info) for _, info, _ in blocks] == [True, False, False, True]
    assert blocks[0][0] == 3  # line of the block's first line of code


def test_collector_rejects_unclosed_fence():
    with pytest.raises(ValueError, match="unclosed"):
        code_blocks("```python\nx = 1\n")


def test_every_documented_page_is_collected():
    """The README and the tutorials have examples, and no-run stays rare."""
    ids = {p.id for p in _params()}
    for page in ["README.md", "docs/getting_started.md", "docs/models.md", "docs/guide.md"]:
        assert page in ids, f"{page} has no runnable python block"
    assert any(i.startswith("docs/tutorials/") for i in ids)
    skipped = sum(
        1 for p in pages() for _, info, _ in code_blocks(p.read_text())
        if info.split()[:1] == ["python"] and not runnable(info)
    )
    assert skipped <= 3, f"{skipped} python blocks marked no-run: keep it for what cannot run here"


def test_api_docstring_conversion():
    """The docs build's griffe extension turns RST maths and roles into what the site shows."""
    pytest.importorskip("griffe")  # installed with the docs extra
    import importlib.util

    spec = importlib.util.spec_from_file_location("rst_docstrings", ROOT / "docs/_ext/rst_docstrings.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    text = (
        "Intro :class:`~rtrlax.GRU` and :func:`rtrlax.tasks.animal.discounted_return`.\n\n"
        ".. math::\n\n    a &= b\\\\\n    c &= d\n\nAfter, with :math:`x_t`.\n"
        ".. math::  G_t = c_t\n"
    )
    assert ext.convert(text).splitlines() == [
        "Intro `GRU` and `discounted_return`.",
        "",
        "",
        "\\[",
        "\\begin{aligned}",
        "a &= b\\\\",
        "c &= d",
        "\\end{aligned}",
        "\\]",
        "",
        "After, with \\(x_t\\).",
        "",
        "\\[",
        "G_t = c_t",
        "\\]",
    ]
