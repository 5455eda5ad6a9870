"""Encodings: which text a seed file's bytes are. Pure: no files, no clock.

Rule: a byte-order mark decides (UTF-8, UTF-16 LE or BE); else valid UTF-8 is UTF-8; else UTF-8 with
a few stray bytes (at least 4 good non-ASCII characters, at most one bad sequence for 20 of them)
keeps the good ones and says how many it dropped; else the legacy CJK encoding whose text reads most
like CJK prose, if at least 85% of its non-ASCII characters are; else the file is refused. Never
mojibake: a guess that does not read as prose is not taken. Every liberty is a note.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from feedsvc.core.errors import SeedError
from feedsvc.model import DEFAULT_LEGACY_ENCODINGS


def decode_seed(data: bytes, legacy_encodings: Sequence[str] = DEFAULT_LEGACY_ENCODINGS) -> tuple[str, list[str]]:
    """Bytes to text: BOMs, UTF-8, UTF-8 with a few stray bytes, or a legacy CJK encoding; never mojibake."""
    notes: list[str] = []
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec), notes
            except UnicodeDecodeError:
                if codec != "utf-8":
                    raise SeedError(f"starts with a {codec} byte-order mark but is not valid {codec}") from None
                data = data[len(bom) :]
                break
    try:
        return data.decode("utf-8"), notes
    except UnicodeDecodeError:
        pass

    lenient = data.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd")
    good = sum(1 for ch in lenient if ord(ch) > 0x7F and ch != "\ufffd")
    # Mostly valid UTF-8 with a few broken bytes (a truncated copy, a stray Latin-1 byte): keep it.
    if good >= 4 and bad * 20 <= good:
        notes.append(f"{bad} invalid UTF-8 byte sequence(s) dropped")
        return lenient.replace("\ufffd", ""), notes

    best: tuple[float, str, str] | None = None
    for codec in legacy_encodings:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        score = _cjk_plausibility(text)
        if best is None or score > best[0]:
            best = (score, codec, text)
    if best is not None and best[0] >= 0.85:
        notes.append(f"decoded as {best[1]} (not valid UTF-8)")
        return best[2], notes
    raise SeedError("not valid UTF-8 and not plausibly any of " + ", ".join(legacy_encodings))


def _cjk_plausibility(text: str) -> float:
    """Share of non-ASCII characters that real CJK prose uses (ideographs, CJK punctuation, full-width forms).

    Decoding Big5 bytes as GB18030 (or the reverse) succeeds but yields kana, bopomofo,
    Latin with diacritics and private-use characters: this ratio tells the two apart.
    """
    wide = [ord(ch) for ch in text if ord(ch) > 0x7F]
    if not wide:
        return 1.0
    plausible = sum(
        1
        for cp in wide
        if 0x4E00 <= cp <= 0x9FFF
        or 0x3000 <= cp <= 0x303F
        or 0xFF00 <= cp <= 0xFFEF
        or 0x2010 <= cp <= 0x2027
        or cp in (0xA0, 0xB7, 0xD7)
    )
    return plausible / len(wide)




def whole_characters(head: bytes) -> bytes:
    """`head` without a UTF-8 sequence (or a UTF-16 unit) cut at its end."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head[: len(head) - len(head) % 2]
    for back in range(1, min(4, len(head)) + 1):
        byte = head[-back]
        if byte < 0x80:
            return head  # ASCII: whatever came before it is whole
        if byte >= 0xC0:  # the lead byte of a sequence of `need` bytes
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return head if back >= need else head[:-back]
    return head
