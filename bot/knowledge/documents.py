"""Reading files into titled, heading-aware sections, and cutting sections into chunks.

Blocking work (file I/O, PDF text extraction) lives here and runs in a worker thread, called
through ``asyncio.to_thread`` by the knowledge base; nothing here touches the event loop.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

logger = logging.getLogger(__name__)

HEADING_SEPARATOR = " › "

KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".pdf": "pdf",
}


class UnreadableDocument(Exception):
    """The file has a supported extension but its content cannot be turned into text."""


@dataclass(frozen=True, slots=True)
class Section:
    """Body text under one heading path (``("Billing", "Refunds")``)."""

    path: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A file's title and its sections in reading order."""

    title: str
    kind: str
    sections: tuple[Section, ...]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable unit: a piece of a section with its heading path."""

    heading: str
    text: str


def kind_of(path: Path) -> str | None:
    """The document kind for a file name, or None when the extension is not supported."""
    return KINDS.get(path.suffix.lower())


def title_from_name(path: Path) -> str:
    """``getting-started.md`` → ``Getting started``."""
    words = re.sub(r"[-_]+", " ", path.stem).strip()
    return words[:1].upper() + words[1:] if words else path.name


def parse(path: Path, data: bytes) -> ParsedDocument:
    """Turn a file's bytes into sections, by the kind its extension names."""
    kind = kind_of(path)
    fallback_title = title_from_name(path)
    if kind == "pdf":
        return _parse_pdf(data, fallback_title)
    text = _decode(data)
    if kind == "markdown":
        return _parse_markdown(text, fallback_title)
    if kind == "html":
        return _parse_html(text, fallback_title)
    if kind == "text":
        return ParsedDocument(fallback_title, "text", (Section((fallback_title,), text),))
    raise UnreadableDocument(f"unsupported file type: {path.suffix or path.name}")


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Help-center exports from old tools are often Windows-1252; never refuse a text file.
        return data.decode("cp1252", errors="replace")


# -- Markdown ----------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_ATX_EMPTY = re.compile(r"^ {0,3}(#{1,6})[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FRONT_MATTER_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.MULTILINE)
_INLINE_MARKUP = re.compile(r"[*_`]+")


def _clean_heading(text: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [label](url) → label
    return _INLINE_MARKUP.sub("", text).strip()


def _parse_markdown(text: str, fallback_title: str) -> ParsedDocument:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    title: str | None = None
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            front = text[4:end]
            found = _FRONT_MATTER_TITLE.search(front)
            if found:
                title = found.group(1).strip("'\"")
            text = text[end + 4 :].lstrip("\n")
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)

    sections: list[tuple[list[tuple[int, str]], list[str]]] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    fence: str | None = None

    def open_section(level: int, heading: str) -> None:
        nonlocal body, title
        sections.append((list(stack), body))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
        body = []
        if title is None and level == 1:
            title = heading

    for line in text.split("\n"):
        if fence is not None:
            body.append(line)
            if line.strip().startswith(fence):
                fence = None
            continue
        opened = _FENCE.match(line)
        if opened:
            fence = opened.group(1)[:3]
            body.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            open_section(len(atx.group(1)), _clean_heading(atx.group(2)))
            continue
        if _ATX_EMPTY.match(line):
            continue
        setext = _SETEXT.match(line)
        # "Title\n=====" or "Title\n-----"; a lone "---" after a blank line is a rule.
        if (
            setext
            and body
            and body[-1].strip()
            and not body[-1].lstrip().startswith(("-", "*", ">", "|"))
        ):
            heading = _clean_heading(body.pop())
            open_section(1 if setext.group(1)[0] == "=" else 2, heading)
            continue
        body.append(line)
    sections.append((list(stack), body))

    doc_title = title or fallback_title
    result: list[Section] = []
    for heading_stack, lines in sections:
        content = "\n".join(lines).strip()
        if not content:
            continue
        path = tuple(h for _, h in heading_stack if h) or (doc_title,)
        result.append(Section(path, content))
    return ParsedDocument(doc_title, "markdown", tuple(result))


# -- HTML --------------------------------------------------------------------------------------

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "nav", "footer", "head"})
# Elements that end a paragraph, and elements that only end a line.
_PARAGRAPH = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "aside",
        "hr",
        "table",
        "ul",
        "ol",
        "dl",
        "blockquote",
        "pre",
        "figure",
        "figcaption",
        "h4",
        "h5",
        "h6",
    }
)
_LINE = frozenset({"br", "tr", "li", "dt", "dd"})
_VOID = frozenset(
    {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "wbr", "source"}
)


class _HtmlSections(HTMLParser):
    """Collects text under h1–h3 headings; h4–h6 stay inside the body as plain lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page_title = ""
        self.sections: list[tuple[tuple[str, ...], str]] = []
        self._stack: list[tuple[int, str]] = []
        self._body: list[str] = []
        self._heading_level: int | None = None
        self._heading_text: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if tag in _SKIP:
            if tag not in _VOID:
                self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag in ("h1", "h2", "h3"):
            self._heading_level = int(tag[1])
            self._heading_text = []
            return
        if tag == "pre":
            self._pre_depth += 1
        if tag in _PARAGRAPH:
            self._body.append("\n\n")
        elif tag in _LINE:
            self._body.append("\n")
        if tag == "li":
            self._body.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag in ("h1", "h2", "h3") and self._heading_level is not None:
            heading = " ".join("".join(self._heading_text).split())
            level = self._heading_level
            self._heading_level = None
            self._flush()
            while self._stack and self._stack[-1][0] >= level:
                self._stack.pop()
            if heading:
                self._stack.append((level, heading))
            return
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        if tag in _PARAGRAPH:
            self._body.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.page_title += data
            return
        if self._skip_depth:
            return
        if self._heading_level is not None:
            self._heading_text.append(data)
            return
        self._body.append(data if self._pre_depth else re.sub(r"\s+", " ", data))

    def _flush(self) -> None:
        lines = [line.strip() for line in "".join(self._body).split("\n")]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        if text:
            self.sections.append((tuple(h for _, h in self._stack), text))
        self._body = []

    def close(self) -> None:
        super().close()
        self._flush()


def _parse_html(text: str, fallback_title: str) -> ParsedDocument:
    parser = _HtmlSections()
    parser.feed(text)
    parser.close()
    first_h1 = next((path[0] for path, _ in parser.sections if path), None)
    title = " ".join(parser.page_title.split()) or first_h1 or fallback_title
    sections = tuple(Section(path or (title,), body) for path, body in parser.sections)
    return ParsedDocument(title, "html", sections)


# -- PDF ---------------------------------------------------------------------------------------


def _parse_pdf(data: bytes, fallback_title: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocument("the PDF is encrypted")
        meta_title = reader.metadata.title if reader.metadata else None
        title = (meta_title or "").strip() or fallback_title
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            page_text = (page.extract_text() or "").strip()
            if page_text:
                # PDFs rarely carry usable heading structure; the page number is the citation.
                sections.append(Section((title, f"page {number}"), page_text))
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableDocument(f"not a readable PDF: {exc}") from exc
    return ParsedDocument(title, "pdf", tuple(sections))


# -- chunking ----------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def chunk_document(document: ParsedDocument, chunk_chars: int) -> list[Chunk]:
    """Cut every section into chunks of at most ``chunk_chars``, on paragraph, then sentence,
    then word boundaries; each chunk keeps its section's heading path."""
    chunks: list[Chunk] = []
    for section in document.sections:
        heading = HEADING_SEPARATOR.join(section.path)
        for piece in split_text(section.text, chunk_chars):
            chunks.append(Chunk(heading, piece))
    return chunks


def split_text(text: str, limit: int) -> list[str]:
    """Greedy packing of paragraphs into pieces of at most ``limit`` characters."""
    # (separator before, text): paragraphs join with a blank line, a long paragraph's
    # sentences (and a long sentence's words) with a space.
    units: list[tuple[str, str]] = []
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not paragraph:
            continue
        if len(paragraph) <= limit:
            units.append(("\n\n", paragraph))
            continue
        separator = "\n\n"
        for sentence in _SENTENCE_END.split(paragraph):
            for part in _hard_split(sentence, limit) if len(sentence) > limit else [sentence]:
                units.append((separator, part))
                separator = " "
    pieces: list[str] = []
    current = ""
    for separator, unit in units:
        candidate = f"{current}{separator}{unit}" if current else unit
        if len(candidate) <= limit:
            current = candidate
        else:
            if current:
                pieces.append(current)
            current = unit
    if current:
        pieces.append(current)
    return pieces


def _hard_split(text: str, limit: int) -> list[str]:
    out: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > limit:  # a single endless token (base64, a URL): cut it
            if current:
                out.append(current)
                current = ""
            out.append(word[:limit])
            word = word[limit:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= limit:
            current = candidate
        else:
            out.append(current)
            current = word
    if current:
        out.append(current)
    return out
