"""Bound how deep untrusted HTML nests before a sanitizer parses it: one linear scan, no parser.

html5lib (bleach) and html5ever (nh3) do work proportional to the depth of the stack of open
elements for most tags (scope checks walk it), so a 1 MB `<div>`×200k costs them minutes.
`flatten(html, limit)` tokenizes the markup as an HTML parser's tokenizer does (comments, bogus
comments, raw-text elements, quoted attribute values that hold `>`), keeps a model of the stack
of open elements, and drops every start tag that would make the model deeper than `limit`, with
the end tags that close those (their text stays). With `formatting_limit`, formatting start tags
(<b>, <font>...) go the same way once that many formatting elements are open or waiting to be
reopened: the parser reopens those at every paragraph (`<font><p>`×100k). A dropped tag never
joins a "<" before it to the text after it. Under the limits it returns its input unchanged.

Not everything that costs a parser time is nesting: 1 MB of flat elements still costs html5lib
seconds (the per-file time budget is for that); this bounds the part that grew quadratically.

The model may only be deeper than a browser's stack, never shallower: where the parser's
behaviour is in doubt (foreign content, a scope it might not find, a formatting element it would
reconstruct) the model keeps the element. What it follows of the HTML tree-construction rules is
what keeps ordinary sloppy markup from drifting deeper: end tags (by scope, the adoption agency's
"no furthest block" case, "any other end tag"), implied closes (`<p>`, `<li>`, `<dd>`, headings,
table parts), void elements, reconstruction of formatting elements. The output is still untrusted:
the sanitizer runs on it, so the model needs no precision for safety, only for time.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

import feedsvc.core.sanitize.policy as policy

_WS = "\t\n\f\r "
# One tag's attributes, as the tokenizer reads them: a value is quoted only right after `=`, and
# an attribute name may start with `=`. Atomic groups: the tokenizer never backtracks either.
_ATTRS = rf"""(?>[{_WS}/]++|[^{_WS}/>][^{_WS}/>=]*+(?:[{_WS}]*+=[{_WS}]*+(?:"[^"]*+"|'[^']*+'|[^{_WS}>]*+))?+)*+"""
_MARKUP = re.compile(
    rf"""<(?:
        !--(?:-?>|.*?(?:--!?>|\Z))                           # comment
      | (?:![^>]*+|\?[^>]*+|/(?![A-Za-z])[^>]*+)(?:>|\Z)     # bogus comment, doctype, CDATA, </>
      | (?P<end>/)?(?P<name>[A-Za-z][^{_WS}/>]*+)(?P<attrs>{_ATTRS})>  # start or end tag
    )""",
    re.DOTALL | re.VERBOSE,
)
# An unquoted attribute value that runs to the end of the tag (its "/" is not a self-closing one).
_UNQUOTED_AT_END = re.compile(rf"=[{_WS}]*[^{_WS}\"'][^{_WS}]*\Z")

VOID = frozenset(
    "area base basefont bgsound br col embed hr img image input keygen link meta param source track wbr".split()
)
# Their content is text up to their end tag, in HTML content. (<noscript> is parsed as markup by
# html5lib and as text by html5ever: scanning it as markup counts more, never less.)
RAW_TEXT = frozenset("script style xmp iframe noembed noframes textarea title".split())
_RAW_END = {name: re.compile(rf"</{name}[{_WS}/>]", re.IGNORECASE) for name in RAW_TEXT}
# Never pushed by a fragment parser in body content.
IGNORED = frozenset("html body head frameset frame".split())
FORMATTING = frozenset("a b big code em font i nobr s small strike strong tt u".split())
HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
# Elements whose start or end inserts a marker in the list of active formatting elements.
MARKERS = frozenset("applet marquee object template td th caption".split())
DEFAULT_SCOPE = frozenset("applet caption html table td th marquee object template".split())
TABLE_SCOPE = frozenset("html table template".split())
SPECIAL = frozenset(
    """
    address applet area article aside base basefont bgsound blockquote body br button caption center col colgroup dd
    details dialog dir div dl dt embed fieldset figcaption figure footer form frame frameset h1 h2 h3 h4 h5 h6 head
    header hgroup hr html iframe img input keygen li link listing main marquee menu meta nav noembed noframes
    noscript object ol p param plaintext pre script search section select source style summary table tbody td
    template textarea tfoot th thead title tr track ul wbr xmp
    """.split()
)
# End tags that close by scope: generate implied end tags, then pop up to the element.
SCOPED = frozenset(
    """
    address applet article aside blockquote button center details dialog dir div dl fieldset figcaption figure
    footer header hgroup listing main marquee menu nav object ol p pre search section summary ul li dd dt
    h1 h2 h3 h4 h5 h6
    """.split()
)
TABLE_PARTS = frozenset("table tbody thead tfoot tr td th caption colgroup".split())
# A start tag of these closes an open <p> (when one is in button scope).
CLOSES_P = frozenset(
    """
    address article aside blockquote center details dialog dir div dl fieldset figcaption figure footer header
    hgroup main menu nav ol p search section summary ul h1 h2 h3 h4 h5 h6 pre listing form plaintext hr xmp li dd dt
    """.split()
)
# Special elements whose start tag reopens the formatting elements waiting (as any non-special one does).
RECONSTRUCTING = frozenset("applet marquee object br img image input keygen wbr embed area select xmp".split())
# Start tags that leave SVG or MathML content (HTML's "breakout" list; <font> only with some
# attributes, so it counts as unsure).
BREAKOUT = frozenset(
    """
    b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li listing menu
    meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var
    """.split()
)
INTEGRATION_POINTS = frozenset("foreignobject desc title mi mo mn ms mtext annotation-xml".split())
HTML, FOREIGN, UNSURE = 0, 1, 2


def _key(name: str) -> str:
    """The name end tags match by: `</h2>` closes any open heading."""
    return "h*" if name in HEADINGS else name


class _Stack:
    """The model of the stack of open elements, with each kind's positions for O(1) scope checks."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.kinds: list[int] = []  # HTML, FOREIGN or UNSURE
        self.where: dict[str, list[int]] = {}  # key → its positions, bottom to top
        # Positions, bottom to top, of the elements that stop each kind of search.
        self.special: list[int] = []  # special or not HTML: the adoption agency's furthest block
        self.scope: list[int] = []  # the default scope's boundaries, and anything not HTML
        self.table_scope: list[int] = []
        self.markers: list[int] = []
        self.formatting: list[int] = []
        self.foreign = 0  # open <svg> and <math> elements
        # Formatting elements popped but still active: the parser reconstructs them at the next
        # text (or inline start tag) if no marker (a cell...) is open above where they were.
        # (name, markers open when it was popped): the levels never decrease along the list.
        self.pending: list[tuple[str, int]] = []
        self.version = 0  # changes whenever the model does

    def depth(self) -> int:
        """The elements open, and those the parser will reopen."""
        return len(self.names) + len(self.pending)

    def reconstruct(self) -> None:
        pending, level = self.pending, len(self.markers)
        if pending and pending[-1][1] == level:
            first = len(pending)
            while first and pending[first - 1][1] == level:
                first -= 1
            for name, _ in pending[first:]:
                self.push(name, HTML)
            del pending[first:]

    def forget(self, name: str) -> bool:
        """`</name>` for a formatting element waiting to be reopened: the parser drops it."""
        level = len(self.markers)
        for i in range(len(self.pending) - 1, -1, -1):
            if self.pending[i][1] != level:
                break
            if self.pending[i][0] == name:
                del self.pending[i]
                self.version += 1
                return True
        return False

    def __len__(self) -> int:
        return len(self.names)

    def top(self, key: str) -> int:
        """The position of the topmost element with this key, or -1."""
        found = self.where.get(key)
        return found[-1] if found else -1

    def push(self, name: str, kind: int) -> None:
        self.version += 1
        at = len(self.names)
        self.names.append(name)
        self.kinds.append(kind)
        self.where.setdefault(_key(name), []).append(at)
        if name in SPECIAL or kind != HTML:
            self.special.append(at)
        if name in DEFAULT_SCOPE or kind != HTML:
            self.scope.append(at)
        if name in TABLE_SCOPE or kind != HTML:
            self.table_scope.append(at)
        if kind == HTML and name in MARKERS:
            self.markers.append(at)
        if kind == HTML and name in FORMATTING:
            self.formatting.append(at)
        if name in ("svg", "math"):
            self.foreign += 1

    def cut(self, at: int) -> None:
        """Pop every element from position `at` up. Formatting elements popped below any marker
        popped with them wait to be reopened; closing a marker forgets those opened after it."""
        names, markers = self.names, self.markers
        first_marker = bisect_left(markers, at)
        lowest_marker = markers[first_marker] if first_marker < len(markers) else len(names)
        keep = [names[f] for f in self.formatting[bisect_right(self.formatting, at) :] if f < lowest_marker]
        while len(self.names) > at:
            self._pop()
        level = len(markers)
        while self.pending and self.pending[-1][1] > level:
            self.pending.pop()
        self.pending.extend((name, level) for name in keep)

    def _pop(self) -> None:
        self.version += 1
        at = len(self.names) - 1
        name = self.names.pop()
        self.kinds.pop()
        self.where[_key(name)].pop()
        for positions in (self.special, self.scope, self.table_scope, self.markers, self.formatting):
            if positions and positions[-1] == at:
                positions.pop()
        if name in ("svg", "math"):
            self.foreign -= 1


def _above(positions: list[int], at: int) -> bool:
    return bool(positions) and positions[-1] > at


def _kind(stack: _Stack, name: str) -> int:
    """Whether a new element is HTML, SVG/MathML, or either, from the element it goes into."""
    if name in ("svg", "math"):
        return FOREIGN
    if not stack.names:
        return HTML
    parent, parent_kind = stack.names[-1], stack.kinds[-1]
    if parent_kind == FOREIGN:
        if parent in INTEGRATION_POINTS:
            return UNSURE
        if name in BREAKOUT:
            return HTML
        return UNSURE if name == "font" else FOREIGN
    return parent_kind


def _end_tag(stack: _Stack, name: str) -> bool:
    """Apply `</name>` to the model; whether it closed anything."""
    key = _key(name)
    at = stack.top(key)
    if name in FORMATTING and (at < 0 or _above(stack.special, at)):
        return stack.forget(name)
    if at < 0 or name in IGNORED:
        return False
    if name == "form":  # the parser takes the form element out alone, leaving what is open in it
        if at != len(stack) - 1:
            return False
        blocked = False
    elif name in FORMATTING:
        blocked = False
    elif name in TABLE_PARTS:  # outside a table the parser ignores them
        blocked = _above(stack.table_scope, at) or (name != "table" and not 0 <= stack.top("table") < at)
    elif name in SCOPED:
        blocked = _above(stack.scope, at)
        if name == "p":
            blocked = blocked or stack.top("button") > at
        elif name == "li":
            blocked = blocked or stack.top("ol") > at or stack.top("ul") > at
    else:  # any other end tag: stopped by a special element above
        blocked = _above(stack.special, at)
    if blocked:
        return False
    stack.cut(at)
    return True


def _close_p(stack: _Stack) -> None:
    """What a start tag that closes a paragraph does: `</p>`, if a <p> is in button scope."""
    if stack.top("p") >= 0:
        _end_tag(stack, "p")


def _close_item(stack: _Stack, keys: tuple[str, ...]) -> None:
    """A new <li> (or <dd>/<dt>) closes the open one unless a special element other than
    <address>, <div> or <p> stands above it."""
    at = max(stack.top(key) for key in keys)
    if at < 0:
        return
    if any(stack.names[s] not in ("address", "div", "p") for s in reversed(stack.special) if s > at):
        return
    stack.cut(at)


def _table_start(stack: _Stack, name: str) -> list[str]:
    """Table parts clear the stack back to their context and imply what the parser inserts;
    the elements to push (the tag's own last)."""
    table = stack.top("table")
    if table < 0 or _above(stack.table_scope, table) or stack.top("template") > table:
        return [name]
    if name == "table":
        # A table directly in a table ends the first one; html5lib then drops the new one in a
        # fragment, html5ever opens it: keeping both counts more than either.
        return [name]
    if name in ("td", "th"):
        row = stack.top("tr")
        section = max(stack.top("tbody"), stack.top("thead"), stack.top("tfoot"))
        if row > table and row >= section:
            stack.cut(row + 1)
            return [name]
        if section > table:
            stack.cut(section + 1)
            return ["tr", name]
        stack.cut(table + 1)
        return ["tbody", "tr", name]
    if name == "tr":
        section = max(stack.top("tbody"), stack.top("thead"), stack.top("tfoot"))
        if section > table:
            stack.cut(section + 1)
            return [name]
        stack.cut(table + 1)
        return ["tbody", name]
    stack.cut(table + 1)  # tbody thead tfoot caption colgroup
    return [name]


def _implied(stack: _Stack, name: str) -> list[str]:
    """The implied closes a start tag does in HTML content; the elements it then pushes."""
    if name in CLOSES_P:
        if name == "li":
            _close_item(stack, ("li",))
        elif name in ("dd", "dt"):
            _close_item(stack, ("dd", "dt"))
        _close_p(stack)
        if name in HEADINGS and stack.names and stack.names[-1] in HEADINGS:
            stack.cut(len(stack) - 1)
        return [name]
    if name in ("a", "nobr") and stack.top(name) >= 0:
        _end_tag(stack, name)
    elif name in ("option", "optgroup") and stack.names and stack.names[-1] == "option":
        stack.cut(len(stack) - 1)
    elif name in TABLE_PARTS:
        return _table_start(stack, name)
    elif name == "col":
        return ["colgroup"] if stack.names and stack.names[-1] == "table" else []
    return [name]


def _end(stack: _Stack, dropped: dict[str, int], name: str) -> bool:
    """Apply an end tag; whether it goes (it closes a start tag that went)."""
    key = _key(name)
    if dropped.get(key):
        dropped[key] -= 1
        return True
    _end_tag(stack, name)
    return False


def _self_closing(attrs: str) -> bool:
    """Whether a start tag ends in `/>` (a "/" that ends an unquoted value does not count)."""
    return attrs.endswith("/") and _UNQUOTED_AT_END.search(attrs) is None


def _drop(dropped: dict[str, int], name: str) -> tuple[bool, bool]:
    key = _key(name)
    dropped[key] = dropped.get(key, 0) + 1
    return True, False


# Where the model does not follow the parser (foreign content, or maybe not), what a table part
# may make it insert too is counted.
_UNSURE_PUSHES = {"td": ["tbody", "tr", "td"], "th": ["tbody", "tr", "th"], "tr": ["tbody", "tr"],
                  "col": ["colgroup", "col"]}


def _break_out(stack: _Stack) -> None:
    """An HTML start tag in SVG or MathML content: the parser pops the foreign elements first."""
    at = len(stack)
    while at and stack.kinds[at - 1] == FOREIGN and stack.names[at - 1] not in INTEGRATION_POINTS:
        at -= 1
    if at < len(stack):
        stack.cut(at)


def _start(stack: _Stack, dropped: dict[str, int], name: str, attrs: str, limits: tuple[int, int]) -> tuple[bool, bool]:
    """Apply a start tag: (whether it goes, whether raw text follows it)."""
    kind = _kind(stack, name)
    raw = False
    if kind == HTML and stack.kinds and stack.kinds[-1] == FOREIGN:
        _break_out(stack)
    if kind == HTML:
        if name in FORMATTING and len(stack.formatting) + len(stack.pending) >= limits[1]:
            return _drop(dropped, name)  # before it makes the parser reopen the others
        if stack.foreign == 0 and (name not in SPECIAL or name in RECONSTRUCTING):
            stack.reconstruct()
        if name in IGNORED or (name in VOID and name != "col"):
            return False, False
        raw = stack.foreign == 0 and (name in RAW_TEXT or name == "plaintext")
        if raw and name not in ("script", "textarea") and stack.top("select") >= 0:
            raw = False  # in a <select> the parser ignores the tag: what follows is markup
        pushes = _implied(stack, name) if stack.foreign == 0 else _UNSURE_PUSHES.get(name, [name])
        if raw:
            return False, True  # never dropped: its text would become markup
    elif kind == FOREIGN and _self_closing(attrs):
        return False, False
    else:
        pushes = _UNSURE_PUSHES.get(name, [name])
    if stack.depth() + len(pushes) > limits[0]:
        return _drop(dropped, name)
    for element in pushes:
        stack.push(element, kind)
    return False, False


def _skip_copies(html: str, tag: str, pos: int, dropped: dict[str, int], key: str, end: bool) -> int:
    """Past the copies of `tag` that follow at `pos`, each one dropped: where they end."""
    copies, size = 0, len(tag)
    limit = dropped[key] if end else len(html)
    while copies < limit and html.startswith(tag, pos):
        pos += size
        copies += 1
    dropped[key] += -copies if end else copies
    return pos


def flatten(html: str, limit: int, formatting_limit: int | None = None) -> str:
    """`html` with no element nested deeper than `limit`, and no more than `formatting_limit`
    formatting elements (<b>, <font>...) open or waiting to be reopened (see the module's doc);
    `html` itself when nothing had to go."""
    limits = (limit, limit if formatting_limit is None else formatting_limit)
    stack = _Stack()
    dropped: dict[str, int] = {}  # start tags dropped and not yet closed, by `_key`
    out: list[str] = []
    kept = 0  # html[:kept] is in `out` already, or dropped
    tail = ""  # the last character in `out`
    pos = last = 0  # where the scan is; where the last token ended
    run: tuple[int, str, int] = (-1, "", -1)  # where the last dropped tag ended, it, the model's version then
    find, match = html.find, _MARKUP.match
    while (lt := find("<", pos)) >= 0:
        token = match(html, lt)
        if token is None:
            pos = lt + 1
            continue
        if lt > last and stack.pending and stack.foreign == 0:
            stack.reconstruct()  # text reopens them
        pos = last = token.end()
        name = token.group("name")
        if name is None:
            continue  # a comment or a bogus comment
        name = name.lower()
        if token.group("end"):
            drop = _end(stack, dropped, name)
        else:
            drop, raw = _start(stack, dropped, name, token.group("attrs"), limits)
            if raw:
                end = _RAW_END[name].search(html, pos) if name in _RAW_END else None
                if end is None:
                    break  # text to the end (<plaintext>, or an unclosed <script>)
                pos = last = end.start()
        if drop:
            if lt > kept:
                out.append(html[kept:lt])
                tail = html[lt - 1]
            if tail == "<":  # a dropped tag must not join a "<" to the text after it
                out.append("<!---->")
                tail = ">"
            tag = html[lt:pos]
            if lt == run[0] and tag == run[1] and stack.version == run[2]:
                # The same tag again, dropped, and the model did not change: so will every copy.
                pos = last = kept = _skip_copies(html, tag, pos, dropped, _key(name), bool(token.group("end")))
            else:
                kept = pos
            run = (pos, tag, stack.version)
    if not out and kept == 0:
        return html
    out.append(html[kept:])
    return "".join(out)


def bound_nesting(html: str) -> str:
    """The sanitizers' pre-pass: `flatten` by the policy's limits, for HTML with more than
    `policy.FLATTEN_ABOVE_TAGS` tags (see there); smaller HTML as it is."""
    if html.count("<") <= policy.FLATTEN_ABOVE_TAGS:
        return html
    return flatten(html, policy.MAX_DEPTH, policy.MAX_FORMATTING)
