"""What a turn's attachments show the model: images as parts within their caps, text files and
PDFs as their text, a line for everything else; and what a provider without vision gets."""

from __future__ import annotations

import base64

from bot.agent.attachments import AttachmentLimits, image_type, show
from bot.domain import Attachment, InboundMessage
from bot.providers.base import ChatMessage, ContentPart, ModelRequest
from bot.providers.vision import sees_images, without_images
from tests.fakes.files import pdf, png

LIMITS = AttachmentLimits(max_images=2, max_image_bytes=10_000, max_chars=200)


def message(*attachments: Attachment, text: str = "see attached") -> InboundMessage:
    return InboundMessage("sim", "k", "t", "s", text, attachments=attachments)


def file(name: str, content_type: str, data: bytes | None, **extra: object) -> Attachment:
    return Attachment(name, content_type, len(data or b""), data=data, **extra)  # type: ignore[arg-type]


async def test_an_image_becomes_an_image_part_of_the_type_its_bytes_say() -> None:
    image = png()
    # The channel called it a JPEG; its bytes are a PNG, and the data URL says so.
    [[shown]] = await show([message(file("shot.jpg", "image/jpeg", image))], LIMITS)
    assert shown.note == ""
    assert shown.part is not None
    assert (shown.part.kind, shown.part.name, shown.part.content_type) == ("image", "shot.jpg", "image/png")
    assert shown.part.data_url == "data:image/png;base64," + base64.b64encode(image).decode()


async def test_images_over_the_size_cap_or_the_count_cap_are_named_not_sent() -> None:
    big = png() + b"\x00" * 20_480  # 20,553 bytes
    shown = await show([
        message(file("a.png", "image/png", png()), file("big.png", "image/png", big)),
        message(file("b.png", "image/png", png()), file("c.png", "image/png", png())),
    ], LIMITS)
    parts = [s.part.name for m in shown for s in m if s.part is not None]
    notes = [s.note for m in shown for s in m if s.note]
    assert parts == ["a.png", "b.png"]  # the first two that fit, across the turn's messages
    assert notes == [
        "[image not shown: big.png (20 KB, over model.max_image_bytes)]",
        "[image not shown: c.png (more than 2 images in one turn)]",
    ]


async def test_a_text_file_and_a_pdf_arrive_as_their_text_cut_at_the_cap() -> None:
    log = b"ERROR 42: export failed\n" + b"x" * 1000
    shown = await show([message(
        file("export.log", "text/plain", log),
        file("invoice.pdf", "application/pdf", pdf("Invoice 42", "Total due: 19.99 EUR")),
    )], LIMITS)
    [[text_file, document]] = shown
    assert text_file.part is None and document.part is None
    assert text_file.note.startswith("[attachment: export.log (text/plain), its text:]\nERROR 42")
    assert "[… the rest of export.log is cut]" in text_file.note
    kept = text_file.note.split("\n", 1)[1].split("\n[… the rest")[0]
    assert len(kept) == LIMITS.max_chars
    assert "Invoice 42\nTotal due: 19.99 EUR" in document.note
    assert document.note.endswith("[end of invoice.pdf]")


async def test_what_cannot_be_read_or_did_not_arrive_is_named() -> None:
    shown = await show([message(
        file("broken.pdf", "application/pdf", b"%PDF-1.4 not really"),
        file("fake.png", "image/png", b"MZ\x90\x00"),
        file("archive.zip", "application/zip", b"PK\x03\x04"),
        file("gone.png", "image/png", None, fetch_error="HTTP 404"),
    )], LIMITS)
    notes = [s.note for s in shown[0]]
    assert notes[0].startswith("[attachment: broken.pdf (application/pdf) could not be read")
    assert notes[1] == "[image not shown: fake.png (image/png), not a PNG, JPEG, GIF or WebP image]"
    assert notes[2] == "[attachment: archive.zip (application/zip)]"
    assert notes[3] == "[attachment not fetched: gone.png (image/png): HTTP 404]"
    assert all(s.part is None for s in shown[0])


def test_image_formats_are_told_by_their_first_bytes() -> None:
    assert image_type(png()) == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert image_type(b"GIF89a...") == "image/gif"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"<svg xmlns=...") is None


def test_a_provider_without_vision_gets_a_line_naming_each_image() -> None:
    part = ContentPart("image", "shot.png", "image/png", "data:image/png;base64,AAAA")
    request = ModelRequest((ChatMessage("system", "be brief"),
                            ChatMessage("user", "what is this error?", parts=(part,))))
    sent = without_images(request)
    user = sent.messages[1]
    assert user.parts == ()
    assert user.content.startswith("what is this error?\n\n[image: shot.png (image/png). You cannot see")
    assert sent.messages[0] == request.messages[0]
    assert without_images(sent) is sent  # nothing left to replace


def test_who_sees_images_when_model_vision_is_unset() -> None:
    assert sees_images("openai", None, None) is True
    assert sees_images("openai", "https://api.openai.com/v1", None) is True
    assert sees_images("openai", "http://127.0.0.1:8000/v1", None) is False
    assert sees_images("openai", "http://127.0.0.1:8000/v1", True) is True
    assert sees_images("xai-support-agent", None, None) is True
    assert sees_images("ingram", None, False) is False


async def test_text_cut_inside_a_character_stays_utf8_and_binary_is_not_read_as_text() -> None:
    limits = AttachmentLimits(max_chars=3)
    # 3 characters kept from at most 12 bytes: the cut falls inside the 4th "ü" of the sample.
    shown = await show([message(
        file("umlauts.txt", "text/plain", "üüüüüüüü".encode()),
        file("clip.ts", "video/mp2t", b"G@\x11\x00" * 64),
        file("dump.log", "application/octet-stream", b"\x00\x01binary" * 10),
    )], limits)
    notes = [s.note for s in shown[0]]
    assert notes[0].startswith("[attachment: umlauts.txt (text/plain), its text:]\nüüü\n")
    assert notes[1] == "[attachment: clip.ts (video/mp2t)]"
    assert notes[2] == "[attachment: dump.log (application/octet-stream), not text]"
