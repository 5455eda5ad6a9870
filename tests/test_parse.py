from __future__ import annotations

import codecs
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feedsvc.core.parse import (
    SeedError,
    decode_seed,
    parse_header,
    parse_markdown_title,
    parse_seed,
)
from feedsvc.core.title import _clean_url, _inline_text

BODY = "<div><i><br>2023-04-16T13:06:27.989Z</i></div><p>正文 text</p>"
MTIME = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def seed(header: str = "<!--1681696026000-->", title: str = "[標題](https://example.com/a)",
         dashes: str = "------", body: str = BODY, nl: str = "\n") -> bytes:
    return nl.join([header, title, dashes, "", body]).encode()


def test_real_sample(sample_bytes: bytes) -> None:
    article = parse_seed(sample_bytes, "000_76cb3dcc68cf4183.txt")
    assert article.title == "中國防長會見普京 談加強軍事合作"
    assert article.link.startswith("https://www.dw.com/zh/%E4%B8%AD")
    assert article.link.endswith("/a-65338710")
    assert article.updated == datetime(2023, 4, 17, 1, 47, 6, tzinfo=UTC)
    assert article.published == datetime(2023, 4, 16, 13, 6, 27, 989000, tzinfo=UTC)
    assert article.body_html.startswith("<img src=")  # the date line became metadata
    assert "（綜合報導）" in article.body_html
    assert article.notes == ()


@pytest.mark.parametrize("nl", ["\n", "\r\n", "\r"])
def test_line_endings(nl: str) -> None:
    article = parse_seed(seed(nl=nl), "a.txt")
    assert article.title == "標題" and article.link == "https://example.com/a"
    assert "\r" not in article.body_html


def test_bom_blank_lines_spaces_and_dash_lengths() -> None:
    data = codecs.BOM_UTF8 + b"\n\n  <!-- 1681696026000 -->  \n\n  [T](https://e.com/x)  \n---\n\n\n<p>b</p>\n"
    article = parse_seed(data, "a.txt")
    assert (article.title, article.link, article.body_html) == ("T", "https://e.com/x", "<p>b</p>")


def test_no_dashes_line() -> None:
    article = parse_seed(b"<!--1681696026000-->\n[T](https://e.com/x)\n<p>b</p>", "a.txt")
    assert article.body_html == "<p>b</p>"


def test_long_dashes_line() -> None:
    article = parse_seed(seed(dashes="-" * 80), "a.txt")
    assert article.body_html.startswith("<p>")


@pytest.mark.parametrize(
    ("line", "title", "url"),
    [
        ("[a [nested] title](https://e.com/x)", "a [nested] title", "https://e.com/x"),
        (r"[escaped \] bracket \[ and \* star](https://e.com/x)", "escaped ] bracket [ and * star", "https://e.com/x"),
        ("[AT&amp;T &lt;3 &#x4E2D;](https://e.com/x)", "AT&T <3 中", "https://e.com/x"),
        ("[double &amp;amp; once](https://e.com/x)", "double &amp; once", "https://e.com/x"),
        ("[parens](https://en.wikipedia.org/wiki/Feed_(disambiguation))", "parens",
         "https://en.wikipedia.org/wiki/Feed_(disambiguation)"),
        ("[t](<https://e.com/a b>)", "t", "https://e.com/a%20b"),
        ('[t](https://e.com/x "a title")', "t", "https://e.com/x"),
        ("just a plain title", "just a plain title", None),
        ("# [heading link](https://e.com/h)", "heading link", "https://e.com/h"),
        ("[unbalanced [ text](https://e.com/u)", "unbalanced [ text", "https://e.com/u"),
        ("[ctl](https://e.com/\u200bx\x01y z)", "ctl", "https://e.com/xy%20z"),
    ],
)
def test_markdown_titles(line: str, title: str, url: str | None) -> None:
    assert parse_markdown_title(line) == (title, url)


def test_plain_title_is_an_article_without_link() -> None:
    article = parse_seed(seed(title="No link here"), "a.txt")
    assert article.title == "No link here" and article.link is None


def test_seconds_timestamp() -> None:
    article = parse_seed(seed(header="<!--1681696026-->"), "a.txt")
    assert article.updated == datetime(2023, 4, 17, 1, 47, 6, tzinfo=UTC)
    assert article.notes == ("timestamp in seconds, not milliseconds",) and article.problems == ()


def test_missing_timestamp_uses_body_date() -> None:
    data = b"[T](https://e.com/x)\n------\n\n" + BODY.encode()
    article = parse_seed(data, "a.txt", MTIME)
    assert article.updated == article.published == datetime(2023, 4, 16, 13, 6, 27, 989000, tzinfo=UTC)
    assert "no timestamp line" in article.notes


def test_missing_timestamp_and_body_date_uses_mtime() -> None:
    article = parse_seed(b"[T](https://e.com/x)\n---\n<p>x</p>", "a.txt", MTIME)
    assert article.updated == MTIME and article.published is None
    assert any("modification time" in n for n in article.notes)


def test_no_date_at_all_is_an_error() -> None:
    with pytest.raises(SeedError, match="no date"):
        parse_seed(b"[T](https://e.com/x)\n---\n<p>x</p>", "a.txt", None)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("<!--abc-->", "not a number"),
        ("<!--12x-->", "not a number"),
        ("<!---5-->", "not a number"),
        ("<!--0-->", "out of range (1970-01-01"),
        ("<!--12-->", "out of range"),
        ("<!--99999999999999999999-->", "out of range"),
        ("<!--" + "9" * 5000 + "-->", "out of range"),
        ("<!--1681696026000", "not a comment closed on its line"),
        ("<!--4102444800000-->", "2100-01-01 00:00 UTC is more than a day in the future"),
    ],
)
def test_an_invalid_stamp_is_a_problem_and_the_date_falls_back(header: str, why: str) -> None:
    """Behaviour changed (issue 14): an invalid stamp used to skip the article; now the date falls
    back to the body's date line, then to the mtime, and the stamp is reported as a problem."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    article = parse_seed(seed(header=header), "a.txt", MTIME, now=now)
    assert article.updated == article.published == datetime(2023, 4, 16, 13, 6, 27, 989000, tzinfo=UTC)
    assert article.title == "標題" and article.body_html == "<p>正文 text</p>"
    [problem] = article.problems
    assert problem.startswith(f"invalid timestamp {header[:40]!r}: ") and why in problem
    assert problem.endswith("; date taken from the body") and article.notes == ()
    no_body_date = parse_seed(seed(header=header, body="<p>x</p>"), "a.txt", MTIME, now=now)
    assert no_body_date.updated == MTIME and no_body_date.problems[0].endswith("modification time")
    with pytest.raises(SeedError, match=r"invalid timestamp .* no date line in the body or file time"):
        parse_seed(seed(header=header, body="<p>x</p>"), "a.txt", None, now=now)


def test_a_stamp_up_to_a_day_ahead_is_valid_and_says_until_when_one_further_is_not() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ahead = int((now + timedelta(hours=23)).timestamp() * 1000)
    article = parse_seed(seed(header=f"<!--{ahead}-->"), "a.txt", MTIME, now=now)
    assert article.updated == now + timedelta(hours=23) and article.problems == () and article.valid_until is None
    further = now + timedelta(days=3)
    rejected = parse_seed(seed(header=f"<!--{int(further.timestamp() * 1000)}-->"), "a.txt", MTIME, now=now)
    assert rejected.updated == rejected.published and "more than a day in the future" in rejected.problems[0]
    assert rejected.valid_until == further - timedelta(days=1)  # from then on, the same bytes give the stamp
    later = parse_seed(seed(header=f"<!--{int(further.timestamp() * 1000)}-->"), "a.txt", MTIME,
                       now=rejected.valid_until)
    assert later.updated == further and later.problems == () and later.valid_until is None
    # Without a time (a pure call that knows none), nothing is "in the future".
    assert parse_seed(seed(header="<!--4102444800000-->"), "a.txt").updated.year == 2100


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \n\n \r\n", "empty"),
        (b"<!--1681696026000-->\n", "no title"),
        (b"<!--1681696026000-->\nA title, no link\n------\n\n", "no article body .* no link: nothing to publish"),
        (b"<!--1681696026000-->\n<p>html where the title should be</p>", "expected a title"),
    ],
)
def test_empty_and_header_only(data: bytes, reason: str) -> None:
    with pytest.raises(SeedError, match=reason):
        parse_seed(data, "a.txt", MTIME)


@pytest.mark.parametrize("rest", ["", "\n------\n\n", "\n\n\n"])
def test_a_header_with_a_link_and_no_body_is_a_link_post(rest: str) -> None:
    """Behaviour changed (issue 14): this was skipped ("no article body after the header")."""
    article = parse_seed(f"<!--1681696026000-->\n[A link post](https://e.com/x){rest}".encode(), "a.txt", MTIME)
    assert (article.title, article.link, article.body_html) == ("A link post", "https://e.com/x", "")
    assert article.problems == () and article.notes == ()


@pytest.mark.parametrize("codec", ["big5", "cp950", "gb18030"])
def test_legacy_cjk_encodings_are_decoded(sample_bytes: bytes, codec: str) -> None:
    # The sample's simplified captions and "©" have no Big5 form: leave those few characters out.
    article = parse_seed(sample_bytes.decode("utf-8").encode(codec, errors="ignore"), "a.txt")
    assert article.title == "中國防長會見普京 談加強軍事合作"
    assert "李尚福" in article.body_html
    assert any("decoded as" in note for note in article.notes)


def test_short_big5_title_is_not_mojibake() -> None:
    data = "<!--1681696026000-->\n[中國防長會見普京](https://e.com/x)\n---\n<p>普京指出，俄中定期交換。</p>".encode("big5")
    assert parse_seed(data, "a.txt").title == "中國防長會見普京"


def test_undecodable_bytes_are_reported_not_mojibake() -> None:
    data = bytes(range(0x80, 0x100)) * 8
    with pytest.raises(SeedError, match="not valid UTF-8"):
        decode_seed(data)


def test_stray_invalid_bytes_in_utf8_keep_the_article(sample_bytes: bytes) -> None:
    broken = sample_bytes.replace("普京指出".encode(), b"\xff\xfe" + "普京指出".encode(), 1)
    article = parse_seed(broken, "a.txt")
    assert "普京指出" in article.body_html
    assert any("invalid UTF-8" in note for note in article.notes)


def test_utf16_with_bom(sample_bytes: bytes) -> None:
    data = codecs.BOM_UTF16_LE + sample_bytes.decode().encode("utf-16-le")
    assert parse_seed(data, "a.txt").title == "中國防長會見普京 談加強軍事合作"


def test_control_characters_are_removed_everywhere() -> None:
    data = seed(title="[Ti\x01tle\x0b](https://e.com/x)", body="<p>a\x00b\x1fc\ufffe</p>")
    article = parse_seed(data, "a.txt")
    assert article.title == "Title"
    assert article.body_html == "<p>abc</p>"


def test_huge_body_is_truncated_and_reported() -> None:
    body = "<p>" + "字" * 2000 + "</p>" * 1 + "<p>tail</p>" * 2000
    article = parse_seed(seed(body=body), "a.txt", max_article_bytes=4096)
    assert len(article.body_html.encode()) <= 4096
    assert any("truncated to max_article_bytes=4096" in problem for problem in article.problems)  # was a note


def _reference_title(line: str) -> tuple[str, str | None]:
    """parse_markdown_title before its shortcut for a first "]" with no nesting or escape before it."""
    line = re.sub(r"^#{1,6}\s+", "", line.strip())
    if line.startswith("["):
        depth, i = 0, 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        if depth == 0 and line[i + 1 : i + 2] == "(" and line.endswith(")"):
            text, target = line[1:i], line[i + 2 : -1].strip()
            if target.startswith("<") and ">" in target:
                target = target[1 : target.index(">")]
            else:
                target = re.sub(r"\s+(\"[^\"]*\"|'[^']*')$", "", target)
            return _inline_text(text), _clean_url(target)
        split = line.rfind("](")
        if split > 0 and line.endswith(")"):
            return _inline_text(line[1:split]), _clean_url(line[split + 2 : -1])
    return _inline_text(line), None


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="[]()\\ab <>\"'&#", max_size=24))
@example("a\\](b)](https://e.com/x)")
@example("a[b](c)](https://e.com/x)")
@example("](https://e.com/x)")
def test_the_title_shortcut_reads_what_the_bracket_scan_reads(tail: str) -> None:
    for line in ("[" + tail, tail):
        assert parse_markdown_title(line) == _reference_title(line)


STAMPS = ["", "<!--1681696026000-->", "<!--1681696026-->", "<!--0-->", "<!--99999999999999-->",
          "<!-- 1681696026000 -->", "\ufeff<!--1681696026000-->", "<!--16816\x0096026000-->"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2), st.sampled_from(STAMPS),
       st.sampled_from(["\n", "\r\n", "\r"]), st.text(max_size=30), st.sampled_from(["", "------\n", "------\n\n"]),
       st.sampled_from(["", "<div><i><br>2023-04-16T13:06:27.989Z</i></div>", "<div><i>2023-04-16 13:06</i></div>"]),
       st.text(max_size=60), st.sampled_from(["utf-8", "utf-16", "gb18030"]))
def test_the_header_promises_the_date_of_the_full_parse(blanks, stamp, newline, title, dashes, date_line, body,
                                                        encoding) -> None:
    header = "\n" * blanks + (stamp + newline if stamp else "") + f"[{title}](https://e.com/x)\n" + dashes
    text = header + date_line + body
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return
    mtime, now = datetime(2020, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    try:
        article = parse_seed(data, "a.txt", mtime, now=now)
    except SeedError:
        return
    assert parse_header(data, mtime, now=now) == article.updated
