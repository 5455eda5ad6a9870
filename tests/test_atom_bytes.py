"""The Atom documents are written directly: byte for byte what feedgen wrote (tests/atom_reference.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atom_reference import reference_atom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.corpus import article
from feedsvc.core.process import process_seed
from feedsvc.core.render import Paging
from feedsvc.core.render.atom import render_atom
from feedsvc.model import Entry, EntrySettings, FeedMeta

META = FeedMeta(
    id="https://feeds.example.org/feed.xml",
    title="Feeds & <things>",
    self_url="https://feeds.example.org/feed.xml",
    alternate_url="https://feeds.example.org/",
    subtitle='A "subtitle"',
    author="Ann & Bob",
    language="zh-Hant",
    hub="https://hub.example.org/?a=1&b=2",
    stylesheet="/feed.xsl",
)
BARE = FeedMeta(id="urn:x", title="t", self_url="https://e.org/feed.xml", alternate_url="https://e.org/",
                author="", language="")
ARCHIVE = Paging("https://feeds.example.org/archive/202301001.xml", "https://feeds.example.org/archive/2022.xml",
                 "https://feeds.example.org/archive/202302001.xml", current="https://feeds.example.org/feed.xml")
PAGINGS = [None, Paging(META.self_url, prev_archive="https://feeds.example.org/archive/202301001.xml"), ARCHIVE]


def corpus_entries(count: int) -> list[Entry]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    outcomes = [process_seed(article(n).encode(), f"{n}.txt", now, EntrySettings(sanitizer="nh3"), now)
                for n in range(count)]
    return [o.entry for o in outcomes if o.entry is not None]


def test_the_corpus_renders_as_feedgen_rendered_it() -> None:
    entries = corpus_entries(60)
    link_post = Entry("https://e.com/lp", "Link post", "https://e.com/lp", None, entries[0].updated, "", "", "lp.txt")
    bare = Entry("urn:uuid:1", "No link", None, None, entries[0].updated, "", "", "bare.txt")
    items = [*entries, link_post, bare]
    for meta in (META, BARE):
        for paging in PAGINGS:
            assert render_atom(meta, items, paging) == reference_atom(meta, items, paging)
        assert render_atom(meta, []) == reference_atom(meta, [])
        later = entries[0].updated + timedelta(days=1)
        assert render_atom(meta, items[:3], None, later) == reference_atom(meta, items[:3], None, later)


text = st.text(max_size=40)
dates = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2199, 1, 1), timezones=st.just(UTC))


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    return Entry(
        id="urn:x:" + draw(text),
        title=draw(text),
        link=draw(st.none() | st.just("") | text.map(lambda t: "https://e.com/" + t)),
        published=draw(st.none() | dates),
        updated=draw(dates),
        content_html=draw(st.just("") | text),
        summary=draw(text),
        source="a.txt",
        image=draw(st.none() | st.just("") | text.map(lambda t: "https://i.example/" + t + ".png")),
    )


xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries(), max_size=4), xml_text, xml_text, st.sampled_from(PAGINGS), st.booleans())
def test_any_entries_render_as_feedgen_rendered_them(items, subtitle, author, paging, styled) -> None:
    meta = FeedMeta(id=META.id, title=META.title + subtitle, self_url=META.self_url, alternate_url=META.alternate_url,
                    subtitle=subtitle, author=author, language=META.language, hub=META.hub if styled else "",
                    stylesheet=META.stylesheet if styled else "")
    assert render_atom(meta, items, paging) == reference_atom(meta, items, paging)
