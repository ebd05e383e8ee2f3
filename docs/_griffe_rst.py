"""A griffe extension for the API reference: the source's docstrings use a little reST
(``:class:`~sessionkeeper.Session``` roles, ``Example::`` before a code block), which the
Markdown renderer would print literally. Rewrite those bits to Markdown at load time; the
docstrings in the code stay as they are."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(\S)::[ \t]*$", re.M)
_BARE_LITERAL = re.compile(r"^[ \t]*::[ \t]*$", re.M)


def _role(m: re.Match[str]) -> str:
    target = m.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


def to_markdown(text: str) -> str:
    """Rewrite the reST roles and literal-block markers of one docstring."""
    text = _ROLE.sub(_role, text)
    text = _BARE_LITERAL.sub("", text)
    return _LITERAL.sub(r"\1:", text)


class RestToMarkdown(griffe.Extension):
    """Applied to every object mkdocstrings loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # The root package's own docstring is not seen by on_instance.
        self.on_instance(obj=pkg)
