"""A griffe extension for the docs build: the library's docstrings use a few RST
constructs (``.. math::`` blocks, ``:math:`` and ``:class:``-style roles) that the
Markdown renderer of mkdocstrings would show verbatim. Rewrite them into what the site
renders: display maths ``\\[...\\]`` and inline ``\\(...\\)`` for MathJax (arithmatex),
roles as inline code. Text only; nothing in the library changes."""

from __future__ import annotations

import re
import textwrap

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc):`~?([^`]+)`")
MATH_ROLE = re.compile(r":math:`([^`]+)`")
DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")


def _display(lines: list[str], indent: str) -> list[str]:
    body = textwrap.dedent("\n".join(lines)).strip("\n")
    if "&" in body or "\\\\" in body:
        body = "\\begin{aligned}\n" + body + "\n\\end{aligned}"
    return ["", indent + "\\[", *[indent + line for line in body.splitlines()], indent + "\\]", ""]


def convert(text: str) -> str:
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, rest = m["indent"], m["rest"].strip()
        if rest:  # one-line form: ".. math::  expr"
            out.extend(_display([rest], indent))
            i += 1
            continue
        j, block = i + 1, []
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith(indent + " ")):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        out.extend(_display(block, indent))
        i = j
    text = "\n".join(out)
    text = MATH_ROLE.sub(lambda m: "\\(" + m.group(1) + "\\)", text)
    return ROLE.sub(lambda m: "`" + m.group(1).split(".")[-1] + "`", text)


class RstDocstrings(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
