"""Render Markdown and HTML to the plain text that is cleaned, indexed and quoted; links become metadata.

Link text stays and link targets go to `Rendered.links`; comments, emphasis and code markers, bullet markers,
table pipes, code fences and images go. Blocks (paragraphs, list items, table rows, code) are separated by a
blank line. Headings stay as `#` lines (HTML h1/h2 → "## ", h3 → "### ") because `rag.clean` reads them as
section banners and article headings and keeps only their words; any other line `rag.clean` would take for a
heading or a rule is indented, which `rag.clean` strips. The rendered text is what ingest stores as the
document's raw text, so citation offsets into the cleaned text need no mapping back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CELL_JOIN = " — "  # between the cells of a table row: pipes are layout, not text
_GUARD = re.compile(r" {0,3}(?:#{1,6}(?: |$)|(?:[-*_=] *){3,}$)")  # what rag.clean reads as heading or rule
_GUARD_INDENT = "    "
_PIPE_ROW = re.compile(r"^\s*\||\s\|\s|\s\|\s*$")  # "a | b |": a table row Markdown did not parse as one
_NO_TARGET = ("#", "javascript:", "mailto:")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rendered:
    """Plain text of a marked-up document and its links as (link text, target) in reading order."""

    text: str
    links: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- markdown


def markdown(text: str) -> Rendered:
    """Plain text of a Markdown document (front matter already removed), CommonMark with GFM tables."""
    from markdown_it import MarkdownIt  # lazy: only Markdown files need it

    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)
    blocks: list[str] = []
    links: list[tuple[str, str]] = []
    row: list[str] = []
    prefix = ""  # "3. " before the first paragraph of an ordered-list item
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            title = _one_line(_inline(tokens[i + 1].children or [], links))
            if title:
                blocks.append("#" * int(tok.tag[1]) + " " + title)
        elif tok.type == "list_item_open":
            prefix = f"{tok.info}{tok.markup} " if tok.info else ""
        elif tok.type == "inline" and tokens[i - 1].type == "paragraph_open":
            blocks.append(_guard(_unpipe(prefix + _inline(tok.children or [], links))))
            prefix = ""
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            cell = _one_line(_inline(tok.children or [], links))
            if cell:
                row.append(cell)
        elif tok.type == "tr_close" and row:
            blocks.append(_guard(CELL_JOIN.join(row)))
        elif tok.type in ("fence", "code_block"):
            blocks.append(_guard(tok.content.strip("\n")))
        elif tok.type == "html_block":
            rendered = html(tok.content)
            blocks.append(rendered.text)
            links.extend(rendered.links)
    text = "\n\n".join(b for b in blocks if b.strip())
    return Rendered(text=text, links=tuple(links))


def _inline(children: list[Any], links: list[tuple[str, str]]) -> str:
    """Text of an inline run: markers dropped, link text kept and its target recorded, breaks as newlines."""
    parts: list[str] = []
    open_links: list[tuple[int, str]] = []  # (index in parts where the link text starts, target)
    for child in children:
        kind = child.type  # an "image" is dropped with its alt text: it is not part of the reading text
        if kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif kind == "link_open":
            open_links.append((len(parts), str(child.attrs.get("href", ""))))
        elif kind == "link_close" and open_links:
            start, href = open_links.pop()
            label = _one_line("".join(parts[start:]))
            if href and not href.startswith(_NO_TARGET):
                links.append((label, href))
        elif kind == "html_inline" and _BR.fullmatch(child.content.strip()):
            parts.append("\n")  # any other inline tag or comment is markup, not text
    return "".join(parts)


def _unpipe(text: str) -> str:
    """A line written as a table row ("EuroRust | 2026-04-27 | Barcelona |") becomes its cells joined."""
    lines = []
    for line in text.split("\n"):
        if line.count("|") >= 2 and _PIPE_ROW.search(line):
            line = CELL_JOIN.join(c.strip() for c in line.split("|") if c.strip())
        lines.append(line)
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _guard(text: str) -> str:
    """Indent lines `rag.clean` would read as headings or rules (a "# comment" in code, a "---" of text)."""
    return "\n".join(_GUARD_INDENT + ln if _GUARD.match(ln) else ln for ln in text.split("\n"))


# --------------------------------------------------------------------------- html

_DROP_TAGS = ("script", "style", "nav", "head", "title", "noscript", "template")
_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "tr", "li", "ul", "ol", "dl", "dt", "dd", "table", "thead", "tbody", "tfoot"}
    | {"caption", "section", "article", "header", "footer", "main", "aside", "blockquote", "figure"}
    | {"figcaption", "hr", "pre", "address", "form", "fieldset", "h4", "h5", "h6"}
)
_HEADING_PREFIX = {"h1": "## ", "h2": "## ", "h3": "### "}
_CELL_TAGS = frozenset(("td", "th"))
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_BREAK = object()  # stack marker: the end of a block element


def html(markup: str) -> Rendered:
    """Plain text of an HTML page: blocks become paragraphs, h1/h2 → "## ", h3 → "### "; no markup kept."""
    from bs4 import BeautifulSoup  # lazy: heavy, and only HTML needs it

    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    parts: list[str] = []
    links: list[tuple[str, str]] = []
    headings: set[str] = set()
    _emit(soup, parts, links, headings)
    text = "".join(parts)
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    text = "\n".join(ln if ln in headings else _guard(ln) for ln in text.split("\n"))
    return Rendered(text=text, links=tuple(links))


def _emit(node: object, parts: list[str], links: list[tuple[str, str]], headings: set[str]) -> None:
    """Append the text under `node` to `parts`, blank lines around blocks (iterative: pages nest deep)."""
    from bs4.element import NavigableString, PreformattedString, Tag

    stack: list[object] = list(reversed(list(getattr(node, "children", ()))))
    while stack:
        child = stack.pop()
        if child is _BREAK:
            parts.append("\n\n")
        elif isinstance(child, PreformattedString):  # comments, doctype, CDATA, processing instructions
            continue
        elif isinstance(child, NavigableString):
            parts.append(_HTML_SPACE.sub(" ", str(child).replace("\xa0", " ")))  # &nbsp; is layout, not text
        elif isinstance(child, Tag):
            name = child.name.lower()
            if name == "a" and (href := str(child.get("href") or "").strip()) and not href.startswith(_NO_TARGET):
                links.append((_one_line(_inline_text(child)), href))
            if name in _HEADING_PREFIX:
                heading = _HTML_SPACE.sub(" ", _inline_text(child, links)).strip()
                if heading:
                    headings.add(_HEADING_PREFIX[name] + heading)
                    parts.append(f"\n\n{_HEADING_PREFIX[name]}{heading}\n\n")
                continue
            if name == "pre":
                parts.append("\n\n" + child.get_text() + "\n\n")
                continue
            if name in _BLOCK_TAGS:
                parts.append("\n\n")
                stack.append(_BREAK)
            elif name in _CELL_TAGS:
                parts.append(" ")
            stack.extend(reversed(list(child.children)))


def _inline_text(tag: object, links: list[tuple[str, str]] | None = None) -> str:
    """Text of a heading or link, with <br> and nested blocks read as spaces so words don't run together."""
    parts: list[str] = []
    _emit(tag, parts, [] if links is None else links, set())
    return "".join(parts).replace("\n", " ")
