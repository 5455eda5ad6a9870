"""The sanitizer policy, declared once, as data. Every sanitizer backend reads it from here.

Bump VERSION whenever anything below changes: caches of sanitized entries are keyed by it.
"""

from __future__ import annotations

VERSION = 3

TAGS: frozenset[str] = frozenset(
    """
    a abbr b bdi bdo blockquote br caption cite code col colgroup dd del details dfn div dl dt em
    figcaption figure h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q rp rt ruby s samp small
    span strong sub summary sup table tbody td tfoot th thead time tr u ul var wbr
    iframe embed object video audio source picture
    """.split()
)

ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title", "hreflang"}),
    "img": frozenset({"src", "srcset", "sizes", "alt", "title", "width", "height"}),
    "abbr": frozenset({"title"}),
    "blockquote": frozenset({"cite"}),
    "q": frozenset({"cite"}),
    "del": frozenset({"cite", "datetime"}),
    "ins": frozenset({"cite", "datetime"}),
    "time": frozenset({"datetime"}),
    "td": frozenset({"colspan", "rowspan", "headers"}),
    "th": frozenset({"colspan", "rowspan", "headers", "scope"}),
    "col": frozenset({"span"}),
    "colgroup": frozenset({"span"}),
    "ol": frozenset({"start", "reversed", "type"}),
    "li": frozenset({"value"}),
    "bdo": frozenset({"dir"}),
    "details": frozenset({"open"}),
    # Embeds and media reach the output only as `embeds.py` rebuilds them (see EMBED_PROVIDERS).
    "iframe": frozenset({"src", "title", "width", "height"}),
    "embed": frozenset({"src", "type", "title", "width", "height"}),
    "object": frozenset({"data", "type", "title", "width", "height"}),
    "video": frozenset({"src", "poster", "title", "width", "height"}),
    "audio": frozenset({"src", "title"}),
    "source": frozenset({"src", "srcset", "sizes", "type", "media"}),
}

# Attributes whose value is a URL: checked against PROTOCOLS and made absolute.
URL_ATTRIBUTES: frozenset[str] = frozenset({"href", "src", "cite", "data", "poster"})

# Attributes whose value is a list of image candidates ("url 2x, url 480w"): each URL checked as above.
SRCSET_ATTRIBUTES: frozenset[str] = frozenset({"srcset"})

PROTOCOLS: frozenset[str] = frozenset({"http", "https", "mailto"})

# Removed together with everything inside them: their text is code, or a parser-confusion vector.
REMOVE_WITH_CONTENT: frozenset[str] = frozenset(
    """
    script style template frame frameset applet noscript noembed noframes xmp
    plaintext title textarea select option optgroup svg math head meta link base param
    canvas map portal dialog button datalist
    """.split()
)

# Elements whose edges separate words in the plain text.
BLOCK_TAGS: frozenset[str] = frozenset(
    "p div br li dt dd h1 h2 h3 h4 h5 h6 blockquote figure figcaption tr td th table pre hr caption".split()
)

# How deep elements may nest; deeper start tags are dropped (their text stays) before either
# backend parses the HTML (`feedsvc.core.nesting`), because both parsers do work proportional to
# the depth for most tags: a 1 MB `<div>`×200k took minutes. Browsers allow far more (Chromium's
# parser flattens beyond 512), real articles rarely go past ~30, and every level costs a little
# on each tag of a hostile flat file, so: comfortably above articles, far below browsers.
# No VERSION bump: HTML nested no deeper than this comes out exactly as before.
MAX_DEPTH = 100
# How many formatting elements (<b>, <i>, <font>...) may be open, or closed only implicitly (the
# parser reopens those at the next text: `<font><p>`×100k makes it reopen them all each time).
# Articles nest a handful; past this, more formatting start tags are dropped the same way.
MAX_FORMATTING = 16
# Below this many tags (counted as "<" characters), nesting cannot cost much in either parser (a
# 1,000-deep <div> chain takes about 0.1 s in html5lib, a few ms in html5ever), so the pre-pass,
# a Python step per tag, is skipped: it would cost an ordinary article more than nh3's whole pass.
# Above it the limits hold. The per-file time budget guards whatever is slow at any size.
FLATTEN_ABOVE_TAGS = 1000

# Lazy-loading attributes that real articles put the image URL in; promoted to `src` when it is missing.
LAZY_SRC_ATTRIBUTES: tuple[str, ...] = ("data-src", "data-original", "data-lazy-src")

# --- Embeds and media (`embeds.py` applies these to both backends' output) ---

# Embed players kept as an <iframe>: exact https host → the path prefixes of its player pages.
# Anything else an iframe, <embed> or <object> shows becomes a link to it (or goes, when its URL
# is not http(s)), so a reader always learns that something was there.
EMBED_PROVIDERS: dict[str, tuple[str, ...]] = {
    "www.youtube-nocookie.com": ("/embed/",),
    "www.youtube.com": ("/embed/",),
    "youtube.com": ("/embed/",),
    "m.youtube.com": ("/embed/",),
    "youtube-nocookie.com": ("/embed/",),
    "player.vimeo.com": ("/video/",),
    "www.dailymotion.com": ("/embed/",),
    "geo.dailymotion.com": ("/player",),
    "player.bilibili.com": ("/player.html",),
    "w.soundcloud.com": ("/player/",),
    "open.spotify.com": ("/embed/", "/embed-podcast/"),
    "embed.acast.com": ("/",),
    "embed.documentcloud.org": ("/",),
    "www.documentcloud.org": ("/documents/",),
    "www.slideshare.net": ("/slideshow/embed_code/",),
    "datawrapper.dwcdn.net": ("/",),
    "flo.uri.sh": ("/visualisation/", "/story/"),
}
# YouTube's players are rewritten to its no-cookie host (what Miniflux does).
YOUTUBE_HOSTS: frozenset[str] = frozenset({"www.youtube.com", "youtube.com", "m.youtube.com", "youtube-nocookie.com"})
YOUTUBE_NOCOOKIE = "https://www.youtube-nocookie.com"
# The attributes every kept iframe gets: the player runs (scripts, its own origin, popups for
# "watch on …"), but can never navigate the reader's page (no allow-top-navigation*, no forms).
IFRAME_SANDBOX = "allow-scripts allow-same-origin allow-popups allow-popups-to-escape-sandbox"
IFRAME_REFERRERPOLICY = "strict-origin-when-cross-origin"
# The attributes `embeds.py` sets itself (never taken from the article) on top of ATTRIBUTES.
SET_ATTRIBUTES: dict[str, frozenset[str]] = {
    "iframe": frozenset({"allowfullscreen", "loading", "referrerpolicy", "sandbox"}),
    "video": frozenset({"controls", "preload"}),
    "audio": frozenset({"controls", "preload"}),
}
# Wrappers around the real target: host, path → the query parameters that hold it, player first
# (kept as an iframe when it is an allowed provider), then the page (a link otherwise).
EMBED_WRAPPERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cdn.embedly.com", "/widgets/media.html"): ("src", "url"),
    ("www.facebook.com", "/plugins/video.php"): ("href",),
    ("www.facebook.com", "/plugins/post.php"): ("href",),
}
# Widgets, not content: like and share buttons go without a trace.
EMBED_WIDGETS: frozenset[str] = frozenset(
    {
        "button.like.co/",
        "www.facebook.com/plugins/like.php",
        "www.facebook.com/plugins/share_button.php",
        "www.facebook.com/plugins/page.php",
        "platform.twitter.com/widgets/tweet_button.html",
    }
)

# --- Privacy (applied when `strip_tracking` is on, the default: `tracking.py`) ---

# Images from these hosts (or host + path prefix) are tracking pixels, whatever their size.
TRACKER_IMAGES: tuple[str, ...] = (
    "medium.com/_/stat",
    "pixel.wp.com/",
    "stats.wordpress.com/",
    "feeds.feedburner.com/~r/",
    "feeds.feedburner.com/~ff/",
    "feedproxy.google.com/~r/",
    "www.google-analytics.com/",
    "pixel.quantserve.com/",
    "sb.scorecardresearch.com/",
    "www.facebook.com/tr",
)
# Query parameters that only track the reader: removed from every URL (and the entry's link).
TRACKING_PARAMETER_PREFIXES: tuple[str, ...] = ("utm_",)
TRACKING_PARAMETERS: frozenset[str] = frozenset(
    """
    fbclid gclid dclid gbraid wbraid msclkid mc_cid mc_eid _hsenc _hsmi mkt_tok yclid igshid
    _ga _gl twclid ttclid li_fat_id oly_anon_id oly_enc_id vero_id wickedid rb_clickid s_cid
    """.split()
)
