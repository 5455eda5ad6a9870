"""The sanitizer policy, declared once, as data. Every sanitizer backend reads it from here.

Bump VERSION whenever anything below changes: caches of sanitized entries are keyed by it.
"""

from __future__ import annotations

VERSION = 2

TAGS: frozenset[str] = frozenset(
    """
    a abbr b bdi bdo blockquote br caption cite code col colgroup dd del details dfn div dl dt em
    figcaption figure h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q rp rt ruby s samp small
    span strong sub summary sup table tbody td tfoot th thead time tr u ul var wbr
    """.split()
)

ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title", "hreflang"}),
    "img": frozenset({"src", "alt", "title", "width", "height"}),
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
}

# Attributes whose value is a URL: checked against PROTOCOLS and made absolute.
URL_ATTRIBUTES: frozenset[str] = frozenset({"href", "src", "cite"})

PROTOCOLS: frozenset[str] = frozenset({"http", "https", "mailto"})

# Removed together with everything inside them: their text is code, or a parser-confusion vector.
REMOVE_WITH_CONTENT: frozenset[str] = frozenset(
    """
    script style template iframe frame frameset object embed applet noscript noembed noframes xmp
    plaintext title textarea select option optgroup svg math head meta link base param audio video
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

# Lazy-loading attributes that real articles put the image URL in; promoted to `src` when it is missing.
LAZY_SRC_ATTRIBUTES: tuple[str, ...] = ("data-src", "data-original", "data-lazy-src")
