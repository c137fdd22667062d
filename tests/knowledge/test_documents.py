"""Parsing each file type into heading paths, and chunking — no database involved."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge.documents import (
    HEADING_SEPARATOR,
    UnreadableDocument,
    chunk_document,
    parse,
    split_text,
)
from tests.knowledge.pdf import minimal_pdf

MARKDOWN = """\
---
title: Billing guide
---
Welcome text before any heading.

# Billing

How billing works.

## Refunds

Refunds take 5 days.

```sh
# this is a shell comment, not a heading
echo refund
```

### Partial refunds

Only for annual plans.

## Invoices ##

Invoices are PDFs.

Setext heading
==============

Body under setext.
"""


def test_markdown_sections_keep_their_heading_path() -> None:
    doc = parse(Path("guide.md"), MARKDOWN.encode())
    assert doc.title == "Billing guide"  # front matter wins over the first h1
    paths = [s.path for s in doc.sections]
    assert paths == [
        ("Billing guide",),
        ("Billing",),
        ("Billing", "Refunds"),
        ("Billing", "Refunds", "Partial refunds"),
        ("Billing", "Invoices"),
        ("Setext heading",),
    ]
    refunds = doc.sections[2].text
    assert "# this is a shell comment" in refunds  # fenced code is body, not a heading
    assert doc.sections[4].text == "Invoices are PDFs."


def test_markdown_title_falls_back_to_first_h1_then_file_name() -> None:
    assert parse(Path("x.md"), b"# Real title\n\ntext").title == "Real title"
    assert parse(Path("reset-your_password.md"), b"just text").title == "Reset your password"


def test_chunks_carry_the_heading_path_and_respect_the_size() -> None:
    long_section = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(12))
    doc = parse(Path("a.md"), f"# Billing\n\n## Refunds\n\n{long_section}\n".encode())
    chunks = chunk_document(doc, 300)
    assert len(chunks) > 3
    assert all(c.heading == f"Billing{HEADING_SEPARATOR}Refunds" for c in chunks)
    assert all(len(c.text) <= 300 for c in chunks)
    # Nothing lost, nothing duplicated, order kept.
    joined = " ".join(" ".join(c.text.split()) for c in chunks)
    assert joined == " ".join(long_section.split())


def test_split_text_breaks_long_paragraphs_sentences_and_tokens() -> None:
    sentences = " ".join(f"Sentence number {i} is here." for i in range(40))
    pieces = split_text(sentences, 120)
    assert all(len(p) <= 120 for p in pieces)
    assert all(p.endswith(".") for p in pieces)  # cut between sentences
    token = "x" * 1000
    assert [len(p) for p in split_text(token, 300)] == [300, 300, 300, 100]
    assert split_text("", 300) == []


def test_html_headings_lists_and_noise() -> None:
    html = b"""<!doctype html><html><head><title>SSO guide</title>
    <style>h1 { color: red }</style><script>var h2 = "<h2>no</h2>";</script></head>
    <body><nav>Home | Docs</nav>
    <h1>Single sign-on</h1><p>Intro &amp; overview.</p>
    <h2>Okta</h2><ol><li>Create an app</li><li>Copy the <b>ACS URL</b></li></ol>
    <h4>Note</h4><p>Minor heading stays in the body.</p>
    <h3>Troubleshooting</h3><p>Clock skew.</p>
    <h2>Entra ID</h2><p>Azure steps.</p><footer>(c) Acme</footer></body></html>"""
    doc = parse(Path("sso.html"), html)
    assert doc.title == "SSO guide"
    assert [s.path for s in doc.sections] == [
        ("Single sign-on",),
        ("Single sign-on", "Okta"),
        ("Single sign-on", "Okta", "Troubleshooting"),
        ("Single sign-on", "Entra ID"),
    ]
    assert doc.sections[0].text == "Intro & overview."
    assert doc.sections[1].text.startswith("- Create an app\n- Copy the ACS URL")
    assert "Minor heading stays in the body." in doc.sections[1].text
    everything = " ".join(s.text for s in doc.sections)
    assert "color" not in everything and "var h2" not in everything
    assert "Home | Docs" not in everything and "(c) Acme" not in everything


def test_plain_text_is_one_titled_section_in_any_encoding() -> None:
    doc = parse(Path("faq.txt"), "Caf\xe9 hours are 9 to 5.".encode("cp1252"))
    assert doc.title == "Faq"
    assert doc.sections[0].path == ("Faq",)
    assert doc.sections[0].text == "Café hours are 9 to 5."


def test_pdf_pages_become_sections() -> None:
    data = minimal_pdf(["Refunds take five days.", "Invoices are monthly."], title="Billing manual")
    doc = parse(Path("manual.pdf"), data)
    assert doc.title == "Billing manual"
    assert [s.path for s in doc.sections] == [
        ("Billing manual", "page 1"),
        ("Billing manual", "page 2"),
    ]
    assert doc.sections[1].text == "Invoices are monthly."


def test_a_broken_pdf_is_unreadable_not_a_crash() -> None:
    with pytest.raises(UnreadableDocument):
        parse(Path("broken.pdf"), b"%PDF-1.4\nthis is not really a pdf")
