"""A realistic seed corpus: N files in the real format, varied, deterministic for a given seed.

Shaped like `seeds/000_76cb3dcc68cf4183.txt`: an epoch-ms stamp, a Markdown title linking to
dw.com, a dashes line, then HTML with the body's own date line, Traditional Chinese paragraphs
(phrases recombined from the sample), images behind the images.weserv.nl proxy with
`<small style=…>` captions, `rel="ArticleRef"` links to api.dw.com, `<strong>` sub-heads and the
`<em>` copyright line. Sizes spread around the sample's ~5.5 KB. A few articles carry what real
feeds also carry (an embedded script or iframe, a lazy `data-src` image, a relative link, a
list, a quote, entities), so the sanitizers have real work.

    python -m benchmarks.corpus DIR --count 1000
"""

from __future__ import annotations

import argparse
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

SAMPLE = Path(__file__).resolve().parent.parent / "seeds" / "000_76cb3dcc68cf4183.txt"
START = datetime(2023, 1, 1, tzinfo=UTC)
# Articles are an hour apart, closer in a corpus too large to end before this (no stamp in the future).
END = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = 3600

_FALLBACK = "德國之聲中文網報導，雙方強調，兩國的軍事合作有助於強化戰略與互信關係。"


def _phrases() -> list[str]:
    """Clauses of the sample's visible text: the material articles are recombined from."""
    try:
        text = SAMPLE.read_text(encoding="utf-8")
    except OSError:
        text = _FALLBACK
    text = re.sub(r"<[^>]+>", "", text.split("\n", 4)[-1])
    parts = [p.strip() for p in re.split(r"(?<=[，。；：「」、])", text) if len(p.strip()) >= 4]
    return parts or [_FALLBACK]


PHRASES = _phrases()


def _sentence(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(PHRASES) for _ in range(rng.randint(lo, hi)))


def _image(rng: random.Random) -> str:
    image_id = rng.randint(60_000_000, 69_999_999)
    return (
        f'<img src="https://images.weserv.nl/?url=static.dw.com/image/{image_id}_303.jpg" width="100%">'
        f'<div><small style="color: #999;">{_sentence(rng, 1, 2)}</small></div>'
    )


def _paragraph(rng: random.Random) -> str:
    text = _sentence(rng, 3, 8)
    if rng.random() < 0.35:
        cut = rng.randint(0, len(text))
        ref = rng.randint(60_000_000, 69_999_999)
        link = f'<a href="https://api.dw.com/api/detail/article/{ref}" rel="ArticleRef">{_sentence(rng, 1, 1)}</a>'
        text = text[:cut] + link + text[cut:]
    return f"<p>{text}</p>"


def _extra(rng: random.Random, n: int) -> str:
    """What real article HTML sometimes carries, one kind per article that gets any."""
    kind = n % 8
    if kind == 0:
        return '<script>window.dataLayer=window.dataLayer||[];dataLayer.push({"event":"view"});</script>'
    if kind == 1:
        return '<iframe src="https://www.youtube.com/embed/x" width="560" height="315"></iframe>'
    if kind == 2:
        return f'<img data-src="https://images.weserv.nl/?url=static.dw.com/image/{n}_303.jpg" alt="lazy">'
    if kind == 3:
        return f'<p>相關：<a href="/zh/a-{n}">延伸閱讀</a> &amp; 更多</p>'
    if kind == 4:
        return f"<ul><li>{_sentence(rng, 1, 2)}</li><li>{_sentence(rng, 1, 2)}</li></ul>"
    if kind == 5:
        return f'<blockquote cite="https://www.dw.com/zh/">{_sentence(rng, 2, 3)}</blockquote>'
    if kind == 6:
        return '<p onclick="track()">點擊<span style="color:red">這裡</span>&nbsp;&lt;更多&gt;</p>'
    return "<!-- ad slot --><div class='ad'><p>廣告 AD</p></div>"


def article(n: int, seed: int = 0, spacing: int = HOUR) -> str:
    """The text of article number `n`, `spacing` seconds after the one before (about): the same
    `n`, `seed` and `spacing` always give the same text."""
    rng = random.Random(seed * 1_000_003 + n)
    updated = START + timedelta(seconds=n * spacing + rng.randint(0, spacing * 5 // 6))
    published = updated - timedelta(minutes=rng.randint(30, 600), milliseconds=rng.randint(0, 999))
    title = _sentence(rng, 1, 1).strip("，。；：「」、")[:30] or "標題"
    url = f"https://www.dw.com/zh/{quote(title)}/a-{65_000_000 + n}"
    target = max(1500, int(rng.lognormvariate(8.6, 0.35)))  # bytes of HTML, median ~5.4 KB
    parts = [f"<div><i><br>{published.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}</i></div>"]
    parts.append(_image(rng))
    size = sum(len(p.encode()) for p in parts)
    i = 0
    while size < target:
        i += 1
        if i % 4 == 0:
            part = f"<p><strong>{_sentence(rng, 1, 1)}</strong></p>"
        elif i % 5 == 0:
            part = _image(rng)
        else:
            part = _paragraph(rng)
        parts.append(part)
        size += len(part.encode())
    if rng.random() < 0.25:
        parts.insert(rng.randint(1, len(parts)), _extra(rng, n))
    parts.append(f"<p><em>© {updated.year}年德國之聲版權所有，未經德國之聲授權不得轉載。</em></p>")
    stamp = int(updated.timestamp() * 1000)
    return f"<!--{stamp}-->\n[{title}]({url})\n------\n\n{''.join(parts)}\n"


def file_name(n: int, seed: int = 0) -> str:
    return f"{n:06d}_{random.Random(f'{seed}/{n}').getrandbits(64):016x}.txt"


def write_corpus(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """Write `count` seed files into `directory` (created); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    spacing = min(HOUR, int((END - START).total_seconds()) // max(count, 1))
    paths = []
    for n in range(count):
        path = directory / file_name(n, seed)
        path.write_text(article(n, seed, spacing), encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = write_corpus(args.directory, args.count, args.seed)
    total = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} files, {total / max(1, len(paths)) / 1024:.1f} KiB on average, in {args.directory}")


if __name__ == "__main__":
    main()
