"""Faithful articles (issue 22): what real publishers embed reaches the reader, or a link to it.

The fixtures below are written for these tests in the shapes publishers use (no real article is
copied): VOA's video block and mp3 audio, DW's akamaihd clip, YouTube `feature=oembed` iframes,
Medium's embedly wrapper and stat pixel, WordPress post embeds, a Datawrapper chart, `<picture>`
with `srcset`, links with `utm_*`.
"""

from __future__ import annotations

import html5lib
import pytest
from browser_eye import inert_problems, visible_text

from feedsvc.core.sanitize import BACKENDS, get_sanitizer, policy
from feedsvc.core.sanitize.embeds import media_files
from feedsvc.model import Article, Entry, FeedMeta

BASE = "https://www.voanews.com/a/some-story/7000001.html"
SANDBOX = policy.IFRAME_SANDBOX

VOA_VIDEO = (
    '<div class="wsw__embed"><div class="media-pholder"><video poster="https://images.weserv.nl?url='
    'gdb.voanews.com/01000000-0a00-0242-0000-000000000000_w800_r1.jpg" src="https://voa-video-ns.akamaized.net/'
    'pangeavideo/2024/01/0/00/01000000-0a00-0242-0000-000000000000_240p.mp4" controls autoplay muted loop '
    'width="640" height="360" onplay="track()">Your browser does not support video.</video></div>'
    "<p><small>Caption: a reporter on the scene.</small></p></div><p>Transcript: the story in words.</p>"
)
DW_CLIP = (
    '<video controls poster="/image/65000000_302.jpg"><source src="https://tvdownloaddw-a.akamaihd.net/'
    'dwtv_video/flv/ec/ec20240101_clip_sd_avc.mp4" type="video/mp4"></video><p>DW clip text.</p>'
)
VOA_AUDIO = '<audio src="https://voa-audio-ns.akamaized.net/vcm/2024/01/01/radio-piece.mp3"></audio><p>Radio.</p>'
YOUTUBE = (
    '<figure><iframe width="560" height="315" src="https://www.youtube.com/embed/dQw4w9WgXcQ?feature=oembed" '
    'frameborder="0" allow="accelerometer; autoplay; clipboard-write; encrypted-media" allowfullscreen '
    'title="A talk about feeds"></iframe></figure>'
)
EMBEDLY = (
    '<iframe src="https://cdn.embedly.com/widgets/media.html?src=https%3A%2F%2Fwww.youtube.com%2Fembed%2FabcDEF12345'
    '%3Ffeature%3Doembed&display_name=YouTube&url=https%3A%2F%2Fwww.youtube.com%2Fwatch%3Fv%3DabcDEF12345&image='
    'https%3A%2F%2Fi.ytimg.com%2Fvi%2FabcDEF12345%2Fhqdefault.jpg&key=a19fcc184b9711e1b4764040d3dc5c07&type=text'
    '%2Fhtml&schema=youtube" width="854" height="480" frameborder="0" scrolling="no"><a href="https://medium.com/'
    'media/0123456789abcdef">https://medium.com/media/0123456789abcdef</a></iframe>'
)
EMBEDLY_OTHER = (
    '<iframe src="https://cdn.embedly.com/widgets/media.html?src=https%3A%2F%2Fplayer.example.org%2Fp%2F9&url='
    'https%3A%2F%2Fexample.org%2Fshow%2F9&schema=example" width="600"></iframe>'
)
WORDPRESS = (
    '<blockquote class="wp-embedded-content" data-secret="Ab12Cd34"><a href="https://blog.example.net/2024/01/'
    'a-post/">A post</a></blockquote><iframe class="wp-embedded-content" sandbox="allow-scripts" '
    'security="restricted" style="position: absolute; clip: rect(1px, 1px, 1px, 1px);" title="“A post” — A blog" '
    'src="https://blog.example.net/2024/01/a-post/embed/#?secret=Xy98Zw76#?secret=Ab12Cd34" '
    'data-secret="Ab12Cd34" width="500" height="282" frameborder="0" marginwidth="0" marginheight="0" '
    'scrolling="no"></iframe>'
)
DATAWRAPPER = (
    '<iframe title="Turnout by region" aria-label="Map" id="datawrapper-chart-AbCdE" '
    'src="https://datawrapper.dwcdn.net/AbCdE/3/" scrolling="no" frameborder="0" style="width: 0; min-width: 100%'
    ' !important; border: none;" height="520" data-external="1"></iframe>'
)
GITHUB_CHART = '<iframe src="https://someone.github.io/viz/turnout.html" width="100%" height="600"></iframe>'
FACEBOOK_VIDEO = (
    '<iframe src="https://www.facebook.com/plugins/video.php?height=314&href=https%3A%2F%2Fwww.facebook.com%2F'
    'somepage%2Fvideos%2F1234567890%2F&show_text=false&width=560" width="560" height="314"></iframe>'
)
LIKE_BUTTON = '<iframe src="https://button.like.co/in/embed/someone/button?referrer=x" width="100%"></iframe>'
ACAST = '<iframe src="//embed.acast.com/some-show/episode-1" frameborder="0" width="100%" height="190"></iframe>'
PICTURE = (
    '<picture><source srcset="https://ichef.example.com/ace/640/cpsprodpb/a.webp 640w, '
    'https://ichef.example.com/ace/1024/cpsprodpb/a.webp 1024w" type="image/webp" media="(min-width: 600px)">'
    '<img srcset="https://ichef.example.com/ace/320/cpsprodpb/a.jpg 320w, /ace/800/cpsprodpb/a.jpg 800w" '
    'sizes="(max-width: 600px) 100vw, 50vw" alt="A photo"></picture>'
)
MEDIUM_PIXEL = (
    '<p>Medium post.</p><img src="https://medium.com/_/stat?event=post.clientViewed&referrerSource=full_rss'
    '&postId=0123456789ab" width="1" height="1" alt="">'
)


def both(source: str, base: str | None = BASE) -> str:
    """The sanitized HTML, the same from both backends."""
    results = {backend: get_sanitizer(backend)(source, base) for backend in BACKENDS}
    assert results["nh3"] == results["bleach"]
    out = results["bleach"][0]
    assert inert_problems(out) == [], out
    for backend in BACKENDS:  # sanitizing again changes nothing (a cut content is sanitized twice)
        assert get_sanitizer(backend)(out, base)[0] == out
    return out


def elements(fragment: str, tag: str) -> list[dict[str, str]]:
    tree = html5lib.parseFragment(fragment, namespaceHTMLElements=False)
    return [dict(el.attrib) for el in tree.iter(tag)]


def player(src: str, **extra: str) -> dict[str, str]:
    return {"src": src, **extra, "allowfullscreen": "", "loading": "lazy",
            "referrerpolicy": policy.IFRAME_REFERRERPOLICY, "sandbox": SANDBOX}


def test_youtube_oembed_iframe_is_kept_on_the_no_cookie_host() -> None:
    out = both(YOUTUBE)
    assert elements(out, "iframe") == [
        player("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ?feature=oembed", width="560", height="315",
               title="A talk about feeds")
    ]
    assert "allow=" not in out and "frameborder" not in out and "allow-top-navigation" not in out


def test_embedly_wrapper_is_unwrapped_to_its_player_or_its_page() -> None:
    assert elements(both(EMBEDLY), "iframe") == [
        player("https://www.youtube-nocookie.com/embed/abcDEF12345?feature=oembed", width="854", height="480")
    ]
    out = both(EMBEDLY_OTHER)
    assert elements(out, "iframe") == [] and elements(out, "a") == [{"href": "https://example.org/show/9"}]
    assert visible_text(out) == "example.org/show/9"


def test_wordpress_post_embed_becomes_a_link_to_the_post() -> None:
    out = both(WORDPRESS)
    assert elements(out, "iframe") == []
    links = elements(out, "a")
    assert links == [{"href": "https://blog.example.net/2024/01/a-post/"}] * 2
    assert visible_text(out).endswith("“A post” — A blog")


def test_datawrapper_chart_is_kept_and_other_charts_become_links() -> None:
    assert elements(both(DATAWRAPPER), "iframe") == [
        player("https://datawrapper.dwcdn.net/AbCdE/3/", height="520", title="Turnout by region")
    ]
    out = both(GITHUB_CHART)
    assert out == '<a href="https://someone.github.io/viz/turnout.html">someone.github.io/viz/turnout.html</a>'


def test_facebook_video_links_to_the_video_and_like_buttons_go() -> None:
    out = both(FACEBOOK_VIDEO)
    assert elements(out, "a") == [{"href": "https://www.facebook.com/somepage/videos/1234567890/"}]
    assert both(f"<p>a</p>{LIKE_BUTTON}<p>b</p>") == "<p>a</p><p>b</p>"


def test_protocol_relative_acast_player_is_kept_over_https() -> None:
    expected = player("https://embed.acast.com/some-show/episode-1", width="100%", height="190")
    assert elements(both(ACAST), "iframe") == [expected]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('<iframe src="https://youtube.com.evil.example/embed/x"></iframe>',
         '<a href="https://youtube.com.evil.example/embed/x">youtube.com.evil.example/embed/x</a>'),
        ('<iframe src="https://evil.example/?www.youtube.com/embed/x" title="T"></iframe>',
         '<a href="https://evil.example/?www.youtube.com/embed/x">T</a>'),
        ('<iframe src="https://www.youtube.com/watch?v=x"></iframe>',
         '<a href="https://www.youtube.com/watch?v=x">www.youtube.com/watch</a>'),
        ('<iframe src="javascript:alert(1)">x</iframe>', ""),
        ('<iframe srcdoc="<b>x</b>"></iframe>', ""),
        ('<object data="javascript:alert(1)">fallback <b>text</b></object>', "fallback <b>text</b>"),
        ('<object data="https://docs.example/report.pdf" type="application/pdf">The report</object>',
         '<a href="https://docs.example/report.pdf">docs.example/report.pdf</a>The report'),
        ('<embed src="https://player.vimeo.com/video/76979871" width="640">',
         '<iframe src="https://player.vimeo.com/video/76979871" width="640" allowfullscreen="" loading="lazy" '
         f'referrerpolicy="{policy.IFRAME_REFERRERPOLICY}" sandbox="{SANDBOX}"></iframe>'),
        ('<embed src="mailto:a@b.example">', ""),
    ],
)
def test_what_each_embed_becomes(source: str, expected: str) -> None:
    assert both(source) == expected


@pytest.mark.parametrize("host", sorted(policy.EMBED_PROVIDERS))
def test_every_provider_is_kept_with_https(host: str) -> None:
    path = policy.EMBED_PROVIDERS[host][0]
    out = both(f'<iframe src="http://{host}{path}x1"></iframe>')
    (frame,) = elements(out, "iframe")
    assert frame["src"].startswith("https://") and frame["src"].endswith(f"{path}x1")


def test_voa_video_block_stays_playable_with_poster_and_a_link() -> None:
    out = both(VOA_VIDEO)
    mp4 = ("https://voa-video-ns.akamaized.net/pangeavideo/2024/01/0/00/"
           "01000000-0a00-0242-0000-000000000000_240p.mp4")
    (video,) = elements(out, "video")
    assert video == {
        "src": mp4,
        "poster": "https://images.weserv.nl?url=gdb.voanews.com/01000000-0a00-0242-0000-000000000000_w800_r1.jpg",
        "width": "640", "height": "360", "controls": "", "preload": "none",
    }
    assert elements(out, "a") == [{"href": mp4}]
    text = visible_text(out)
    assert "Caption: a reporter on the scene." in text and "Transcript: the story in words." in text


def test_dw_clip_keeps_its_source_and_gets_an_absolute_poster() -> None:
    out = both(DW_CLIP, "https://www.dw.com/en/a-65338710")
    mp4 = "https://tvdownloaddw-a.akamaihd.net/dwtv_video/flv/ec/ec20240101_clip_sd_avc.mp4"
    assert elements(out, "video") == [{"poster": "https://www.dw.com/image/65000000_302.jpg", "controls": "",
                                       "preload": "none"}]
    assert elements(out, "source") == [{"src": mp4, "type": "video/mp4"}]
    assert out.index("<source") < out.index(f'<a href="{mp4}">') < out.index("</video>")
    assert media_files(out) == [(mp4, "video/mp4")]


def test_voa_audio_stays_playable() -> None:
    out = both(VOA_AUDIO)
    mp3 = "https://voa-audio-ns.akamaized.net/vcm/2024/01/01/radio-piece.mp3"
    assert elements(out, "audio") == [{"src": mp3, "controls": "", "preload": "none"}]
    assert media_files(out) == [(mp3, "audio/mpeg")]


def test_picture_and_srcset_are_kept_and_srcset_only_images_get_a_src() -> None:
    out = both(PICTURE, "https://www.bbc.com/news/articles/x")
    (source,) = elements(out, "source")
    assert source == {"srcset": "https://ichef.example.com/ace/640/cpsprodpb/a.webp 640w, "
                                "https://ichef.example.com/ace/1024/cpsprodpb/a.webp 1024w",
                      "type": "image/webp", "media": "(min-width: 600px)"}
    (img,) = elements(out, "img")
    assert img["src"] == "https://www.bbc.com/ace/800/cpsprodpb/a.jpg"  # the largest candidate, made absolute
    assert img["srcset"] == ("https://ichef.example.com/ace/320/cpsprodpb/a.jpg 320w, "
                             "https://www.bbc.com/ace/800/cpsprodpb/a.jpg 800w")
    assert img["sizes"] == "(max-width: 600px) 100vw, 50vw"


def test_bad_srcset_candidates_go_and_good_ones_stay() -> None:
    out = both('<img src="https://e.example/a.png" srcset="https://e.example/b.png 2x, javascript:alert(1) 3x, '
               'data:image/png;base64,AAAA 4x, https://e.example/c.png bogus">')
    assert elements(out, "img") == [{"src": "https://e.example/a.png", "srcset": "https://e.example/b.png 2x"}]


# --- Trackers ---------------------------------------------------------------------------------------

MEDIUM_LINK = "https://medium.com/@someone/a-post-0123456789ab?source=rss----1&utm_source=rss"


def seed_article(body: str, link: str = MEDIUM_LINK) -> Article:
    from feedsvc.core.parse import parse_seed

    text = f"<!--1700000000000-->\n[A post]({link})\n------\n\n{body}\n"
    return parse_seed(text.encode(), "000_0123456789abcdef.txt")


UTM_LINKS = (
    '<p>Read <a href="https://example.org/story?id=7&amp;utm_source=newsletter&amp;utm_medium=email&amp;'
    'utm_campaign=x#part-2">the story</a> and <a href="https://shop.example/?fbclid=IwAR0abc">this</a> and '
    '<a href="https://e.example/p?gclid=1&amp;mc_cid=2&amp;mc_eid=3&amp;_hsenc=4&amp;_hsmi=5&amp;mkt_tok=6&amp;'
    'yclid=7&amp;igshid=8&amp;keep=yes">that</a>.</p>'
    '<img src="https://cdn.example/i.jpg?utm_source=feed" srcset="https://cdn.example/i.jpg?w=2&amp;utm_medium=x 2x">'
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_medium_stat_pixel_and_utm_parameters_are_removed(backend: str) -> None:
    from feedsvc.core.entry import entry_id, make_entry

    article = seed_article(MEDIUM_PIXEL + UTM_LINKS + '<img src="https://pixel.wp.com/g.gif?v=ext" alt="">'
                           '<img src="https://stats.wordpress.com/b.gif" width="6" height="5">'
                           '<img src="https://e.example/spacer.gif" width="0" height="1">'
                           '<img src="https://feeds.feedburner.com/~r/Blog/~4/AbCd" height="1" width="1">'
                           '<img src="https://e.example/photo.jpg" width="1" alt="one wide, unknown height">')
    entry = make_entry(article, get_sanitizer(backend))
    content = entry.content_html
    assert "medium.com/_/stat" not in content and "pixel.wp.com" not in content
    assert "stats.wordpress.com" not in content and "feedburner" not in content and "spacer" not in content
    assert [a["href"] for a in elements(content, "a")] == [
        "https://example.org/story?id=7#part-2", "https://shop.example/", "https://e.example/p?keep=yes"]
    assert elements(content, "img") == [
        {"src": "https://cdn.example/i.jpg", "srcset": "https://cdn.example/i.jpg?w=2 2x"},
        {"src": "https://e.example/photo.jpg", "width": "1", "alt": "one wide, unknown height"},
    ]
    assert entry.image == "https://cdn.example/i.jpg"
    assert entry.link == "https://medium.com/@someone/a-post-0123456789ab?source=rss----1"
    # The id is the link as the seed writes it, tracking parameters and all: it never changes.
    assert entry.id == entry_id(article.link, article.source)
    assert entry.id == make_entry(article, get_sanitizer(backend), strip_tracking=False).id
    assert "utm_source" in entry.id


def test_strip_tracking_off_keeps_everything() -> None:
    from feedsvc.core.entry import make_entry

    article = seed_article(MEDIUM_PIXEL + UTM_LINKS)
    entry = make_entry(article, strip_tracking=False)
    assert "medium.com/_/stat" in entry.content_html and "utm_campaign" in entry.content_html
    assert entry.link == article.link


def test_entry_ids_never_change_on_the_sample_and_a_corpus() -> None:
    """Ids as before this setting existed: `entry_id` of the seed's link, on the real sample and
    on the benchmark corpus, with and without tracking parameters in the links."""
    from conftest import SAMPLE

    from benchmarks.corpus import article
    from feedsvc.core.entry import entry_id, make_entry
    from feedsvc.core.parse import parse_seed
    from feedsvc.core.urls import http_url

    seeds = [parse_seed(SAMPLE.read_bytes(), SAMPLE.name)]
    seeds += [parse_seed(article(n).encode(), f"{n}.txt") for n in range(60)]
    tracked = [seed_article("<p>x</p>", f"{s.link or 'https://e.example/'}?utm_source=rss&fbclid=1") for s in seeds]
    for seed in seeds + tracked:
        expected = entry_id(http_url(seed.link), seed.source)
        for strip in (True, False):
            assert make_entry(seed, strip_tracking=strip).id == expected
    assert make_entry(seeds[0]) == make_entry(seeds[0], strip_tracking=False)  # nothing to strip in the sample


def test_strip_tracking_is_a_config_key_and_keys_the_cache(tmp_path) -> None:
    import dataclasses

    from feedsvc.config import load_config
    from feedsvc.core.outcome import fingerprint

    empty = tmp_path / "c.toml"
    empty.write_text("")
    assert load_config(empty, env={}).strip_tracking is True
    off = load_config(empty, env={"FEEDSVC_STRIP_TRACKING": "false"})
    assert off.strip_tracking is False and off.entry_settings.strip_tracking is False
    settings = load_config(empty, env={}).entry_settings
    assert fingerprint(settings, "1") != fingerprint(dataclasses.replace(settings, strip_tracking=False), "1")


# --- What a reader gets: the three formats and their enclosures -------------------------------------

FEED = "https://feeds.example.org/"
DW_MP4 = "https://tvdownloaddw-a.akamaihd.net/dwtv_video/flv/ec/ec20240101_clip_sd_avc.mp4"
VOA_MP3 = "https://voa-audio-ns.akamaized.net/vcm/2024/01/01/radio-piece.mp3"
VOA_POSTER = "https://images.weserv.nl?url=gdb.voanews.com/01000000-0a00-0242-0000-000000000000_w800_r1.jpg"
VOA_MP4 = "https://voa-video-ns.akamaized.net/pangeavideo/2024/01/0/00/01000000-0a00-0242-0000-000000000000_240p.mp4"


def fixture_entries() -> list[Entry]:
    from datetime import UTC, datetime, timedelta

    from feedsvc.core.entry import make_entry

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    bodies = {
        "voa-video": ("https://www.voanews.com/a/7000001.html", VOA_VIDEO),
        "dw-clip": ("https://www.dw.com/en/a-65338710", '<img src="https://static.dw.com/image/1_302.jpg">' + DW_CLIP),
        "voa-audio": ("https://www.voanews.com/a/7000002.html?utm_source=rss&utm_medium=feed", VOA_AUDIO),
        "medium": (MEDIUM_LINK, EMBEDLY + MEDIUM_PIXEL + UTM_LINKS),
        "blog": ("https://blog.example.net/2024/01/b/", WORDPRESS + YOUTUBE + DATAWRAPPER + PICTURE),
    }
    return [
        make_entry(Article(f"{name}.txt", name, link, t0, t0 + timedelta(hours=n), body))
        for n, (name, (link, body)) in enumerate(bodies.items())
    ]


def meta() -> FeedMeta:
    return FeedMeta(id=FEED + "feed.xml", title="T", self_url=FEED + "feed.xml", alternate_url=FEED)


def test_atom_rss_and_json_feed_carry_the_media_as_enclosures() -> None:
    import json

    import feedparser
    from lxml import etree
    from schemas import validate_atom, validate_jsonfeed

    from feedsvc.core.render.atom import render_atom
    from feedsvc.core.render.jsonfeed import render_jsonfeed
    from feedsvc.core.render.rss import render_rss

    items = fixture_entries()
    atom = render_atom(meta(), items)
    assert validate_atom(atom) == []
    by_title = {e.title: e for e in feedparser.parse(atom).entries}
    enclosures = {t: [(x["href"], x["type"]) for x in e.enclosures] for t, e in by_title.items()}
    assert enclosures["voa-video"] == [(VOA_POSTER, "image/jpeg"), (VOA_MP4, "video/mp4")]  # the poster: its image
    assert enclosures["dw-clip"] == [("https://static.dw.com/image/1_302.jpg", "image/jpeg"), (DW_MP4, "video/mp4")]
    assert enclosures["voa-audio"] == [(VOA_MP3, "audio/mpeg")]
    assert enclosures["medium"] == [("https://cdn.example/i.jpg", "image/jpeg")]  # not the pixel; a player is no file
    ns = "{http://www.w3.org/2005/Atom}"
    content = {e.findtext(f"{ns}title"): e.findtext(f"{ns}content") for e in etree.fromstring(atom).iter(f"{ns}entry")}
    assert content["medium"] == items[3].content_html  # (feedparser would strip iframes: read the XML)
    assert "youtube-nocookie.com/embed/abcDEF12345" in content["medium"] and "utm_" not in content["medium"]
    assert "medium.com/_/stat" not in content["medium"]
    assert by_title["voa-audio"].link == "https://www.voanews.com/a/7000002.html"
    assert by_title["voa-audio"].id == "https://www.voanews.com/a/7000002.html?utm_source=rss&utm_medium=feed"
    blog = content["blog"]
    assert 'sandbox="allow-scripts allow-same-origin allow-popups allow-popups-to-escape-sandbox"' in blog
    assert "https://datawrapper.dwcdn.net/AbCdE/3/" in blog and "<picture><source srcset=" in blog

    rss = render_rss(meta(), items, FEED + "feed.rss")
    root = etree.fromstring(rss)
    one = {item.findtext("title"): [e.attrib for e in item.findall("enclosure")] for item in root.iter("item")}
    assert one["voa-video"] == [{"url": VOA_MP4, "length": "0", "type": "video/mp4"}]
    assert one["dw-clip"] == [{"url": DW_MP4, "length": "0", "type": "video/mp4"}]  # the media file before the image
    assert one["voa-audio"] == [{"url": VOA_MP3, "length": "0", "type": "audio/mpeg"}]
    assert one["medium"] == [{"url": "https://cdn.example/i.jpg", "length": "0", "type": "image/jpeg"}]
    assert one["blog"] == [{"url": "https://blog.example.net/ace/800/cpsprodpb/a.jpg", "length": "0",
                            "type": "image/jpeg"}]

    body = render_jsonfeed(meta(), items, FEED + "feed.json")
    assert validate_jsonfeed(json.loads(body)) == []
    feed = {i["title"]: i for i in json.loads(body)["items"]}
    assert feed["voa-audio"]["attachments"] == [{"url": VOA_MP3, "mime_type": "audio/mpeg"}]
    assert feed["voa-video"]["attachments"] == [{"url": VOA_MP4, "mime_type": "video/mp4"}]
    assert feed["voa-video"]["image"] == VOA_POSTER
    assert feed["dw-clip"]["attachments"] == [{"url": DW_MP4, "mime_type": "video/mp4"}]
    assert feed["dw-clip"]["image"] == "https://static.dw.com/image/1_302.jpg"
    assert "attachments" not in feed["medium"]
    assert feed["voa-audio"]["url"] == "https://www.voanews.com/a/7000002.html"


def test_a_declared_feeds_image_proxy_takes_posters_and_srcset_but_never_media_files() -> None:
    from feedsvc.core.transform import transform_entry

    proxy = "https://images.weserv.nl/?url={url}"
    by_name = {e.title: transform_entry(e, None, proxy) for e in fixture_entries()}
    clip = by_name["dw-clip"].content_html
    (video,) = elements(clip, "video")
    assert video["poster"] == "https://images.weserv.nl/?url=https%3A%2F%2Fwww.dw.com%2Fimage%2F65000000_302.jpg"
    assert elements(clip, "source") == [{"src": DW_MP4, "type": "video/mp4"}]
    assert media_files(clip) == [(DW_MP4, "video/mp4")]
    blog = by_name["blog"].content_html
    for attrs in elements(blog, "source") + elements(blog, "img"):
        for url in [attrs.get("src", "")] + [c.split()[0] for c in attrs.get("srcset", "").split(", ") if c]:
            assert url == "" or url.startswith("https://images.weserv.nl/?url=https%3A%2F%2F"), url


# --- A live reader ----------------------------------------------------------------------------------

@pytest.mark.parametrize("document", ["feed.rss", "feed.xml"])
@pytest.mark.live
def test_newsboat_lists_the_audio_enclosure_and_queues_it_for_podboat(tmp_path, document: str) -> None:
    """Seeds → a build → the published feed read by newsboat, which queues the mp3 for podboat
    (`podcast-auto-enqueue`): what a podcast-capable reader does with the enclosure."""
    import json

    from test_readers import run_newsboat

    from feedsvc.config import load_config
    from feedsvc.pipeline.builder import Builder

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "000_00000000000000a1.txt").write_text(
        "<!--1704067200000-->\n[Radio piece](https://www.voanews.com/a/7000002.html?utm_source=rss)\n------\n\n"
        f"{VOA_AUDIO}\n", encoding="utf-8")
    (tmp_path / "empty.toml").write_text("")
    config = load_config(tmp_path / "empty.toml", env={}, overrides={
        "seeds_dir": str(seeds), "output_dir": str(tmp_path / "out"), "base_url": FEED})
    assert Builder(config).build().ok
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    feed = tmp_path / document  # the published document's bytes, as a file newsboat can read
    feed.write_bytes((out / "objects" / manifest["documents"][document]["object"]).read_bytes())
    query = "SELECT title, url, enclosure_url, enclosure_type FROM rss_item"
    output, rows = run_newsboat(tmp_path, [f"file://{feed}"], "podcast-auto-enqueue yes\n", query)
    assert output == "1 unread articles"
    assert rows == [("Radio piece", "https://www.voanews.com/a/7000002.html", VOA_MP3, "audio/mpeg")]
    (queue,) = (tmp_path / "home").rglob("queue")  # run_newsboat's HOME
    assert queue.read_text().split()[0] == VOA_MP3


def test_the_sample_comes_out_byte_for_byte_as_before() -> None:
    """The real sample holds no embed, media, srcset or tracker: the new policy changes none of its
    bytes (the SHA-256 of its sanitized content before this policy, from both backends)."""
    import hashlib

    from conftest import SAMPLE

    from feedsvc.core.entry import make_entry
    from feedsvc.core.parse import parse_seed

    sample = parse_seed(SAMPLE.read_bytes(), SAMPLE.name)
    for backend in BACKENDS:
        content = make_entry(sample, get_sanitizer(backend)).content_html
        assert hashlib.sha256(content.encode()).hexdigest() == (
            "9fb239cac77b6249d2f4f9cf9f8cdd41172a2ba186fd7e8dfc0b2fad31ff6b49")
