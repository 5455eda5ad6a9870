"""Prove the Atom (RELAX NG) and JSON Feed (JSON Schema) validators pass and fail."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from schemas import validate_atom, validate_jsonfeed

ATOM_NS = "http://www.w3.org/2005/Atom"

FEED_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    f'<feed xmlns="{ATOM_NS}" xmlns:media="http://search.yahoo.com/mrss/"'
    ' xmlns:fh="http://purl.org/syndication/history/1.0" xml:lang="en">\n'
)

FEED_META = {
    "id": "<id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>",
    "title": "<title>Example Feed</title>",
    "updated": "<updated>2024-05-01T12:00:00Z</updated>",
    "links": (
        '<link rel="self" href="https://example.org/feed.atom"/>'
        '<link rel="hub" href="https://hub.example.org/"/>'
        '<link rel="prev-archive" href="https://example.org/feed-2024-04.atom"/>'
    ),
    "archive": "<fh:archive/>",
}

ENTRY = {
    "id": "<id>https://example.org/posts/1</id>",
    "title": '<title type="text">First post</title>',
    "updated": "<updated>2024-05-01T11:00:00+02:00</updated>",
    "link": '<link rel="alternate" type="text/html" href="https://example.org/posts/1"/>',
    "author": "<author><name>Jane Doe</name><email>jane@example.org</email></author>",
    "content": '<content type="html">&lt;p&gt;Hello &amp;amp; welcome&lt;/p&gt;</content>',
    "thumb": '<media:thumbnail url="https://example.org/t.jpg" width="75" height="50"/>',
}


def atom_feed(
    meta: dict[str, str] | None = None, entry: dict[str, str] | None = None
) -> bytes:
    """Assemble an Atom feed from element snippets (omit a key to drop it)."""
    meta = FEED_META if meta is None else meta
    entry = ENTRY if entry is None else entry
    return (
        FEED_HEAD
        + "".join(meta.values())
        + "<entry>"
        + "".join(entry.values())
        + "</entry></feed>"
    ).encode()


def without(d: dict[str, str], key: str) -> dict[str, str]:
    """Return a copy of ``d`` without ``key``."""
    return {k: v for k, v in d.items() if k != key}


# --- Atom -------------------------------------------------------------------


def test_minimal_valid_atom_feed_passes() -> None:
    assert validate_atom(atom_feed()) == []


def test_atom_entry_document_passes() -> None:
    xml = f'<entry xmlns="{ATOM_NS}">{"".join(ENTRY.values())}</entry>'
    xml = xml.replace("<media:thumbnail", '<media:thumbnail xmlns:media="urn:x-media"')
    assert validate_atom(xml.encode()) == []


def test_atom_missing_feed_id_fails() -> None:
    assert validate_atom(atom_feed(meta=without(FEED_META, "id")))


def test_atom_updated_with_element_instead_of_text_fails() -> None:
    meta = dict(
        FEED_META, updated="<updated><date>2024-05-01T12:00:00Z</date></updated>"
    )
    assert validate_atom(atom_feed(meta=meta))


def test_atom_updated_not_a_datetime_fails() -> None:
    meta = dict(FEED_META, updated="<updated>1 May 2024</updated>")
    assert validate_atom(atom_feed(meta=meta))


def test_atom_entry_without_title_fails() -> None:
    assert validate_atom(atom_feed(entry=without(ENTRY, "title")))


def test_atom_unknown_atom_namespace_element_fails() -> None:
    meta = dict(FEED_META, bogus="<bogus>not an Atom element</bogus>")
    assert validate_atom(atom_feed(meta=meta))
    entry = dict(ENTRY, bogus="<colour>red</colour>")
    assert validate_atom(atom_feed(entry=entry))


def test_atom_link_without_href_fails() -> None:
    entry = dict(ENTRY, link='<link rel="alternate"/>')
    assert validate_atom(atom_feed(entry=entry))


def test_atom_malformed_xml_reports_error() -> None:
    errors = validate_atom(b"<feed xmlns='http://www.w3.org/2005/Atom'>")
    assert errors and errors[0].startswith("XML syntax error")


def test_atom_external_entities_are_not_resolved(tmp_path: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = (
        atom_feed()
        .decode()
        .replace(
            '<?xml version="1.0" encoding="utf-8"?>\n',
            f'<?xml version="1.0"?>\n<!DOCTYPE feed [<!ENTITY x SYSTEM "file://{secret}">]>\n',
        )
        .replace("Example Feed", "&x;")
    )
    errors = validate_atom(xml.encode())
    # Expanded, the feed would be valid; left unexpanded, the entity reference
    # is not text, so RELAX NG rejects <title>.
    assert errors
    assert not any("TOP-SECRET" in e for e in errors)


def test_feedgen_output_validates() -> None:
    feedgen = pytest.importorskip("feedgen.feed")
    fg = feedgen.FeedGenerator()
    fg.id("https://example.org/feed.atom")
    fg.title("Handcrafted feed")
    fg.author({"name": "Jane Doe", "email": "jane@example.org"})
    fg.link(href="https://example.org/", rel="alternate")
    fg.link(href="https://example.org/feed.atom", rel="self")
    fg.subtitle("A small feed")
    fg.language("en")
    fg.updated(dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC))
    for n in (1, 2):
        fe = fg.add_entry()
        fe.id(f"https://example.org/posts/{n}")
        fe.title(f"Post {n}")
        fe.link(href=f"https://example.org/posts/{n}")
        fe.content(f"<p>Body {n}</p>", type="html")
        fe.published(dt.datetime(2024, 4, n, 8, 30, tzinfo=dt.UTC))
        fe.updated(dt.datetime(2024, 4, n, 9, 0, tzinfo=dt.UTC))
        fe.category(term="news")
    xml = fg.atom_str(pretty=True)
    assert validate_atom(xml) == []


# --- JSON Feed ----------------------------------------------------------------

VALID_JSONFEED: dict[str, Any] = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Example Feed",
    "home_page_url": "https://example.org/",
    "feed_url": "https://example.org/feed.json",
    "description": "Things",
    "icon": "https://example.org/icon.png",
    "favicon": "https://example.org/favicon.ico",
    "language": "en-US",
    "expired": False,
    "authors": [{"name": "Jane Doe", "url": "https://example.org/jane"}],
    "hubs": [{"type": "WebSub", "url": "https://hub.example.org/"}],
    "_feedsvc": {"about": "https://example.org/ext", "source": "seed"},
    "items": [
        {
            "id": "https://example.org/posts/2",
            "url": "https://example.org/posts/2",
            "content_text": "Plain text item.",
            "date_published": "2024-05-01T12:00:00Z",
        },
        {
            "id": "1",
            "url": "https://example.org/posts/1",
            "external_url": "https://elsewhere.example/",
            "title": "Hello",
            "content_html": "<p>Hello, world!</p>",
            "summary": "Greeting",
            "image": "https://example.org/1.jpg",
            "banner_image": "https://example.org/1-banner.jpg",
            "date_published": "2010-02-07T14:04:00-05:00",
            "date_modified": "2010-02-07T14:05:00.123-05:00",
            "authors": [{"avatar": "https://example.org/a.png"}],
            "tags": ["a", "b"],
            "language": "en",
            "attachments": [
                {
                    "url": "https://example.org/1.mp3",
                    "mime_type": "audio/mpeg",
                    "size_in_bytes": 1234,
                    "duration_in_seconds": 61.5,
                }
            ],
        },
    ],
}


def mutated(fn: Any) -> dict[str, Any]:
    """Deep-copy the valid feed and apply ``fn`` to it."""
    doc = copy.deepcopy(VALID_JSONFEED)
    fn(doc)
    return doc


def test_valid_jsonfeed_passes() -> None:
    assert validate_jsonfeed(VALID_JSONFEED) == []


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d.pop("items"), id="missing-items"),
        pytest.param(lambda d: d.pop("title"), id="missing-title"),
        pytest.param(
            lambda d: d.update(version="https://jsonfeed.org/version/1"),
            id="version-1.0",
        ),
        pytest.param(lambda d: d.update(version="1.1"), id="version-bogus"),
        pytest.param(lambda d: d["items"][0].pop("id"), id="item-without-id"),
        pytest.param(lambda d: d["items"][0].update(id=2), id="item-id-not-string"),
        pytest.param(
            lambda d: d["items"][0].pop("content_text"), id="item-without-content"
        ),
        pytest.param(
            lambda d: d["items"][0].update(
                date_published="Wed, 01 May 2024 12:00:00 GMT"
            ),
            id="date-rfc822",
        ),
        pytest.param(
            lambda d: d["items"][0].update(date_published="2024-05-01"), id="date-only"
        ),
        pytest.param(
            lambda d: d["items"][0].update(date_modified="2024-05-01T12:00:00"),
            id="date-no-offset",
        ),
        pytest.param(lambda d: d.update(expired="no"), id="expired-not-bool"),
        pytest.param(lambda d: d["items"][1].update(tags="a,b"), id="tags-not-array"),
        pytest.param(
            lambda d: d["items"][1]["attachments"][0].pop("mime_type"),
            id="attachment-without-mime-type",
        ),
        pytest.param(lambda d: d["hubs"][0].pop("url"), id="hub-without-url"),
        pytest.param(lambda d: d.update(unknown_key=1), id="unknown-top-level-key"),
    ],
)
def test_invalid_jsonfeed_fails(mutate: Any) -> None:
    assert validate_jsonfeed(mutated(mutate))
